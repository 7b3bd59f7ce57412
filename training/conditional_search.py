"""Conditional search against the database: "like this artwork, but Baroque" under a backward-search version
(the Django side of `conditional`), and the training of its distilled student as a job.

A backward-search version keeps, beside its L2-normalised signatures, its raw z (`paths.latent_folder`): the
attribute heads were trained on raw z. Artworks whose signatures were extracted after the version was
trained have no stored z yet; it is computed from their image the first time a search needs it.

The student is registered with its teacher: its file is `paths.student_file(number)` and its figures are
`version.metrics["student"]`.
"""

from __future__ import annotations

import fcntl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from django.db import transaction
from django.utils import timezone

from annotations.models import Artwork
from jobs.progress import JobRefused, ProgressCallback, no_progress
from workbench import paths

from . import conditional, signature_store
from .label_models import LabelModel
from .models import ModelVersion
from .search import signatures
from .trainer import atomic_torch_save

METHOD = "backward-search"
TOP_K = 20
MAX_STUDENT_PAIRS = 100_000


class ConditionalSearchError(Exception):
    """Bad input for a conditional search: shown to the user (400 on the web), never a traceback."""


class UnreadableImage(ConditionalSearchError):
    """An artwork's image cannot be read to compute its z."""


@dataclass
class ConditionalModel:
    version: ModelVersion
    model: LabelModel
    classes: dict[str, list[str]]  # label task → class names, in the heads' order
    student: conditional.ConditionalStudent | None
    student_stamp: float | None


_lock = threading.Lock()
_loaded: dict[tuple[str, float], ConditionalModel] = {}


def require_conditional(version: ModelVersion) -> None:
    if version.method != METHOD:
        raise ConditionalSearchError(
            f"{version.label} is a {version.method} model without attribute heads to condition on: "
            f"conditional search needs a {METHOD} model (python manage.py train_model --method {METHOD})"
        )


def load(version: ModelVersion, with_student: bool = False) -> ConditionalModel:
    """The version's model and class names, loaded once per process; with its student when asked (again
    when the student's file changes: it is trained after the teacher). A missing or damaged file is a
    ConditionalSearchError, not a traceback."""
    require_conditional(version)
    checkpoint = paths.absolute(version.checkpoint)
    if not checkpoint.exists():
        raise ConditionalSearchError(f"the model file of {version.label} is missing ({version.checkpoint})")
    key = (str(checkpoint), checkpoint.stat().st_mtime)  # a number is reused by another data folder (tests)
    with _lock:
        cached = _loaded.get(key)
        if cached is None:
            from .label_rounds import load_label_model

            try:
                state = torch.load(checkpoint, map_location="cpu", weights_only=False)
                classes = state.get("classes") or {
                    name: task["classes"] for name, task in version.config.get("label_tasks", {}).items()
                }
                model = load_label_model(version)
            except Exception as exc:  # a damaged file: any of pickle's, torch's or a state dict's errors
                raise ConditionalSearchError(
                    f"the model file of {version.label} cannot be read: {exc}"
                ) from None
            if len(classes) != len(model.heads):
                raise ConditionalSearchError(f"{version.label} does not record the classes of its heads")
            cached = ConditionalModel(version, model, classes, None, None)
            _loaded.clear()  # one model in memory at a time
            _loaded[key] = cached
        if with_student:
            student_path = paths.student_file(version.number)
            stamp = student_path.stat().st_mtime if student_path.exists() else None
            if stamp is None:
                raise ConditionalSearchError(
                    f"{version.label} has no distilled student yet (its train_student job has not run: "
                    f"python manage.py train_student --model {version.number}); use the optimisation"
                )
            if cached.student_stamp != stamp:
                cached.student, cached.student_stamp = load_student(version), stamp
        return cached


def load_student(version: ModelVersion) -> conditional.ConditionalStudent:
    try:
        state = torch.load(paths.student_file(version.number), map_location="cpu", weights_only=False)
        student = conditional.ConditionalStudent(state["dim"], state["n_classes"])
        student.load_state_dict(state["model"])
    except Exception as exc:  # a damaged file: any of pickle's, torch's or a state dict's errors
        raise ConditionalSearchError(
            f"the student of {version.label} cannot be read ({exc}): train it again with "
            f"python manage.py train_student --model {version.number}"
        ) from None
    return student.eval()


def latents(loaded: ConditionalModel, artwork_ids: Sequence[int]) -> np.ndarray:
    """Raw z of `artwork_ids` (in that order): stored, or computed from the images and stored.

    Read and extended under an exclusive lock on the folder: two searches that both compute missing z
    would otherwise each save the store they started from plus their own rows, and the second write would
    drop the first's (or, the ids and the vectors being two files, pair one's ids with the other's rows)."""
    folder = paths.latent_folder(loaded.version.number)
    stored = signature_store.load(folder)
    rows = stored.row_of() if stored is not None else {}
    if any(a not in rows for a in artwork_ids):
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            stored = signature_store.load(folder)  # as it is now, under the lock
            rows = stored.row_of() if stored is not None else {}
            missing = [a for a in dict.fromkeys(artwork_ids) if a not in rows]
            if missing:
                stored = signature_store.merge(stored, missing, _compute_latents(loaded, missing))
                signature_store.save(folder, stored)
                rows = stored.row_of()
    assert stored is not None
    return np.stack([stored.vectors[rows[a]] for a in artwork_ids]).astype(np.float32)


def _compute_latents(loaded: ConditionalModel, artwork_ids: list[int]) -> np.ndarray:
    from .extraction import ImageReadError
    from .label_rounds import config_for
    from .label_trainer import latents_for

    artworks = Artwork.objects.in_bulk(artwork_ids)
    unknown = [a for a in artwork_ids if a not in artworks]
    if unknown:
        raise ConditionalSearchError(f"no artwork with id {unknown[0]}")
    files = [str(paths.absolute(artworks[a].image_relpath)) for a in artwork_ids]
    config = config_for(loaded.version, num_workers=0, device="cpu")
    try:
        return latents_for(loaded.model, files, config)
    except (OSError, ImageReadError) as exc:
        raise UnreadableImage(
            f"an artwork's image cannot be read to place it under the model: {exc}"
        ) from None


def readable_latents(loaded: ConditionalModel, artwork_ids: Sequence[int]) -> tuple[list[int], np.ndarray]:
    """The artworks among `artwork_ids` whose z is stored or can be computed, with their z. A hit whose
    image was damaged after import is listed without predicted classes rather than failing the whole search
    (it ranks by its stored signature); found one by one only when a batch fails."""
    try:
        return list(artwork_ids), latents(loaded, artwork_ids)
    except UnreadableImage:
        pass
    readable, vectors = [], []
    for artwork_id in artwork_ids:
        try:
            vectors.append(latents(loaded, [artwork_id])[0])
        except UnreadableImage:
            continue
        readable.append(artwork_id)
    if not readable:
        return [], np.zeros((0, 0), np.float32)
    return readable, np.stack(vectors)


def parse_lambda(value: str | float | None) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        lam = float(value)
    except ValueError:
        raise ConditionalSearchError(f"λ must be a number, not {value!r}") from None
    if not np.isfinite(lam) or lam < 0 or lam > 1000:
        raise ConditionalSearchError(f"λ must be between 0 and 1000, not {value}")
    return lam


def search(
    version: ModelVersion,
    artwork_id: int,
    wanted: Sequence[str] | Mapping[str, str],
    lam: float | None = None,
    student: bool = False,
    k: int = TOP_K,
) -> dict:
    """The k artworks nearest to the query moved towards the `wanted` classes, beside its k plain nearest
    under the same version; each hit with its predicted classes and its similarity kept to the query.

    Raises ConditionalSearchError for a version without heads, an unknown artwork or one without a
    signature, unknown condition names or classes, a bad λ, or a student not trained yet."""
    if student and lam is not None:
        raise ConditionalSearchError("the student learned the default λ: λ is for the optimisation")
    loaded = load(version, with_student=student)
    try:
        row = conditional.parse_conditions(wanted, loaded.classes)
    except conditional.ConditionError as exc:
        raise ConditionalSearchError(str(exc)) from None
    if not Artwork.objects.filter(pk=artwork_id).exists():
        raise ConditionalSearchError(f"no artwork with id {artwork_id}")
    found = signatures(version)
    if found is None or artwork_id not in found[1]:
        raise ConditionalSearchError(
            f"artwork {artwork_id} has no signature under {version.label} yet (run extract_signatures)"
        )
    stored, rows = found
    heads = loaded.model.heads
    z0 = torch.from_numpy(latents(loaded, [artwork_id]))
    conditions = torch.from_numpy(row).unsqueeze(0)
    n_conditions = int((row >= 0).sum())
    used_lambda = conditional.default_lambda(n_conditions) if lam is None else lam
    started = time.perf_counter()
    if student:
        assert loaded.student is not None  # `load` refused otherwise
        with torch.no_grad():
            z = loaded.student(z0, conditions)
        steps = 0
    else:
        try:
            result = conditional.backward_search(heads, z0, conditions, lam)
        except conditional.ConditionError as exc:
            raise ConditionalSearchError(str(exc)) from None
        z, steps = result.z, result.steps
    moved_ms = 1000 * (time.perf_counter() - started)
    query_row = rows[artwork_id]
    query_signature = stored.vectors[query_row]
    conditional_rows, conditional_scores = conditional.cosine_top(
        z[0].numpy(), stored.vectors, k, exclude=[query_row]
    )
    plain_rows, plain_scores = conditional.cosine_top(query_signature, stored.vectors, k, exclude=[query_row])
    tasks = list(loaded.classes)
    # An artwork deleted since the signatures were written is left out of both lists.
    artworks = Artwork.objects.in_bulk([int(stored.ids[r]) for r in [*conditional_rows, *plain_rows]])
    hit_ids = [
        a
        for a in dict.fromkeys(int(stored.ids[r]) for r in [*conditional_rows, *plain_rows])
        if a in artworks
    ]
    readable, hit_latents = readable_latents(loaded, hit_ids) if hit_ids else ([], None)
    position_of = {artwork_id_: position for position, artwork_id_ in enumerate(readable)}
    predicted = conditional.predict_attributes(heads, torch.from_numpy(hit_latents)) if readable else []

    def describe(hit_rows: np.ndarray, scores: np.ndarray) -> list[dict]:
        out = []
        for r, score in zip(hit_rows, scores, strict=True):
            artwork_id_ = int(stored.ids[r])
            if artwork_id_ not in artworks:
                continue
            position = position_of.get(artwork_id_)
            # No classes for a hit whose image cannot be read now (nothing to place under the model).
            attributes = {
                task: {
                    "class": loaded.classes[task][int(predicted[t][0][position])],
                    "probability": float(predicted[t][1][position]),
                }
                for t, task in enumerate(tasks)
                if position is not None
            }
            met = bool(attributes) and all(
                attributes[task]["class"] == loaded.classes[task][int(row[t])]
                for t, task in enumerate(tasks)
                if row[t] >= 0
            )
            out.append(
                {
                    "artwork_id": artwork_id_,
                    "artwork": artworks.get(artwork_id_),
                    "score": float(score),
                    "similarity_to_query": float(stored.vectors[r] @ query_signature),
                    "predicted": attributes,
                    "meets_conditions": met,
                }
            )
        return out

    query_predicted = conditional.predict_attributes(heads, z0)
    return {
        "model": version.number,
        "query": artwork_id,
        "query_predicted": {
            task: loaded.classes[task][int(query_predicted[t][0][0])] for t, task in enumerate(tasks)
        },
        "conditions": {
            task: loaded.classes[task][int(row[t])] for t, task in enumerate(tasks) if row[t] >= 0
        },
        "lambda": None if student else used_lambda,
        "mode": "student" if student else "optimisation",
        "steps": steps,
        "milliseconds": moved_ms,
        "hits": describe(conditional_rows, conditional_scores),
        "plain_hits": describe(plain_rows, plain_scores),
    }


def as_json(result: dict) -> dict:
    """`search`'s result without the Artwork objects, each hit with its title and page."""

    def hit(entry: dict) -> dict:
        artwork = entry["artwork"]
        return {
            **{key: value for key, value in entry.items() if key != "artwork"},
            "title": artwork.title if artwork else "",
            "external_id": artwork.external_id if artwork else "",
        }

    return {
        **result,
        "hits": [hit(h) for h in result["hits"]],
        "plain_hits": [hit(h) for h in result["plain_hits"]],
    }


def train_student_for_version(
    version: ModelVersion,
    *,
    pairs_per_query: int = 8,
    epochs: int = 50,
    job=None,
    progress: ProgressCallback = no_progress,
    log: Callable[[str], None] = lambda line: None,
) -> dict:
    """Distil the version's Backward Search into its student (methods.md §4) on random (query, conditions)
    pairs of the label split's train artworks, and register it with the teacher."""
    try:
        loaded = load(version)  # refuses a version without attribute heads
    except ConditionalSearchError as exc:
        raise JobRefused(str(exc)) from None
    found = signatures(version)
    if found is None:
        raise JobRefused(f"{version.label} has no signatures yet")
    with_signature = set(found[0].ids)
    train_ids = [
        pk
        for pk in Artwork.objects.filter(label_split="train").order_by("pk").values_list("pk", flat=True)
        if pk in with_signature
    ]
    if len(train_ids) * pairs_per_query > MAX_STUDENT_PAIRS:
        # Memory and time stay bounded on a large collection: a fixed sample of the train queries (their z,
        # targets and moved z are 3 KB a pair; 100,000 pairs optimise in about a minute on 2 CPUs).
        rng = np.random.default_rng(0)
        keep = MAX_STUDENT_PAIRS // pairs_per_query
        train_ids = sorted(rng.choice(train_ids, size=keep, replace=False).tolist())
    if len(train_ids) < 4:
        raise JobRefused(f"too few artworks in the label split's train part ({len(train_ids)}) to distil")
    progress(0.01, f"raw z of {len(train_ids)} train artworks")
    z_train = torch.from_numpy(latents(loaded, train_ids))
    n_classes = [len(names) for names in loaded.classes.values()]
    fit = conditional.train_student(
        loaded.model.heads,
        n_classes,
        z_train,
        pairs_per_query=pairs_per_query,
        epochs=epochs,
        # A cancelled job stops here: its progress callback raises.
        progress=lambda f, m: progress(0.02 + 0.95 * f, m),
    )
    atomic_torch_save(
        {
            "model": fit.student.state_dict(),
            "dim": int(z_train.shape[1]),
            "n_classes": n_classes,
            "classes": loaded.classes,
            "teacher": version.number,
        },
        paths.student_file(version.number),
    )
    figures = {
        "file": paths.relative(paths.student_file(version.number)),
        "pairs": len(train_ids) * pairs_per_query,
        "epochs": epochs,
        "best_epoch": fit.best_epoch,
        "val_mse": fit.val_mse,
        "teacher_seconds": fit.teacher_seconds,
        "seconds": fit.seconds,
        "trained_at": timezone.now().isoformat(),
        "job": job.pk if job is not None else None,
    }
    with transaction.atomic():
        fresh = ModelVersion.objects.select_for_update().get(pk=version.pk)
        fresh.metrics = {**(fresh.metrics or {}), "student": figures}
        fresh.save(update_fields=["metrics"])
    summary = (
        f"student of {version.label}: validation MSE {fit.val_mse:.4f} to the optimisation's z "
        f"({figures['pairs']} pairs, best epoch {fit.best_epoch} of {epochs})"
    )
    log(summary)
    return {"summary": summary, "version": version.number}
