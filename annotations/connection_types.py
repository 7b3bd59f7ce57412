"""Connection types (plain module, no Django).

The morphograph's types. `links` says whether a type joins two artworks into one connected
component (and so into one train/val/test split): a shared pattern or the same object.
A graded type (e.g. a similarity grade) is one more entry here; nothing else changes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConnectionTypeInfo:
    code: str
    label: str
    links: bool
    description: str


CONNECTION_TYPES: dict[str, ConnectionTypeInfo] = {
    info.code: info
    for info in [
        ConnectionTypeInfo("POSITIVE", "Shares a pattern", True, "copy, variant or borrowed motif"),
        ConnectionTypeInfo("DUPLICATE", "Same object", True, "two photographs of one artwork"),
        ConnectionTypeInfo("SIMILAR", "Similar", False, "alike, but no shared pattern"),
        ConnectionTypeInfo("NEGATIVE", "Not connected", False, "a historian says: no shared pattern"),
    ]
}
LINKING_TYPES = frozenset(code for code, info in CONNECTION_TYPES.items() if info.links)


def normalise_type(raw: str) -> str | None:
    """The canonical code for a type as written in a file, or None when unknown."""
    code = raw.strip().upper()
    return code if code in CONNECTION_TYPES else None
