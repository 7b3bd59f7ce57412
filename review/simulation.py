"""The simulated historian: answers proposals from a ground-truth file and scores what a round yielded
(plain module, no Django).

A lab wants to know what the review loop will give before it asks people for their time: how many true
connections a historian gains per proposal reviewed, and whether each round proposes better than the last
(the thesis's share of confirmed clusters per round: 0.41, 0.44, 0.51, 0.99, `../shared/docs/methods.md` §1).
`review.simulate` drives the loop in a snapshot of the collection; this module is the reviewer's judgement
and the arithmetic of the figures, both checked on their own (`tests/test_review_simulation_policies.py`).

Truth is a connections file in the morphograph format: its POSITIVE/DUPLICATE rows link artworks, and the
links' connected components are the true groups (a copy of a copy shares the pattern of the original).

Policies (what the reviewer does with one proposal, members strongest first):
- `exact`: ticks exactly the members of the largest true group among the members and confirms them with
  "confirm, unchecked are wrong" (plain confirm when every member belongs); a cluster without two members of
  one group is a wrong cluster (reject). A careful historian with the truth in mind.
- `whole`: confirms a cluster only when every member belongs to one true group, and rejects every other as a
  wrong cluster: the hurried reviewer who does not untick. Its rejections of partly right clusters record
  true pairs as NEGATIVE (counted as `wrong_negatives`), and a rejected pair is never proposed again.
- `noisy`: `exact`, then each member's tick is flipped with probability `error_rate` (a slip, or a
  misjudged member); two ticks or more are confirmed (unchecked are wrong), fewer make a wrong cluster.
  Real reviewers make mistakes: this measures what they cost (`wrong_links_accepted`).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from annotations.connection_types import LINKING_TYPES
from annotations.csvformats import Problem, read_connections
from annotations.knowledge import canonical
from annotations.splits import connected_components

POLICIES = ("exact", "whole", "noisy")
ORDERS = ("rank", "confidence", "size", "random")
Pair = tuple[str, str]


class TruthFileError(ValueError):
    def __init__(self, problems: Sequence[Problem | str]) -> None:
        self.problems = [str(p) for p in problems]
        shown = "\n".join(self.problems[:20])
        more = f"\n… and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
        super().__init__(f"the truth file has {len(self.problems)} problem(s):\n{shown}{more}")


@dataclass(frozen=True)
class Truth:
    """The true links (pairs of external ids, POSITIVE or DUPLICATE) and the groups they form."""

    pairs: frozenset[Pair]
    group_of: Mapping[str, int]

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> Truth:
        canonical_pairs = frozenset(canonical(a, b) for a, b in pairs if a != b)
        group_of = {}
        for number, members in enumerate(connected_components(sorted(canonical_pairs))):
            for member in members:
                group_of[member] = number
        return cls(pairs=canonical_pairs, group_of=group_of)

    @classmethod
    def load(cls, path: Path) -> Truth:
        """Read a morphograph file; every problem with its line, and refuse a file with no link at all."""
        rows, problems = read_connections(path)
        if problems:
            raise TruthFileError(problems)
        linking = [(row.img1, row.img2) for row in rows if row.type in LINKING_TYPES]
        if not linking:
            raise TruthFileError([f"{path}: no POSITIVE or DUPLICATE connection: nothing to discover"])
        return cls.from_pairs(linking)

    def same_group(self, a: str, b: str) -> bool:
        group = self.group_of.get(a)
        return group is not None and group == self.group_of.get(b)

    def largest_group(self, members: Sequence[str]) -> list[int]:
        """Positions of the members in the largest true group among them (ties: the group of the stronger
        member, members being strongest first); empty when no two members share a group."""
        by_group: dict[int, list[int]] = {}
        for position, member in enumerate(members):
            group = self.group_of.get(member)
            if group is not None:
                by_group.setdefault(group, []).append(position)
        best = max(by_group.values(), key=lambda positions: (len(positions), -positions[0]), default=[])
        return best if len(best) >= 2 else []


@dataclass(frozen=True)
class Answer:
    """What the reviewer does: an action of `review.decisions.ACTIONS` and the ticked member positions."""

    action: str
    ticked: tuple[int, ...] = ()


def answer(
    policy: str,
    members: Sequence[str],
    truth: Truth,
    rng: random.Random | None = None,
    error_rate: float = 0.0,
) -> Answer:
    """The simulated historian's answer to one proposal (members as external ids, strongest first)."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; one of {', '.join(POLICIES)}")
    group = truth.largest_group(members)
    everyone = len(group) == len(members)
    if policy == "whole":
        return Answer("confirm", tuple(group)) if everyone else Answer("reject")
    ticked = set(group)
    if policy == "noisy":
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError(f"error rate {error_rate} is not between 0 and 1")
        rng = rng or random.Random(0)
        ticked = {p for p in range(len(members)) if (p in ticked) != (rng.random() < error_rate)}
    if len(ticked) < 2:
        return Answer("reject")
    chosen = tuple(sorted(ticked))
    return Answer("confirm" if len(chosen) == len(members) else "confirm_exclusive", chosen)


def ordered(proposals: Sequence[dict], order: str, rng: random.Random | None = None) -> list[dict]:
    """The queue in the order the reviewer works through it. `rank` is the workbench's review order (value
    with the diversity discount, `clustering.proposals`); the others are baselines for it."""
    if order not in ORDERS:
        raise ValueError(f"unknown review order {order!r}; one of {', '.join(ORDERS)}")
    items = list(proposals)
    if order == "rank":
        return sorted(items, key=lambda p: p["rank"])
    if order == "confidence":
        return sorted(items, key=lambda p: (-p["confidence"], p["rank"]))
    if order == "size":
        return sorted(items, key=lambda p: (-p["size"], p["rank"]))
    (rng or random.Random(0)).shuffle(items)
    return items


def components_by_id(links: Iterable[Pair]) -> dict[str, int]:
    """Known component of each linked artwork (external ids) from the known links."""
    group_of = {}
    for number, members in enumerate(connected_components(list(links))):
        for member in members:
            group_of[member] = number
    return group_of


def discovered(pairs: Iterable[Pair], known_component_of: Mapping[str, int]) -> set[Pair]:
    """The true pairs that the known links now join, directly or through a chain of links."""
    found = set()
    for a, b in pairs:
        component = known_component_of.get(a)
        if component is not None and component == known_component_of.get(b):
            found.add((a, b))
    return found


def hidden_pairs(
    truth: Truth, imported: Iterable[str], known_component_of: Mapping[str, int]
) -> tuple[set[Pair], set[Pair]]:
    """The truth's pairs between imported artworks, and those of them the known links do not join yet
    (what a simulation has to discover)."""
    imported = set(imported)
    reachable = {pair for pair in truth.pairs if pair[0] in imported and pair[1] in imported}
    return reachable, reachable - discovered(reachable, known_component_of)


@dataclass
class RoundFigures:
    """What one round of review yielded, against the truth (the per-round record)."""

    proposals_shown: int
    proposals_reviewed: int
    confirmed: int  # whole or in part: the reviewer linked at least two members
    confirmed_whole: int
    rejected: int
    skipped: int
    true_links_gained: int  # hidden true pairs joined by this round's decisions
    discovered: int  # hidden true pairs joined so far
    hidden_total: int
    images_added: int  # artworks that had no known link before this round (the thesis's count)
    wrong_links_accepted: int  # this round's linking decisions between artworks of different true groups
    wrong_negatives: int  # this round's NEGATIVE decisions between artworks of one true group
    extra: dict = field(default_factory=dict)

    @property
    def share_confirmed(self) -> float | None:
        return self.confirmed / self.proposals_reviewed if self.proposals_reviewed else None

    @property
    def links_per_proposal(self) -> float | None:
        return self.true_links_gained / self.proposals_reviewed if self.proposals_reviewed else None

    @property
    def discovered_share(self) -> float | None:
        return self.discovered / self.hidden_total if self.hidden_total else None

    def as_dict(self) -> dict:
        return {
            "proposals_shown": self.proposals_shown,
            "proposals_reviewed": self.proposals_reviewed,
            "confirmed": self.confirmed,
            "confirmed_whole": self.confirmed_whole,
            "rejected": self.rejected,
            "skipped": self.skipped,
            "share_confirmed": self.share_confirmed,
            "true_links_gained": self.true_links_gained,
            "links_per_proposal": self.links_per_proposal,
            "discovered": self.discovered,
            "hidden_total": self.hidden_total,
            "discovered_share": self.discovered_share,
            "images_added": self.images_added,
            "wrong_links_accepted": self.wrong_links_accepted,
            "wrong_negatives": self.wrong_negatives,
            **self.extra,
        }


def wrong_decisions(decisions: Iterable[tuple[str, str, str]], truth: Truth) -> tuple[int, int]:
    """(links between different true groups, NEGATIVE between one true group) among (a, b, type) rows."""
    wrong_links = wrong_negatives = 0
    for a, b, type_code in decisions:
        same = truth.same_group(a, b)
        if type_code in LINKING_TYPES and not same:
            wrong_links += 1
        elif type_code == "NEGATIVE" and same:
            wrong_negatives += 1
    return wrong_links, wrong_negatives
