"""Reviewing proposals: the queue of a clustering run, one proposal at a time, decisions and undo.

The decisions themselves are `review.decisions` (connection decisions through the one append-only write
path); these views only read the request, call it and say what happened.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from annotations.models import ConnectionDecision, DecisionSource
from clustering.models import ClusteringRun, Proposal, ProposalMember, ProposalStatus
from clustering.proposals import KINDS
from training.search import MAX_VERIFIED_MEMBERS, verify_group
from workbench.downloads import json_download

from .decisions import ACTIONS, AlreadyDecided, NothingToUndo, UndoRefused, decide, undo_last

KIND_LABELS = {
    "new_group": "New group",
    "extends": "Extends known",
    "merges": "Merges known",
    "contains_rejected": "Contains rejected",
}


def current_run(request: HttpRequest) -> ClusteringRun | None:
    run_id = request.GET.get("run") or request.POST.get("run")
    if run_id:
        try:
            return ClusteringRun.objects.select_related("model_version").get(pk=int(run_id))
        except (ValueError, ClusteringRun.DoesNotExist):
            raise Http404("no such clustering run") from None
    return ClusteringRun.objects.select_related("model_version").automatic().order_by("-pk").first()


def queue_filter(request: HttpRequest) -> tuple[str, str]:
    kind = request.GET.get("kind", "")
    status = request.GET.get("status", ProposalStatus.OPEN)
    if kind and kind not in KINDS:
        kind = ""
    if status not in ProposalStatus.values and status != "all":
        status = ProposalStatus.OPEN
    return kind, status


@login_required
@require_GET
def queue(request: HttpRequest) -> HttpResponse:
    run = current_run(request)
    kind, status = queue_filter(request)
    context = {
        "run": run,
        "kind": kind,
        "status": status,
        "kind_labels": KIND_LABELS,
        "statuses": ProposalStatus,
    }
    if run is None:
        return render(request, "review/queue.html", context)
    base = run.proposals.all()
    if status != "all":
        base = base.filter(status=status)
    counts = dict(base.values_list("kind").annotate(n=Count("id")).order_by())
    proposals = base.filter(kind=kind) if kind else base
    # Only what a row shows: a thumbnail is named by the image's hash; whole artworks with their metadata
    # JSON were half the page's time at 50 rows.
    members = (
        ProposalMember.objects.select_related("artwork")
        .only("proposal_id", "position", "artwork__image_sha256")
        .filter(position__lt=6)
        .order_by("position")
    )
    page = Paginator(
        proposals.order_by("rank")
        .select_related("decided_by")
        .prefetch_related(Prefetch("members", queryset=members)),
        50,
    ).get_page(request.GET.get("page"))
    review_prefix = reverse("review:review", args=[0])[:-2]  # "/review/"
    suffix = f"/?kind={kind}" if kind else "/"
    status_labels = dict(ProposalStatus.choices)
    # Plain rows: the template then only prints strings (50 rows of up to 6 thumbnails each).
    rows = [
        {
            "rank": p.rank,
            "href": f"{review_prefix}{p.pk}{suffix}",
            "thumbs": [m.artwork.grid_thumbnail_url for m in list(p.members.all())[:6]],
            "more": max(0, p.size - 6),
            "kind": p.kind,
            "kind_label": KIND_LABELS.get(p.kind, p.kind),
            "size": p.size,
            "confidence": f"{p.confidence:.2f}",
            "new_links": p.new_links,
            "status": status_labels.get(p.status, p.status),
            "decided_by": p.decided_by.get_username() if p.decided_by else "",
        }
        for p in page.object_list
    ]
    context.update(
        {
            "page": page,
            "rows": rows,
            "counts": [(k, KIND_LABELS[k], counts.get(k, 0)) for k in KINDS],
            "total": sum(counts.values()),
            "runs": ClusteringRun.objects.select_related("model_version").order_by("-pk")[:10],
            "status_counts": dict(run.proposals.values_list("status").annotate(n=Count("id")).order_by()),
        }
    )
    return render(request, "review/queue.html", context)


def next_open(proposal: Proposal, kind: str, after: bool = True) -> Proposal | None:
    candidates = Proposal.objects.filter(run_id=proposal.run_id, status=ProposalStatus.OPEN)
    if kind:
        candidates = candidates.filter(kind=kind)
    if after:
        following = candidates.filter(rank__gt=proposal.rank).order_by("rank").first()
        return following or candidates.exclude(pk=proposal.pk).order_by("rank").first()
    return candidates.filter(rank__lt=proposal.rank).order_by("-rank").first()


@login_required
@require_GET
def review(request: HttpRequest, proposal_id: int) -> HttpResponse:
    proposal = get_object_or_404(
        Proposal.objects.select_related("run__model_version", "decided_by"), pk=proposal_id
    )
    kind, _ = queue_filter(request)
    members = list(proposal.members.select_related("artwork__collection").order_by("position"))
    open_left = Proposal.objects.filter(run_id=proposal.run_id, status=ProposalStatus.OPEN)
    if kind:
        open_left = open_left.filter(kind=kind)
    rejected = {tuple(pair) for pair in proposal.rejected_pairs}
    member_ids = {m.artwork_id for m in members}
    context = {
        "proposal": proposal,
        "members": members,
        "kind": kind,
        "kind_label": KIND_LABELS.get(proposal.kind, proposal.kind),
        "open_left": open_left.count(),
        "previous": next_open(proposal, kind, after=False),
        "following": next_open(proposal, kind),
        "rejected_inside": sorted(pair for pair in rejected if set(pair) <= member_ids),
        "rejected_across": len([pair for pair in rejected if not set(pair) <= member_ids]),
        "actions": ACTIONS,
    }
    return render(request, "review/review.html", context)


@login_required
@require_POST
def decide_view(request: HttpRequest, proposal_id: int) -> HttpResponse:
    proposal = get_object_or_404(Proposal, pk=proposal_id)
    kind = request.POST.get("kind", "")
    action = request.POST.get("action", "")
    try:
        checked = [int(value) for value in request.POST.getlist("members")]
    except ValueError:
        return HttpResponse("members must be artwork ids", status=400)
    suffix = f"?kind={kind}" if kind in KINDS else ""
    try:
        decided, report = decide(proposal.pk, action, request.user, checked=checked)
    except AlreadyDecided as exc:
        messages.warning(request, f"{exc}. Nothing was changed; here is the proposal as it stands.")
        return redirect(reverse("review:review", args=[proposal.pk]) + suffix)
    except ValueError as exc:
        messages.error(request, str(exc))
        return redirect(reverse("review:review", args=[proposal.pk]) + suffix)
    messages.success(
        request,
        f"Proposal {decided.rank}: {decided.get_status_display().lower()}, "
        f"{report.added} connection{'s' if report.added != 1 else ''} recorded. (u to undo)",
    )
    following = next_open(decided, kind if kind in KINDS else "")
    if following is None:
        return redirect(reverse("review:queue") + f"?run={decided.run_id}")
    return redirect(reverse("review:review", args=[following.pk]) + suffix)


@login_required
@require_POST
def undo_view(request: HttpRequest) -> HttpResponse:
    back = request.POST.get("back", "")
    if not url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        back = reverse("review:queue")  # never send a reviewer to another site
    try:
        proposal = undo_last(request.user)
    except (NothingToUndo, UndoRefused) as exc:
        messages.info(request, str(exc))
        return redirect(back)
    messages.success(
        request, f"Undone: proposal {proposal.rank} is open again and its connections were taken back."
    )
    return redirect("review:review", proposal.pk)


@login_required
@require_GET
def decisions_json(request: HttpRequest) -> HttpResponse:
    decisions = (
        ConnectionDecision.objects.filter(source=DecisionSource.REVIEW)
        .select_related("artwork_a", "artwork_b", "user", "retraction")
        .order_by("recorded_at", "id")
    )
    payload = [
        {
            "uid": d.uid,
            "img1": d.artwork_a.external_id,
            "img2": d.artwork_b.external_id,
            "type": d.type,
            "user": d.user.get_username() if d.user else None,
            "annotated": d.annotated_at.isoformat(),
            "context": d.context,
            "retracted": hasattr(d, "retraction"),
        }
        for d in decisions
    ]
    return json_download(payload, "review-decisions.json")


@login_required
@require_GET
def proposal_verification(request: HttpRequest, proposal_id: int) -> JsonResponse:
    """Which members of a proposal are geometrically verified with which (`training.verification`): the
    review page asks for it after it has shown the members, so that the first view is not held up by
    computing local features."""
    proposal = get_object_or_404(Proposal, pk=proposal_id)
    member_ids = list(proposal.members.order_by("position").values_list("artwork_id", flat=True))
    pairs = verify_group(member_ids)
    verified_with: dict[int, list[int]] = {}
    for pair in pairs:
        if pair["verified"]:
            verified_with.setdefault(pair["a"], []).append(pair["b"])
            verified_with.setdefault(pair["b"], []).append(pair["a"])
    return JsonResponse(
        {
            "proposal": proposal.pk,
            "members_checked": min(len(member_ids), MAX_VERIFIED_MEMBERS),
            "pairs": pairs,
            "verified_with": {str(k): v for k, v in verified_with.items()},
        }
    )
