"""Review pages: the proposal queue, one proposal at a time, decisions and undo; rounds; the map's data."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch, Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from annotations.models import ConnectionDecision, DecisionSource
from jobs.models import Job
from jobs.runner import enqueue
from training.models import ModelVersion, round_follow_ups
from workbench.roles import curator_required

from .models import ClusteringRun, Proposal, ProposalMember, ProposalStatus
from .proposals import KINDS
from .review import ACTIONS, AlreadyDecided, NothingToUndo, UndoRefused, decide, undo_last

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
        return render(request, "clustering/queue.html", context)
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
    review_prefix = reverse("clustering:review", args=[0])[:-2]  # "/review/"
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
    return render(request, "clustering/queue.html", context)


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
    return render(request, "clustering/review.html", context)


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
        return redirect(reverse("clustering:review", args=[proposal.pk]) + suffix)
    except ValueError as exc:
        messages.error(request, str(exc))
        return redirect(reverse("clustering:review", args=[proposal.pk]) + suffix)
    messages.success(
        request,
        f"Proposal {decided.rank}: {decided.get_status_display().lower()}, "
        f"{report.added} connection{'s' if report.added != 1 else ''} recorded. (u to undo)",
    )
    following = next_open(decided, kind if kind in KINDS else "")
    if following is None:
        return redirect(reverse("clustering:queue") + f"?run={decided.run_id}")
    return redirect(reverse("clustering:review", args=[following.pk]) + suffix)


@login_required
@require_POST
def undo_view(request: HttpRequest) -> HttpResponse:
    back = request.POST.get("back", "")
    if not url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        back = reverse("clustering:queue")  # never send a reviewer to another site
    try:
        proposal = undo_last(request.user)
    except (NothingToUndo, UndoRefused) as exc:
        messages.info(request, str(exc))
        return redirect(back)
    messages.success(
        request, f"Undone: proposal {proposal.rank} is open again and its connections were taken back."
    )
    return redirect("clustering:review", proposal.pk)


# --- rounds ---------------------------------------------------------------------------------------


@login_required
@require_GET
def rounds(request: HttpRequest) -> HttpResponse:
    versions = list(ModelVersion.objects.select_related("parent", "created_by").order_by("-number")[:20])
    runs = list(
        ClusteringRun.objects.select_related("model_version", "created_by")
        .annotate(
            open_count=Count("proposals", filter=Q(proposals__status=ProposalStatus.OPEN)),
            proposal_count=Count("proposals"),
        )
        .order_by("-pk")[:20]
    )
    round_kinds = ["train_round", "extract_signatures", "cluster", "compute_layout"]
    context = {
        "versions": versions,
        "runs": runs,
        "jobs": Job.objects.filter(kind__in=round_kinds).select_related("created_by")[:10],
    }
    return render(request, "clustering/rounds.html", context)


@curator_required
@require_POST
def start_round(request: HttpRequest) -> HttpResponse:
    """train → extract → cluster → map, on a worker; the page follows its progress."""
    params = {"force": request.POST.get("force") == "1", "then": round_follow_ups()}
    epochs = request.POST.get("epochs", "").strip()
    if epochs:
        if not epochs.isdigit() or not 1 <= int(epochs) <= 200:
            messages.error(request, "Epochs must be a whole number from 1 to 200.")
            return redirect("clustering:rounds")
        params["epochs"] = int(epochs)
    job = enqueue("train_round", params, user=request.user)
    messages.success(
        request, f"Round started as job #{job.pk}: training, then signatures, clustering and the map."
    )
    return redirect("jobs:detail", job.pk)


@curator_required
@require_POST
def promote(request: HttpRequest, number: int) -> HttpResponse:
    version = get_object_or_404(ModelVersion, number=number)
    version.activate()
    messages.success(request, f"{version.label} is now the active model version.")
    return redirect("clustering:rounds")


@curator_required
@require_POST
def start_clustering(request: HttpRequest) -> HttpResponse:
    from .algorithms import ClusteringParams

    fields = {"algorithm": request.POST.get("algorithm", "optics")}
    try:
        for name, cast in (
            ("max_eps", float),
            ("min_samples", int),
            ("xi", float),
            ("min_cluster_size", int),
        ):
            raw = request.POST.get(name, "").strip()
            if raw:
                fields[name] = cast(raw)
        ClusteringParams(**fields).resolved()
    except (ValueError, TypeError) as exc:
        messages.error(request, f"Clustering parameters: {exc}")
        return redirect("clustering:rounds")
    job = enqueue("cluster", {"model": request.POST.get("model", "active"), **fields}, user=request.user)
    messages.success(request, f"Clustering queued as job #{job.pk}.")
    return redirect("jobs:detail", job.pk)


@login_required
@require_GET
def run_proposals_json(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(ClusteringRun.objects.select_related("model_version"), pk=run_id)
    proposals = run.proposals.prefetch_related(
        Prefetch("members", queryset=ProposalMember.objects.select_related("artwork").order_by("position"))
    ).select_related("decided_by")
    payload = {
        "run": run.pk,
        "model_version": run.model_version.number,
        "algorithm": run.algorithm,
        "params": run.params,
        "metrics": run.metrics,
        "proposals": [
            {
                "rank": p.rank,
                "kind": p.kind,
                "confidence": p.confidence,
                "new_links": p.new_links,
                "status": p.status,
                "decided_by": p.decided_by.get_username() if p.decided_by else None,
                "decided_at": p.decided_at.isoformat() if p.decided_at else None,
                "members": [{"id": m.artwork.external_id, "strength": m.strength} for m in p.members.all()],
            }
            for p in proposals
        ],
    }
    return download_json(payload, f"run-{run.pk}-proposals.json")


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
    return download_json(payload, "review-decisions.json")


def download_json(payload, filename: str) -> HttpResponse:
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response = HttpResponse(json.dumps(payload, indent=1), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{stamp}-{filename}"'
    return response


@login_required
@require_GET
def map_page(request: HttpRequest) -> HttpResponse:
    versions = ModelVersion.objects.order_by("-number")
    return render(
        request,
        "clustering/map.html",
        {"versions": versions, "active": versions.filter(is_active=True).first()},
    )


@login_required
@require_GET
def map_json(request: HttpRequest, number: int) -> JsonResponse:
    """Points of a version's map: coordinates, cluster of the latest run, collection, review status."""
    from annotations.models import Artwork

    from .runs import load_assignments, load_layout

    version = get_object_or_404(ModelVersion, number=number)
    layout = load_layout(version)
    if layout is None:
        return JsonResponse({"error": f"{version.label} has no map yet: run compute_layout"}, status=404)
    run = version.clustering_runs.automatic().order_by("-pk").first()
    cluster_of = {}
    if run is not None and run.assignments_file:
        ids, labels, _ = load_assignments(run)
        cluster_of = dict(zip(ids.tolist(), labels.tolist(), strict=True))
    # All artworks, not `pk__in` 100,000 ids: some SQLite builds allow only 32,766 query parameters.
    info = {
        pk: (collection, split)
        for pk, collection, split in Artwork.objects.values_list("pk", "collection_id", "split")
    }
    reviewed = set()
    if run is not None:
        reviewed = set(
            ProposalMember.objects.filter(proposal__run=run)
            .exclude(proposal__status=ProposalStatus.OPEN)
            .values_list("artwork_id", flat=True)
        )
    return JsonResponse(
        {
            "version": version.number,
            "run": run.pk if run else None,
            "ids": layout.ids,
            "x": [round(float(v), 4) for v in layout.similarity[:, 0]],
            "y": [round(float(v), 4) for v in layout.similarity[:, 1]],
            "year": [None if v != v else int(v) for v in layout.time[:, 0].tolist()],
            "height": [round(float(v), 4) for v in layout.time[:, 1]],
            "cluster": [cluster_of.get(a, -1) for a in layout.ids],
            "collection": [info.get(a, (None, ""))[0] for a in layout.ids],
            "split": [info.get(a, (None, ""))[1] for a in layout.ids],
            "reviewed": [a in reviewed for a in layout.ids],
        }
    )


@login_required
@require_POST
def lasso_proposal(request: HttpRequest) -> HttpResponse:
    """A proposal made by hand from a selection on the map (a one-proposal run of the "manual" kind)."""
    from .runs import proposal_from_selection

    usage = 'send JSON {"version": N, "artworks": [artwork ids]}'
    try:
        body = json.loads(request.body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return JsonResponse({"error": usage}, status=400)
    if not isinstance(body, dict):
        return JsonResponse({"error": usage}, status=400)
    ids, number = body.get("artworks"), body.get("version")
    if (
        not isinstance(ids, list)
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in ids)
        or not isinstance(number, int)
        or isinstance(number, bool)
    ):
        return JsonResponse({"error": usage}, status=400)
    version = ModelVersion.objects.filter(number=number).first()
    if version is None:
        return JsonResponse({"error": f"no model version {number}"}, status=400)
    try:
        proposal = proposal_from_selection(version, ids, request.user)
    except ValueError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse({"proposal": proposal.pk, "url": reverse("clustering:review", args=[proposal.pk])})
