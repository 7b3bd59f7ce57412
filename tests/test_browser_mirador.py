"""A historian opens a proposal in Mirador (installed from the npm registry into the static files, no CDN):
every member's canvas renders side by side, its image fetched through the workbench's own IIIF service."""

from __future__ import annotations

import os
import re

import pytest
from playwright.sync_api import expect

from annotations.importer import import_collection
from annotations.models import Artwork

from .test_browser import browser, log_in, page  # noqa: F401 - fixtures
from .test_browser_review import make_user
from .test_iiif_out import hand_made_proposal

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def expect_every_window_draws(browser_page, windows: int) -> None:
    """Each Mirador window has its OpenSeadragon canvas. Not a count of canvases: OpenSeadragon sometimes
    draws a window with two (six for three windows in one CI run; never seen locally)."""
    expect(browser_page.locator(".mirador-window")).to_have_count(windows, timeout=30_000)
    for number in range(windows):
        window = browser_page.locator(".mirador-window").nth(number)
        expect(window.locator(".openseadragon-canvas canvas").first).to_be_attached(timeout=30_000)


def test_a_proposal_side_by_side_in_mirador(page, data_dir, source):  # noqa: F811
    import_collection(source.images, source.metadata, source.connections, "Source")
    members = [Artwork.objects.get(external_id=name) for name in ("art-4", "art-2", "art-5")]
    proposal = hand_made_proposal(members)
    make_user("historian")
    log_in(page, "historian")
    images = set()
    page.on(
        "response",
        lambda response: (
            images.add(int(re.search(r"/iiif/images/(\d+)/full/", response.url).group(1)))
            if "/iiif/images/" in response.url and "/full/" in response.url and response.status == 200
            else None
        ),
    )
    page.goto(f"/review/{proposal.pk}/")
    page.locator("#open-in-mirador").click()
    expect(page.locator("h1")).to_contain_text("Side by side")
    windows = page.locator(".mirador-window")
    expect(windows).to_have_count(3, timeout=30_000)
    for title in ("Title 4", "Title 2", "Title 5"):  # each member's manifest read and shown in its window
        expect(windows.filter(has_text=title)).to_have_count(1)
    expect_every_window_draws(page, 3)
    for _ in range(60):  # the images arrive as OpenSeadragon asks for them
        if images == {m.pk for m in members}:
            break
        page.wait_for_timeout(500)
    assert images == {m.pk for m in members}  # every member's image came through its IIIF service
    if os.environ.get("WORKBENCH_SCREENSHOTS"):  # how docs/screenshots/mirador.png is refreshed
        page.wait_for_timeout(1500)
        page.screenshot(path=os.path.join(os.environ["WORKBENCH_SCREENSHOTS"], "mirador.png"))


def test_deep_zoom_from_the_image_server_in_mirador(page, data_dir, tmp_path, settings):  # noqa: F811
    """With IIPImage configured, Mirador reads each member's info.json from it (across origins: CORS) and
    draws the canvas from its tiles at the full resolution."""
    from django.core.management import call_command

    from annotations.pyramids import pyramid_name
    from workbench import paths

    from .conftest import import_large_collection
    from .iip_server import ImageServer

    import_large_collection(tmp_path / "large", 3, (2400, 1600))
    server = ImageServer(tmp_path / "iip", pyramids=paths.pyramids_folder())
    try:
        settings.IIIF_IMAGE_SERVER = server.iiif
        call_command("build_pyramids")
        members = list(Artwork.objects.order_by("pk"))
        proposal = hand_made_proposal(members)
        served: dict[str, set[str]] = {pyramid_name(m.image_sha256): set() for m in members}
        page.on(
            "response",
            lambda response: (
                served[response.url.split("/iiif/")[1].split("/")[0]].add(response.url.split(".tif/")[1])
                if response.url.startswith(server.iiif) and response.status == 200
                else None
            ),
        )
        make_user("historian")
        log_in(page, "historian")
        page.goto(f"/review/{proposal.pk}/")
        page.locator("#open-in-mirador").click()
        expect_every_window_draws(page, 3)
        for _ in range(60):
            if all("info.json" in asked and len(asked) > 1 for asked in served.values()):
                break
            page.wait_for_timeout(500)
        for name, asked in served.items():
            assert "info.json" in asked and any(a.endswith("/0/default.jpg") for a in asked), (name, asked)

        # Zoom into the first window (the mouse wheel, as a historian does) until OpenSeadragon asks for
        # tiles at scale 1: 256 px regions of the full-resolution image, which level 0 could never serve.
        def full_resolution_tiles() -> list[str]:
            tiles = []
            for asked in set().union(*served.values()) - {"info.json"}:
                region, size = asked.split("/")[:2]
                if region != "full" and int(region.split(",")[2]) == int(size.split(",")[0]):
                    tiles.append(asked)
            return tiles

        box = page.locator(".mirador-window .openseadragon-canvas").first.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        for _ in range(80):
            if full_resolution_tiles():
                break
            page.mouse.wheel(0, -400)
            page.wait_for_timeout(250)
        assert full_resolution_tiles(), served
    finally:
        server.close()
