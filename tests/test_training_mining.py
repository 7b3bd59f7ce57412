"""Hard-negative mining: nearest neighbours from the training pool, minus what must not be a negative."""

from __future__ import annotations

import numpy as np

from training.mining import mine_triplets, nearest_in_pool


def unit(angles_degrees: list[float]) -> np.ndarray:
    radians = np.radians(angles_degrees)
    return np.stack([np.cos(radians), np.sin(radians)], axis=1).astype(np.float32)


# Rows 0..7 on the unit circle: row i sits at angle ANGLES[i], so "nearest" is "closest angle".
ANGLES = [0, 5, 10, 20, 40, 80, 160, 170]
SIGNATURES = unit(ANGLES)


def test_nearest_in_pool_is_ordered_by_similarity():
    pool = np.arange(8)
    assert nearest_in_pool(SIGNATURES, np.array([0]), pool, k=4).tolist() == [[0, 1, 2, 3]]
    assert nearest_in_pool(SIGNATURES, np.array([6]), np.array([0, 5, 7]), k=2).tolist() == [[7, 5]]


def test_negatives_skip_the_component_partners_and_out_of_pool_rows():
    component_of = np.array([0, 0, 1, -1, -1, -1, -1, -1])  # rows 0 and 1 share a pattern
    pool = np.array([0, 1, 2, 3, 4, 5, 7])  # row 6 is in a val/test component: never a negative
    triplets = mine_triplets(
        SIGNATURES,
        [(0, 1)],
        pool,
        component_of,
        excluded_partners={0: {2}},
        historian_negatives={},
        per_pair=3,
    )
    # Nearest to row 0: 1 (same component), 2 (a DUPLICATE/SIMILAR partner), then 3, 4, 5.
    assert triplets == [(0, 1, 3), (0, 1, 4), (0, 1, 5)]


def test_historian_negatives_come_first():
    component_of = np.array([0, 0, -1, -1, -1, -1, -1, -1])
    triplets = mine_triplets(
        SIGNATURES,
        [(0, 1)],
        np.arange(8),
        component_of,
        excluded_partners={},
        historian_negatives={0: [7, 6]},
        per_pair=3,
    )
    assert triplets == [(0, 1, 7), (0, 1, 6), (0, 1, 2)]


def test_historian_negative_outside_the_pool_is_not_used():
    component_of = np.full(8, -1)
    component_of[:2] = 0
    triplets = mine_triplets(
        SIGNATURES, [(0, 1)], np.array([0, 1, 2, 3]), component_of, {}, {0: [7]}, per_pair=2
    )
    assert triplets == [(0, 1, 2), (0, 1, 3)]
