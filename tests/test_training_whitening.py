"""Whitening learned on the collection (`training.whitening`): plain module, no database."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training import whitening
from training.metrics import evaluate_retrieval


def collection_with_a_shared_look(seed: int = 0) -> tuple[np.ndarray, dict[int, set[int]]]:
    """60 pairs of copies in 32 dimensions. Every signature is mostly one shared direction (the look of the
    whole collection) whose strength varies from picture to picture far more than a copy differs from its
    original, so raw cosine similarity groups pictures by how strongly they show the shared look."""
    rng = np.random.default_rng(seed)
    own = rng.normal(size=(60, 32))
    look = np.zeros(32)
    look[0] = 1.0
    strength = rng.uniform(5, 40, size=(120, 1))
    vectors = np.repeat(own, 2, axis=0) * 0.3 + rng.normal(scale=0.1, size=(120, 32)) + strength * look
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    partners = {row: {row ^ 1} for row in range(120)}
    return vectors.astype(np.float32), partners


def test_whitening_lets_what_is_particular_decide() -> None:
    vectors, partners = collection_with_a_shared_look()
    raw = evaluate_retrieval(vectors, list(range(120)), partners, bootstrap=0).map
    learned = whitening.fit(vectors)
    whitened = evaluate_retrieval(learned.apply(vectors), list(range(120)), partners, bootstrap=0).map
    assert whitened > raw + 0.2, (raw, whitened)
    assert np.allclose(np.linalg.norm(learned.apply(vectors), axis=1), 1.0, atol=1e-5)


def test_torch_and_numpy_agree_and_the_state_round_trips() -> None:
    vectors, _ = collection_with_a_shared_look(1)
    learned = whitening.fit(vectors)
    again = whitening.Whitening.from_state(learned.state())
    by_torch = again.apply_torch(torch.from_numpy(vectors)).numpy()
    assert np.allclose(by_torch, learned.apply(vectors), atol=1e-5)
    assert again.images == 120 and again.shrinkage == whitening.DEFAULT_SHRINKAGE


def test_fewer_images_than_dimensions_stay_finite_and_too_few_stay_raw() -> None:
    rng = np.random.default_rng(2)
    few = rng.normal(size=(12, 256)).astype(np.float32)
    for shrinkage in (0.0, 1.0):
        assert np.isfinite(whitening.fit(few, shrinkage).apply(few)).all()
    assert whitening.fit(few[: whitening.MIN_IMAGES - 1]) is None
    with pytest.raises(ValueError, match="shrinkage"):
        whitening.fit(few, -1)
