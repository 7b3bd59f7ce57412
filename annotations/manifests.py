"""The workbench's artworks as IIIF (`annotations.iiif`): canvases with absolute URIs for a request, the
sizes each image's level-0 service serves, and the connected component of an artwork as a group."""

from __future__ import annotations

from collections.abc import Sequence

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from PIL import Image

from workbench import paths

from . import iiif, image_server, knowledge
from .models import Artwork

# The thumbnails a level-0 service serves, smallest first (each an upright JPEG, `annotations.images`).
SERVED_THUMBNAILS = ("grid", "viewer")
# A proposal or a component of more artworks than this is cut: a viewer shows a manifest's canvases side by
# side, and a component of 5,000 copies helps nobody.
MAX_CANVASES = 200


def served_sizes(artwork: Artwork) -> dict[tuple[int, int], str]:
    """(width, height) → relpath of each thumbnail file present (read from its header: the exact size)."""
    sizes = {}
    for name in SERVED_THUMBNAILS:
        relpath = artwork.thumbnail_relpath(name)
        try:
            with Image.open(paths.absolute(relpath)) as image:
                sizes[image.size] = relpath
        except OSError:
            continue  # a thumbnail missing on disk is not offered
    return sizes


def own_service_id(request: HttpRequest, artwork: Artwork) -> str:
    """The artwork's level-0 Image API service on this workbench, as an absolute URI."""
    return request.build_absolute_uri(reverse("annotations:iiif_service", args=[artwork.pk]))


def canvas_source(request: HttpRequest, artwork: Artwork) -> iiif.CanvasSource:
    """The artwork's canvas: its image from the image server where that holds its pyramid (the full
    resolution, tiled), else from the workbench's level-0 service (its largest thumbnail)."""
    own_service = own_service_id(request, artwork)
    sizes = sorted(served_sizes(artwork)) or [(artwork.width, artwork.height)]
    largest = sizes[-1]
    smallest = sizes[0]
    image: dict = {
        "service_id": own_service,
        "image_id": f"{own_service}/full/{largest[0]},{largest[1]}/0/default.jpg",
        "image_width": largest[0],
        "image_height": largest[1],
    }
    external = image_server.service_id(artwork)
    if external:
        image = {
            "service_id": external,
            "service_type": image_server.SERVICE_TYPE,
            "service_profile": image_server.SERVICE_PROFILE,
            "image_id": f"{external}/full/full/0/default.jpg",
            "image_width": artwork.width,
            "image_height": artwork.height,
        }
    return iiif.CanvasSource(
        canvas_id=request.build_absolute_uri(reverse("annotations:iiif_canvas", args=[artwork.pk])),
        label=artwork.title or artwork.external_id,
        width=artwork.width,
        height=artwork.height,
        homepage=request.build_absolute_uri(reverse("annotations:artwork", args=[artwork.pk])),
        metadata=[
            ("Id", artwork.external_id),
            ("Author", artwork.author),
            ("Date", artwork.date_text),
            ("Style", artwork.style),
            ("Genre", artwork.genre),
            ("Collection", artwork.collection.name),
        ],
        # From the workbench's own service either way: the small image a viewer lists canvases by.
        thumbnail=(f"{own_service}/full/{smallest[0]},{smallest[1]}/0/default.jpg", *smallest),
        **image,
    )


def component_members(artwork: Artwork) -> list[Artwork]:
    """The artwork and every artwork linked to it by known connections (its known component), by id."""
    known = knowledge.load()
    component = known.component_of.get(artwork.pk)
    if component is None:
        return [artwork]
    ids = [other for other, c in known.component_of.items() if c == component]
    return list(Artwork.objects.filter(pk__in=ids[:MAX_CANVASES]).select_related("collection").order_by("pk"))


IIIF_PRESENTATION = 'application/ld+json;profile="http://iiif.io/api/presentation/3/context.json"'
IIIF_IMAGE = 'application/ld+json;profile="http://iiif.io/api/image/3/context.json"'


def iiif_json(data: dict, content_type: str) -> HttpResponse:
    response = JsonResponse(data, content_type=content_type, json_dumps_params={"ensure_ascii": False})
    # Viewers on other origins (a historian's own Mirador) read it with the page's cookies only if allowed;
    # the collection is private, so no wildcard: same-origin viewers work, as the workbench's own.
    response["Vary"] = "Cookie"
    return response


def manifest_response(
    request: HttpRequest, label: str, artworks: Sequence[Artwork], summary: str = ""
) -> HttpResponse:
    """`artworks` as a Presentation 3.0 manifest whose id is the address it was requested at."""
    canvases = [canvas_source(request, artwork) for artwork in artworks[:MAX_CANVASES]]
    return iiif_json(iiif.manifest(request.build_absolute_uri(), label, canvases, summary), IIIF_PRESENTATION)
