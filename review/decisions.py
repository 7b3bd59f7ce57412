"""Review decisions on a proposal, as connection decisions (the thesis tool's actions, with history).

Every decision is appended through `annotations.connections.apply_statements` with source "review" (or
"simulated" for the simulated historian, `review.simulation`), the
user, the model version's number as the round, and a context naming the proposal, the clustering run and the
model version, so the morphograph's history says where each link came from.

Actions (`checked` = the members the reviewer ticked; all members when not given):
- confirm: POSITIVE between checked members;
- confirm_exclusive: confirm, and NEGATIVE between each checked and each unchecked member;
- similar: SIMILAR between checked members;
- reject ("wrong cluster"): NEGATIVE between all members;
- skip: no connection, the proposal leaves the queue.
Only pairs nobody decided yet are written, and a pair a historian rejected (NEGATIVE) is never turned into a
link by a proposal, not even indirectly: a confirm that would join the two sides of a rejected pair (through
the members' known components) is refused with `RejectedPairInside`. Changing one's mind about a rejected
pair is done on the artwork page, deliberately.
Pairs already joined through known links are not stated again.

Two reviewers on one proposal: the proposal row is locked while deciding, and a proposal that is no longer
open raises `AlreadyDecided` with who decided it and how, so the second reviewer sees what changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations, product

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from annotations import knowledge as knowledge_store
from annotations.connections import ApplyReport, Statement, apply_statements
from annotations.models import DecisionSource
from clustering.models import Proposal, ProposalStatus

ACTIONS = ("confirm", "confirm_exclusive", "similar", "reject", "skip")
REVIEW_SOURCES = (DecisionSource.REVIEW, DecisionSource.SIMULATED)
REVIEW_LOCK = 0x5EB1E3  # any fixed number, the same for every decision


class RejectedPairInside(ValueError):
    pass


def lock_connections() -> None:
    """Serialise review decisions: each reads the connections, then writes new ones.

    Two reviewers deciding different proposals that share an undecided pair would otherwise both insert it
    (PostgreSQL's READ COMMITTED lets both read "undecided"). SQLite's IMMEDIATE transactions already
    serialise writers; on PostgreSQL a transaction-scoped advisory lock does.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [REVIEW_LOCK])


class AlreadyDecided(Exception):
    def __init__(self, proposal: Proposal) -> None:
        who = proposal.decided_by.get_username() if proposal.decided_by else "someone"
        super().__init__(f"{who} already decided this proposal: {proposal.get_status_display().lower()}")
        self.proposal = proposal


def decide(
    proposal_id: int,
    action: str,
    user,
    checked: Sequence[int] | None = None,
    *,
    source: str = DecisionSource.REVIEW,
) -> tuple[Proposal, ApplyReport]:
    """`source` is REVIEW for a person's click; the simulated historian (`review.simulation`) takes this
    same path with SIMULATED, so that what it measures is what a click does."""
    if source not in REVIEW_SOURCES:
        raise ValueError(f"a review decision's source is one of {', '.join(REVIEW_SOURCES)}")
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    with transaction.atomic():
        proposal = (
            Proposal.objects.select_for_update().select_related("run__model_version").get(pk=proposal_id)
        )
        if proposal.status != ProposalStatus.OPEN:
            raise AlreadyDecided(proposal)
        members = list(proposal.members.values_list("artwork_id", flat=True))
        chosen = list(members) if checked is None else [m for m in members if m in set(checked)]
        unknown = set(checked or []) - set(members)
        if unknown:
            raise ValueError(f"not members of this proposal: {sorted(unknown)}")
        if action in ("confirm", "confirm_exclusive", "similar") and len(chosen) < 2:
            raise ValueError("tick at least two members to link them")
        lock_connections()
        known = knowledge_store.load()
        if action in ("confirm", "confirm_exclusive"):
            crossing = known.rejected_within(chosen)
            if crossing:
                listed = ", ".join(f"{a}–{b}" for a, b in crossing[:5])
                raise RejectedPairInside(
                    f"confirming these members would link pairs a historian rejected ({listed}): "
                    "untick one side of each pair"
                )
        context = {
            "proposal": proposal.pk,
            "run": proposal.run_id,
            "model_version": proposal.run.model_version.number,
            "action": action,
        }

        def statements(pairs, type_code: str) -> list[Statement]:
            out = []
            for a, b in pairs:
                pair = (a, b) if a < b else (b, a)
                if pair in known.rejected or known.pair_known(a, b):
                    continue
                out.append(Statement(a, b, type_code, context=context))
            return out

        todo: list[Statement] = []
        if action in ("confirm", "confirm_exclusive"):
            todo += statements(combinations(chosen, 2), "POSITIVE")
        if action == "confirm_exclusive":
            rest = [m for m in members if m not in chosen]
            todo += statements(product(chosen, rest), "NEGATIVE")
        if action == "similar":
            todo += statements(combinations(chosen, 2), "SIMILAR")
        if action == "reject":
            todo += statements(combinations(members, 2), "NEGATIVE")
        report = apply_statements(
            todo, source=source, user=user, round_number=proposal.run.model_version.number
        )
        proposal.status = {
            "confirm": ProposalStatus.CONFIRMED if len(chosen) == len(members) else ProposalStatus.PARTIAL,
            "confirm_exclusive": ProposalStatus.PARTIAL,
            "similar": ProposalStatus.SIMILAR,
            "reject": ProposalStatus.REJECTED,
            "skip": ProposalStatus.SKIPPED,
        }[action]
        proposal.decided_by = user
        proposal.decided_at = timezone.now()
        proposal.save(update_fields=["status", "decided_by", "decided_at"])
    return proposal, report


class NothingToUndo(Exception):
    pass


class UndoRefused(Exception):
    pass


def refuse_if_built_upon(proposal: Proposal, decisions) -> None:
    """Undo is for taking a decision back before others rely on it. Once someone has decided since about
    any of the same artworks (a connection, or a proposal whose pairs were judged against these links),
    taking it back could silently drop their judgement; the artwork page is the place to change it then."""
    from annotations.models import ConnectionDecision

    artworks = set(proposal.members.values_list("artwork_id", flat=True))
    for d in decisions:
        artworks.update((d.artwork_a_id, d.artwork_b_id))
    later_decisions = (
        ConnectionDecision.objects.filter(recorded_at__gt=proposal.decided_at, retraction__isnull=True)
        .filter(Q(artwork_a_id__in=artworks) | Q(artwork_b_id__in=artworks))
        .exclude(pk__in=[d.pk for d in decisions])
    )
    later_reviews = (
        Proposal.objects.filter(decided_at__gt=proposal.decided_at, members__artwork_id__in=artworks)
        .exclude(pk=proposal.pk)
        .exclude(status=ProposalStatus.OPEN)
    )
    if later_decisions.exists() or later_reviews.exists():
        raise UndoRefused(
            "Someone has decided about these artworks since; change the connections on the artwork pages "
            "instead."
        )


def undo_last(user) -> Proposal:
    """Take back `user`'s latest decision on a proposal: its connection decisions are retracted (kept in the
    history with a Retraction) and the proposal is open again. Returns the proposal."""
    from annotations.connections import retract
    from annotations.models import ConnectionDecision

    with transaction.atomic():
        lock_connections()
        proposal = (
            Proposal.objects.select_for_update()
            .filter(decided_by=user)
            .exclude(status=ProposalStatus.OPEN)
            .order_by("-decided_at", "-pk")
            .first()
        )
        if proposal is None:
            raise NothingToUndo("you have no review decision to undo")
        decisions = list(
            ConnectionDecision.objects.filter(
                user=user,
                source__in=REVIEW_SOURCES,
                context__proposal=proposal.pk,
                retraction__isnull=True,
            )
        )
        refuse_if_built_upon(proposal, decisions)
        retract(decisions, user)
        proposal.status, proposal.decided_by, proposal.decided_at = ProposalStatus.OPEN, None, None
        proposal.save(update_fields=["status", "decided_by", "decided_at"])
    return proposal
