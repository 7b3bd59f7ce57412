from __future__ import annotations

import io
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Q
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from jobs.runner import enqueue
from workbench import params, paths
from workbench.roles import curator_required

from .connection_types import CONNECTION_TYPES, normalise_type
from .connections import Statement, apply_statements
from .exporting import write_connections_csv
from .image_server import with_pyramids
from .models import Artwork, Collection, Connection, DecisionSource


@login_required
def collection_detail(request: HttpRequest, collection_id: int) -> HttpResponse:
    collection = get_object_or_404(Collection, pk=collection_id)
    artworks = collection.artworks.order_by("external_id")
    query = params.text(request.GET.get("q", ""), "q")
    if query:
        artworks = artworks.filter(
            Q(title__icontains=query) | Q(author__icontains=query) | Q(external_id__icontains=query)
        )
    page = Paginator(artworks, 60).get_page(request.GET.get("page"))
    return render(
        request, "annotations/collection.html", {"collection": collection, "page": page, "q": query}
    )


@login_required
def artwork_detail(request: HttpRequest, artwork_id: int) -> HttpResponse:
    artwork = get_object_or_404(Artwork.objects.select_related("collection"), pk=artwork_id)
    connections = (
        Connection.objects.filter(Q(artwork_a=artwork) | Q(artwork_b=artwork))
        .select_related("artwork_a", "artwork_b", "latest__user")
        .order_by("type")
    )
    partners = [
        (conn, conn.artwork_b if conn.artwork_a_id == artwork.pk else conn.artwork_a) for conn in connections
    ]
    return render(request, "annotations/artwork.html", {"artwork": artwork, "partners": partners})


@login_required
@require_GET
def artwork_thumbnail(request: HttpRequest, artwork_id: int) -> HttpResponse:
    """Redirect to the grid thumbnail (the map's hover preview knows only ids)."""
    artwork = get_object_or_404(Artwork, pk=artwork_id)
    return redirect(artwork.grid_thumbnail_url)


@login_required
@require_POST
def link_artworks(request: HttpRequest, artwork_id: int) -> HttpResponse:
    """A historian states a connection between this artwork and another (artwork page, search)."""
    artwork = get_object_or_404(Artwork, pk=artwork_id)
    type_code = normalise_type(request.POST.get("type", ""))
    if type_code is None:
        raise params.BadParameter(f"type must be one of {', '.join(CONNECTION_TYPES)}")
    other = get_object_or_404(Artwork, pk=params.database_id(request.POST.get("other", ""), "other"))
    if other.pk == artwork.pk:
        raise params.BadParameter("an artwork cannot be connected to itself")
    with transaction.atomic():
        report = apply_statements(
            [Statement(artwork.pk, other.pk, type_code, context={"via": "artwork page"})],
            source=DecisionSource.USER,
            user=request.user,
            # Recorded even when the pair already has this type: the historian's own word must outlive an
            # undo of the review decision that said it first.
            record_redundant=True,
        )
    if report.added:
        messages.success(request, f"{artwork.external_id} – {other.external_id}: {type_code}")
    else:
        messages.info(request, f"{artwork.external_id} – {other.external_id} already is {type_code}")
    return redirect("annotations:artwork", artwork.pk)


@login_required
@require_GET
def export_connections_csv(request: HttpRequest) -> HttpResponse:
    buffer = io.StringIO()
    write_connections_csv(buffer, history=request.GET.get("history") == "1")
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="connections-{stamp}.csv"'
    return response


@login_required
@require_GET
def export_connections_jsonld(request: HttpRequest) -> HttpResponse:
    """The connections (with ?history=1 every decision) as W3C Web Annotations."""
    from .annotation_exchange import export_document

    base = request.build_absolute_uri("/").rstrip("/")
    document = export_document(base, history=request.GET.get("history") == "1")
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response = JsonResponse(
        document, content_type='application/ld+json;profile="http://www.w3.org/ns/anno.jsonld"'
    )
    response["Content-Disposition"] = f'attachment; filename="connections-{stamp}.jsonld"'
    return response


@login_required
@require_GET
def data_file(request: HttpRequest, relpath: str) -> FileResponse:
    """Images and thumbnails, for logged-in users only (collections may not be public)."""
    parts = Path(relpath).parts
    if not parts or parts[0] not in paths.SERVED_FOLDERS or ".." in parts:
        raise Http404("no such file")
    path = paths.absolute(relpath)
    if not path.is_file():
        raise Http404("no such file")
    response = FileResponse(open(path, "rb"))
    # Content-addressed: a name never changes content.
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    return response


# ---- IIIF (`annotations.iiif`, `annotations.manifests`) ----


@login_required
@require_GET
def iiif_artwork_manifest(request: HttpRequest, artwork_id: int) -> HttpResponse:
    """One artwork as a Presentation 3.0 manifest."""
    from .manifests import manifest_response

    artwork = get_object_or_404(Artwork.objects.select_related("collection"), pk=artwork_id)
    return manifest_response(request, artwork.title or artwork.external_id, [artwork])


@login_required
@require_GET
def iiif_component_manifest(request: HttpRequest, artwork_id: int) -> HttpResponse:
    """The artwork and the artworks connected to it by known links, one canvas each."""
    from .manifests import component_members, manifest_response

    artwork = get_object_or_404(Artwork.objects.select_related("collection"), pk=artwork_id)
    members = component_members(artwork)
    label = f"{artwork.title or artwork.external_id} and its {len(members) - 1} connected artworks"
    return manifest_response(request, label, members, "known connections")


@login_required
@require_GET
def iiif_canvas(request: HttpRequest, artwork_id: int) -> HttpResponse:
    """A canvas id dereferences to the artwork's manifest (where the canvas lives)."""
    get_object_or_404(Artwork, pk=artwork_id)
    return redirect("annotations:iiif_manifest", artwork_id)


@login_required
@require_GET
def iiif_service(request: HttpRequest, artwork_id: int) -> HttpResponse:
    """The Image API base URI redirects to its info.json (Image API 3.0 §2.2)."""
    get_object_or_404(Artwork, pk=artwork_id)
    return redirect("annotations:iiif_info", artwork_id, permanent=False)


@login_required
@require_GET
def iiif_image_info(request: HttpRequest, artwork_id: int) -> HttpResponse:
    from .iiif import image_info
    from .manifests import IIIF_IMAGE, iiif_json, own_service_id, served_sizes

    artwork = get_object_or_404(Artwork, pk=artwork_id)
    sizes = served_sizes(artwork)
    if not sizes:
        raise Http404("no image of this artwork can be served")
    info = image_info(own_service_id(request, artwork), artwork.width, artwork.height, list(sizes))
    return iiif_json(info, IIIF_IMAGE)


@login_required
@require_GET
def iiif_image(
    request: HttpRequest, artwork_id: int, region: str, size: str, rotation: str, quality: str, fmt: str
) -> HttpResponse:
    """Level 0: the full region, no rotation, default quality, JPEG, at one of the listed sizes; anything
    else is 400 (Image API 3.0 §7: a request the server cannot answer)."""
    from .iiif import parse_size
    from .manifests import served_sizes

    artwork = get_object_or_404(Artwork, pk=artwork_id)
    if (region, rotation, quality, fmt) != ("full", "0", "default", "jpg"):
        return HttpResponse(
            "level 0: only full/<a listed size>/0/default.jpg is served",
            status=400,
            content_type="text/plain",
        )
    sizes = served_sizes(artwork)
    chosen = parse_size(size, list(sizes))
    if chosen is None:
        listed = ", ".join(f"{w},{h}" for w, h in sorted(sizes))
        return HttpResponse(f"level 0: sizes served are {listed}", status=400, content_type="text/plain")
    response = FileResponse(open(paths.absolute(sizes[chosen]), "rb"), content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    return response


@curator_required
@require_POST
def start_iiif_import(request: HttpRequest) -> HttpResponse:
    """A IIIF manifest or collection imported on a worker (`import_iiif` job); the page follows it. Only
    http(s) addresses: a web form must not read the server's own files."""
    location = params.text(request.POST.get("manifest", ""), "manifest", max_length=2000)
    if not location.startswith(("http://", "https://")):
        messages.error(request, "The manifest must be an http or https address.")
        return redirect("home")
    try:
        size = params.integer(request.POST.get("size", "1600") or "1600", "size", low=64, high=10000)
    except params.OutOfRange as exc:
        messages.error(request, f"{str(exc).capitalize()}.")
        return redirect("home")
    job = enqueue(
        "import_iiif",
        with_pyramids(
            {
                "manifest": location,
                "collection": params.text(request.POST.get("collection", ""), "collection"),
                "size": size,
                "per_manifest": request.POST.get("per_manifest") == "1",
            }
        ),
        user=request.user,
    )
    messages.success(request, f"IIIF import started as job #{job.pk}.")
    return redirect("jobs:detail", job.pk)


MIRADOR_VERSION = "4.0.0"
MIRADOR_PATH = f"vendor/mirador-{MIRADOR_VERSION}/mirador.min.js"
MAX_VIEWER_WINDOWS = 12


@login_required
@require_GET
def iiif_viewer(request: HttpRequest) -> HttpResponse:
    """Mirador (installed into the static files by bin/fetch_mirador.sh, never from a CDN) with one window
    per `manifest` parameter, side by side: a path on this server or an http(s) URL."""
    import json

    from django.contrib.staticfiles import finders

    manifests = [m.strip() for m in request.GET.getlist("manifest") if m.strip()]
    if not manifests:
        raise params.BadParameter("manifest: name at least one IIIF manifest")
    if len(manifests) > MAX_VIEWER_WINDOWS:
        raise params.BadParameter(
            f"manifest: at most {MAX_VIEWER_WINDOWS} side by side, got {len(manifests)}"
        )
    for manifest in manifests:
        params.text(manifest, "manifest", max_length=2000)
        if not (manifest.startswith("/") and not manifest.startswith("//")) and not manifest.startswith(
            ("http://", "https://")
        ):
            raise params.BadParameter(
                f"manifest must be a path on this server or an http(s) URL: {manifest!r}"
            )
    context = {
        "manifests": manifests,
        "manifests_json": json.dumps(manifests),
        "installed": finders.find(MIRADOR_PATH) is not None,
        "image_server": bool(settings.IIIF_IMAGE_SERVER),
        "mirador_path": MIRADOR_PATH,
        "version": MIRADOR_VERSION,
    }
    return render(request, "annotations/viewer.html", context)
