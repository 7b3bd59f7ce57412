"""The web UI in headless Chromium (Debian's package, driven by Playwright)."""

from __future__ import annotations

import os

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect, sync_playwright

from annotations.importer import import_collection
from jobs.models import Job
from jobs.runner import enqueue

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "a-long-browser-password"


@pytest.fixture(scope="module")
def browser():
    # Playwright's sync API runs an event loop; Django must allow ORM calls from this thread.
    # Only for these tests: left set, it would leak into other tests' subprocesses.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def log_in(page, username: str) -> None:
    page.goto("/")
    assert "/login/" in page.url
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Dashboard")


def test_log_in_and_see_the_collection(page, source, data_dir):
    User.objects.create_user("historian", password=PASSWORD)
    import_collection(source.images, source.metadata, source.connections, "Browser collection")
    log_in(page, "historian")
    expect(page.get_by_role("link", name="Browser collection")).to_be_visible()
    page.get_by_role("link", name="Browser collection").click()
    thumbs = page.locator(".thumbgrid img")
    expect(thumbs).to_have_count(6)
    # Thumbnails really load (naturalWidth is 0 for a broken image).
    page.wait_for_function(
        "Array.from(document.querySelectorAll('.thumbgrid img')).every(i => i.complete && i.naturalWidth > 0)"
    )


def test_job_progress_moves_and_cancel_works(page, celery_worker_process):
    user = User.objects.create_user("curator", password=PASSWORD)
    log_in(page, "curator")
    job = enqueue("worker_check", {"steps": 400, "delay": 0.05}, user=user)
    page.goto(f"/jobs/{job.pk}/")
    progress = page.locator("#job progress")
    page.wait_for_function("document.querySelector('#job progress').value > 0.02")
    first = float(progress.evaluate("el => el.value"))
    page.wait_for_function(f"document.querySelector('#job progress').value > {first + 0.05}")
    expect(page.locator("#job [data-field=state]")).to_have_text("Running")
    expect(page.locator("#job [data-field=eta]")).not_to_have_text("–")
    page.get_by_role("button", name="Cancel job").click()
    expect(page.locator("#job [data-field=state]")).to_have_text("Cancelled", timeout=30_000)
    assert Job.objects.get(pk=job.pk).state == "cancelled"
    # The jobs list shows it with its final state.
    page.goto("/jobs/")
    expect(page.locator(f"tr[data-job-id='{job.pk}'] [data-field=state]")).to_have_text("Cancelled")
