"""Thesis cluster precision/recall and ARI against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from clustering.metrics import component_scores


def test_hand_computed_precision_and_recall():
    # Points 0..9. Components: {0,1,2,3}, {4,5}, {6,7}.
    # Clusters: A = {0,1,2,8} (label 0), B = {3,4,5} (label 1); 6, 7, 9 noise.
    labels = np.array([0, 0, 0, 1, 1, 1, -1, -1, 0, -1])
    scores = component_scores(labels, [[0, 1, 2, 3], [4, 5], [6, 7]])
    # {0,1,2,3}: best cluster A holds 3 → recall 3/4, precision (3-1)/(4-1) = 2/3
    # {4,5}: best cluster B holds 2 → recall 1, precision (2-1)/(3-1) = 1/2
    # {6,7}: all noise → recall 0, no precision (missed)
    assert scores["recall"] == pytest.approx((3 / 4 + 1 + 0) / 3)
    assert scores["precision"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert scores["components"] == 3 and scores["components_missed"] == 1 and scores["perfect"] == 0
    # Intervals over the components: recall over all three, precision over the two that were found.
    (recall_low, recall_high), (precision_low, precision_high) = (
        scores["ci"]["recall"],
        scores["ci"]["precision"],
    )
    assert recall_low < scores["recall"] < recall_high and 0 <= recall_low and recall_high <= 1
    assert precision_low == pytest.approx(1 / 2) and precision_high == pytest.approx(2 / 3)


def test_ties_go_to_the_smaller_cluster_and_perfect_components_count():
    labels = np.array([0, 1, 0, 0, 1, 2, 2])  # component {0,1}: one in cluster 0 (size 3), one in 1 (size 2)
    scores = component_scores(labels, [[0, 1], [5, 6]])
    # {0,1}: tie 1–1 → cluster 1 (size 2): recall 1/2, precision 0/1 = 0; {5,6} = cluster 2 exactly.
    assert scores["recall"] == pytest.approx((0.5 + 1.0) / 2)
    assert scores["precision"] == pytest.approx((0.0 + 1.0) / 2)
    assert scores["perfect"] == 1


def test_ari_counts_noise_points_as_their_own_clusters():
    components = [[0, 1], [2, 3]]
    assert component_scores(np.array([0, 0, 1, 1]), components)["ari"] == pytest.approx(1.0)
    assert component_scores(np.array([-1, -1, -1, -1]), components)["ari"] == pytest.approx(0.0)
    assert component_scores(np.array([0, 0, 0, 0]), components)["ari"] == pytest.approx(0.0)


def test_no_components_gives_no_scores():
    scores = component_scores(np.array([0, 0, -1]), [[2]])
    assert scores["components"] == 0 and scores["precision"] is None and scores["ari"] is None
