"""IIIF out (issue 15, item 2): Presentation API 3.0 manifests and a level-0 Image API 3.0 description of the
workbench's own images, so that any IIIF viewer (Mirador, Universal Viewer) can open an artwork, a proposal or
a group of connected artworks. Plain: builds JSON-able dicts from plain values, no Django.

Level 0 (https://iiif.io/api/image/3.0/compliance/#5-level-0-compliance): the service lists the sizes it has
(the workbench's JPEG thumbnails, upright like the canvas) and serves exactly those; a viewer asks for one of
them and scales it, so zooming stops at the viewer thumbnail's size. Where a real image server holds the
artwork's pyramid (`annotations.image_server`), the canvas names that service instead: tiles, deep zoom.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

PRESENTATION_CONTEXT = "http://iiif.io/api/presentation/3/context.json"
IMAGE_CONTEXT = "http://iiif.io/api/image/3/context.json"
IMAGE_PROFILE = "level0"


def language_map(text: str) -> dict[str, list[str]]:
    """A IIIF language map for text of unknown language ("none", as the specification says)."""
    return {"none": [text]}


@dataclass
class CanvasSource:
    """One artwork as a canvas: ids are absolute URIs the caller built."""

    canvas_id: str
    label: str
    width: int
    height: int
    service_id: str  # the Image API service (its info.json is service_id + "/info.json")
    image_id: str  # the largest image the service serves, as a full URI
    image_width: int
    image_height: int
    homepage: str = ""  # the artwork's page in the workbench
    metadata: Sequence[tuple[str, str]] = field(default_factory=tuple)
    thumbnail: tuple[str, int, int] | None = None  # (uri, width, height)
    service_type: str = "ImageService3"
    service_profile: str = IMAGE_PROFILE


def image_service(source: CanvasSource) -> dict:
    """The body's service. A 2.x service keeps its 2.x keys inside a 3.0 manifest (Presentation 3.0 §3.4.3:
    "@id" and "@type" = "ImageService2", profile as a URI), which viewers use to pick the request syntax."""
    if source.service_type == "ImageService2":
        return {"@id": source.service_id, "@type": "ImageService2", "profile": source.service_profile}
    return {"id": source.service_id, "type": source.service_type, "profile": source.service_profile}


def canvas(source: CanvasSource) -> dict:
    """A canvas with one painting annotation: the image, at the canvas's size, with its level-0 service."""
    painting = {
        "id": f"{source.canvas_id}/annotation/painting",
        "type": "Annotation",
        "motivation": "painting",
        "target": source.canvas_id,
        "body": {
            "id": source.image_id,
            "type": "Image",
            "format": "image/jpeg",
            "width": source.image_width,
            "height": source.image_height,
            "service": [image_service(source)],
        },
    }
    result: dict = {
        "id": source.canvas_id,
        "type": "Canvas",
        "label": language_map(source.label),
        "width": source.width,
        "height": source.height,
        "items": [{"id": f"{source.canvas_id}/page", "type": "AnnotationPage", "items": [painting]}],
    }
    if source.metadata:
        result["metadata"] = [
            {"label": language_map(label), "value": language_map(value)}
            for label, value in source.metadata
            if value
        ]
    if source.homepage:
        result["homepage"] = [
            {
                "id": source.homepage,
                "type": "Text",
                "label": language_map(source.label),
                "format": "text/html",
            }
        ]
    if source.thumbnail:
        uri, width, height = source.thumbnail
        result["thumbnail"] = [
            {"id": uri, "type": "Image", "format": "image/jpeg", "width": width, "height": height}
        ]
    return result


def manifest(manifest_id: str, label: str, canvases: Sequence[CanvasSource], summary: str = "") -> dict:
    """A Presentation 3.0 manifest of `canvases`, in order (a viewer shows them side by side or in turn)."""
    if not canvases:
        raise ValueError("a manifest needs at least one canvas")
    result: dict = {
        "@context": PRESENTATION_CONTEXT,
        "id": manifest_id,
        "type": "Manifest",
        "label": language_map(label),
        "items": [canvas(source) for source in canvases],
    }
    if summary:
        result["summary"] = language_map(summary)
    return result


def image_info(service_id: str, width: int, height: int, sizes: Sequence[tuple[int, int]]) -> dict:
    """The level-0 info.json of one image: its full size and the sizes it serves (smallest first)."""
    if not sizes:
        raise ValueError("a level-0 image service must list the sizes it serves")
    return {
        "@context": IMAGE_CONTEXT,
        "id": service_id,
        "type": "ImageService3",
        "protocol": "http://iiif.io/api/image",
        "profile": IMAGE_PROFILE,
        "width": width,
        "height": height,
        "sizes": [{"width": w, "height": h} for w, h in sorted(set(sizes))],
    }


def parse_size(text: str, sizes: Sequence[tuple[int, int]]) -> tuple[int, int] | None:
    """The served size a level-0 request names ("max", "w,", ",h", "w,h" or "!w,h"), or None when it names
    none of `sizes` (level 0 serves only those)."""
    ordered = sorted(set(sizes))
    if not ordered:
        return None
    if text == "max":
        return ordered[-1]
    confined = text.startswith("!")
    body = text[1:] if confined else text
    if body.count(",") != 1:
        return None
    first, second = body.split(",")
    try:
        width = int(first) if first else None
        height = int(second) if second else None
    except ValueError:
        return None
    for size in ordered:
        if confined and width is not None and height is not None:
            if size[0] <= width and size[1] <= height and (size[0] == width or size[1] == height):
                return size
        elif (width is None or width == size[0]) and (height is None or height == size[1]):
            if width is not None or height is not None:
                return size
    return None
