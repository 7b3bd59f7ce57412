"""What is new about a cluster, and the order of the review queue (plain module)."""

from __future__ import annotations

from annotations.knowledge import Knowledge
from clustering.proposals import (
    CONTAINS_REJECTED,
    EXTENDS,
    MERGES,
    NEW_GROUP,
    draft,
    review_order,
)

# Known: component 0 = {1, 2, 3}, component 1 = {4, 5}; 6–9 unlinked. Pair (7, 8) rejected; (6, 9) similar.
KNOWN = Knowledge(
    component_of={1: 0, 2: 0, 3: 0, 4: 1, 5: 1},
    decided={(1, 2), (2, 3), (4, 5), (7, 8), (6, 9)},
    rejected={(7, 8)},
)


def make(label, members, confidence=0.8):
    return draft(label, members, [confidence] * len(members), confidence, KNOWN)


def test_cluster_of_known_pairs_is_not_proposed():
    assert make(0, [1, 2, 3]) is None  # one component: 1–3 is known through 2
    assert make(1, [7, 8]) is None  # rejected pair, nothing else
    assert make(2, [6, 9]) is None  # decided as SIMILAR


def test_kinds():
    assert make(0, [6, 9, 10]).kind == NEW_GROUP
    extends = make(1, [1, 2, 6])
    assert extends.kind == EXTENDS and extends.new_links == 1 and extends.new_pairs == 2
    merges = make(2, [1, 4, 6])
    assert merges.kind == MERGES and merges.new_links == 2 and merges.components == [0, 1]
    rejected = make(3, [7, 8, 9])
    assert rejected.kind == CONTAINS_REJECTED and rejected.rejected_pairs == [(7, 8)]
    assert rejected.new_pairs == 2  # 7–9 and 8–9; 7–8 is never offered again


def test_members_are_listed_strongest_first():
    proposal = draft(0, [6, 7, 10], [0.2, 0.9, 0.5], 0.5, KNOWN)
    assert proposal.members == [7, 10, 6] and proposal.strength == [0.9, 0.5, 0.2]


def test_review_order_by_value_with_diversity():
    a = make(0, [1, 6], confidence=0.9)  # extends component 0: value 0.9
    b = make(1, [2, 7], confidence=0.85)  # extends component 0 again: 0.85, halved to 0.425 after a
    c = make(2, [10, 11], confidence=0.6)  # new group: 0.6
    d = make(3, [12, 13, 14], confidence=0.5)  # new group of three: 2 links × 0.5 = 1.0
    ordered = review_order([a, b, c, d])
    assert [p.label for p in ordered] == [3, 0, 2, 1]
    assert [p.rank for p in ordered] == [1, 2, 3, 4]
    assert ordered[-1].discounted_value == 0.85 * 0.5


def test_a_rejected_pair_across_the_components_a_cluster_would_join_is_flagged():
    knowledge = Knowledge(
        component_of={1: 0, 2: 0, 4: 1, 5: 1}, decided={(1, 2), (4, 5), (2, 5)}, rejected={(2, 5)}
    )
    # Neither 2 nor 5 is a member, but linking 1 and 4 joins their components and so links 2 with 5.
    proposal = draft(0, [1, 4], [0.9, 0.9], 0.9, knowledge)
    assert proposal.kind == CONTAINS_REJECTED and proposal.rejected_pairs == [(2, 5)]
