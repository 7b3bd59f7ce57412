"""OPTICS on a sparse cosine neighbourhood graph, equal to `sklearn.cluster.OPTICS` (plain module).

scikit-learn's OPTICS (thesis defaults: metric cosine, max_eps 0.13, min_samples 2, xi 0.05) does, for each
of the n points in turn, an argmin over all unprocessed points and a radius query against the whole data set:
O(n²) work in Python-level steps, hours at 100,000 signatures. The algorithm itself only needs each point's
neighbours within max_eps, so here:

1. the neighbours come from `neighbours.radius_graph` (faiss, re-scored in float64), computed once;
2. the ordering runs in compiled code (numba) with a binary heap keyed by (reachability, index), which picks
   the same next point as scikit-learn's `argmin` over the unprocessed points, ties included: the smallest
   reachability, and among equal ones the smallest index; when nothing is reachable, the smallest
   unprocessed index;
3. reachabilities are rounded to 15 decimals exactly where scikit-learn rounds them (`np.around` with
   `finfo(float64).precision`), so ties that rounding creates are broken the same way;
4. the clusters are extracted with scikit-learn's own `cluster_optics_xi` on that ordering, so labels follow.

`tests/test_clustering_optics.py` compares ordering, core distances, reachability, predecessors and labels
with
scikit-learn on random, clustered, tied and noisy data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from .neighbours import NeighbourGraph

# numpy's np.around(x, 15) is x * 10**15, rint, / 10**15 (multiarray/calculation.c); done the same way here.
ROUNDING_SCALE = 1e15


@dataclass
class OpticsResult:
    ordering: np.ndarray
    core_distances: np.ndarray
    reachability: np.ndarray
    predecessor: np.ndarray
    labels: np.ndarray


@njit(cache=True)
def _heap_push(keys, items, size, key, item):
    position = size
    keys[position] = key
    items[position] = item
    while position > 0:
        parent = (position - 1) // 2
        if keys[parent] < key or (keys[parent] == key and items[parent] < item):
            break
        keys[position] = keys[parent]
        items[position] = items[parent]
        position = parent
    keys[position] = key
    items[position] = item
    return size + 1


@njit(cache=True)
def _heap_pop(keys, items, size):
    top_key, top_item = keys[0], items[0]
    size -= 1
    key, item = keys[size], items[size]
    position = 0
    while True:
        child = 2 * position + 1
        if child >= size:
            break
        right = child + 1
        if right < size and (
            keys[right] < keys[child] or (keys[right] == keys[child] and items[right] < items[child])
        ):
            child = right
        if key < keys[child] or (key == keys[child] and item < items[child]):
            break
        keys[position] = keys[child]
        items[position] = items[child]
        position = child
    if size > 0:
        keys[position] = key
        items[position] = item
    return top_key, top_item, size


@njit(cache=True)
def _optics_ordering(indptr, indices, distances, core, count):
    reachability = np.full(count, np.inf)
    predecessor = np.full(count, -1, dtype=np.int64)
    processed = np.zeros(count, dtype=np.bool_)
    ordering = np.empty(count, dtype=np.int64)
    capacity = len(indices) + 1  # one push per improving edge at most
    keys = np.empty(capacity, dtype=np.float64)
    items = np.empty(capacity, dtype=np.int64)
    size = 0
    next_unreached = 0
    for position in range(count):
        point = -1
        while size > 0:
            key, item, size = _heap_pop(keys, items, size)
            if not processed[item] and key == reachability[item]:
                point = item
                break
        if point == -1:
            # Nothing reachable is left: scikit-learn's argmin over all-inf picks the smallest index.
            while processed[next_unreached]:
                next_unreached += 1
            point = next_unreached
        processed[point] = True
        ordering[position] = point
        point_core = core[point]
        if point_core == np.inf:
            continue
        for edge in range(indptr[point], indptr[point + 1]):
            other = indices[edge]
            if processed[other]:
                continue
            candidate = max(distances[edge], point_core)
            candidate = np.rint(candidate * ROUNDING_SCALE) / ROUNDING_SCALE
            if candidate < reachability[other]:
                reachability[other] = candidate
                predecessor[other] = point
                size = _heap_push(keys, items, size, candidate, other)
    return ordering, reachability, predecessor


def optics_graph(graph: NeighbourGraph, min_samples: int, max_eps: float) -> tuple[np.ndarray, ...]:
    """Ordering, core distances, reachability and predecessors, as `sklearn.cluster.compute_optics_graph`."""
    check_parameters(min_samples, max_eps, xi=0.05)
    if max_eps > graph.radius:
        raise ValueError(f"max_eps {max_eps} is larger than the neighbour graph's radius {graph.radius}")
    graph = graph.within(max_eps)
    core = graph.core_distances(min_samples)
    np.around(core, decimals=np.finfo(np.float64).precision, out=core)
    ordering, reachability, predecessor = _optics_ordering(
        graph.indptr, graph.indices, graph.distances, core, graph.size
    )
    return ordering, core, reachability, predecessor


def optics(
    graph: NeighbourGraph,
    *,
    min_samples: int = 2,
    max_eps: float = 0.13,
    xi: float = 0.05,
    min_cluster_size: int | None = None,
    predecessor_correction: bool = True,
) -> OpticsResult:
    from sklearn.cluster import cluster_optics_xi

    check_parameters(min_samples, max_eps, xi, min_cluster_size)
    ordering, core, reachability, predecessor = optics_graph(graph, min_samples, max_eps)
    if graph.size < 2:
        labels = np.full(graph.size, -1, dtype=np.int64)
    else:
        # Duplicates give reachability 0, and scikit-learn's steepness ratios divide by it (harmlessly).
        with np.errstate(divide="ignore", invalid="ignore"):
            labels, _ = cluster_optics_xi(
                reachability=reachability,
                predecessor=predecessor,
                ordering=ordering,
                min_samples=min_samples,
                min_cluster_size=min_cluster_size,
                xi=xi,
                predecessor_correction=predecessor_correction,
            )
    return OpticsResult(ordering, core, reachability, predecessor, np.asarray(labels, dtype=np.int64))


def check_parameters(
    min_samples: int, max_eps: float, xi: float, min_cluster_size: int | None = None
) -> None:
    if int(min_samples) != min_samples or min_samples < 2:
        raise ValueError(f"min_samples must be an integer of at least 2, got {min_samples}")
    if not 0 < max_eps <= 2:
        raise ValueError(f"max_eps is a cosine distance in (0, 2], got {max_eps}")
    if not 0 < xi < 1:
        raise ValueError(f"xi must be in (0, 1), got {xi}")
    if min_cluster_size is not None and (int(min_cluster_size) != min_cluster_size or min_cluster_size < 2):
        raise ValueError(f"min_cluster_size must be an integer of at least 2, got {min_cluster_size}")
