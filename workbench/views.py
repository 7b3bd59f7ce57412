from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from annotations.models import Artwork, Collection, Connection
from clustering.models import ClusteringRun
from jobs.models import Job
from training.models import ModelVersion

from .params import BadParameter


@login_required
def home(request: HttpRequest) -> HttpResponse:
    Job.objects.reap_dead()
    collections = Collection.objects.annotate(artwork_count=Count("artworks")).order_by("name")
    by_type = dict(Connection.objects.values_list("type").annotate(n=Count("id")).order_by())
    splits = dict(Artwork.objects.values_list("split").annotate(n=Count("id")).order_by())
    context = {
        "collections": collections,
        "artwork_total": sum(c.artwork_count for c in collections),
        "connections_by_type": sorted(by_type.items()),
        "connection_total": sum(by_type.values()),
        "splits": [(name, splits.get(name, 0)) for name in ("train", "val", "test")],
        "unlinked": splits.get("", 0),
        "jobs": Job.objects.select_related("created_by")[:8],
        "model_versions": ModelVersion.objects.select_related("parent", "created_by")[:6],
        "last_run": ClusteringRun.objects.select_related("model_version")
        .automatic()
        .annotate(open_count=Count("proposals", filter=Q(proposals__status="open")))
        .order_by("-pk")
        .first(),
    }
    return render(request, "home.html", context)


def healthz(request: HttpRequest) -> JsonResponse:
    """For the container health check: the database answers."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler400: a `BadParameter` says what was wrong, to a page or (asked for JSON) a script.

    Other 400s (Django's own: a malformed upload, too many fields, a bad Host) get a generic text, since
    their messages are meant for the server log, not the person at the browser.
    """
    message = str(exception) if isinstance(exception, BadParameter) else "The request could not be read."
    if "application/json" in request.headers.get("Accept", "") or request.content_type == "application/json":
        return JsonResponse({"error": message}, status=400)
    return render(request, "400.html", {"message": message}, status=400)
