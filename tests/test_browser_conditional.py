"""A curator trains a backward-search model from the rounds page on a real worker (its student follows as a
job); a historian then asks, from an artwork's page, for artworks like it but of another style."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from annotations.models import Artwork
from jobs.models import Job, JobState
from training.models import ModelVersion

from .conftest import wait_until
from .test_browser import browser, log_in, page  # noqa: F401 - fixtures
from .test_browser_review import FINISHED, make_user
from .test_training_label_rounds import labelled  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_like_this_one_but_gothic_from_the_artwork_page(
    browser,  # noqa: F811
    live_server,
    page,  # noqa: F811
    labelled,  # noqa: F811
    celery_worker_process,
):
    make_user("curator", curator=True)
    make_user("historian")
    log_in(page, "curator")
    page.goto("/rounds/")
    page.get_by_text("Train a label-supervised model").click()
    form = page.locator("#label-model-form")
    form.locator("select[name=method]").select_option("backward-search")
    form.locator("input[name=epochs]").fill("2")
    form.get_by_role("button", name="Train label model").click()
    page.wait_for_function(FINISHED, timeout=240_000)
    expect(page.locator("#job [data-field=state]")).to_have_text("Succeeded")
    version = ModelVersion.objects.get(method="backward-search")
    wait_until(
        lambda: Job.objects.filter(kind="train_student", state=JobState.SUCCEEDED).exists(),
        timeout=180,
        message="the student's job",
    )
    # The historian gets a browser of their own: clearing the curator's cookies raced the rounds page's job
    # poller, whose late answer set the curator's CSRF cookie back under the fresh login form (a 403 in CI).
    page.context.close()
    historian_context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    page = historian_context.new_page()
    page.set_default_timeout(20_000)
    log_in(page, "historian")

    query = Artwork.objects.filter(style="Baroque").order_by("pk").first()
    page.goto(f"/artworks/{query.pk}/")
    conditional = page.get_by_test_id("conditional-form")
    expect(conditional).to_be_visible(timeout=30_000)
    conditional.locator("select[data-task=style]").select_option("style=Gothic")
    conditional.get_by_role("button", name="Search").click()
    expect(page.locator("h1")).to_have_text("Like this one, but …")
    expect(page.get_by_test_id("conditional-how")).to_contain_text("style = Gothic")
    expect(page.get_by_test_id("conditional-how")).to_contain_text("optimisation, λ 1.1")
    hits = page.get_by_test_id("conditional-hits").locator("li")
    expect(hits).to_have_count(24)
    expect(hits.first).to_contain_text("kept")
    expect(page.get_by_test_id("plain-hits").locator("li")).to_have_count(24)
    assert f"/artworks/{query.pk}/" not in [
        hits.nth(i).locator("a").first.get_attribute("href") for i in range(24)
    ]  # never the query itself

    # The same with the student, which its job registered with the model.
    again = page.get_by_test_id("conditional-form")
    expect(again.locator("select[data-task=style]")).to_have_value("style=Gothic")
    again.locator("input[value=student]").check()
    again.get_by_role("button", name="Search").click()
    expect(page.get_by_test_id("conditional-how")).to_contain_text("distilled student")
    assert version.number == ModelVersion.objects.get(method="backward-search").number

    # A class the model does not know: a clear message, the form kept.
    page.goto(f"/conditional/?artwork={query.pk}&condition=style=Cubism")
    expect(page.get_by_test_id("conditional-error")).to_contain_text("knows no style 'Cubism'")
    expect(page.get_by_test_id("conditional-form")).to_be_visible()
    historian_context.close()
