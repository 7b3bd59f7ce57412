"""A real IIIF image server beside the workbench (issue 15, item 2): IIPImage (`iipsrv`, Debian's
`iipimage-server`) behind lighttpd, as `docker/iipsrv/` configures it for docker compose and for the tests.

The workbench writes one tiled pyramid per image into `paths.pyramids_folder()` (`annotations.pyramids`),
the server reads that folder, and `WORKBENCH_IIIF_IMAGE_SERVER` (the server's IIIF prefix as a browser
reaches it, e.g. http://localhost:8182/iiif/) tells the manifests to point there: deep zoom to the full
resolution, tiles and any size, where the workbench's own level-0 service stops at its 1,600 px thumbnail.
An artwork whose pyramid is not written yet keeps the level-0 service, so the manifests are never broken.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings

from jobs.progress import ProgressCallback, no_progress
from workbench import paths

from .models import Artwork
from .pyramids import pyramid_name, remove_abandoned_partials, write_pyramid

# iipsrv 1.1 speaks Image API 2.1 at compliance level 1 (its info.json says so).
SERVICE_TYPE = "ImageService2"
SERVICE_PROFILE = "http://iiif.io/api/image/2/level1.json"


def base_url() -> str:
    """The image server's IIIF prefix, ending in "/", or "" when none is configured."""
    url = settings.IIIF_IMAGE_SERVER
    return url if not url or url.endswith("/") else url + "/"


def service_id(artwork: Artwork) -> str | None:
    """The artwork's Image API service on the image server, or None (no server, or no pyramid yet)."""
    base = base_url()
    if not base:
        return None
    name = pyramid_name(artwork.image_sha256)
    if not (paths.pyramids_folder() / name).is_file():
        return None
    return base + name


def with_pyramids(params: dict[str, Any]) -> dict[str, Any]:
    """An import job's params, followed by writing the new images' pyramids when an image server is
    configured (without one, the pyramids would only take disk space)."""
    if not base_url():
        return params
    return {**params, "then": [*params.get("then", []), {"kind": "build_pyramids", "params": {}}]}


def build_pyramids(
    collection: str | None = None,
    force: bool = False,
    progress: ProgressCallback = no_progress,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """A pyramid for every image (of `collection`) that has none (`force`: every one again).

    Each is written atomically, so a cancelled or killed job keeps the pyramids it finished and the next
    run goes on from there. An image libvips cannot read is reported by artwork and skipped.
    """
    import pyvips

    artworks = Artwork.objects.order_by("pk")
    if collection:
        artworks = artworks.filter(collection__name=collection)
    images: dict[str, Artwork] = {}  # one pyramid per image content, however many artworks show it
    for artwork in artworks.only("pk", "external_id", "image_sha256", "image_ext"):
        images.setdefault(artwork.image_sha256, artwork)
    folder = paths.pyramids_folder()
    abandoned = remove_abandoned_partials(folder)
    if abandoned:
        log(f"removed {abandoned} partial pyramids that a killed build left behind")
    todo = [a for sha, a in images.items() if force or not (folder / pyramid_name(sha)).is_file()]
    log(f"{len(images)} images, {len(todo)} without a pyramid{' (all rewritten)' if force else ''}")
    written = unreadable = 0
    total_bytes = 0
    for number, artwork in enumerate(todo, start=1):
        try:
            total_bytes += write_pyramid(
                paths.absolute(artwork.image_relpath), folder / pyramid_name(artwork.image_sha256)
            )
            written += 1
        except (pyvips.Error, OSError) as exc:
            unreadable += 1
            log(f"artwork {artwork.pk} ({artwork.external_id}): no pyramid, its image is unreadable: {exc}")
        progress(number / len(todo), f"{number}/{len(todo)} pyramids")
    summary = (
        f"{written} pyramids written ({total_bytes / 1e6:.1f} MB), {len(images) - len(todo)} already there"
        + (f", {unreadable} unreadable images skipped" if unreadable else "")
    )
    log(summary)
    return {"summary": summary, "written": written, "kept": len(images) - len(todo), "unreadable": unreadable}
