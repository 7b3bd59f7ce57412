"""Clustering pages: cluster again with other parameters, a run's proposals as JSON, and the map.

The map shows a version's layouts (`maps`) coloured by the latest run; a lasso on it makes a proposal.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from annotations.models import Artwork
from jobs.runner import enqueue
from training.face_detection import face_counts
from training.models import ModelVersion, resolve_version
from workbench import params as parse
from workbench.downloads import json_download
from workbench.roles import curator_required

from .algorithms import ClusteringParams
from .assignments import load_assignments
from .maps import load_layout
from .models import ClusteringRun, Proposal, ProposalMember, ProposalStatus
from .runs import proposal_from_selection

VERSION_NUMBER_MAX = 2**31 - 1  # ModelVersion.number is a PositiveIntegerField


@curator_required
@require_POST
def start_clustering(request: HttpRequest) -> HttpResponse:
    # Everything is checked here, with the valid range or the known versions, so that a job is queued
    # only when it can run: a bad value would otherwise fail minutes later, in the worker.
    model = request.POST.get("model", "").strip() or "active"
    try:
        params = ClusteringParams.from_values(request.POST)
        params.resolved()
    except (ValueError, TypeError) as exc:
        messages.error(request, f"Clustering parameters: {exc}")
        return redirect("training:rounds")
    try:
        resolve_version(model)
    except ModelVersion.DoesNotExist as exc:
        messages.error(request, f"Clustering: {exc}")
        return redirect("training:rounds")
    job = enqueue(
        "cluster", {"model": model, "algorithm": params.algorithm, **params.given()}, user=request.user
    )
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
    return json_download(payload, f"run-{run.pk}-proposals.json")


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
    faces = face_counts()
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
            "faces": [faces.get(a) for a in layout.ids],  # None: not scanned for faces
        }
    )


@login_required
@require_POST
def lasso_proposal(request: HttpRequest) -> HttpResponse:
    """A proposal made by hand from a selection on the map (a one-proposal run of the "manual" kind)."""
    usage = 'send JSON {"version": N, "artworks": [artwork ids]}'
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, RecursionError):
        # ValueError: not JSON, not UTF-8 (both subclasses), or an integer of more than 4,300 digits, which
        # Python refuses to parse; RecursionError: arrays nested deeper than the parser's stack.
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
    try:
        # Within the columns' ranges: a larger Python int overflows the database driver (a 500).
        number = parse.integer(number, "version", low=0, high=VERSION_NUMBER_MAX)
        ids = [parse.database_id(v, "artworks") for v in ids]
    except parse.BadParameter as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    version = ModelVersion.objects.filter(number=number).first()
    if version is None:
        return JsonResponse({"error": f"no model version {number}"}, status=400)
    try:
        proposal = proposal_from_selection(version, ids, request.user)
    except ValueError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse({"proposal": proposal.pk, "url": reverse("review:review", args=[proposal.pk])})


@login_required
@require_GET
def proposal_manifest(request: HttpRequest, proposal_id: int) -> HttpResponse:
    """A proposal's members as a IIIF Presentation 3.0 manifest, strongest first: any IIIF viewer shows
    them side by side."""
    from annotations.manifests import manifest_response

    proposal = get_object_or_404(Proposal.objects.select_related("run"), pk=proposal_id)
    members = [
        member.artwork
        for member in proposal.members.select_related("artwork__collection").order_by("position")
    ]
    label = f"Proposal {proposal.pk} of run {proposal.run_id}: {len(members)} artworks"
    summary = f"{proposal.get_kind_display()}, confidence {proposal.confidence:.2f}, status {proposal.status}"
    return manifest_response(request, label, members, summary)
