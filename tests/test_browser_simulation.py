"""The simulated-review page in headless Chromium: the rounds table and the discovered-vs-reviewed plot,
following a running simulation as its rounds are recorded."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from review.models import SimulatedRound, Simulation

from .test_browser import PASSWORD, browser, log_in, page  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def record(simulation: Simulation, number: int, reviewed: int, found: int, hidden: int = 40) -> None:
    previous = simulation.round_records.order_by("-number").first()
    confirmed = reviewed // 2 + number
    figures = {
        "round": number,
        "reviewed_version": f"v{number - 1}",
        "reviewed_version_metrics": {"val": {"map": 0.5, "ci": {"map": [0.4, 0.6]}}},
        "proposals_shown": reviewed + 3,
        "proposals_reviewed": reviewed,
        "confirmed": confirmed,
        "share_confirmed": confirmed / reviewed,
        "true_links_gained": found - (previous.figures["discovered"] if previous else 0),
        "links_per_proposal": 1.0,
        "discovered": found,
        "hidden_total": hidden,
        "discovered_share": found / hidden,
        "images_added": 3,
        "wrong_links_accepted": 0,
        "wrong_negatives": 0,
        "trained_version": f"v{number}",
        "trained_version_metrics": {"val": {"map": 0.55, "ci": {"map": [0.45, 0.65]}}},
        "gate": "promoted",
        "seconds": {"review_s": 1, "train_s": 30, "signatures_s": 3, "validation_s": 2, "cluster_s": 1},
    }
    SimulatedRound.objects.create(
        simulation=simulation,
        number=number,
        reviewed_version=figures["reviewed_version"],
        proposals_shown=figures["proposals_shown"],
        proposals_reviewed=reviewed,
        reviewed_total=(previous.reviewed_total if previous else 0) + reviewed,
        confirmed=confirmed,
        share_confirmed=figures["share_confirmed"],
        true_links_gained=figures["true_links_gained"],
        links_per_proposal=1.0,
        discovered_share=figures["discovered_share"],
        wrong_links_accepted=0,
        figures=figures,
    )


def test_simulation_page_follows_its_rounds(page):  # noqa: F811
    User.objects.create_user("historian", password=PASSWORD)
    simulation = Simulation.objects.create(
        truth_file="/data/demo/ground_truth.csv",
        truth_sha256="0" * 64,
        policy="exact",
        rounds=3,
        per_round=10,
        start={
            "artworks": 100,
            "hidden": 40,
            "known_at_start": 20,
            "model_version": "v0",
            "true_pairs": 60,
            "true_pairs_in_collection": 60,
        },
    )
    record(simulation, 1, 10, 12)
    log_in(page, "historian")
    page.goto("/review/simulations/")
    page.get_by_role("link", name=str(simulation.pk), exact=True).click()
    expect(page.locator("#simulated-rounds tbody tr")).to_have_count(1)
    expect(page.locator("#discovery-plot circle.round-marker")).to_have_count(1)
    expect(page.locator('tr[data-round="1"] td.discovered')).to_contain_text("0.300")
    # A round recorded while the page is open: the page picks it up by itself.
    record(simulation, 2, 10, 30)
    expect(page.locator("#simulated-rounds tbody tr")).to_have_count(2, timeout=15_000)
    expect(page.locator("#discovery-plot circle.round-marker")).to_have_count(2)
    marker_y = page.locator("#discovery-plot circle.round-marker").evaluate_all(
        "circles => circles.map(c => Number(c.getAttribute('cy')))"
    )
    assert marker_y[1] < marker_y[0]  # more found: higher on the plot
