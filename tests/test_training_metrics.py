"""Retrieval metrics against hand-computed rankings on a tiny 2-D gallery (no Django, no database).

Gallery (unit vectors, angle in degrees; cosine similarity falls as the angle between two items grows):

    row    0      1      2      3      4      5
    angle  0°     20°    -35°   50°    90°    180°

Rankings (query removed, then by angle to the query, ascending):
    query 0: 1 (20°), 2 (35°), 3 (50°), 4 (90°), 5 (180°)
    query 3: 1 (30°), 4 (40°), 0 (50°), 2 (85°), 5 (130°)
    query 4: 3 (40°), 1 (70°), then 0 and 5 tie at exactly 90° (similarity 0.0): index 0 first, 5 at rank 4;
             2 (125°) last.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from training.metrics import RetrievalMetrics, evaluate_retrieval

K = (1, 3, 5)


def gallery() -> np.ndarray:
    vectors = [(math.cos(math.radians(t)), math.sin(math.radians(t))) for t in (0, 20, -35, 50)]
    # Rows 0, 4 and 5 written exactly so that query 4 sees a true tie (0·0 + 1·0 = 0 for both 0 and 5).
    vectors[0] = (1.0, 0.0)
    vectors += [(0.0, 1.0), (-1.0, 0.0)]
    return np.array(vectors, dtype=np.float32)


# query 0, partners {2, 4}: ranks 2 and 4.
#          AP = (1/2 + 2/4) / 2 = 0.5. R@1 = 0, R@3 = 1/2, R@5 = 1. First rank 2.
# query 3, partners {1, 5} (3 itself is listed and must be dropped): ranks 1 and 5.
#          AP = (1/1 + 2/5) / 2 = 0.7. R@1 = 1/2, R@3 = 1/2, R@5 = 1. First rank 1.
# query 4, partners {5}: rank 4 (after 0 on the tie). AP = 1/4. R@1 = 0, R@3 = 0, R@5 = 1. First rank 4.
# query 1: only itself as partner -> skipped; query 2: absent from the mapping -> skipped.
PARTNERS = {0: {2, 4}, 3: {1, 5, 3}, 4: {5}, 1: {1}}
QUERIES = [0, 3, 4, 1, 2]


def test_hand_computed_gallery() -> None:
    metrics = evaluate_retrieval(gallery(), QUERIES, PARTNERS, k_values=K)
    assert metrics.n_queries == 3
    assert metrics.n_skipped == 2
    assert metrics.map == pytest.approx((0.5 + 0.7 + 0.25) / 3)
    assert metrics.recall == pytest.approx({1: (0 + 0.5 + 0) / 3, 3: (0.5 + 0.5 + 0) / 3, 5: 1.0})
    assert metrics.precision_at_1 == pytest.approx(1 / 3)
    assert metrics.median_first_rank == 2.0  # median of first ranks 2, 1, 4


@pytest.mark.parametrize(
    ("query", "ap", "recall", "first_rank"),
    [
        (0, 0.5, {1: 0.0, 3: 0.5, 5: 1.0}, 2),
        (3, 0.7, {1: 0.5, 3: 0.5, 5: 1.0}, 1),
        (4, 0.25, {1: 0.0, 3: 0.0, 5: 1.0}, 4),
    ],
)
def test_single_queries(query: int, ap: float, recall: dict[int, float], first_rank: int) -> None:
    metrics = evaluate_retrieval(gallery(), [query], PARTNERS, k_values=K)
    assert metrics.map == pytest.approx(ap)
    assert metrics.recall == pytest.approx(recall)
    assert metrics.precision_at_1 == (1.0 if first_rank == 1 else 0.0)
    assert metrics.median_first_rank == first_rank


def test_query_is_never_counted_although_it_is_its_own_nearest_neighbour() -> None:
    # Query 0 with partner 1 (its nearest other item). Kept in the gallery, the query itself (similarity 1)
    # would take rank 1 and push 1 to rank 2 (AP 0.5, P@1 0); excluded, partner 1 is rank 1.
    metrics = evaluate_retrieval(gallery(), [0], {0: {1}}, k_values=(1,))
    assert (metrics.map, metrics.precision_at_1, metrics.recall[1], metrics.median_first_rank) == (1, 1, 1, 1)
    # Listing the query among its own partners changes nothing: it is dropped, not counted as a hit.
    assert evaluate_retrieval(gallery(), [0], {0: {0, 1}}, k_values=(1,)) == metrics


def test_recall_counts_all_partners_including_those_beyond_k() -> None:
    # Query 0, partners 2 (rank 2) and 4 (rank 4): recall at each cut-off is the share of BOTH partners.
    metrics = evaluate_retrieval(gallery(), [0], {0: {2, 4}}, k_values=(1, 2, 3, 4, 5))
    assert metrics.recall == {1: 0.0, 2: 0.5, 3: 0.5, 4: 1.0, 5: 1.0}


def test_ties_are_broken_by_ascending_index() -> None:
    # Query 4 sees rows 0 and 5 at exactly the same similarity: the lower index ranks first.
    assert evaluate_retrieval(gallery(), [4], {4: {0}}, k_values=(3,)).median_first_rank == 3
    assert evaluate_retrieval(gallery(), [4], {4: {5}}, k_values=(3,)).median_first_rank == 4


def test_chunked_and_unchunked_results_are_identical() -> None:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((300, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = rng.choice(300, size=120, replace=False)
    # 0 to 5 partners each: some queries have none, and some list themselves (dropped, so maybe skipped).
    partners = {int(q): set(rng.choice(300, rng.integers(0, 6), replace=False).tolist()) for q in queries}
    partners.update({int(q): {int(q)} for q in queries[:3]})
    results = [evaluate_retrieval(vectors, queries, partners, chunk=chunk) for chunk in (1, 7, 64, 1024)]
    assert all(result == results[0] for result in results[1:])
    assert results[0].n_skipped == sum(1 for q in queries if not partners[int(q)] - {int(q)})


def test_query_without_partners_is_skipped() -> None:
    metrics = evaluate_retrieval(gallery(), [0, 1], {0: {1}, 1: set()}, k_values=(1,))
    assert (metrics.n_queries, metrics.n_skipped, metrics.map) == (1, 1, 1.0)
    empty = evaluate_retrieval(gallery(), [1], {}, k_values=(1,))
    assert (empty.n_queries, empty.n_skipped) == (0, 1)
    assert math.isnan(empty.map) and math.isnan(empty.median_first_rank)


def test_unnormalised_and_torch_inputs_give_the_same_result() -> None:
    reference = evaluate_retrieval(gallery(), QUERIES, PARTNERS, k_values=K)
    scaled = gallery() * np.array([[2.0], [0.5], [3.0], [1.0], [7.0], [0.1]], dtype=np.float32)
    assert evaluate_retrieval(scaled, QUERIES, PARTNERS, k_values=K) == reference
    assert evaluate_retrieval(torch.from_numpy(gallery()), QUERIES, PARTNERS, k_values=K) == reference


@pytest.mark.parametrize(
    ("queries", "partners", "message"),
    [([6], {}, "query indices"), ([0, 0], {0: {1}}, "duplicates"), ([0], {0: {9}}, "outside the gallery")],
)
def test_invalid_input_is_refused(queries: list[int], partners: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate_retrieval(gallery(), queries, partners)


def test_as_dict_and_table() -> None:
    metrics = evaluate_retrieval(gallery(), QUERIES, PARTNERS, k_values=K)
    assert isinstance(metrics, RetrievalMetrics)
    assert list(metrics.as_dict()) == [
        "map",
        "recall@1",
        "recall@3",
        "recall@5",
        "precision_at_1",
        "median_first_rank",
        "n_queries",
        "n_skipped",
        "ci",
        "n_groups",
    ]
    table = metrics.table()
    assert "mAP" in table and "0.4833" in table
    assert "R@5" in table and "1.0000" in table
    assert "skipped (no partner)  2" in table
