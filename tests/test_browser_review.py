"""Review, rounds and map in headless Chromium: the keyboard, undo, a round started from the browser, the
map's pixels, and what an annotator may not do."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from django.contrib.auth.models import Group, User
from PIL import Image
from playwright.sync_api import Page, expect

from annotations.models import Artwork, Connection, ConnectionDecision
from clustering.algorithms import ClusteringParams
from clustering.maps import compute_layout_for
from clustering.models import ClusteringRun, Proposal, ProposalStatus
from clustering.runs import run_clustering
from jobs.models import Job, JobState
from training.models import ModelVersion
from training.rounds import create_round_zero
from training.trainer import TrainConfig
from workbench.roles import CURATORS

from .conftest import rig_signatures
from .test_browser import PASSWORD, browser, log_in, page  # noqa: F401 - fixtures
from .test_clustering_runs import GROUPS, collection, pk, proposal_with  # noqa: F401 - fixture
from .test_training_rounds import TINY, demo_collection  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
# The job page's job has ended, well or not: a failed step shows its state and error at once.
FINISHED = "!['queued', 'running'].includes(document.querySelector('#job').dataset.state)"


def make_user(name: str, curator: bool = False) -> User:
    user = User.objects.create_user(name, password=PASSWORD)
    if curator:
        user.groups.add(Group.objects.get_or_create(name=CURATORS)[0])
    return user


def test_review_with_the_keyboard_then_undo(page, collection):  # noqa: F811
    run = run_clustering(collection, ClusteringParams())
    make_user("historian")
    log_in(page, "historian")
    page.get_by_role("link", name="Review", exact=True).click()
    g1 = proposal_with(GROUPS["G1"], run)
    page.goto(f"/review/{g1.pk}/")
    expect(page.locator("#members .member")).to_have_count(4)
    # The geometric verification arrives after the page: every member says what it found (the fixture's
    # drawn pictures share no painted motif, so "no geometric match" or the members it matched).
    for slot in page.locator("#members .verification").all():
        expect(slot).to_have_text(re.compile(r"no geometric match|verified with( #\d)+"))
    page.keyboard.press("?")
    expect(page.locator("#help")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#help")).to_be_hidden()
    # Space on a tick box that has the keyboard focus acts on that member, not on the highlighted one.
    second_box = page.locator("#members .member").nth(1).locator("input[type=checkbox]")
    second_box.focus()
    page.keyboard.press(" ")
    expect(second_box).not_to_be_checked()
    expect(page.locator("#members .member").first.locator("input[type=checkbox]")).to_be_checked()
    page.keyboard.press(" ")
    expect(second_box).to_be_checked()
    page.locator("h1").click()  # focus back on the page
    # Focus the last member and untick it: artwork 3 is not part of the pattern.
    last = page.locator("#members .member").nth(3)
    for _ in range(2):  # from member 2, where the tick box left the highlight
        page.keyboard.press("j")
    expect(last).to_have_class("member focused")
    page.keyboard.press("x")
    unticked = int(last.get_attribute("data-id"))
    expect(last.locator("input[type=checkbox]")).not_to_be_checked()
    page.keyboard.press("e")  # confirm, and the unticked member is wrong
    expect(page.locator(".messages")).to_contain_text("confirmed in part")
    assert "/review/" in page.url and f"/review/{g1.pk}/" not in page.url  # moved on to the next proposal
    ticked = [m for m in g1.members.values_list("artwork_id", flat=True) if m != unticked]
    decisions = ConnectionDecision.objects.filter(context__proposal=g1.pk)
    assert {d.type for d in decisions} == {"POSITIVE", "NEGATIVE"}
    assert all(unticked in (d.artwork_a_id, d.artwork_b_id) for d in decisions if d.type == "NEGATIVE")
    negative_partners = {
        d.artwork_a_id + d.artwork_b_id - unticked for d in decisions.filter(type="NEGATIVE")
    }
    assert negative_partners and negative_partners <= set(ticked)  # pairs already linked are not restated

    page.keyboard.press("u")
    expect(page.locator(".messages")).to_contain_text("Undone")
    assert page.url.endswith(f"/review/{g1.pk}/")
    assert Proposal.objects.get(pk=g1.pk).status == ProposalStatus.OPEN
    assert not Connection.objects.filter(latest__context__proposal=g1.pk).exists()

    # The pair view opens on the focused member and the next one, and blinks.
    page.keyboard.press("p")
    expect(page.locator("#pair")).to_be_visible()
    page.get_by_role("button", name="Blink").click()
    page.wait_for_function("document.querySelector('#pair .right').style.opacity !== ''")
    page.keyboard.press("Escape")


def test_the_map_draws_its_points(page, collection):  # noqa: F811
    run_clustering(collection, ClusteringParams())
    compute_layout_for(collection)
    make_user("historian")
    log_in(page, "historian")
    page.goto("/map/")
    expect(page.locator("#map-status")).to_contain_text("20 artworks")
    canvas = page.locator("#map-canvas")
    pixels = np.asarray(Image.open(io.BytesIO(canvas.screenshot())).convert("RGB"), dtype=np.int32)
    drawn = np.abs(pixels - np.array([251, 250, 247])).sum(axis=2) > 60  # not the background
    coloured = drawn & (pixels.max(axis=2) - pixels.min(axis=2) > 60)  # cluster colours, not noise's grey
    assert drawn.sum() > 100 and coloured.sum() > 30
    # Hover a drawn point: its thumbnail appears; click it: its artwork page opens.
    box = canvas.bounding_box()
    ys, xs = np.nonzero(coloured)
    x, y = int(xs[len(xs) // 2]), int(ys[len(ys) // 2])
    page.mouse.move(box["x"] + x, box["y"] + y)
    expect(page.locator("#map-hover")).to_be_visible()
    thumb = page.locator("#map-hover img").get_attribute("src")
    assert thumb.startswith("/artworks/") and thumb.endswith("/thumbnail") and "/999999999/" not in thumb
    artwork_id = int(thumb.split("/")[2])
    page.select_option("#map-layout", "time")
    after = np.asarray(Image.open(io.BytesIO(canvas.screenshot())).convert("RGB"), dtype=np.int32)
    assert not np.array_equal(after, pixels)  # the time layout places the points elsewhere
    page.select_option("#map-layout", "similarity")
    page.mouse.move(box["x"] + x, box["y"] + y)
    page.mouse.down()
    page.mouse.up()
    page.wait_for_url(f"**/artworks/{artwork_id}/")


def start_a_round(browser_page: Page, round_zero: str) -> None:
    """Round 0 with "random" or "perfect" signatures (`conftest.rig_signatures`: what the gate compares the
    new version with), then a curator starts a one-epoch round on the rounds page."""
    rig_signatures(create_round_zero(TrainConfig(**TINY)), round_zero)
    make_user("curator", curator=True)
    log_in(browser_page, "curator")
    browser_page.goto("/rounds/")
    browser_page.fill("input[name=epochs]", "1")
    browser_page.get_by_role("button", name="Start round").click()
    assert "/jobs/" in browser_page.url


def test_a_curator_starts_a_round_and_follows_it_to_the_map(page, demo_collection, celery_worker_process):  # noqa: F811
    """Train → cluster → map through the real broker and worker, followed from the job page's links.

    Round 0's signatures are random first, so the new version is certain to pass the promotion gate
    (better beyond the interval) and the chain cannot stop early; the other outcome has its own test below."""
    start_a_round(page, round_zero="random")
    page.wait_for_function("document.querySelector('#job progress').value > 0.05", timeout=120_000)
    for kind in ("train_round", "cluster", "compute_layout", "embed_faces"):
        expect(page.locator("h1 small")).to_have_text(kind)
        page.wait_for_function(FINISHED, timeout=240_000)
        expect(page.locator("#job [data-field=state]")).to_have_text("Succeeded")
        if kind != "embed_faces":  # the page links to the step this one started, as it appears
            page.locator("#next-step a").click()
            page.wait_for_load_state()
    expect(page.locator("#next-step")).to_be_hidden()  # the face index is the last step
    # Nobody detected faces here: the step says so and how, and changes nothing.
    expect(page.locator("#job")).to_contain_text("no faces detected yet (python manage.py detect_faces)")
    jobs = {job.kind: job for job in Job.objects.all()}
    assert all(job.state == JobState.SUCCEEDED for job in jobs.values()), [j.error for j in jobs.values()]
    assert jobs["train_round"].created_by.username == "curator" and jobs["train_round"].result["activated"]
    version = ModelVersion.objects.get(is_active=True)
    assert version.number == 1 and jobs["cluster"].result["run"] == ClusteringRun.objects.get().pk
    assert ClusteringRun.objects.get().model_version == version
    page.goto("/map/")
    expect(page.locator("#map-version")).to_have_value("1")
    run = ClusteringRun.objects.get()
    expect(page.locator("#map-status")).to_have_text(
        f"{Artwork.objects.count()} artworks · clusters of run {run.pk}"
    )


def test_a_round_that_does_not_pass_the_gate_ends_the_chain(page, demo_collection, celery_worker_process):  # noqa: F811
    start_a_round(page, round_zero="perfect")  # no model beats it: the new version is not promoted
    page.wait_for_function(FINISHED, timeout=240_000)
    expect(page.locator("#job [data-field=message]")).to_contain_text("v0 stays active")
    expect(page.locator("#next-step")).to_be_hidden()
    job = Job.objects.get()
    assert job.kind == "train_round" and not job.result["activated"] and "next_job" not in job.result
    assert job.result["gate"] in {"candidate", "rejected"}
    assert ModelVersion.objects.get(is_active=True).number == 0 and not ClusteringRun.objects.exists()
    # The rounds page shows the decision and the interval of each difference it was made on.
    page.goto("/rounds/")
    row = page.locator("tr[data-version='1']")
    expect(row.locator("td.gate .tag")).to_have_text(job.result["gate"])
    expect(row.locator("td.gate")).to_contain_text("val Δ mAP")
    expect(row.locator("td.gate")).to_contain_text("synthetic Δ mAP")
    expect(row.locator("td.num").first).to_contain_text("[")


def test_an_annotator_cannot_start_a_round(page, collection):  # noqa: F811
    make_user("annotator")
    log_in(page, "annotator")
    page.goto("/rounds/")
    expect(page.get_by_role("button", name="Start round")).to_have_count(0)
    # With a valid CSRF token (the log-out form's), so the 403 is the role check, not a CSRF failure.
    status = page.evaluate(
        """async () => {
            const token = document.querySelector('input[name=csrfmiddlewaretoken]').value;
            const response = await fetch('/rounds/start', {method: 'POST', headers: {'X-CSRFToken': token}});
            return response.status;
        }"""
    )
    assert status == 403 and not Job.objects.exists()
    promote = page.evaluate(
        """async () => {
            const token = document.querySelector('input[name=csrfmiddlewaretoken]').value;
            return (await fetch('/review/undo', {method: 'POST', headers: {'X-CSRFToken': token}})).status;
        }"""
    )
    assert promote == 200  # the same token is accepted where an annotator may act (undo: nothing to undo)
