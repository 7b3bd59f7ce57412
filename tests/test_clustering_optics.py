"""OPTICS on the faiss neighbour graph gives what sklearn.cluster.OPTICS gives (cosine).

Exactly representable data (entries ±1/8 in 64 dimensions: norms are exactly 1 and every dot product an exact
multiple of 1/64) make every floating-point path agree to the bit, including scikit-learn's own two (k-NN for
core distances, pairwise distances for reachability); there, with many exact ties, duplicates and noise, the
ordering, core distances, reachabilities, predecessors and labels must be identical.

On continuous data scikit-learn computes the same distance twice through different BLAS calls; with
min_samples ≥ 3 the k-th neighbour's distance ties with the core distance in exact arithmetic and the last
bit of scikit-learn's two computations decides which of the tied points comes first. There the labels must
still be identical (and the core distances equal to 1e-15); with min_samples = 2 (the thesis value) all is.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.cluster import OPTICS

from clustering.neighbours import NeighbourGraph, normalise, radius_graph
from clustering.optics import optics


def sklearn_optics(vectors: np.ndarray, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "all reachability values are inf" on pure noise
        return OPTICS(metric="cosine", **params).fit(vectors)


def ours(vectors: np.ndarray, **params):
    return optics(radius_graph(vectors, params["max_eps"]), **params)


def dyadic_clusters(seed: int, flip: float, clusters: int = 40, copies: int = 6, noise: int = 60):
    rng = np.random.default_rng(seed)
    centres = rng.choice([-1.0, 1.0], size=(clusters, 64))
    points = np.repeat(centres, copies, axis=0)
    points = np.where(rng.random(points.shape) < flip, -points, points)
    points = np.concatenate([points, points[:25], rng.choice([-1.0, 1.0], size=(noise, 64))])  # duplicates
    return rng.permutation(points) / 8.0


def continuous_clusters(seed: int, count: int = 600, dim: int = 64, group: int = 4, spread: float = 0.1):
    rng = np.random.default_rng(seed)
    clustered = int(count * 0.7)
    centres = rng.normal(size=(clustered // group + 1, dim))
    points = np.repeat(centres, group, axis=0)[:clustered]
    points = points + rng.normal(scale=spread * 4 / np.sqrt(dim), size=points.shape)
    points = np.concatenate([points, rng.normal(size=(count - clustered, dim))])
    return points.astype(np.float32).astype(np.float64)  # signatures are stored as float32


@pytest.mark.parametrize("seed,flip", [(1, 0.03), (2, 0.06), (3, 0.09), (4, 0.0)])
@pytest.mark.parametrize(
    "params",
    [
        {"max_eps": 0.13, "min_samples": 2, "xi": 0.05},
        {"max_eps": 0.25, "min_samples": 3, "xi": 0.1},
        {"max_eps": 0.4, "min_samples": 5, "xi": 0.02, "min_cluster_size": 4},
    ],
)
def test_identical_to_sklearn_on_exactly_representable_data_with_ties(seed, flip, params):
    vectors = dyadic_clusters(seed, flip)
    reference, result = sklearn_optics(vectors, **params), ours(vectors, **params)
    assert len(np.unique(result.reachability)) < 20  # many exact ties: the tie-breaking is what is tested
    assert np.array_equal(result.ordering, reference.ordering_)
    assert np.array_equal(result.core_distances, reference.core_distances_)
    assert np.array_equal(result.reachability, reference.reachability_)
    assert np.array_equal(result.predecessor, reference.predecessor_)
    assert np.array_equal(result.labels, reference.labels_)


@pytest.mark.parametrize("seed,dim,group,spread", [(0, 16, 5, 0.1), (1, 64, 3, 0.2), (2, 256, 4, 0.15)])
def test_identical_to_sklearn_with_thesis_parameters_on_continuous_data(seed, dim, group, spread):
    vectors = continuous_clusters(seed, dim=dim, group=group, spread=spread)
    params = {"max_eps": 0.13, "min_samples": 2, "xi": 0.05}
    reference, result = sklearn_optics(vectors, **params), ours(vectors, **params)
    assert result.labels.max() >= 20  # there are clusters to find
    assert np.array_equal(result.ordering, reference.ordering_)
    assert np.allclose(result.reachability, reference.reachability_, rtol=0, atol=1e-14)
    assert np.array_equal(result.predecessor, reference.predecessor_)
    assert np.array_equal(result.labels, reference.labels_)


@pytest.mark.parametrize(
    "seed,params",
    [
        (3, {"max_eps": 0.3, "min_samples": 4, "xi": 0.1}),
        (4, {"max_eps": 0.5, "min_samples": 5, "xi": 0.02}),
        (5, {"max_eps": 0.2, "min_samples": 2, "xi": 0.2}),
    ],
)
def test_same_labels_as_sklearn_with_other_parameters(seed, params):
    vectors = continuous_clusters(seed, dim=16, group=5)
    reference, result = sklearn_optics(vectors, **params), ours(vectors, **params)
    assert result.labels.max() >= 10
    assert np.allclose(result.core_distances, reference.core_distances_, rtol=0, atol=1e-14)
    assert np.array_equal(result.labels, reference.labels_)


def test_pure_noise_and_tiny_inputs():
    rng = np.random.default_rng(9)
    noise = rng.normal(size=(50, 32))
    reference, result = (
        sklearn_optics(noise, max_eps=0.13, min_samples=2),
        ours(noise, max_eps=0.13, min_samples=2),
    )
    assert np.all(result.labels == -1) and np.array_equal(result.ordering, reference.ordering_)
    assert np.all(np.isinf(result.reachability))
    single = optics(radius_graph(noise[:1], 0.13), min_samples=2, max_eps=0.13)
    assert single.labels.tolist() == [-1] and single.ordering.tolist() == [0]


def test_graph_holds_every_pair_within_the_radius_sorted_by_distance():
    vectors = continuous_clusters(7, count=300, dim=32)
    graph = radius_graph(vectors, 0.2)
    unit = normalise(vectors)
    full = np.clip(1.0 - unit @ unit.T, 0.0, 2.0)
    for point in range(graph.size):
        neighbours, distances = graph.row(point)
        expected = np.flatnonzero(full[point] <= 0.2)
        assert sorted(neighbours.tolist()) == expected.tolist()
        assert np.all(np.diff(distances) >= 0) and point in neighbours
        assert np.allclose(distances, full[point, neighbours], atol=1e-12)
    smaller = graph.within(0.1)
    assert smaller.edge_count == int(np.sum(full <= 0.1))
    third = np.sort(full, axis=1)[:, 2]
    assert np.allclose(smaller.core_distances(3), np.where(third <= 0.1, third, np.inf), rtol=0, atol=1e-12)


def test_graph_cache_round_trip(tmp_path):
    graph = radius_graph(continuous_clusters(8, count=100, dim=8), 0.3)
    graph.save(tmp_path / "graph.npz")
    loaded = NeighbourGraph.load(tmp_path / "graph.npz")
    assert loaded.radius == 0.3 and np.array_equal(loaded.indices, graph.indices)
    assert np.array_equal(loaded.distances, graph.distances) and np.array_equal(loaded.indptr, graph.indptr)
    with pytest.raises(ValueError, match="holds pairs up to 0.3"):
        loaded.within(0.5)


def test_ivf_index_finds_nearly_every_pair():
    vectors = continuous_clusters(10, count=2000, dim=32)
    exact, approximate = radius_graph(vectors, 0.13), radius_graph(vectors, 0.13, index="ivf")
    assert approximate.edge_count <= exact.edge_count
    assert approximate.edge_count >= 0.9 * exact.edge_count


@pytest.mark.parametrize(
    "params,message",
    [
        ({"min_samples": 1}, "min_samples"),
        ({"max_eps": 0.0}, "max_eps"),
        ({"max_eps": 3.0}, "max_eps"),
        ({"xi": 1.5}, "xi"),
        ({"min_cluster_size": 1}, "min_cluster_size"),
    ],
)
def test_bad_parameters_are_refused(params, message):
    graph = radius_graph(continuous_clusters(11, count=50, dim=8), 2.0)
    with pytest.raises(ValueError, match=message):
        optics(graph, **params)


def test_non_finite_signatures_are_refused():
    vectors = np.ones((4, 3))
    vectors[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        radius_graph(vectors, 0.13)


def test_a_radius_that_links_nearly_everything_is_refused(monkeypatch):
    import clustering.neighbours as neighbours

    monkeypatch.setattr(neighbours, "MAX_EDGES", 100_000)
    vectors = continuous_clusters(12, count=2000, dim=8)
    with pytest.raises(ValueError, match="choose a smaller max_eps"):
        radius_graph(vectors, 1.5)
    assert radius_graph(vectors, 0.05).edge_count < 100_000
