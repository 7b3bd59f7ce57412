"""From clusters to review proposals: what is new about each, and the order to review them (plain module).

Each cluster is compared with what historians already know (`annotations.knowledge`):
- a pair of members is *known* when it has a decision of any type (POSITIVE, DUPLICATE, SIMILAR, NEGATIVE)
  or when both members lie in the same known component (POSITIVE/DUPLICATE links, transitively);
- a pair is *rejected* when its current decision is NEGATIVE. Rejected pairs are listed on the proposal and
  never offered as positive links again, in this run or any later one;
- a cluster whose pairs are all known says nothing new and is not proposed (it is counted in the run's
  metrics as `already_known`).

Kinds, checked in this order:
- `contains_rejected`: accepting it whole would link a pair a historian rejected: a member pair, or a pair
  across the known components it would join (the reviewer must untick members before confirming);
- `merges`: members from two or more known components (accepting it would join them);
- `extends`: members from one known component plus artworks outside it;
- `new_group`: no member belongs to a known component.

Review value (what a confirmed proposal is worth, times how likely it is to be confirmed):
    value = new_links × confidence × 0.5 ** (earlier proposals in the queue touching the same known component)
where new_links = (number of known components and unaffiliated artworks among the members) − 1, the number of
links that would join the members into one group, and confidence is the cluster's mean member strength.
Proposals are queued greedily by value, re-discounting after each pick, so that ten proposals extending one
large component do not crowd out the rest (diversity); ties go to the larger cluster, then the lower label.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from annotations.knowledge import Knowledge, canonical

NEW_GROUP, EXTENDS, MERGES, CONTAINS_REJECTED = "new_group", "extends", "merges", "contains_rejected"
KINDS = (NEW_GROUP, EXTENDS, MERGES, CONTAINS_REJECTED)
DIVERSITY_DISCOUNT = 0.5


@dataclass
class Draft:
    label: int
    members: list[int]  # artwork ids, strongest first
    strength: list[float]
    confidence: float
    kind: str
    new_links: int
    new_pairs: int
    rejected_pairs: list[tuple[int, int]]
    components: list[int]  # known components touched
    value: float = 0.0
    rank: int = 0
    discounted_value: float = field(default=0.0, repr=False)


def draft(
    label: int, members: Sequence[int], strength: Sequence[float], confidence: float, knowledge: Knowledge
) -> Draft | None:
    """The proposal for one cluster, or None when every pair of its members is already known."""
    order = sorted(range(len(members)), key=lambda i: (-strength[i], members[i]))
    members = [int(members[i]) for i in order]
    strength = [float(strength[i]) for i in order]
    new_pairs = 0
    for a, b in combinations(members, 2):
        if canonical(a, b) not in knowledge.rejected and not knowledge.pair_known(a, b):
            new_pairs += 1
    rejected = knowledge.rejected_within(members)
    if new_pairs == 0:
        return None
    components = sorted({knowledge.component_of[m] for m in members if m in knowledge.component_of})
    unaffiliated = sum(1 for m in members if m not in knowledge.component_of)
    if rejected:
        kind = CONTAINS_REJECTED
    elif len(components) >= 2:
        kind = MERGES
    elif len(components) == 1:
        kind = EXTENDS
    else:
        kind = NEW_GROUP
    return Draft(
        label=label,
        members=members,
        strength=strength,
        confidence=confidence,
        kind=kind,
        new_links=max(1, len(components) + unaffiliated - 1),
        new_pairs=new_pairs,
        rejected_pairs=sorted(rejected),
        components=components,
        value=max(1, len(components) + unaffiliated - 1) * confidence,
    )


def review_order(drafts: Iterable[Draft]) -> list[Draft]:
    """Greedy queue by value with the diversity discount; sets `rank` (1 = review first) and `value`."""
    pending = list(drafts)
    seen_components: dict[int, int] = {}

    def discounted(d: Draft) -> float:
        repeats = sum(seen_components.get(c, 0) for c in d.components)
        return d.value * DIVERSITY_DISCOUNT**repeats

    # Lazy greedy: a draft's discounted value only ever goes down, so a stale heap entry is re-scored and
    # pushed back instead of re-scoring every draft after each pick.
    heap = [(-d.value, -len(d.members), d.label, index) for index, d in enumerate(pending)]
    heapq.heapify(heap)
    ordered: list[Draft] = []
    while heap:
        negative_value, negative_size, label, index = heapq.heappop(heap)
        d = pending[index]
        current = discounted(d)
        if current < -negative_value - 1e-12:
            heapq.heappush(heap, (-current, negative_size, label, index))
            continue
        d.discounted_value = current
        d.rank = len(ordered) + 1
        ordered.append(d)
        for component in d.components:
            seen_components[component] = seen_components.get(component, 0) + 1
    return ordered


def drafts_from_clusters(
    ids: Sequence[int],
    labels: np.ndarray,
    strength: np.ndarray,
    confidence: Mapping[int, float],
    knowledge: Knowledge,
) -> tuple[list[Draft], int]:
    """The proposals of a clustering in review order, and how many clusters said nothing new.

    `labels` and `strength` are per row of `ids` (-1 = noise); `confidence` is per cluster label.
    """
    members_of: dict[int, list[int]] = {}
    for row in np.flatnonzero(np.asarray(labels) >= 0):
        members_of.setdefault(int(labels[row]), []).append(int(row))
    drafts, already_known = [], 0
    for label, rows in sorted(members_of.items()):
        proposal = draft(
            label,
            [ids[r] for r in rows],
            [float(strength[r]) for r in rows],
            confidence.get(label, 0.0),
            knowledge,
        )
        if proposal is None:
            already_known += 1
        else:
            drafts.append(proposal)
    return review_order(drafts), already_known
