"""Retrieval methods: the kinds of model version the registry holds, and how each is made and used.

A model version records the method that made it (`ModelVersion.method`). Everything downstream reads a
version's stored signatures and their dimension, whatever the method: search and the side-by-side view,
the neighbours on the artwork page, clustering, the map, evaluation and promotion. What differs between
methods is how a version is trained and how its model turns images into signatures, so adding a method is:

1. one training module (plain PyTorch, no Django, shaped like `trainer`: `train_one_epoch`, `evaluate`,
   `fit`), with its job handler in `training/tasks.py`;
2. one `register(Method(...))` below naming the job that trains it and the functions that load its model and
   embed images with it ("module:function", imported only when used, so the web server does not load torch
   at start-up).

No view, template or clustering code changes: they list versions, not methods.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Method:
    name: str  # stored on ModelVersion.method
    label: str  # shown beside a version
    summary: str
    train_job: str  # job kind that trains a new version of this method
    loader: str  # "module:function": (version) -> model ready to embed images
    embedder: str  # "module:function": (model, version, files, progress, **overrides) -> (n, dim) float32
    feeds_review: bool = False  # its versions propose connections to review by default

    def load_model(self, version) -> Any:
        return resolve(self.loader)(version)

    def embed(self, model, version, files: list[str], progress=None, **overrides) -> Any:
        return resolve(self.embedder)(model, version, files, progress, **overrides)


METHODS: dict[str, Method] = {}


def resolve(dotted: str) -> Callable:
    module, _, name = dotted.partition(":")
    return getattr(importlib.import_module(module), name)


def register(method: Method) -> Method:
    if method.name in METHODS and METHODS[method.name] != method:
        raise ValueError(f"retrieval method {method.name!r} registered twice")
    METHODS[method.name] = method
    return method


def get(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(f"unknown retrieval method {name!r}; known: {', '.join(sorted(METHODS))}") from None


CONNECTION = register(
    Method(
        name="connection",
        label="Connections (compound hinge)",
        summary=(
            "Fine-tuned on the known visual connections with the compound hinge loss and mined hard "
            "negatives (methods.md §1); round 0 is the pretrained backbone."
        ),
        train_job="train_round",
        loader="training.rounds:load_version_model",
        embedder="training.rounds:embed_files",
        feeds_review=True,
    )
)


STYLE_CLASSIFIER = register(
    Method(
        name="style-classifier",
        label="Style classifier (256-d)",
        summary=(
            "A backbone fine-tuned to predict one catalogue label (style by default) in two stages; the "
            "signature is the 256-d layer before the classifier (methods.md §3). Finds paintings alike in "
            "that label, not copies of a composition."
        ),
        train_job="train_model",
        loader="training.label_rounds:load_label_model",
        embedder="training.label_rounds:embed_files",
    )
)

MULTITASK_KNN = register(
    Method(
        name="multitask-knn",
        label="Multitask labels + kNN triplet",
        summary=(
            "One classification head per label (style and genre by default) plus the kNN triplet loss that "
            "orders each image's nearest neighbours by how many labels they share (methods.md §2); the "
            "signature is the backbone's pooled descriptor."
        ),
        train_job="train_model",
        loader="training.label_rounds:load_label_model",
        embedder="training.label_rounds:embed_files",
    )
)

BACKWARD_SEARCH = register(
    Method(
        name="backward-search",
        label="Backward Search (conditional)",
        summary=(
            "A projection to a 256-d z with one attribute classifier per label (methods.md §4); the "
            'signature is z. Answers "like this one, but Baroque": the query\'s z is moved until the '
            "classifiers see the wanted classes, by optimisation or by its distilled student (trained as a "
            "follow-up job)."
        ),
        train_job="train_model",
        loader="training.label_rounds:load_label_model",
        embedder="training.label_rounds:embed_files",
    )
)

FROZEN = register(
    Method(
        name="frozen",
        label="Frozen extractor",
        summary=(
            "A pretrained backbone used as it is, no training step (methods.md §5): DINO ViT-S/16's class "
            "token or ConvNeXt-Base's pooled map when their weights are given, EfficientNet-Lite's ImageNet "
            "weights offline; compared by cosine."
        ),
        train_job="register_frozen",
        loader="training.rounds:load_version_model",
        embedder="training.rounds:embed_files",
    )
)
