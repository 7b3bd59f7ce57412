"""A curator trains a label-supervised model from the rounds page, on a real worker, and finds it on the
rounds table and in search."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from jobs.models import Job, JobState
from training.models import ModelVersion

from .test_browser import browser, log_in, page  # noqa: F401 - fixtures
from .test_browser_review import FINISHED, make_user
from .test_training_label_rounds import labelled  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_curator_trains_a_multitask_model_from_the_rounds_page(page, labelled, celery_worker_process):  # noqa: F811
    make_user("curator", curator=True)
    log_in(page, "curator")
    page.goto("/rounds/")
    page.get_by_text("Train a label-supervised model").click()
    form = page.locator("#label-model-form")
    form.locator("select[name=method]").select_option("multitask-knn")
    form.locator("input[name=labels]").fill("style genre")
    form.locator("input[name=epochs]").fill("1")
    form.get_by_role("button", name="Train label model").click()
    assert "/jobs/" in page.url
    expect(page.locator("h1 small")).to_have_text("train_model")
    page.wait_for_function(FINISHED, timeout=240_000)
    expect(page.locator("#job [data-field=state]")).to_have_text("Succeeded")
    job = Job.objects.get(kind="train_model")
    assert job.state == JobState.SUCCEEDED and job.created_by.username == "curator"
    version = ModelVersion.objects.get(method="multitask-knn")
    assert version.config["labels"] == ["style", "genre"] and version.config["epochs"] == 1
    page.goto("/rounds/")
    row = page.locator(f"tr[data-version='{version.number}']")
    expect(row).to_contain_text("Multitask labels + kNN triplet")
    expect(row.locator("td.labels")).to_contain_text("style")
    expect(row.get_by_role("button", name="Promote")).to_have_count(0)  # it cannot feed the review loop
    page.goto(f"/search/?model={version.number}")
    expect(page.locator(f"select[name=model] option[value='{version.number}']")).to_have_count(1)
