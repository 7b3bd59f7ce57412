"""The simulated historian's judgement and arithmetic (`review.simulation`, plain): truth groups, the three
policies, review orders, discovery through chains of links, wrong decisions, and bad truth files."""

from __future__ import annotations

import random

import pytest

from review.simulation import (
    Answer,
    RoundFigures,
    Truth,
    TruthFileError,
    answer,
    components_by_id,
    discovered,
    hidden_pairs,
    ordered,
    wrong_decisions,
)

# Two true groups: a–b–c (a chain: a copy of a copy) and d–e; f and g have no true partner.
TRUTH = Truth.from_pairs([("a", "b"), ("c", "b"), ("d", "e")])


def test_truth_groups_are_the_components_of_the_links():
    assert TRUTH.same_group("a", "c")  # through b
    assert not TRUTH.same_group("a", "d")
    assert not TRUTH.same_group("f", "g")  # two artworks without links are not one group
    assert TRUTH.pairs == {("a", "b"), ("b", "c"), ("d", "e")}


def test_largest_group_prefers_size_then_the_stronger_member():
    assert TRUTH.largest_group(["d", "a", "e", "b", "c"]) == [1, 3, 4]
    assert TRUTH.largest_group(["d", "a", "e", "b"]) == [0, 2]  # a tie: the group of the strongest member
    assert TRUTH.largest_group(["a", "d", "f"]) == []


def test_exact_confirms_exactly_the_true_members():
    assert answer("exact", ["a", "b", "c"], TRUTH) == Answer("confirm", (0, 1, 2))
    assert answer("exact", ["a", "f", "b"], TRUTH) == Answer("confirm_exclusive", (0, 2))
    assert answer("exact", ["a", "d", "f"], TRUTH) == Answer("reject")


def test_whole_confirms_only_wholly_true_clusters():
    assert answer("whole", ["a", "b"], TRUTH) == Answer("confirm", (0, 1))
    assert answer("whole", ["a", "f", "b"], TRUTH) == Answer("reject")


def test_noisy_reviewer_slips_at_the_error_rate():
    members = ["a", "b", "c", "f", "g", "d"]
    assert answer("noisy", members, TRUTH, random.Random(1), 0.0) == answer("exact", members, TRUTH)
    # Every tick flipped: the true members are left out and the wrong ones ticked.
    assert answer("noisy", members, TRUTH, random.Random(1), 1.0) == Answer("confirm_exclusive", (3, 4, 5))
    rng = random.Random(7)
    slips = 0
    for _ in range(2000):
        reply = answer("noisy", ["a", "b", "c", "f"], TRUTH, rng, 0.1)
        slips += reply != Answer("confirm_exclusive", (0, 1, 2))
    # P(no flip among 4 members) = 0.9**4 = 0.656: about a third of the answers differ.
    assert 0.30 < slips / 2000 < 0.39
    with pytest.raises(ValueError, match="between 0 and 1"):
        answer("noisy", members, TRUTH, rng, 1.5)
    with pytest.raises(ValueError, match="unknown policy"):
        answer("lenient", members, TRUTH)


def test_review_orders():
    queue = [
        {"rank": 1, "confidence": 0.5, "size": 2},
        {"rank": 2, "confidence": 0.9, "size": 5},
        {"rank": 3, "confidence": 0.7, "size": 9},
    ]
    assert [p["rank"] for p in ordered(queue, "rank")] == [1, 2, 3]
    assert [p["rank"] for p in ordered(queue, "confidence")] == [2, 3, 1]
    assert [p["rank"] for p in ordered(queue, "size")] == [3, 2, 1]
    assert sorted(p["rank"] for p in ordered(queue, "random", random.Random(3))) == [1, 2, 3]
    with pytest.raises(ValueError, match="unknown review order"):
        ordered(queue, "alphabetical")


def test_discovered_counts_pairs_joined_through_chains():
    # Known links a–x and x–b join the true pair (a, b) through x; (b, c) is not joined (c has no link).
    known = components_by_id([("a", "x"), ("x", "b"), ("d", "e")])
    assert discovered(TRUTH.pairs, known) == {("a", "b"), ("d", "e")}
    assert discovered(TRUTH.pairs, {}) == set()


def test_hidden_pairs_are_the_imported_pairs_not_joined_yet():
    # c is not imported: (b, c) cannot be discovered; (d, e) is known already; only (a, b) is hidden.
    known = components_by_id([("d", "e")])
    reachable, hidden = hidden_pairs(TRUTH, ["a", "b", "d", "e", "f"], known)
    assert reachable == {("a", "b"), ("d", "e")} and hidden == {("a", "b")}
    assert hidden_pairs(TRUTH, ["a", "b", "c", "d", "e"], components_by_id([("a", "c")]))[1] == {
        ("a", "b"),
        ("b", "c"),
        ("d", "e"),
    }


def test_wrong_decisions():
    rows = [("a", "c", "POSITIVE"), ("a", "d", "POSITIVE"), ("a", "b", "NEGATIVE"), ("a", "f", "NEGATIVE")]
    assert wrong_decisions(rows, TRUTH) == (1, 1)


def test_round_figures_shares():
    figures = RoundFigures(
        proposals_shown=30,
        proposals_reviewed=20,
        confirmed=9,
        confirmed_whole=4,
        rejected=10,
        skipped=1,
        true_links_gained=15,
        discovered=40,
        hidden_total=80,
        images_added=12,
        wrong_links_accepted=0,
        wrong_negatives=2,
    )
    record = figures.as_dict()
    assert record["share_confirmed"] == 0.45 and record["links_per_proposal"] == 0.75
    assert record["discovered_share"] == 0.5
    empty = RoundFigures(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0).as_dict()
    assert empty["share_confirmed"] is None and empty["discovered_share"] is None


def test_bad_truth_files_are_refused_with_their_lines(tmp_path):
    bad = tmp_path / "truth.csv"
    bad.write_text("uid,img1,img2,type\n1,a,b,POSITIVE\n2,c,c,POSITIVE\n3,d,e,FRIENDS\n")
    with pytest.raises(TruthFileError) as caught:
        Truth.load(bad)
    assert any(":3:" in p and "self-link" in p for p in caught.value.problems), caught.value.problems
    assert any(":4:" in p and "unknown type" in p for p in caught.value.problems), caught.value.problems
    negatives_only = tmp_path / "negatives.csv"
    negatives_only.write_text("uid,img1,img2,type\n1,a,b,NEGATIVE\n")
    with pytest.raises(TruthFileError, match="nothing to discover"):
        Truth.load(negatives_only)
    good = tmp_path / "good.csv"
    good.write_text("uid,img1,img2,type\n1,a,b,POSITIVE\n2,b,c,DUPLICATE\n3,a,f,NEGATIVE\n")
    assert Truth.load(good).pairs == {("a", "b"), ("b", "c")}
