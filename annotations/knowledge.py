"""What historians know, read from the connections: the one place that computes it.

Training's mining (which pairs to learn from, which negatives are allowed) and clustering's proposals
(which pairs are new, which were rejected) both read a `Knowledge`:
- `links`: POSITIVE/DUPLICATE pairs; their connected components are the *known components*;
- `similar`: SIMILAR pairs (alike, but no shared pattern: never a negative, never a link);
- `rejected`: NEGATIVE pairs (never offered as a link again);
- `decided`: every pair with a connection of any type.

Importing this module loads no Django (clustering's plain `proposals` module uses the dataclass); `load`
reads the database when called. Pairs are (smaller id, larger id), as the connections table stores them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from .connection_types import LINKING_TYPES
from .splits import connected_components

Pair = tuple[int, int]


def canonical(a: int, b: int) -> Pair:
    return (a, b) if a < b else (b, a)


@dataclass
class Knowledge:
    component_of: Mapping[int, int]  # artwork id → known component id, for linked artworks only
    decided: set[Pair]
    rejected: set[Pair]
    links: list[Pair] = field(default_factory=list)  # in the connections table's order
    similar: set[Pair] = field(default_factory=set)
    _rejected_by_unit: dict | None = field(default=None, repr=False)

    def pair_known(self, a: int, b: int) -> bool:
        """Decided (any type), or both in one known component."""
        ca, cb = self.component_of.get(a), self.component_of.get(b)
        return (ca is not None and ca == cb) or canonical(a, b) in self.decided

    def component_sizes(self) -> dict[int, int]:
        return dict(Counter(self.component_of.values()))

    def unit(self, artwork: int) -> tuple[str, int]:
        """What linking `artwork` would link: its whole known component, or the artwork alone."""
        component = self.component_of.get(artwork)
        return ("component", component) if component is not None else ("artwork", artwork)

    def rejected_within(self, members: Iterable[int]) -> list[Pair]:
        """Rejected pairs that linking all `members` would put into one component.

        Not only pairs among the members: linking two members also joins their known components, so a
        NEGATIVE pair between any artworks of those components would end up linked through them.
        """
        if self._rejected_by_unit is None:
            self._rejected_by_unit = {}
            for pair in self.rejected:
                for end in pair:
                    self._rejected_by_unit.setdefault(self.unit(end), []).append(pair)
        units = {self.unit(m) for m in members}
        found = {
            pair
            for unit in units
            for pair in self._rejected_by_unit.get(unit, ())
            if self.unit(pair[0]) in units and self.unit(pair[1]) in units
        }
        return sorted(found)


def from_connections(
    rows: Iterable[tuple[int, int, str]], artworks: Collection[int] | None = None
) -> Knowledge:
    """Knowledge from (artwork_a, artwork_b, type) rows; with `artworks`, only pairs inside that set count
    (a training round limited to some collections learns only from their connections)."""
    links: list[Pair] = []
    decided: set[Pair] = set()
    rejected: set[Pair] = set()
    similar: set[Pair] = set()
    for a, b, type_code in rows:
        if artworks is not None and (a not in artworks or b not in artworks):
            continue
        pair = canonical(a, b)
        decided.add(pair)
        if type_code in LINKING_TYPES:
            links.append(pair)
        elif type_code == "NEGATIVE":
            rejected.add(pair)
        elif type_code == "SIMILAR":
            similar.add(pair)
    component_of = {}
    for component_id, members in enumerate(connected_components(links)):
        for artwork_id in members:
            component_of[artwork_id] = component_id
    return Knowledge(
        component_of=component_of, decided=decided, rejected=rejected, links=links, similar=similar
    )


def load(artworks: Collection[int] | None = None) -> Knowledge:
    """What the connections table says now (inside a transaction: as of that transaction)."""
    from .models import Connection

    rows = Connection.objects.values_list("artwork_a_id", "artwork_b_id", "type").iterator(chunk_size=5000)
    return from_connections(rows, None if artworks is None else set(artworks))
