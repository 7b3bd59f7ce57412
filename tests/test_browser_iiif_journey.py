"""Issue 15's "done when", end to end in the browser: a curator imports a museum's IIIF collection from the
dashboard (on a real worker, images from a real IIPImage), the workbench writes its own pyramids, a historian
opens a proposal of the imported artworks in Mirador (deep zoom from the workbench's image server), confirms
it, and downloads the decisions as Web Annotations whose targets are the museum's own canvases."""

from __future__ import annotations

import json

import iiif_prezi3
import pytest
from playwright.sync_api import expect

from annotations.models import Artwork
from annotations.pyramids import pyramid_name, write_pyramid
from jobs.models import Job, JobState
from workbench import paths

from .conftest import draw_picture, wait_until
from .iip_server import ImageServer
from .test_browser import browser, log_in, page  # noqa: F401 - fixtures
from .test_browser_mirador import expect_every_window_draws
from .test_browser_review import make_user
from .test_iiif_out import hand_made_proposal

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def museum_collection(museum: ImageServer, tmp_path) -> tuple[str, list[str]]:
    """Two manifests (three canvases) and a collection of them, built with iiif-prezi3 from the museum's
    image server; returns the collection's URL and the canvas ids."""
    for seed, image in enumerate(("a.tif", "b.tif", "c.tif")):
        draw_picture(tmp_path / f"{image}.jpg", seed=seed + 7, size=(1800, 1200))
        write_pyramid(tmp_path / f"{image}.jpg", museum.pyramids / image)
    albums = [museum.manifest3("album-0.json", ["a.tif", "b.tif"], "Album 0")]
    albums.append(museum.manifest3("album-1.json", ["c.tif"], "Album 1"))
    collection = iiif_prezi3.Collection(
        id=f"{museum.base}/collection.json",
        label={"en": ["A museum's drawings"]},
        items=[iiif_prezi3.ManifestRef(id=url, type="Manifest", label={"en": [url]}) for url in albums],
    )
    (museum.documents / "collection.json").write_text(collection.json())
    canvases = [f"{albums[0]}/canvas/a.tif", f"{albums[0]}/canvas/b.tif", f"{albums[1]}/canvas/c.tif"]
    return f"{museum.base}/collection.json", canvases


def test_import_review_in_mirador_and_download_web_annotations(
    page,  # noqa: F811
    data_dir,
    tmp_path,
    settings,
    celery_worker_process,
):
    museum = ImageServer(tmp_path / "museum")
    ours = ImageServer(tmp_path / "ours", pyramids=paths.pyramids_folder())
    try:
        settings.IIIF_IMAGE_SERVER = ours.iiif
        collection_url, canvases = museum_collection(museum, tmp_path)
        make_user("curator", curator=True)
        log_in(page, "curator")
        page.get_by_text("Import from IIIF").click()
        page.locator("#iiif-import-form input[name=manifest]").fill(collection_url)
        page.locator("#iiif-import-form button[type=submit]").click()
        expect(page.locator("h1")).to_contain_text("Job")
        wait_until(
            lambda: Job.objects.filter(kind="build_pyramids", state=JobState.SUCCEEDED).exists(),
            timeout=180,
            message="the import and the pyramids after it",
        )
        imported = list(Artwork.objects.order_by("pk"))
        assert [a.extra["iiif_canvas"] for a in imported] == canvases
        assert all((paths.pyramids_folder() / pyramid_name(a.image_sha256)).is_file() for a in imported)

        proposal = hand_made_proposal(imported)
        served: set[str] = set()
        page.on(
            "response",
            lambda response: (
                served.add(response.url.split("/iiif/")[1].split("/")[0])
                if response.url.startswith(ours.iiif) and response.status == 200
                else None
            ),
        )
        page.goto(f"/review/{proposal.pk}/")
        page.locator("#open-in-mirador").click()
        expect_every_window_draws(page, 3)
        wait_until(
            lambda: served == {pyramid_name(a.image_sha256) for a in imported},
            timeout=30,
            message="every member's tiles from the workbench's image server",
        )
        page.go_back()
        page.keyboard.press("e")  # confirm: all three share the pattern
        expect(page.locator(".messages")).to_contain_text("confirmed")

        page.goto("/")
        with page.expect_download() as download:
            page.locator("#export-webannotations").click()
        exported = json.loads(download.value.path().read_text())
        assert exported["type"] == "AnnotationCollection"
        annotations = exported["first"]["items"]
        assert annotations and all(a["motivation"] == "linking" for a in annotations)
        linked = {frozenset(t["id"] for t in a["target"]) for a in annotations}
        assert set().union(*linked) == set(canvases)  # the museum's canvases, not the workbench's
        assert all(len(pair) == 2 for pair in linked)
    finally:
        museum.close()
        ours.close()
