"""Verified edges: spatially verified pairs join the clustering's neighbour graph (plain module, no Django).

A density clustering of global signatures only sees pairs closer than max_eps. Many true connections are
further apart than any radius that keeps clusters clean: a detail cropped from a painting, a mirrored
engraving, a figure pasted into another composition. Local features find exactly those (`training.
verification`: SIFT, ratio test, an affine map fitted by RANSAC, the query also tried mirrored). So each
signature's `verify_top` nearest neighbours in search space are verified, and a pair that shares one
geometric map (at least `training.verification.MIN_INLIERS` inliers) becomes an edge of the graph at

    distance = max_eps × (1 − min(inliers, SATURATION) / SATURATION)

whatever its cosine distance: inside the radius, the closer the more points agree. The clustering then runs
on that graph as before. This is the matching graph of object mining (Philbin & Zisserman, "Object mining
using a matching graph on very large image collections", ICVGIP 2008; Chum & Matas, "Large-scale discovery
of spatially related images", PAMI 2010), grafted onto the thesis's OPTICS.

Measured on round 0 (pretrained Lite0, GeM, every proposal answered by the simulated historian;
`bench/round0_proposals.py`): at the thesis's max_eps 0.13 the proposals join 12 % of the demo's hidden
connections and 11 % of People-Art dev's; with the verified edges of the top 10, 83 % and 89 %, with 68
of 69 and 58 of 58 proposals holding a true group. The top 20 found one more demo pair for twice the
matching.

Candidates come from the version's search signatures (whitened when the version is), which rank a
partner higher than the raw ones clustering measures with (bench/signature_quality.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from jobs.progress import ProgressCallback as Progress
from jobs.progress import no_progress
from training.verification import MIN_INLIERS

from .neighbours import NeighbourGraph, normalise

SATURATION = 60  # inliers at which a verified pair counts as a duplicate (distance 0), as in search's bonus

# (pairs of row numbers (m, 2), progress) → inlier count of each pair.
InlierCounter = Callable[[np.ndarray, Progress], np.ndarray]


@dataclass
class Verifier:
    """What verification needs beside the signatures being clustered: the vectors that candidates are
    searched in (the same rows, in the same order) and a function that counts each pair's inliers."""

    candidates: np.ndarray
    count_inliers: InlierCounter


@dataclass
class VerifiedEdges:
    pairs: np.ndarray  # (m, 2) int64 row numbers, first < second: every candidate pair verified
    inliers: np.ndarray  # (m,) int64

    @property
    def verified(self) -> np.ndarray:
        return self.inliers >= MIN_INLIERS

    def summary(self) -> dict:
        return {"candidates": int(len(self.pairs)), "verified": int(self.verified.sum())}


def candidate_pairs(vectors: np.ndarray, top: int) -> np.ndarray:
    """Each row's `top` nearest other rows by cosine similarity, as unique (first < second) pairs."""
    import faiss

    count = len(vectors)
    if count < 2 or top < 1:
        return np.zeros((0, 2), dtype=np.int64)
    unit = np.ascontiguousarray(normalise(vectors), dtype=np.float32)
    index = faiss.IndexFlatIP(unit.shape[1])
    index.add(unit)
    wanted = min(top + 1, count)  # the row itself comes back too (first, or tied with a duplicate)
    _, found = index.search(unit, wanted)
    rows = np.repeat(np.arange(count, dtype=np.int64), wanted)
    cols = found.astype(np.int64).ravel()
    keep = (cols >= 0) & (cols != rows)
    pairs = np.sort(np.stack([rows[keep], cols[keep]], axis=1), axis=1)
    return np.unique(pairs, axis=0)


def verified_distance(inliers: np.ndarray, max_eps: float) -> np.ndarray:
    return max_eps * (1.0 - np.minimum(inliers, SATURATION) / SATURATION)


def verify(verifier: Verifier, top: int, progress: Progress = no_progress) -> VerifiedEdges:
    pairs = candidate_pairs(verifier.candidates, top)
    inliers = np.asarray(verifier.count_inliers(pairs, progress), dtype=np.int64)
    if inliers.shape != (len(pairs),):
        raise ValueError(f"expected {len(pairs)} inlier counts, got shape {inliers.shape}")
    return VerifiedEdges(pairs, inliers)


def with_verified_edges(graph: NeighbourGraph, edges: VerifiedEdges, max_eps: float) -> NeighbourGraph:
    """`graph` (cut to max_eps) with every verified pair added both ways at its verified distance, or kept
    at its cosine distance when that is smaller; rows sorted by distance, as the clustering expects."""
    local = graph.within(max_eps)
    chosen = edges.pairs[edges.verified]
    if len(chosen) == 0:
        return local
    distance = verified_distance(edges.inliers[edges.verified], max_eps)
    old_rows = np.repeat(np.arange(local.size, dtype=np.int64), np.diff(local.indptr))
    rows = np.concatenate([old_rows, chosen[:, 0], chosen[:, 1]])
    cols = np.concatenate([local.indices.astype(np.int64), chosen[:, 1], chosen[:, 0]])
    distances = np.concatenate([local.distances.astype(np.float64), distance, distance])
    # One edge per (row, col): the smallest distance wins.
    order = np.lexsort((distances, cols, rows))
    rows, cols, distances = rows[order], cols[order], distances[order]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
    rows, cols, distances = rows[first], cols[first], distances[first]
    # Within a row: nearest first, ties by index (as radius_graph sorts them).
    order = np.lexsort((cols, distances, rows))
    indptr = np.zeros(local.size + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=local.size), out=indptr[1:])
    return NeighbourGraph(indptr, cols[order], distances[order], local.radius)
