"""The round pipeline, declared once: train → signatures → cluster → map.

Steps are job kinds (each app registers its handler in its `tasks.py`); this module only says what follows
what. A job carries the rest of its chain in `params["then"]`, and `jobs.runner` starts the next step when
a step succeeds, on the model version that step produced (see `runner.create_follow_up`). Whoever starts a
round or an extraction (the rounds page, `train_round`, `extract_signatures`, `bin/start`) asks here.
"""

from __future__ import annotations

from typing import Any

# A round trains a new version and computes its signatures in one job; an extraction computes signatures
# of a version (round 0 the first time). Both are followed by the same steps.
NEW_SIGNATURE_STEPS = ("train_round", "extract_signatures")
# A new version's face index (`embed_faces`) comes last: it does nothing until faces have been detected.
AFTER_NEW_SIGNATURES = ("cluster", "compute_layout", "embed_faces")
# A label-supervised model (`train_model`) is not clustered for review (it does not feed the loop: its
# clusters are of style or genre, not of shared patterns); its map is computed so it can be looked at.
AFTER_LABEL_MODEL = ("compute_layout", "embed_faces")
# A backward-search model's conditional search is distilled into its student first (methods.md §4).
AFTER_BACKWARD_SEARCH = ("train_student", *AFTER_LABEL_MODEL)
PIPELINE_KINDS = (
    *NEW_SIGNATURE_STEPS,
    "train_model",
    "train_student",
    "register_frozen",
    *AFTER_NEW_SIGNATURES,
    "detect_faces",
)


def with_face_index(params: dict[str, Any], **index: Any) -> dict[str, Any]:
    """`params` of a detect_faces job, followed by the face index of every version with signatures
    (`index`: embed_faces' own params, e.g. policy)."""
    return {**params, "then": [{"kind": "embed_faces", "params": {"model": "all", **index}}]}


def follow_ups() -> list[dict[str, Any]]:
    """The chain after new signatures: cluster the version's signatures, then recompute its map."""
    return [{"kind": kind, "params": {"model": "active"}} for kind in AFTER_NEW_SIGNATURES]


def with_follow_ups(params: dict[str, Any]) -> dict[str, Any]:
    """`params` of a train_round or extract_signatures job, with the rest of the pipeline chained."""
    return {**params, "then": follow_ups()}


def with_label_follow_ups(params: dict[str, Any]) -> dict[str, Any]:
    """`params` of a train_model job, with its map computed afterwards on the version it made (and, for a
    backward-search model, its student trained before)."""
    steps = AFTER_BACKWARD_SEARCH if params.get("method") == "backward-search" else AFTER_LABEL_MODEL
    return {**params, "then": [{"kind": kind, "params": {"model": "active"}} for kind in steps]}
