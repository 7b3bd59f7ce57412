"""Appending decisions about pairs and keeping the current state and the splits in step."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from .connection_types import LINKING_TYPES
from .models import Artwork, Connection, ConnectionDecision, canonical_pair
from .splits import SplitChange, assign_splits

CHUNK = 900  # stays under SQLite's bound-parameter limits in IN (...) lookups


@dataclass
class Statement:
    """Someone says: artworks `first` and `second` (primary keys) are of `type`."""

    first: int
    second: int
    type: str
    uid: str = ""
    annotated_at: datetime | None = None
    context: dict = field(default_factory=dict)


@dataclass
class ApplyReport:
    added: int = 0
    appended: int = 0  # decisions written, including recorded redundant ones
    redundant: int = 0
    already_recorded: int = 0
    changed_pairs: int = 0
    split_changes: list[SplitChange] = field(default_factory=list)


def chunks(items: Sequence, size: int = CHUNK) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def derived_uid(first_external: str, second_external: str, type_code: str, annotated: datetime | None) -> str:
    """A stable uid for an imported row that has none, so that re-importing it is recognised."""
    a, b = sorted((first_external, second_external))
    stamp = annotated.isoformat() if annotated else ""
    return "imp-" + hashlib.sha1(f"{a}\x00{b}\x00{type_code}\x00{stamp}".encode()).hexdigest()[:24]


def apply_statements(
    statements: Sequence[Statement],
    *,
    source: str,
    user=None,
    import_record=None,
    round_number: int | None = None,
    record_redundant: bool = False,
) -> ApplyReport:
    """Append the statements that change something, in order, and update pairs and splits.

    A statement is skipped when its uid is already recorded (re-import of the same row) or,
    unless `record_redundant`, when the pair already has that type (nothing new is said).
    Imports record redundant rows too: were their uids left unrecorded, re-importing the file
    after a historian changed the pair would append them again and undo the historian's word.
    Must run inside a transaction.
    """
    report = ApplyReport()
    if not statements:
        return report
    now = timezone.now()
    pairs = {canonical_pair(s.first, s.second) for s in statements}
    uids = [s.uid for s in statements if s.uid]
    recorded: set[str] = set()
    for part in chunks(uids):
        recorded.update(ConnectionDecision.objects.filter(uid__in=part).values_list("uid", flat=True))
    current: dict[tuple[int, int], Connection] = {}
    firsts = sorted({a for a, _ in pairs})
    for part in chunks(firsts):
        for conn in Connection.objects.filter(artwork_a_id__in=part):
            key = (conn.artwork_a_id, conn.artwork_b_id)
            if key in pairs:
                current[key] = conn

    decisions: list[ConnectionDecision] = []
    final_type: dict[tuple[int, int], str] = {}
    for statement in statements:
        pair = canonical_pair(statement.first, statement.second)
        uid = statement.uid or uuid.uuid4().hex
        if uid in recorded:
            report.already_recorded += 1
            continue
        state = final_type.get(pair) or (current[pair].type if pair in current else None)
        if state == statement.type:
            report.redundant += 1
            if not record_redundant:
                continue
        recorded.add(uid)
        final_type[pair] = statement.type
        decisions.append(
            ConnectionDecision(
                uid=uid,
                artwork_a_id=pair[0],
                artwork_b_id=pair[1],
                type=statement.type,
                source=source,
                import_record=import_record,
                user=user,
                round=round_number,
                context=statement.context,
                annotated_at=statement.annotated_at or now,
            )
        )
    if not decisions:
        return report
    ConnectionDecision.objects.bulk_create(decisions, batch_size=500)
    latest: dict[tuple[int, int], ConnectionDecision] = {}
    for decision in decisions:
        latest[(decision.artwork_a_id, decision.artwork_b_id)] = decision
    new_rows, changed_rows = [], []
    for pair, decision in latest.items():
        if pair in current:
            conn = current[pair]
            conn.type, conn.latest, conn.updated_at = decision.type, decision, now
            changed_rows.append(conn)
        else:
            new_rows.append(
                Connection(artwork_a_id=pair[0], artwork_b_id=pair[1], type=decision.type, latest=decision)
            )
    Connection.objects.bulk_create(new_rows, batch_size=500)
    Connection.objects.bulk_update(changed_rows, ["type", "latest", "updated_at"], batch_size=500)
    report.appended = len(decisions)
    report.added = len(decisions) - (report.redundant if record_redundant else 0)
    report.changed_pairs = len(latest)
    report.split_changes = refresh_splits()
    return report


@transaction.atomic
def refresh_splits() -> list[SplitChange]:
    """Bring the stored splits in line with the linking connections (see `splits` for the rules)."""
    edges = list(
        Connection.objects.filter(type__in=LINKING_TYPES).values_list("artwork_a_id", "artwork_b_id")
    )
    if not edges:
        return []
    nodes = {node for edge in edges for node in edge}
    current: dict[int, str | None] = {}
    keys: dict[int, str] = {}
    for pk, split, external_id in Artwork.objects.values_list("pk", "split", "external_id").iterator(
        chunk_size=5000
    ):
        if pk in nodes:
            current[pk], keys[pk] = split or None, external_id
    changes = assign_splits(edges, current, keys, settings.SPLIT_SEED)
    by_target: dict[str, list[int]] = {}
    for change in changes:
        by_target.setdefault(change.new, []).append(change.node)
    for target, pks in by_target.items():
        for part in chunks(pks):
            Artwork.objects.filter(pk__in=part).update(split=target, updated_at=timezone.now())
    return changes


def retract(decisions: Sequence[ConnectionDecision], user) -> int:
    """Take back `decisions` (an undo): record a Retraction for each and restore each pair's state.

    A pair falls back to its latest decision that is not retracted, or has no connection at all when
    there is none. Splits follow the usual rules (an image never moves back into training, and one a
    retracted link pulled into val/test stays there). Must run inside a transaction. A constant number of
    queries per chunk of pairs: a confirmed lasso of 200 artworks is 19,900 pairs. Returns the number of
    pairs whose state changed.
    """
    from .models import Retraction

    done = set()
    for part in chunks([d.pk for d in decisions]):
        done.update(Retraction.objects.filter(decision_id__in=part).values_list("decision_id", flat=True))
    pending = [d for d in decisions if d.pk not in done]
    Retraction.objects.bulk_create([Retraction(decision=d, user=user) for d in pending], batch_size=500)
    pairs = sorted({(d.artwork_a_id, d.artwork_b_id) for d in pending})
    changed = 0
    for part in chunks(pairs, 200):
        wanted = Q()
        for a, b in part:
            wanted |= Q(artwork_a_id=a, artwork_b_id=b)
        previous: dict[tuple[int, int], ConnectionDecision] = {}
        for decision in ConnectionDecision.objects.filter(wanted, retraction__isnull=True).order_by(
            "recorded_at", "id"
        ):
            previous[(decision.artwork_a_id, decision.artwork_b_id)] = decision  # the last one wins
        current = {(c.artwork_a_id, c.artwork_b_id): c for c in Connection.objects.filter(wanted)}
        gone, new_rows, updated = [], [], []
        for pair in part:
            before, now = previous.get(pair), current.get(pair)
            if before is None:
                if now is not None:
                    gone.append(now.pk)
            elif now is None:
                new_rows.append(
                    Connection(artwork_a_id=pair[0], artwork_b_id=pair[1], type=before.type, latest=before)
                )
            elif now.latest_id != before.pk:
                now.type, now.latest, now.updated_at = before.type, before, timezone.now()
                updated.append(now)
        Connection.objects.filter(pk__in=gone).delete()
        Connection.objects.bulk_create(new_rows)
        Connection.objects.bulk_update(updated, ["type", "latest", "updated_at"])
        changed += len(gone) + len(new_rows) + len(updated)
    refresh_splits()
    return changed
