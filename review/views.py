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
from clustering.algorithms import DEFAULTS, ClusteringParams
from clustering.models import ClusteringRun, Proposal, ProposalMember, ProposalStatus
from clustering.proposals import KINDS
from training.search import MAX_VERIFIED_MEMBERS, verify_group
from workbench.downloads import json_download
from workbench.roles import curator_required

from .decisions import ACTIONS, AlreadyDecided, NothingToUndo, UndoRefused, decide, undo_last
from .models import Simulation
from .simulation import ORDERS, POLICIES

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


# --- simulated review -----------------------------------------------------------------------------------

PLOT_WIDTH, PLOT_HEIGHT, PLOT_MARGIN = 560, 260, 40


def simulation_rows(simulation: Simulation) -> list[dict]:
    """The per-round records as the page and the JSON show them."""
    return [
        {
            "round": r.number,
            "reviewed_version": r.reviewed_version,
            "proposals_shown": r.proposals_shown,
            "proposals_reviewed": r.proposals_reviewed,
            "reviewed_total": r.reviewed_total,
            "confirmed": r.confirmed,
            "share_confirmed": r.share_confirmed,
            "true_links_gained": r.true_links_gained,
            "links_per_proposal": r.links_per_proposal,
            "discovered_share": r.discovered_share,
            "wrong_links_accepted": r.wrong_links_accepted,
            # Every member right: the reviewer confirmed without unticking anyone (closer to the thesis's
            # "confirmed correct" than a partial confirmation is).
            "share_confirmed_whole": (
                r.figures.get("confirmed_whole", 0) / r.proposals_reviewed if r.proposals_reviewed else None
            ),
            **{
                key: value
                for key, value in r.figures.items()
                if key
                not in {
                    "round",
                    "reviewed_version",
                    "proposals_shown",
                    "proposals_reviewed",
                    "reviewed_total",
                    "confirmed",
                    "share_confirmed",
                    "true_links_gained",
                    "links_per_proposal",
                    "discovered_share",
                    "wrong_links_accepted",
                }
            },
        }
        for r in simulation.round_records.order_by("number")
    ]


def discovery_plot(rows: list[dict], start_share: float = 0.0) -> dict:
    """SVG coordinates of discovered share (y) against proposals reviewed so far (x), from the origin."""
    points = [(0, start_share)] + [(r["reviewed_total"], r["discovered_share"] or 0.0) for r in rows]
    x_max = max(1, max(x for x, _ in points))
    inner_w, inner_h = PLOT_WIDTH - 2 * PLOT_MARGIN, PLOT_HEIGHT - 2 * PLOT_MARGIN

    def at(x: float, y: float) -> tuple[float, float]:
        return (PLOT_MARGIN + inner_w * x / x_max, PLOT_MARGIN + inner_h * (1 - y))

    coordinates = [at(x, y) for x, y in points]
    return {
        "width": PLOT_WIDTH,
        "height": PLOT_HEIGHT,
        "polyline": " ".join(f"{x:.1f},{y:.1f}" for x, y in coordinates),
        "markers": [
            {"x": x, "y": y, "label": f"round {i}: {share * 100:.0f}% after {reviewed} proposals"}
            for i, ((x, y), (reviewed, share)) in enumerate(zip(coordinates, points, strict=True))
            if i
        ],
        "x_max": x_max,
        "left": PLOT_MARGIN,
        "right": PLOT_WIDTH - PLOT_MARGIN,
        "top": PLOT_MARGIN,
        "bottom": PLOT_HEIGHT - PLOT_MARGIN,
        "ticks": [{"y": at(0, v)[1], "label": f"{v * 100:.0f}%"} for v in (0.0, 0.25, 0.5, 0.75, 1.0)],
        "x_ticks": [{"x": at(x, 0)[0], "label": x} for x in range(0, x_max + 1, x_step(x_max))],
    }


def x_step(x_max: int) -> int:
    """A round step between tick labels, at most 8 of them."""
    return next((size for size in (1, 2, 5, 10, 20, 25, 50, 100, 200, 500) if x_max / size <= 8), 1000)


@login_required
@require_GET
def simulations(request: HttpRequest) -> HttpResponse:
    from workbench import paths

    return render(
        request,
        "review/simulations.html",
        {
            "simulations": [
                {
                    "simulation": s,
                    "recorded": len(records := list(s.round_records.all())),
                    "shares": ", ".join(
                        "–" if r.share_confirmed is None else f"{r.share_confirmed:.2f}" for r in records
                    ),
                    "found": records[-1].discovered_share if records else None,
                }
                for s in (
                    simulation.reconcile()
                    for simulation in Simulation.objects.select_related("job").prefetch_related(
                        "round_records"
                    )
                )
            ],
            "policies": POLICIES,
            "orders": ORDERS,
            "demo_truth": (paths.demo_folder() / "ground_truth.csv").is_file(),
            "default_max_eps": DEFAULTS["optics"]["max_eps"],
        },
    )


@curator_required
@require_POST
def start_simulation(request: HttpRequest) -> HttpResponse:
    from jobs.runner import enqueue
    from workbench import params, paths

    from . import simulate

    truth = paths.demo_folder() / "ground_truth.csv"
    if not truth.is_file():
        messages.error(
            request,
            "No demo ground truth here: start a simulation with another truth file on the "
            "command line (python manage.py simulate_review --truth FILE.csv).",
        )
        return redirect("review:simulations")
    policy = params.choice(request.POST.get("policy", "exact"), "policy", POLICIES)
    order = params.choice(request.POST.get("order", "rank"), "order", ORDERS)
    try:
        rounds = params.integer(request.POST.get("rounds", "3"), "rounds", low=1, high=50)
        per_round = params.integer(
            request.POST.get("per_round", "50"), "proposals per round", low=1, high=100_000
        )
        error_percent = params.integer(
            request.POST.get("error_percent", "0") or "0", "error rate (%)", low=0, high=50
        )
        # Parsed here, so that the simulation records the number (ValueError names the valid range).
        cluster = ClusteringParams.from_values({"max_eps": request.POST.get("max_eps", "")}).given()
        simulation = simulate.start(
            truth,
            cluster=cluster,
            policy=policy,
            error_rate=error_percent / 100 if policy == "noisy" else 0.0,
            order=order,
            rounds=rounds,
            per_round=per_round,
            user=request.user,
        )
    except (ValueError, params.OutOfRange) as exc:
        messages.error(request, f"{str(exc).capitalize()}.")
        return redirect("review:simulations")
    job = enqueue("simulate_review", {"simulation": simulation.pk}, user=request.user)
    Simulation.objects.filter(pk=simulation.pk).update(job=job)
    messages.success(
        request, f"Simulation {simulation.pk} started as job #{job.pk}, in a snapshot of the collection."
    )
    return redirect("review:simulation", simulation.pk)


@login_required
@require_GET
def simulation_detail(request: HttpRequest, simulation_id: int) -> HttpResponse:
    simulation = get_object_or_404(Simulation.objects.select_related("job"), pk=simulation_id).reconcile()
    rows = simulation_rows(simulation)
    start = simulation.start or {}
    return render(
        request,
        "review/simulation.html",
        {
            "simulation": simulation,
            "rows": rows,
            "plot": discovery_plot(rows) if rows else None,
            "start": start,
        },
    )


@login_required
@require_GET
def simulation_json(request: HttpRequest, simulation_id: int) -> JsonResponse:
    simulation = get_object_or_404(Simulation.objects.select_related("job"), pk=simulation_id).reconcile()
    return JsonResponse(
        {
            "id": simulation.pk,
            "state": simulation.state,
            "message": simulation.message,
            "truth_file": simulation.truth_file,
            "truth_sha256": simulation.truth_sha256,
            "policy": simulation.policy,
            "error_rate": simulation.error_rate,
            "order": simulation.order,
            "rounds_requested": simulation.rounds,
            "per_round": simulation.per_round,
            "seed": simulation.seed,
            "parameters": simulation.parameters,
            "start": simulation.start,
            "job": simulation.job_id,
            "rounds": simulation_rows(simulation),
        }
    )
