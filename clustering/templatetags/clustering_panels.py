"""Clustering's parts of pages owned by other apps: the rounds page shows the runs and the form to cluster
again. An inclusion tag lets that page (training) show them without training's code importing clustering,
which sits above it."""

from __future__ import annotations

from django import template
from django.db.models import Count, Q

from ..algorithms import ALGORITHMS, DEFAULTS, ClusteringParams
from ..models import ClusteringRun, ProposalStatus

register = template.Library()


@register.inclusion_tag("clustering/_runs_table.html")
def clustering_runs(limit: int = 20) -> dict:
    runs = (
        ClusteringRun.objects.select_related("model_version", "created_by")
        .annotate(
            open_count=Count("proposals", filter=Q(proposals__status=ProposalStatus.OPEN)),
            proposal_count=Count("proposals"),
        )
        .order_by("-pk")[:limit]
    )
    return {"runs": list(runs)}


@register.inclusion_tag("clustering/_cluster_form.html", takes_context=True)
def cluster_again_form(context) -> dict:
    """Every tunable parameter of `ClusteringParams`, with the OPTICS default as the placeholder."""
    fields = [
        {"name": name, "label": name.replace("_", " "), "placeholder": DEFAULTS["optics"].get(name) or ""}
        for name in ClusteringParams.tunable()
    ]
    return {"csrf_token": context.get("csrf_token"), "algorithms": ALGORITHMS, "fields": fields}
