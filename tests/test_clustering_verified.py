"""Verified edges in the clustering graph (plain module `clustering.verified`, through `cluster`)."""

from __future__ import annotations

import numpy as np
import pytest

from clustering.algorithms import ClusteringParams, cluster
from clustering.neighbours import radius_graph
from clustering.verified import (
    SATURATION,
    VerifiedEdges,
    Verifier,
    candidate_pairs,
    verified_distance,
    with_verified_edges,
)
from training.verification import MIN_INLIERS


def far_apart(count: int = 30, dim: int = 24, seed: int = 0) -> np.ndarray:
    """Random directions: in 24 dimensions no two are within a cosine distance of 0.3 of each other."""
    vectors = np.random.default_rng(seed).normal(size=(count, dim))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_candidates_are_each_rows_nearest_as_unique_ordered_pairs():
    vectors = far_apart(12)
    pairs = candidate_pairs(vectors, 3)
    assert pairs.shape[1] == 2 and np.all(pairs[:, 0] < pairs[:, 1])
    assert len({tuple(p) for p in pairs.tolist()}) == len(pairs)
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)
    found = {tuple(p) for p in pairs.tolist()}
    for row in range(len(vectors)):
        for other in np.argsort(-similarity[row])[:3]:
            assert (min(row, other), max(row, other)) in found
    assert candidate_pairs(vectors[:1], 3).shape == (0, 2)


def test_a_verified_pair_joins_the_graph_inside_the_radius_and_an_unverified_one_does_not():
    vectors = far_apart(10)
    vectors[1] = vectors[0] + 0.05 * vectors[2]  # 0 and 1 close already
    graph = radius_graph(vectors, 0.3)
    edges = VerifiedEdges(
        pairs=np.array([[0, 1], [3, 7], [4, 5]]),
        inliers=np.array([SATURATION, SATURATION // 2, MIN_INLIERS - 1]),
    )
    merged = with_verified_edges(graph, edges, 0.2)
    neighbours = {row: dict(zip(*map(list, merged.row(row)), strict=True)) for row in range(merged.size)}
    assert neighbours[3][7] == neighbours[7][3] == pytest.approx(0.1)  # half the inliers: half max_eps
    assert 5 not in neighbours[4]  # below MIN_INLIERS: luck, not a shared figure
    assert neighbours[0][1] == 0.0  # saturated: as close as a duplicate, closer than its cosine distance
    assert all(distance <= 0.2 for row in neighbours.values() for distance in row.values())
    for row in range(merged.size):
        _, distances = merged.row(row)
        assert np.all(np.diff(distances) >= 0)  # nearest first, as OPTICS reads a row
        assert neighbours[row][row] == 0.0  # the point itself stays
    assert merged.edge_count == graph.within(0.2).edge_count + 2  # 3–7 both ways; 0–1 was an edge already
    assert verified_distance(np.array([0, SATURATION, 10 * SATURATION]), 0.2).tolist() == [0.2, 0.0, 0.0]


class Counter:
    """Inliers from a table (pairs of rows → count); records what it was asked."""

    def __init__(self, table: dict[tuple[int, int], int]) -> None:
        self.table, self.asked = table, []

    def __call__(self, pairs, progress):
        self.asked = [tuple(p) for p in pairs.tolist()]
        progress(1.0, "verified")
        return np.array([self.table.get(p, 0) for p in self.asked])


def test_verification_clusters_a_pair_that_the_signatures_keep_apart():
    """Rows 4 and 9 are far apart in the clustered (raw) signatures but neighbours in the candidate (search)
    space, as a mirrored copy is for whitened signatures: verified, they become one cluster."""
    raw = far_apart(30)
    search = raw.copy()
    search[9] = search[4] + 0.01 * search[0]
    plain, _ = cluster(raw, ClusteringParams("optics", verify_top=0))
    assert plain.labels[4] == plain.labels[9] == -1
    counter = Counter({(4, 9): 40})
    result, graph = cluster(raw, ClusteringParams("optics"), verifier=Verifier(search, counter))
    assert (4, 9) in counter.asked and len(counter.asked) >= 30  # every row's 10 nearest were candidates
    assert result.labels[4] == result.labels[9] >= 0
    assert result.cluster_count == 1 and result.verification == {
        "verified": 1,
        "candidates": len(counter.asked),
    }
    assert graph.edge_count == radius_graph(raw, 0.13).edge_count  # the cacheable graph has no verified edge
    dbscan, _ = cluster(raw, ClusteringParams("dbscan"), verifier=Verifier(search, Counter({(4, 9): 40})))
    assert dbscan.labels[4] == dbscan.labels[9] >= 0


def test_verification_is_refused_without_a_verifier_or_with_bad_parameters():
    raw = far_apart(12)
    with pytest.raises(ValueError, match="verify_top needs the images"):
        cluster(raw, ClusteringParams("optics"))
    with pytest.raises(ValueError, match="verify_top must be a whole number from 0 to 100"):
        cluster(raw, ClusteringParams("optics", verify_top=101), verifier=Verifier(raw, Counter({})))
    with pytest.raises(ValueError, match="hdbscan has no parameter verify-top"):
        cluster(raw, ClusteringParams("hdbscan", verify_top=5))
    with pytest.raises(ValueError, match="candidate vectors for 12 signatures"):
        cluster(raw, ClusteringParams("optics"), verifier=Verifier(raw[:5], Counter({})))
    with pytest.raises(ValueError, match="inlier counts"):
        cluster(raw, ClusteringParams("optics"), verifier=Verifier(raw, lambda pairs, progress: np.zeros(2)))
    assert ClusteringParams.from_values({"verify_top": "0"}).resolved().verify_top == 0
