"""The promotion gate (`training.gate`) and the bootstrap intervals it decides on (`training.metrics`):
plain modules, no database."""

from __future__ import annotations

import numpy as np
import pytest

from training.gate import decide
from training.metrics import Interval, bootstrap_difference, bootstrap_means, evaluate_retrieval


def test_interval_of_a_mean_narrows_with_more_groups_and_holds_the_mean() -> None:
    rng = np.random.default_rng(1)
    few = rng.uniform(0, 1, 20)
    many = rng.uniform(0, 1, 2000)
    (low_few,), (high_few,) = bootstrap_means(few, np.arange(few.size))
    (low_many,), (high_many,) = bootstrap_means(many, np.arange(many.size))
    assert low_few < few.mean() < high_few and low_many < many.mean() < high_many
    # The standard error shrinks as 1/sqrt(n): 100 times the groups, about a tenth of the width.
    assert (high_many - low_many) < 0.2 * (high_few - low_few)


def test_queries_of_one_group_are_resampled_together() -> None:
    """Ten groups of 50 identical queries each: as uncertain as ten queries, not as 500."""
    values = np.repeat(np.linspace(0, 1, 10), 50)
    grouped = bootstrap_means(values, np.repeat(np.arange(10), 50))
    independent = bootstrap_means(values, np.arange(values.size))
    width = lambda interval: interval[1][0] - interval[0][0]  # noqa: E731
    assert width(grouped) > 4 * width(independent)


def test_paired_difference_sees_a_small_consistent_gain_that_separate_intervals_hide() -> None:
    rng = np.random.default_rng(2)
    old = rng.uniform(0.1, 0.9, 60)  # queries differ a lot in difficulty ...
    new = old + 0.02  # ... and the new model is a little better on every one of them
    groups = np.arange(60)
    difference = bootstrap_difference(new, old, groups)
    assert difference.value == pytest.approx(0.02) and difference.low > 0
    (old_low,), (old_high,) = bootstrap_means(old, groups)
    (new_low,), _ = bootstrap_means(new, groups)
    assert new_low < old_high  # the two separate intervals overlap: comparing them would see nothing


def test_bootstrap_is_reproducible_and_checks_its_input() -> None:
    values, groups = np.arange(30) / 30, np.arange(30) // 3
    assert bootstrap_difference(values, values * 0.5, groups) == bootstrap_difference(
        values, values * 0.5, groups
    )
    with pytest.raises(ValueError, match="equally long"):
        bootstrap_difference([0.1, 0.2], [0.1], [0, 1])


def test_retrieval_metrics_carry_an_interval_for_every_metric() -> None:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(40, 8)).astype(np.float32)
    partners = {row: {row ^ 1} for row in range(40)}  # pairs (0, 1), (2, 3), ...
    vectors[1::2] = vectors[0::2] + rng.normal(scale=0.8, size=(20, 8))
    metrics = evaluate_retrieval(
        vectors, list(range(40)), partners, k_values=(1, 5), groups={r: r // 2 for r in range(40)}
    )
    as_dict = metrics.as_dict()
    assert set(as_dict["ci"]) == {"map", "precision_at_1", "recall@1", "recall@5"}
    for name, (low, high) in as_dict["ci"].items():
        assert low <= as_dict[name] <= high, name
    assert as_dict["n_groups"] == 20 and metrics.n_queries == 40
    assert metrics.per_query_ap().keys() == set(range(40))
    assert "[" in metrics.table() and "query groups" in metrics.table()
    without = evaluate_retrieval(vectors, list(range(40)), partners, bootstrap=0)
    assert without.intervals == {} and without.map == metrics.map


@pytest.mark.parametrize(
    ("differences", "decision", "phrase"),
    [
        ({"val": Interval(0.05, 0.01, 0.09), "synthetic": Interval(0.01, -0.01, 0.03)}, "promoted", "better"),
        (
            {"val": Interval(0.02, -0.03, 0.07), "synthetic": Interval(0.0, -0.01, 0.01)},
            "candidate",
            "inconclusive",
        ),
        ({"val": Interval(-0.05, -0.09, -0.01), "synthetic": None}, "rejected", "worse"),
        (
            {"val": Interval(0.05, 0.01, 0.09), "synthetic": Interval(-0.05, -0.08, -0.02)},
            "candidate",
            "disagree",
        ),
        ({"val": None, "synthetic": None}, "promoted", "without evidence"),
    ],
)
def test_gate_decisions(differences: dict, decision: str, phrase: str) -> None:
    result = decide(differences, {"val": (16, 5), "synthetic": (400, 200)})
    assert result.decision == decision and phrase in result.reason
    assert result.promoted == (decision == "promoted")
    for name, interval in differences.items():
        if interval is not None:
            assert result.differences[name]["low"] == interval.low
            assert f"{interval.value:+.4f}" in result.reason
    if differences["val"] is not None:
        assert result.differences["val"]["queries"] == 16
