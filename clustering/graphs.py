"""The cosine neighbour graph of a version's signatures, cached on disk (the Django side of `neighbours`).

A graph depends on the signatures (the version and the set of artworks) and the PCA setting; it covers one
radius and answers any smaller one, so `cluster --preview` with another max_eps or min_samples reuses it and
answers in seconds even at 100,000 signatures. Files: `workbench.paths.neighbour_graph_file`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from jobs.progress import ProgressCallback, no_progress
from training.models import ModelVersion
from training.signature_store import SignatureSet
from workbench import paths

from .algorithms import Clustering, ClusteringParams, cluster, neighbour_graph
from .neighbours import NeighbourGraph


def graph_key(ids: Sequence[int], pca: int | None) -> str:
    digest = hashlib.sha256(np.asarray(ids, dtype=np.int64).tobytes())
    digest.update(f"pca={pca}".encode())
    return digest.hexdigest()[:16]


def graph_for(
    version: ModelVersion,
    rows: SignatureSet,
    params: ClusteringParams,
    progress: ProgressCallback = no_progress,
) -> NeighbourGraph:
    """The cached neighbour graph of these artworks when it covers max_eps; otherwise a new one, cached."""
    path = paths.neighbour_graph_file(version.number, graph_key(rows.ids, params.pca))
    cached = NeighbourGraph.load(path) if path.exists() else None
    graph = neighbour_graph(rows.vectors, params, cached, progress=progress)
    if graph is not cached:
        graph.save(path)
    return graph


def clustered(
    version: ModelVersion,
    rows: SignatureSet,
    params: ClusteringParams,
    progress: ProgressCallback = no_progress,
) -> Clustering:
    """Cluster, reusing the cached neighbour graph of these artworks and caching a new one."""
    graph = (
        graph_for(version, rows, params, lambda f, m: progress(0.8 * f, m)) if params.needs_graph else None
    )
    result, _ = cluster(rows.vectors, params, graph=graph, progress=progress)
    return result
