"""Label-supervised model versions against the database (the Django side of `label_trainer`).

`train_label_model` turns the catalogue's labels into the trainer's arrays (on the persisted label split,
`annotations.label_splits`), trains a `style-classifier`, `multitask-knn` or `backward-search` version,
computes every artwork's signature and registers the version with both kinds of metrics: the connection
metrics every version gets (`rounds.validate`) and leave-one-out P@k by label (`label_metrics`). Label
versions never become active: the review loop proposes connections from the connection model
(`ModelVersion.activate`).
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict

import numpy as np
import torch
from django.db import transaction

from annotations.label_splits import assign_label_splits, available_labels, label_value
from annotations.models import Artwork
from jobs.progress import JobRefused, ProgressCallback, no_progress
from workbench import paths

from . import labels as label_codes
from . import signature_store
from .label_evaluation import gallery_label_metrics, label_artworks
from .label_models import LabelModel, build_label_model
from .label_trainer import LabelData, LabelTrainConfig, fit, latents_for, signatures_for
from .models import ModelVersion
from .rounds import (
    build_gallery,
    json_safe,
    reserve_version,
    reserved,
    store_signatures,
    synthetic_validation,
    trained_already,
    validate,
)
from .trainer import atomic_torch_save, config_from

DEFAULT_MULTITASK_LABELS = ("style", "genre")


def encode(artworks: Sequence[Artwork], columns: Sequence[str]) -> list[label_codes.LabelTask]:
    """Each column as a task; UnusableLabels (a JobRefused) names the column and the too-rare classes."""
    tasks, problems = [], []
    for column in columns:
        try:
            tasks.append(label_codes.encode_task(column, [label_value(a, column) for a in artworks]))
        except label_codes.UnusableLabels as exc:
            problems.append(str(exc))
    if problems:
        raise JobRefused("; ".join(problems))
    return tasks


def default_labels(method: str, artworks: Sequence[Artwork]) -> list[str]:
    """style for the classifier; style and genre for the multitask and backward-search models, those the
    collection can train."""
    if method == "style-classifier":
        return ["style"]
    usable = []
    for column in DEFAULT_MULTITASK_LABELS:
        try:
            label_codes.encode_task(column, [label_value(a, column) for a in artworks])
            usable.append(column)
        except label_codes.UnusableLabels:
            pass
    if not usable:
        present = ", ".join(sorted(available_labels(artworks))) or "none"
        raise JobRefused(
            f"no usable style or genre labels for the {method} model; name label columns with --labels "
            f"(columns with values here: {present})"
        )
    return usable


def build_label_data(artworks: Sequence[Artwork], tasks: Sequence[label_codes.LabelTask]) -> LabelData:
    targets = np.stack([task.targets for task in tasks], axis=1)
    labelled = (targets >= 0).any(axis=1)
    split = np.array([artwork.label_split for artwork in artworks])
    return LabelData(
        paths=[str(paths.absolute(artwork.image_relpath)) for artwork in artworks],
        tasks=list(tasks),
        train=np.flatnonzero((split == "train") & labelled),
        val=np.flatnonzero((split == "val") & labelled),
        test=np.flatnonzero((split == "test") & labelled),
    )


def fingerprint(method: str, columns: Sequence[str], artworks: Sequence[Artwork], data: LabelData) -> str:
    """What a label model learns from: its method, label columns and the train rows' labels."""
    digest = hashlib.sha256(f"{method}:{','.join(columns)};".encode())
    targets = data.targets()
    for row in data.train.tolist():
        digest.update(f"{artworks[row].pk}:{targets[row].tolist()};".encode())
    return f"{method}:{digest.hexdigest()[: 64 - len(method) - 1]}"


def load_label_model(version: ModelVersion) -> LabelModel:
    state = torch.load(paths.absolute(version.checkpoint), map_location="cpu", weights_only=False)
    model, _ = build_label_model(version.method, version.backbone, state["n_classes"], weights="none")
    model.load_state_dict(state["model"])
    return model.eval()


def config_for(version: ModelVersion, **overrides) -> LabelTrainConfig:
    return config_from(LabelTrainConfig, version.config, **overrides)


def embed_files(
    model: LabelModel, version: ModelVersion, files: Sequence[str], progress=None, **overrides
) -> np.ndarray:
    """Signatures of image files under a label version, with the preprocessing it was trained with."""
    return signatures_for(model, list(files), config_for(version, **overrides), progress=progress)


def train_label_model(
    method: str,
    collections: Sequence[str] | None = None,
    *,
    labels: Sequence[str] | None = None,
    force: bool = False,
    user=None,
    job=None,
    progress: ProgressCallback = no_progress,
    log: Callable[[str], None] = lambda line: None,
    **overrides,
) -> dict:
    """Train a label-supervised version of `method` on the catalogue labels of `collections` (all by
    default) and register it with its signatures and metrics. Refused (JobRefused) when a label cannot be
    trained on; skipped when a version of the same method was trained on the same labels (unless force)."""
    assigned = assign_label_splits()
    if assigned:
        log(f"label split: {assigned} artworks assigned (70/15/15, stratified)")
    artworks = label_artworks(collections)
    columns = list(labels) if labels else default_labels(method, artworks)
    try:
        config = LabelTrainConfig(
            method=method, labels=columns, **{k: v for k, v in overrides.items() if v is not None}
        )
    except (TypeError, ValueError) as exc:
        raise JobRefused(str(exc)) from None
    tasks = encode(artworks, columns)
    for task in tasks:
        if task.dropped:
            log(task.describe_dropped())
    data = build_label_data(artworks, tasks)
    if len(data.train) < 2 or len(data.val) < 1:
        raise JobRefused(
            f"too few labelled artworks in the label split ({len(data.train)} train, {len(data.val)} val)"
        )
    key = fingerprint(method, columns, artworks, data)
    same = ModelVersion.objects.filter(method=method, connection_set_hash=key, backbone=config.backbone)
    if same.exists() and not force:
        return trained_already(same, f"is a {method} model of the same labels")
    reservation, holder = reserve_version(key, config.backbone, job)
    if reservation is None:
        return {
            "summary": f"Skipped: job #{holder.job_id} is training the same model (as v{holder.number})",
            "skipped": True,
        }
    with reserved(reservation):
        return _train_reserved(reservation.number, key, config, tasks, data, user, job, progress, log)


def _train_reserved(
    number: int,
    key: str,
    config: LabelTrainConfig,
    tasks: Sequence[label_codes.LabelTask],
    data: LabelData,
    user,
    job,
    progress: ProgressCallback,
    log: Callable[[str], None],
) -> dict:
    log(
        f"{config.method} on {', '.join(f'{t.name} ({t.n_classes} classes)' for t in tasks)}: "
        f"{len(data.train)} train, {len(data.val)} val, {len(data.test)} test artworks"
    )
    checkpoint_dir = paths.training_checkpoints(f"{config.method}-{key.split(':')[1][:12]}-{config.key()}")
    try:
        result = fit(config, data, checkpoint_dir, progress=lambda f, m: progress(0.85 * f, m), log=log)
    except FileNotFoundError as exc:  # no pretrained weights for the backbone (`build_model`)
        raise JobRefused(str(exc)) from None
    progress(0.86, "computing signatures of every artwork")
    full = build_gallery()
    latents = None
    if config.method == "backward-search":  # z itself is kept too: the attribute heads read raw z
        latents = latents_for(
            result.model, full.data.paths, config, progress=lambda f, m: progress(0.86 + 0.09 * f, m)
        )
        vectors = latents / np.maximum(np.linalg.norm(latents, axis=1, keepdims=True), 1e-12)
    else:
        vectors = signatures_for(
            result.model, full.data.paths, config, progress=lambda f, m: progress(0.86 + 0.09 * f, m)
        )
    atomic_torch_save(
        {
            "model": result.model.state_dict(),
            "config": asdict(config),
            "method": config.method,
            "n_classes": [task.n_classes for task in tasks],
            "classes": {task.name: list(task.classes) for task in tasks},
        },
        paths.model_file(number),
    )
    version = ModelVersion(
        number=number,
        method=config.method,
        backbone=config.backbone,
        weights_kind=result.origin.kind,
        weights_description=f"fine-tuned on {', '.join(config.labels)} from {result.origin.description}",
        weights_sha256=result.origin.sha256 or "",
        config={
            **asdict(config),
            "history": result.history,
            "best_epoch": result.best_epoch,
            "seconds_per_epoch": result.seconds_by_phase,
            "label_tasks": {task.name: task.summary() for task in tasks},
        },
        connection_set_hash=key,
        checkpoint=paths.relative(paths.model_file(number)),
        signature_dim=vectors.shape[1],
        created_by=user,
        job=job,
        gate={
            "decision": "label",
            "reason": "label-supervised: searched, clustered and mapped on request; the review loop keeps "
            "the connection model",
        },
    )
    progress(0.96, "evaluating")
    metrics = validate(version, result.model, vectors, full, synthetic_validation(full)).metrics()
    measured = sorted({*config.labels, *(c for c in ("style", "genre", "author"))})
    metrics["labels"] = gallery_label_metrics(vectors, full.artworks, measured)
    if result.test is not None:
        metrics["label_accuracy"] = json_safe(result.test.accuracy)
    version.metrics = metrics
    if latents is not None:  # before the version exists, so no search finds it without its z
        signature_store.save(
            paths.latent_folder(number), signature_store.SignatureSet([a.pk for a in full.artworks], latents)
        )
    with transaction.atomic():
        version.save()
    store_signatures(version, full, vectors)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    figures = ", ".join(
        f"{name} P@1 {100 * values['p@1']:.1f}"
        for name, values in metrics["labels"].items()
        if values.get("p@1") is not None
    )
    summary = f"{version.label} ({config.method}, {config.backbone}): {figures or 'no label test artworks'}"
    log(summary)
    return {"summary": summary, "version": version.number, "metrics": metrics}
