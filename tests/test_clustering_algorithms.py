"""DBSCAN, HDBSCAN, PCA, strengths and the parameter preview (plain modules)."""

from __future__ import annotations

import hdbscan
import numpy as np
import pytest
from sklearn.cluster import DBSCAN

from clustering.algorithms import ClusteringParams, cluster, preview, size_histogram
from clustering.neighbours import radius_graph


def blobs(
    seed: int = 0, groups: int = 30, size: int = 5, noise: int = 100, dim: int = 48, spread: float = 0.02
):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(groups, dim))
    points = np.repeat(centres, size, axis=0) + rng.normal(scale=spread, size=(groups * size, dim))
    truth = np.repeat(np.arange(groups), size)
    points = np.concatenate([points, rng.normal(size=(noise, dim))])
    return points, np.concatenate([truth, np.full(noise, -1)])


def groups_recovered(labels: np.ndarray, truth: np.ndarray, *, noise_may_join: bool = False) -> bool:
    """No cluster mixes two true groups, ≥ 90 % of group members are clustered, and noise stays noise.

    OPTICS' xi extraction may leave a group's first point out or split a group into nested parts: that is the
    algorithm. HDBSCAN has no distance cap, so a noise point joins its nearest cluster (`noise_may_join`).
    """
    groups_of_cluster: dict[int, set[int]] = {}
    for label, group in zip(labels.tolist(), truth.tolist(), strict=True):
        if label >= 0 and group >= 0:
            groups_of_cluster.setdefault(label, set()).add(group)
    return (
        float(np.mean(labels[truth >= 0] >= 0)) >= 0.9
        and all(len(groups) == 1 for groups in groups_of_cluster.values())
        and (noise_may_join or bool(np.all(labels[truth < 0] == -1)))
    )


def test_dbscan_on_the_graph_equals_sklearn_dbscan_cosine():
    vectors, _ = blobs(1, spread=0.08)
    for eps, min_samples in ((0.08, 2), (0.15, 3), (0.3, 4)):
        result, _ = cluster(
            vectors, ClusteringParams("dbscan", max_eps=eps, min_samples=min_samples, verify_top=0)
        )
        reference = DBSCAN(eps=eps, min_samples=min_samples, metric="cosine").fit_predict(vectors)
        assert np.array_equal(result.labels, reference)


@pytest.mark.parametrize(
    "params",
    [
        ClusteringParams("optics", verify_top=0),
        ClusteringParams("dbscan", verify_top=0),
        ClusteringParams("hdbscan"),
    ],
)
def test_each_algorithm_finds_well_separated_groups(params):
    vectors, truth = blobs(2)
    result, _ = cluster(vectors, params)
    assert groups_recovered(result.labels, truth, noise_may_join=params.algorithm == "hdbscan")
    assert result.cluster_count >= 30
    if params.algorithm == "hdbscan":  # noise that joined a cluster is a weak member
        joined = (truth < 0) & (result.labels >= 0)
        assert result.strength[joined].mean() < result.strength[truth >= 0].mean()
    members = result.labels >= 0
    assert np.all((result.strength[members] > 0) & (result.strength[members] <= 1))
    assert np.all(result.strength[~members] == 0)
    assert set(result.confidence) == set(range(result.cluster_count))
    assert all(0 < value <= 1 for value in result.confidence.values())


def nested_blobs(seed: int, groups: int = 10, parts: int = 3, size: int = 3, dim: int = 48, noise: int = 60):
    """Groups of close parts (one composition, three workshops' variants of it): leaf selection keeps the
    parts apart, "eom" selection merges most of them (34 against 22 clusters for seed 1)."""
    rng = np.random.default_rng(seed)
    points = []
    for _ in range(groups):
        centre = rng.normal(size=dim)
        for _ in range(parts):
            part = centre + rng.normal(scale=0.02, size=dim)
            points.append(part + rng.normal(scale=0.01, size=(size, dim)))
    return np.concatenate([*points, rng.normal(size=(noise, dim))])


@pytest.mark.parametrize(
    "data", [blobs(2)[0], blobs(5)[0], nested_blobs(1)], ids=["blobs2", "blobs5", "nested"]
)
def test_hdbscan_gives_the_hdbscan_package_labels_with_the_defaults(data):
    """The workbench's defaults (min_cluster_size 2, min_samples 2, leaf selection) on the L2-normalised
    signatures, against the package called directly. Not against hdbscan's generic algorithm on a cosine
    distance matrix: mutual reachability distances tie (several edges weigh a point's core distance), so
    that algorithm picks another of the equally minimal spanning trees and other leaf clusters."""
    result, _ = cluster(data, ClusteringParams("hdbscan"))
    unit = data / np.linalg.norm(data, axis=1, keepdims=True)
    reference = hdbscan.HDBSCAN(min_cluster_size=2, min_samples=2, cluster_selection_method="leaf").fit(unit)
    assert np.array_equal(result.labels, reference.labels_)
    members = reference.labels_ >= 0
    assert np.allclose(result.strength[members], reference.probabilities_[members])


def test_strength_orders_a_tight_member_above_a_loose_one():
    rng = np.random.default_rng(3)
    centre = rng.normal(size=32)
    tight = centre + rng.normal(scale=0.01, size=(4, 32))
    loose = centre + rng.normal(scale=0.25, size=(1, 32))
    vectors = np.concatenate([tight, loose, rng.normal(size=(20, 32))])
    for algorithm in ("optics", "dbscan"):
        result, _ = cluster(vectors, ClusteringParams(algorithm, max_eps=0.2, verify_top=0))
        assert result.labels[4] == result.labels[0] >= 0
        assert result.strength[4] < result.strength[:4].min()


def test_pca_option_reduces_before_clustering():
    vectors, truth = blobs(4, dim=256)
    result, graph = cluster(vectors, ClusteringParams("optics", pca=32, max_eps=0.1, verify_top=0))
    assert groups_recovered(result.labels, truth)
    assert graph.size == len(vectors)


def test_preview_matches_the_full_run_and_reuses_the_graph():
    vectors, _ = blobs(5, spread=0.06)
    wide = radius_graph(vectors, 0.3)
    for params in (
        ClusteringParams("optics", verify_top=0),
        ClusteringParams("optics", max_eps=0.25, min_samples=3, verify_top=0),
    ):
        quick = preview(vectors, params, graph=wide)
        full, used = cluster(vectors, params)
        assert quick.cluster_count == full.cluster_count and quick.noise_share == full.noise_share
        assert sum(quick.size_histogram.values()) == full.cluster_count
    _, reused = cluster(vectors, ClusteringParams("optics", max_eps=0.2, verify_top=0), graph=wide)
    assert reused is wide  # no new neighbour search when the cached radius covers max_eps


def test_size_histogram_bins():
    assert size_histogram(np.array([2, 2, 3, 7, 12, 60])) == {
        "2": 2,
        "3": 1,
        "4": 0,
        "5": 0,
        "6-10": 1,
        "11-20": 1,
        "21-50": 0,
        ">50": 1,
    }


@pytest.mark.parametrize(
    "params,message",
    [
        (ClusteringParams("kmeans"), "unknown algorithm"),
        (ClusteringParams("hdbscan", xi=0.1), "no parameter xi"),
        (ClusteringParams("dbscan", max_eps=-1), "max_eps"),
        (ClusteringParams("hdbscan", min_cluster_size=1), "min_cluster_size"),
        (ClusteringParams("optics", pca=1), "pca"),
    ],
)
def test_bad_parameters_name_the_parameter(params, message):
    with pytest.raises(ValueError, match=message):
        params.resolved()
