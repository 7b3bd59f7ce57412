"""The cosine neighbour graph of a version's signatures, cached on disk (the Django side of `neighbours`),
and the verifier of candidate pairs (the Django side of `verified`).

A graph depends on the signatures (the version and the set of artworks) and the PCA setting; it covers one
radius and answers any smaller one, so `cluster --preview` with another max_eps or min_samples reuses it and
answers in seconds even at 100,000 signatures. Files: `workbench.paths.neighbour_graph_file`.

Verification reads each artwork's local features (computed once per image, `training.search.local_features`)
and keeps every pair's inlier count by the two images' content (`paths.verified_pairs_file`): the next
round's clustering mostly verifies the same pairs again, and then costs a lookup.
"""

from __future__ import annotations

import functools
import hashlib
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from annotations.models import Artwork
from annotations.storage import atomic_write
from jobs.progress import ProgressCallback, no_progress
from training import signatures, verification
from training.models import ModelVersion
from training.signature_store import SignatureSet
from workbench import paths

from .algorithms import Clustering, ClusteringParams, cluster, neighbour_graph
from .neighbours import NeighbourGraph
from .verified import Verifier

FEATURES_IN_MEMORY = 2048  # about 0.4 MB each: the features of the rows being verified, not of every row


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


class PairCache:
    """Inlier counts by the two images' SHA-256 (the smaller first), in one file per matcher setting.

    Written atomically; two runs verifying at once each write what they know, and the last one wins: a
    lost count is only verified again."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.counts: dict[tuple[str, str], int] = {}
        self.added = 0
        if path.exists():
            try:
                with np.load(path) as data:
                    self.counts = {
                        (a.decode(), b.decode()): int(n)
                        for a, b, n in zip(data["first"], data["second"], data["inliers"], strict=True)
                    }
            except (OSError, ValueError, KeyError, zipfile.BadZipFile):
                # A cache: a damaged file costs its counts being matched again (and is then replaced),
                # never the clustering run.
                self.counts = {}

    @staticmethod
    def key(first: str, second: str) -> tuple[str, str]:
        return (first, second) if first <= second else (second, first)

    def get(self, first: str, second: str) -> int | None:
        return self.counts.get(self.key(first, second))

    def put(self, first: str, second: str, inliers: int) -> None:
        self.counts[self.key(first, second)] = inliers
        self.added += 1

    def save(self) -> None:
        if not self.added:
            return
        keys = list(self.counts)
        atomic_write(
            self.path,
            lambda handle: np.savez(
                handle,
                first=np.array([a for a, _ in keys], dtype="S64"),
                second=np.array([b for _, b in keys], dtype="S64"),
                inliers=np.array([self.counts[k] for k in keys], dtype=np.int32),
            ),
        )
        self.added = 0


def verifier_for(version: ModelVersion, rows: SignatureSet, params: ClusteringParams) -> Verifier | None:
    """None unless `params` (resolved) verify pairs. Candidates from the version's search signatures
    (whitened when it is) of the same artworks; inliers from the artworks' local features, through the
    pair cache."""
    if not (params.needs_graph and params.verify_top):
        return None
    from training.search import local_features

    search = signatures.require(version).subset(rows.ids)
    if search.ids != rows.ids:
        raise signatures.MissingSignatures(
            f"{len(rows.ids) - len(search.ids)} artworks have no search signature under {version.label}"
        )
    images = {
        artwork.pk: (paths.absolute(artwork.image_relpath), artwork.image_sha256)
        for artwork in Artwork.objects.filter(pk__in=rows.ids).only("image_sha256", "image_ext")
    }
    shas = [images[pk][1] for pk in rows.ids]

    @functools.lru_cache(maxsize=FEATURES_IN_MEMORY)
    def features(row: int) -> verification.Features:
        path, sha = images[rows.ids[row]]
        return local_features(path, sha)

    def count_inliers(pairs: np.ndarray, progress: ProgressCallback) -> np.ndarray:
        cache = PairCache(paths.verified_pairs_file(verification.MATCHER_KEY))
        counts = np.zeros(len(pairs), dtype=np.int64)
        for done, (first, second) in enumerate(pairs.tolist(), start=1):
            known = cache.get(shas[first], shas[second])
            if known is None:
                known = verification.match(features(first), features(second)).inliers
                cache.put(shas[first], shas[second], known)
                if cache.added >= 5000:  # a cancelled or killed run keeps most of its work
                    cache.save()
            counts[done - 1] = known
            if done % 50 == 0 or done == len(pairs):
                progress(done / len(pairs), f"verifying pairs: {done:,}/{len(pairs):,}")
        cache.save()
        return counts

    return Verifier(search.vectors, count_inliers)


def clustered(
    version: ModelVersion,
    rows: SignatureSet,
    params: ClusteringParams,
    progress: ProgressCallback = no_progress,
) -> Clustering:
    """Cluster, reusing the cached neighbour graph of these artworks and caching a new one, and verifying
    candidate pairs when verify_top asks for it."""
    params = params.resolved()
    graph = (
        graph_for(version, rows, params, lambda f, m: progress(0.4 * f, m)) if params.needs_graph else None
    )
    verifier = verifier_for(version, rows, params)
    result, _ = cluster(
        rows.vectors, params, graph=graph, verifier=verifier, progress=lambda f, m: progress(0.4 + 0.6 * f, m)
    )
    return result
