"""A curator detects faces from the rounds page on a real worker (the face indexes follow as a job); a
historian sees the faces drawn on an artwork's picture and clicks one to search by that face."""

from __future__ import annotations

import io
import os

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from jobs.models import Job, JobState
from training.face_detection import current_faces

from .conftest import wait_until
from .test_browser import browser, log_in, page  # noqa: F401 - fixtures
from .test_browser_review import FINISHED, make_user
from .test_faces import PORTRAITS, artwork, detector_weights, portraits  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_faces_are_detected_on_a_worker_drawn_and_searched(page, portraits, celery_worker_process):  # noqa: F811
    # Round 0 is the active version (what the pages search by default), beside the frozen one.
    call_command("extract_signatures", "--inline", "--no-cluster", stdout=io.StringIO())
    make_user("curator", curator=True)
    log_in(page, "curator")
    page.goto("/rounds/")
    page.locator("#faces summary").click()
    page.locator("#face-form").get_by_role("button", name="Detect faces").click()
    page.wait_for_function(FINISHED, timeout=240_000)
    expect(page.locator("#job [data-field=state]")).to_have_text("Succeeded")
    expect(page.locator("#job")).to_contain_text("faces in 5 of them")  # the five portraits
    wait_until(
        lambda: Job.objects.filter(kind="embed_faces", state=JobState.SUCCEEDED).exists(),
        timeout=180,
        message="the face indexes' job",
    )

    holbein = artwork("436658")
    faces = current_faces([holbein.pk])[holbein.pk]
    page.goto(f"/artworks/{holbein.pk}/")
    boxes = page.get_by_test_id("face-box")
    expect(boxes).to_have_count(len(faces))
    expect(page.get_by_test_id("face-summary")).to_contain_text(f"{len(faces)} face")
    # The most probable face's box sits where the detector put it on the picture as drawn.
    picture = page.locator("img.viewer").bounding_box()
    drawn = boxes.first.bounding_box()
    face = faces[0]
    assert drawn["x"] - picture["x"] == pytest.approx(face.x1 / holbein.width * picture["width"], abs=3)
    assert drawn["y"] - picture["y"] == pytest.approx(face.y1 / holbein.height * picture["height"], abs=3)
    assert drawn["width"] == pytest.approx(face.width / holbein.width * picture["width"], abs=3)
    expect(page.get_by_role("link", name="search by faces and the whole picture")).to_have_attribute(
        "href", f"/search/?artwork={holbein.pk}&mode=fused"
    )
    if os.environ.get("WORKBENCH_SCREENSHOTS"):  # how docs/screenshots/faces.png is refreshed
        expect(page.locator("#neighbours .neighbours")).to_be_visible()
        page.screenshot(path=os.path.join(os.environ["WORKBENCH_SCREENSHOTS"], "faces.png"))

    boxes.first.click()
    expect(page.locator("h1")).to_have_text("Search")
    expect(page.get_by_test_id("query-face")).to_contain_text(f"face {face.pk}")
    expect(page.get_by_test_id("face-how").first).to_contain_text("by face")
    hits = page.locator(".column").first.locator("ol.results li")
    expect(hits).to_have_count(len(PORTRAITS) - 1)  # the other portraits: only artworks with a face
    expect(page.get_by_test_id("face-score").first).to_be_visible()

    # Fused, from the same page: every artwork is ranked, those with a face by both scores.
    page.locator("[data-testid=search-options] select[name=mode]").select_option("fused")
    page.locator("[data-testid=search-options] input[name=weight]").fill("0.7")
    page.locator("[data-testid=search-options]").get_by_role("button", name="Show").click()
    expect(page.get_by_test_id("face-how").first).to_contain_text("face weight 0.7")
    expect(hits).to_have_count(7)
