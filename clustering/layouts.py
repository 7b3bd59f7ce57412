"""2-D maps of a collection from its signatures (plain module, no Django).

- similarity layout: UMAP (cosine) of the signatures to two dimensions;
- time layout: x = the artwork's start year, y = a one-dimensional UMAP of the signatures, so images that look
  alike sit at the same height and a pattern's spread through time reads left to right (methods.md §1).

Successive rounds stay comparable: UMAP starts from the previous version's coordinates for the artworks it
had (a new artwork starts at its nearest old neighbour's place), and the result is then aligned to the
previous layout by an orthogonal Procrustes fit (rotation/reflection, uniform scale, translation) on the
shared artworks.
Without a previous layout UMAP starts from its spectral initialisation with a fixed seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jobs.progress import ProgressCallback as Progress
from jobs.progress import no_progress

from .neighbours import normalise


@dataclass
class Layout:
    ids: list[int]
    similarity: np.ndarray  # (n, 2) float32
    time: np.ndarray  # (n, 2) float32; x = start year (NaN when unknown), y = 1-D similarity


def procrustes_align(moving: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Rotation R, scale s and translation t minimising ‖s·moving·R + t − target‖ (orthogonal Procrustes)."""
    moving_mean, target_mean = moving.mean(axis=0), target.mean(axis=0)
    a, b = moving - moving_mean, target - target_mean
    u, singular, vt = np.linalg.svd(a.T @ b)
    rotation = u @ vt
    norm = float((a**2).sum())
    scale = float(singular.sum() / norm) if norm > 0 else 1.0
    return rotation, scale, target_mean - scale * moving_mean @ rotation


def _initial_positions(
    unit: np.ndarray, ids: list[int], previous: dict[int, np.ndarray], dims: int
) -> np.ndarray | None:
    """Previous coordinates where known; otherwise those of the nearest artwork that has some."""
    have = [i for i, artwork in enumerate(ids) if artwork in previous]
    if len(have) < max(dims + 2, len(ids) // 2):
        return None  # too little overlap to be worth keeping: start afresh and align afterwards
    known = np.array([previous[ids[i]] for i in have], dtype=np.float64)
    init = np.empty((len(ids), dims))
    init[have] = known
    missing = [i for i, artwork in enumerate(ids) if artwork not in previous]
    if missing:
        similarity = unit[missing] @ unit[have].T
        init[missing] = known[np.argmax(similarity, axis=1)]
    # UMAP expects an initialisation of moderate spread; rescale to it and jitter exact duplicates apart.
    init = (init - init.mean(axis=0)) / max(float(init.std()), 1e-9) * 3.0
    init += np.random.default_rng(0).normal(scale=1e-3, size=init.shape)
    return init


def _umap(unit: np.ndarray, dims: int, init: np.ndarray | None, seed: int) -> np.ndarray:
    count = len(unit)
    if count <= dims + 1:  # too few points for a neighbour graph: spread them on a line / plane
        out = np.zeros((count, dims))
        out[:, 0] = np.arange(count)
        return out
    import umap

    reducer = umap.UMAP(
        n_components=dims,
        n_neighbors=min(15, count - 1),
        metric="cosine",
        min_dist=0.1,
        init=init if init is not None else ("spectral" if count > 20 else "random"),
        random_state=seed,
        n_jobs=1,  # with random_state set UMAP runs single-threaded anyway; say so to silence its warning
    )
    return np.asarray(reducer.fit_transform(unit), dtype=np.float64)


def _aligned(coords: np.ndarray, ids: list[int], previous: dict[int, np.ndarray]) -> np.ndarray:
    shared = [i for i, artwork in enumerate(ids) if artwork in previous]
    if len(shared) < coords.shape[1] + 1:
        return coords
    target = np.array([previous[ids[i]] for i in shared], dtype=np.float64)
    rotation, scale, translation = procrustes_align(coords[shared], target)
    return scale * coords @ rotation + translation


def compute_layout(
    ids: list[int],
    vectors: np.ndarray,
    years: list[int | None],
    previous: Layout | None = None,
    *,
    seed: int = 0,
    progress: Progress = no_progress,
) -> Layout:
    unit = normalise(vectors)
    old_similarity = {a: previous.similarity[i] for i, a in enumerate(previous.ids)} if previous else {}
    old_height = {a: previous.time[i, 1:2] for i, a in enumerate(previous.ids)} if previous else {}
    progress(0.05, f"similarity map of {len(ids):,} artworks")
    similarity = _umap(unit, 2, _initial_positions(unit, ids, old_similarity, 2), seed)
    similarity = _aligned(similarity, ids, old_similarity)
    progress(0.55, "time map")
    height = _umap(unit, 1, _initial_positions(unit, ids, old_height, 1), seed)
    height = _aligned(height, ids, old_height)
    years_column = np.array([np.nan if y is None else float(y) for y in years])
    progress(1.0, "maps ready")
    return Layout(
        ids=list(ids),
        similarity=similarity.astype(np.float32),
        time=np.column_stack([years_column, height[:, 0]]).astype(np.float32),
    )
