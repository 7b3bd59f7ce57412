"""Catalogue labels as targets: the stratified split, the refusal of unusable labels, P@k by label and the
label trainer's configuration checks (plain modules, no database)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from annotations.splits import stratified_split
from training.label_trainer import LabelTrainConfig, cosine_with_warmup
from training.labels import UnusableLabels, encode_task, label_precision


def test_the_split_is_70_15_15_within_every_class_and_reproducible():
    keys = {i: f"art-{i}" for i in range(130)}
    strata = {i: ("Baroque" if i < 100 else "Rococo" if i < 120 else "Gothic") for i in range(130)}
    split = stratified_split(keys, strata, "seed")
    by_class = {
        name: Counter(split[i] for i in keys if strata[i] == name) for name in ("Baroque", "Rococo", "Gothic")
    }
    assert by_class["Baroque"] == {"train": 70, "val": 15, "test": 15}
    assert by_class["Rococo"] == {"train": 14, "val": 3, "test": 3}
    # 10: 7 / 1.5 / 1.5; the one left over goes to test (held-out parts first on a tie)
    assert by_class["Gothic"] == {"train": 7, "val": 1, "test": 2}
    assert stratified_split(keys, strata, "seed") == split
    assert stratified_split(dict(reversed(keys.items())), strata, "seed") == split  # order does not matter
    assert stratified_split(keys, strata, "other seed") != split


def test_a_small_class_is_still_measured():
    split = stratified_split({i: str(i) for i in range(3)}, dict.fromkeys(range(3), "rare"), "s")
    assert sorted(split.values()) == ["test", "train", "val"]


def test_artworks_that_come_one_or_two_per_class_are_not_all_put_in_train():
    keys = {i: f"art-{i}" for i in range(400)}
    split = stratified_split(keys, {i: f"class {i // 2}" for i in range(400)}, "seed")  # classes of 2
    counts = Counter(split.values())
    assert 230 < counts["train"] < 330 and counts["val"] > 30 and counts["test"] > 30


def test_encoding_keeps_classes_with_enough_examples_and_names_the_dropped():
    values = ["Baroque"] * 8 + ["Rococo"] * 6 + ["Gothic"] * 2 + [""] * 3
    task = encode_task("style", values, min_examples=6)
    assert task.classes == ("Baroque", "Rococo")
    assert task.targets.tolist() == [0] * 8 + [1] * 6 + [-1] * 5
    assert task.dropped == {"Gothic": 2}
    assert "Gothic (2)" in task.describe_dropped()
    assert task.summary()["counts"] == [8, 6]


def test_labels_with_fewer_than_two_usable_classes_are_refused_with_the_reason():
    with pytest.raises(
        UnusableLabels, match=r"cannot train on 'style': 1 class .* at least 6 .*Gothic \(2\)"
    ):
        encode_task("style", ["Baroque"] * 9 + ["Gothic"] * 2, min_examples=6)
    with pytest.raises(UnusableLabels, match="no artwork has a 'genre' label"):
        encode_task("genre", ["", "", ""])


def test_precision_at_k_by_label_leaves_the_query_out():
    # Two tight groups on a line: a, a, a near 0° and b, b near 90°, plus one unlabelled row.
    angles = np.array([0.0, 0.05, 0.1, 1.5, 1.55, 0.02])
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    targets = np.array([0, 0, 0, 1, 1, -1])
    result = label_precision(vectors, targets, "style", ks=(1, 2, 3))
    assert result.n_queries == 5
    assert result.precision[1] == 1.0  # each one's nearest other labelled row shares its label
    # k = 2: the a's find the other two a's (1.0); each b finds the other b then an a (0.5).
    assert result.precision[2] == pytest.approx((3 * 1.0 + 2 * 0.5) / 5)
    # k = 3: a's 2/3; b's 1/3.
    assert result.precision[3] == pytest.approx((3 * 2 / 3 + 2 * 1 / 3) / 5)


def test_the_trainer_refuses_configurations_it_cannot_run():
    with pytest.raises(ValueError, match="style classifier predicts one label"):
        LabelTrainConfig(method="style-classifier", labels=["style", "genre"])
    with pytest.raises(ValueError, match="unknown label method"):
        LabelTrainConfig(method="connection")
    with pytest.raises(ValueError, match="augment"):
        LabelTrainConfig(augment="heavy")
    assert (
        LabelTrainConfig(method="multitask-knn", labels=["style", "genre"]).key() != LabelTrainConfig().key()
    )


def test_warm_up_then_cosine():
    assert cosine_with_warmup(0, 100, 10, 1.0, 0.0) == pytest.approx(0.1)
    assert cosine_with_warmup(9, 100, 10, 1.0, 0.0) == pytest.approx(1.0)
    assert cosine_with_warmup(10, 100, 10, 1.0, 0.0) == pytest.approx(1.0)
    assert cosine_with_warmup(55, 100, 10, 1.0, 0.0) == pytest.approx(0.5)
    assert cosine_with_warmup(100, 100, 10, 1.0, 0.01) == pytest.approx(0.01)
