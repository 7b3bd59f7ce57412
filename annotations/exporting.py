"""Exporting connections in the morphograph format, with provenance columns after it."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import TextIO

from .models import Connection, ConnectionDecision, DecisionSource

MORPHOGRAPH_COLUMNS = ["uid", "img1", "img2", "type", "annotated"]
PROVENANCE_COLUMNS = ["source", "user", "round", "import_file", "split1", "split2", "recorded"]
COLUMNS = MORPHOGRAPH_COLUMNS + PROVENANCE_COLUMNS


def decision_row(decision: ConnectionDecision) -> dict[str, str]:
    record = decision.import_record
    return {
        "uid": decision.uid,
        "img1": decision.artwork_a.external_id,
        "img2": decision.artwork_b.external_id,
        "type": decision.type,
        "annotated": decision.annotated_at.isoformat(),
        "source": decision.source,
        "user": decision.user.get_username() if decision.user else "",
        "round": "" if decision.round is None else str(decision.round),
        "import_file": record.connections_file.rsplit("/", 1)[-1] if record else "",
        "split1": decision.artwork_a.split or "",
        "split2": decision.artwork_b.split or "",
        "recorded": decision.recorded_at.isoformat(),
    }


def iter_rows(
    *, history: bool = False, collection: str | None = None, include_simulated: bool = False
) -> Iterator[dict[str, str]]:
    """Current connections (one row per pair), or with `history` every decision in order.

    Decisions of the simulated historian are left out unless `include_simulated`: an export is what people
    established, and a simulation's guesses from a truth file must not travel as annotations."""
    related = ("artwork_a", "artwork_b", "user", "import_record")
    if history:
        decisions = ConnectionDecision.objects.select_related(*related).order_by("recorded_at", "id")
        if not include_simulated:
            decisions = decisions.exclude(source=DecisionSource.SIMULATED)
        if collection:
            decisions = decisions.filter(artwork_a__collection__name=collection) | decisions.filter(
                artwork_b__collection__name=collection
            )
        for decision in decisions.iterator(chunk_size=2000):
            yield decision_row(decision)
        return
    connections = Connection.objects.select_related(*(f"latest__{name}" for name in related)).order_by(
        "artwork_a_id", "artwork_b_id"
    )
    if not include_simulated:
        connections = connections.exclude(latest__source=DecisionSource.SIMULATED)
    if collection:
        connections = connections.filter(artwork_a__collection__name=collection) | connections.filter(
            artwork_b__collection__name=collection
        )
    for connection in connections.iterator(chunk_size=2000):
        yield decision_row(connection.latest)


def write_connections_csv(
    out: TextIO, *, history: bool = False, collection: str | None = None, include_simulated: bool = False
) -> int:
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for row in iter_rows(history=history, collection=collection, include_simulated=include_simulated):
        writer.writerow(row)
        count += 1
    return count
