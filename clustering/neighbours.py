"""The cosine neighbourhood graph of a set of signatures (plain module, no Django).

Every density-based algorithm here (OPTICS, DBSCAN, the parameter preview) only ever looks at pairs closer
than `max_eps`; with the thesis value 0.13 on fine-tuned signatures that is a few neighbours per image. So the
pairs are found once with faiss (exact inner-product range search on L2-normalised vectors, or an IVF index
for very large sets), kept as a sparse CSR graph sorted by distance within each row, and reused: by the
clustering itself, by every parameter preview with a smaller `max_eps`, and by the next run on the same model
version.

Exactness: faiss searches in float32. The candidate pairs it returns (with a small slack on the radius) are
re-scored in float64 with scikit-learn's formula for the cosine distance (rows divided by their norm, then
1 − dot, clipped to [0, 2]), so the graph holds the distances `sklearn.cluster.OPTICS(metric="cosine")` works
with, and a pair at the very edge of the radius is decided the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jobs.progress import ProgressCallback as Progress
from jobs.progress import no_progress

# faiss computes 1 − cosine in float32: about 1e-7 of error, so anything this close to the radius is
# fetched and re-scored in float64 before it is kept or dropped.
FLOAT32_SLACK = 1e-4
QUERY_BATCH = 2048
PROBE_SIZE = 1000
MAX_EDGES = 150_000_000  # about 2.4 GB of indices and distances


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm, in float64, as `sklearn.preprocessing.normalize` does."""
    matrix = np.asarray(vectors, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise ValueError(f"expected a non-empty (count, dim) array of signatures, got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError("signatures contain NaN or infinite values")
    norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))
    norms[norms == 0.0] = 1.0  # sklearn leaves a zero row as it is
    return matrix / norms[:, np.newaxis]


def cosine_distance_pairs(unit: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """1 − cos for the given pairs of normalised rows, clipped like `sklearn.metrics.cosine_distances`."""
    out = np.empty(len(rows), dtype=np.float64)
    for start in range(0, len(rows), 65536):  # bounded temporary memory for 2048-d vectors
        stop = start + 65536
        dots = np.einsum("ij,ij->i", unit[rows[start:stop]], unit[cols[start:stop]])
        out[start:stop] = np.clip(1.0 - dots, 0.0, 2.0)
    return out


@dataclass
class NeighbourGraph:
    """Pairs within `radius` (cosine distance), each row sorted by distance, the point itself included."""

    indptr: np.ndarray  # int64 (n + 1)
    indices: np.ndarray  # int64 (edges)
    distances: np.ndarray  # float64 (edges)
    radius: float

    @property
    def size(self) -> int:
        return len(self.indptr) - 1

    @property
    def edge_count(self) -> int:
        return int(self.indptr[-1])

    def row(self, point: int) -> tuple[np.ndarray, np.ndarray]:
        start, stop = self.indptr[point], self.indptr[point + 1]
        return self.indices[start:stop], self.distances[start:stop]

    def within(self, radius: float) -> NeighbourGraph:
        """The graph of a smaller radius (parameter previews reuse the cached graph this way)."""
        if radius > self.radius:
            raise ValueError(f"this graph holds pairs up to {self.radius}, not {radius}")
        if radius == self.radius:
            return self
        keep = self.distances <= radius
        rows = np.repeat(np.arange(self.size), np.diff(self.indptr))
        indptr = np.zeros(self.size + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows[keep], minlength=self.size), out=indptr[1:])
        return NeighbourGraph(indptr, self.indices[keep], self.distances[keep], radius)

    def core_distances(self, min_samples: int) -> np.ndarray:
        """Distance to the `min_samples`-th nearest point (itself counted), inf when beyond the radius.

        What `NearestNeighbors.kneighbors(X, min_samples)[0][:, -1]` gives, capped as OPTICS caps it: a
        point whose k-th neighbour lies outside the radius is never a core point.
        """
        lengths = np.diff(self.indptr)
        core = np.full(self.size, np.inf)
        has = lengths >= min_samples
        core[has] = self.distances[self.indptr[:-1][has] + min_samples - 1]
        return core

    def to_csr(self):
        """A scipy CSR matrix of the distances (for scikit-learn's `metric="precomputed"`)."""
        from scipy.sparse import csr_matrix

        # A stored 0 (the point itself, an exact duplicate) must stay an edge: scipy drops explicit zeros in
        # some operations, so it becomes the smallest positive float, which compares the same to any eps.
        data = np.maximum(self.distances, np.nextafter(0.0, 1.0))
        return csr_matrix((data, self.indices, self.indptr), shape=(self.size, self.size))

    def save(self, path: Path) -> None:
        from annotations.storage import atomic_write

        atomic_write(
            path,
            lambda handle: np.savez(
                handle,
                indptr=self.indptr,
                indices=self.indices,
                distances=self.distances,
                radius=np.array(self.radius),
            ),
        )

    @classmethod
    def load(cls, path: Path) -> NeighbourGraph:
        with np.load(path) as data:
            return cls(data["indptr"], data["indices"], data["distances"], float(data["radius"]))


def radius_graph(
    vectors: np.ndarray,
    radius: float,
    *,
    index: str = "flat",
    progress: Progress = no_progress,
    unit: np.ndarray | None = None,
) -> NeighbourGraph:
    """All pairs with cosine distance <= `radius`, found with faiss and re-scored in float64.

    index="flat" is exact (brute force, BLAS); index="ivf" probes an inverted-file index (much faster beyond
    a few hundred thousand signatures, and may miss a few pairs across cell borders).
    """
    import faiss

    if not 0 < radius <= 2:
        raise ValueError(f"radius must be in (0, 2], got {radius}")
    unit = normalise(vectors) if unit is None else unit
    count, dim = unit.shape
    single = np.ascontiguousarray(unit, dtype=np.float32)
    if index == "flat":
        searcher = faiss.IndexFlatIP(dim)
    elif index == "ivf":
        cells = max(1, int(4 * math.sqrt(count)))
        quantiser = faiss.IndexFlatIP(dim)
        searcher = faiss.IndexIVFFlat(quantiser, dim, cells, faiss.METRIC_INNER_PRODUCT)
        searcher.train(single[np.random.default_rng(0).permutation(count)[: min(count, 256 * cells)]])
        searcher.nprobe = max(1, cells // 16)
    else:
        raise ValueError(f"unknown index {index!r}: use 'flat' (exact) or 'ivf'")
    searcher.add(single)
    threshold = float(1.0 - radius - FLOAT32_SLACK)
    if count > PROBE_SIZE:
        # A radius that links most pairs builds an n² graph (100,000 signatures at max_eps 1.0: ~5e9 pairs,
        # far beyond memory). Estimate the pair count on a sample first and refuse with a clear message.
        probe = np.random.default_rng(0).choice(count, PROBE_SIZE, replace=False)
        lims, _, _ = searcher.range_search(single[probe], threshold)
        estimate = int(lims[-1]) / PROBE_SIZE * count
        if estimate > MAX_EDGES:
            raise ValueError(
                f"a radius of {radius} would link about {estimate:,.0f} pairs of these {count:,} signatures "
                f"(limit {MAX_EDGES:,}): choose a smaller max_eps"
            )
    row_parts, col_parts, dist_parts = [], [], []
    for start in range(0, count, QUERY_BATCH):
        stop = min(count, start + QUERY_BATCH)
        lims, _, found = searcher.range_search(single[start:stop], threshold)
        rows = np.repeat(np.arange(start, stop, dtype=np.int64), np.diff(lims.astype(np.int64)))
        cols = found.astype(np.int64)
        if index == "ivf":  # the point itself may sit in an unprobed cell: always keep it
            rows = np.concatenate([rows, np.arange(start, stop, dtype=np.int64)])
            cols = np.concatenate([cols, np.arange(start, stop, dtype=np.int64)])
            pairs = np.unique(np.stack([rows, cols], axis=1), axis=0)
            rows, cols = pairs[:, 0], pairs[:, 1]
        distances = cosine_distance_pairs(unit, rows, cols)
        keep = distances <= radius
        row_parts.append(rows[keep])
        col_parts.append(cols[keep])
        dist_parts.append(distances[keep])
        progress(stop / count, f"neighbours of {stop:,}/{count:,} signatures")
    rows = np.concatenate(row_parts)
    cols = np.concatenate(col_parts)
    distances = np.concatenate(dist_parts)
    # Within a row: nearest first, ties by index (the order a brute-force k-NN search returns them in).
    order = np.lexsort((cols, distances, rows))
    indptr = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=count), out=indptr[1:])
    return NeighbourGraph(indptr, cols[order], distances[order], float(radius))
