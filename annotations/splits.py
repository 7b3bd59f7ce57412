"""Train / val / test assignment by connected component (plain module, no Django).

Why components: two images that share a pattern must never sit on both sides of the train/test
line, or evaluation measures memorisation (methods.md §1: about 2/3 train, 1/6 val, 1/6 test by
component of the POSITIVE graph). DUPLICATE links join components too: a second photograph of a
test artwork must not be trained on.

Rules (persistent and deterministic):
1. An artwork keeps its split once it has one; splits are stored, not recomputed.
2. A component with no assigned member gets a split from a hash of its smallest external id and
   the seed, so the same collection always gets the same splits, whatever the import order.
3. A new member of a component inherits the component's split.
4. When a new link merges components of different splits, the merged component takes the most
   held-out split among them (test > val > train) and its other members move there. This never
   moves an image *into* training, so no future model trains on what an earlier model was tested
   on; the members that moved out of train were seen by earlier models, which the returned
   `SplitChange` list reports so evaluation can say so.
5. Removing a link (a pair turned NEGATIVE) never moves anything: both parts keep their split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

TRAIN, VAL, TEST = "train", "val", "test"
HELD_OUT_RANK = {TRAIN: 0, VAL: 1, TEST: 2}
DEFAULT_FRACTIONS = (2 / 3, 1 / 6, 1 / 6)

Node = TypeVar("Node", bound=Hashable)


@dataclass(frozen=True)
class SplitChange:
    node: Hashable
    old: str | None
    new: str


def connected_components(edges: Iterable[tuple[Node, Node]]) -> list[list[Node]]:
    """Components of the graph given by its edges (union-find with path halving)."""
    parent: dict[Node, Node] = {}

    def find(x: Node) -> Node:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        root_a, root_b = find(a), find(b)
        if root_a != root_b:
            parent[root_b] = root_a
    groups: dict[Node, list[Node]] = {}
    for node in parent:
        groups.setdefault(find(node), []).append(node)
    return list(groups.values())


def split_for_key(key: str, seed: str, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS) -> str:
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < fractions[0]:
        return TRAIN
    if u < fractions[0] + fractions[1]:
        return VAL
    return TEST


def assign_splits(
    edges: Iterable[tuple[Node, Node]],
    current: Mapping[Node, str | None],
    keys: Mapping[Node, str],
    seed: str,
) -> list[SplitChange]:
    """The split changes that the linking `edges` imply, given the `current` splits.

    `keys` gives each node's stable external id (used for the deterministic hash).
    """
    changes: list[SplitChange] = []
    for component in connected_components(edges):
        assigned = {current.get(node) for node in component} - {None}
        if assigned:
            target = max(assigned, key=HELD_OUT_RANK.__getitem__)
        else:
            target = split_for_key(min(keys[node] for node in component), seed)
        for node in component:
            if current.get(node) != target:
                changes.append(SplitChange(node, current.get(node), target))
    return changes


LABEL_FRACTIONS = (0.70, 0.15, 0.15)  # methods.md §3: the style classifier's 70/15/15 split


def stratified_split(
    keys: Mapping[Node, str],
    strata: Mapping[Node, str],
    seed: str,
    fractions: tuple[float, float, float] = LABEL_FRACTIONS,
) -> dict[Node, str]:
    """Train / val / test for each node, stratified: within each stratum (a label value), the nodes ordered
    by a hash of their stable key and the seed take train, val and test in the given fractions, so every
    class is represented in each part as far as its size allows and the same collection always gets the
    same split. Parts are sized by largest remainder, val and test before train when a class is small
    (a class of 3 gives one of each): a label split is for measuring, and a class absent from test is a
    class nobody measured. Strata of one or two take each node's part from its own hash.

    Used for the label split (`annotations.label_splits`), which is by artwork: label-supervised models
    learn from catalogue labels, not connections, so there is no component to keep together.
    """
    by_stratum: dict[str, list[Node]] = {}
    for node, stratum in strata.items():
        by_stratum.setdefault(stratum, []).append(node)
    result: dict[Node, str] = {}
    for stratum in sorted(by_stratum):
        members = sorted(
            by_stratum[stratum],
            key=lambda node: hashlib.sha256(f"{seed}\x00{stratum}\x00{keys[node]}".encode()).digest(),
        )
        n = len(members)
        if n < 3:
            # Too few to stratify (artworks imported a few at a time): largest remainder would put every
            # one in train, and the test part would never grow. Each by its own hash, as connections are.
            result.update(
                {node: split_for_key(f"{stratum}\x00{keys[node]}", seed, fractions) for node in members}
            )
            continue
        exact = [fraction * n for fraction in fractions]
        counts = [int(value) for value in exact]
        # Largest remainder; ties go to test, then val (the held-out parts first, see above).
        order = sorted(range(3), key=lambda part: (exact[part] - counts[part], part), reverse=True)
        for part in order[: n - sum(counts)]:
            counts[part] += 1
        if n >= 3:
            for part in (2, 1):
                if counts[part] == 0:
                    counts[part], counts[0] = 1, counts[0] - 1
        parts = [TRAIN] * counts[0] + [VAL] * counts[1] + [TEST] * counts[2]
        result.update(zip(members, parts, strict=True))
    return result
