"""Review pages through Django's test client: roles, CSRF, decisions, undo, exports, search, queries."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse
from PIL import Image

from annotations.models import Connection, ConnectionDecision, Retraction
from clustering.algorithms import ClusteringParams
from clustering.maps import compute_layout_for
from clustering.models import ClusteringRun, Proposal, ProposalStatus
from clustering.runs import run_clustering
from jobs.models import Job
from workbench.roles import CURATORS

from .test_clustering_runs import GROUPS, collection, pk, proposal_with, signatures  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(collection):  # noqa: F811 - the imported fixture
    return run_clustering(collection, ClusteringParams())


def client_for(username: str, curator: bool = False, **kwargs) -> tuple[Client, User]:
    user = User.objects.create_user(username)
    if curator:
        user.groups.add(Group.objects.get_or_create(name=CURATORS)[0])
    client = Client(**kwargs)
    client.force_login(user)
    return client, user


def test_every_page_needs_a_login(run):
    proposal = run.proposals.first()
    anonymous = Client()
    for url in [
        reverse("review:queue"),
        reverse("review:review", args=[proposal.pk]),
        reverse("training:rounds"),
        reverse("clustering:map"),
        reverse("clustering:map_json", args=[0]),
        reverse("clustering:run_proposals_json", args=[run.pk]),
        reverse("review:decisions_json"),
        reverse("training:search"),
        reverse("training:neighbours", args=[pk(0)]),
    ]:
        response = anonymous.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"], url
    for url, data in [
        (reverse("review:decide", args=[proposal.pk]), {"action": "reject"}),
        (reverse("review:undo"), {}),
        (reverse("annotations:link", args=[pk(5)]), {"other": pk(6), "type": "NEGATIVE"}),
        (reverse("clustering:lasso"), {}),
    ]:
        response = anonymous.post(url, data)
        assert response.status_code == 302 and "/login/" in response["Location"], url
    assert not Connection.objects.filter(type="NEGATIVE").exists() and Proposal.objects.count() == 3


def test_annotators_review_but_only_curators_start_rounds_and_promote(run):
    annotator, _ = client_for("annotator")
    curator, _ = client_for("curator", curator=True)
    assert annotator.post(reverse("training:start_round")).status_code == 403
    assert annotator.post(reverse("clustering:start_clustering"), {"algorithm": "dbscan"}).status_code == 403
    assert annotator.post(reverse("training:promote", args=[0])).status_code == 403
    assert not Job.objects.exists()
    page = annotator.get(reverse("training:rounds")).content.decode()
    assert "Start round" not in page and "Promote" not in page  # no button that would only say "forbidden"
    assert "Start round" in curator.get(reverse("training:rounds")).content.decode()
    response = curator.post(reverse("training:start_round"), {"epochs": "2"})
    job = Job.objects.get()
    assert response.status_code == 302 and job.kind == "train_round" and job.params["epochs"] == 2
    assert [step["kind"] for step in job.params["then"]] == ["cluster", "compute_layout", "embed_faces"]
    assert curator.post(reverse("training:start_round"), {"epochs": "0"}).status_code == 302
    assert Job.objects.count() == 1  # refused with a message


def test_cluster_again_offers_and_passes_every_parameter(run):
    curator, _ = client_for("curator", curator=True)
    page = curator.get(reverse("training:rounds")).content.decode()
    for name in ("max_eps", "min_samples", "xi", "min_cluster_size", "pca", "verify_top"):
        assert f'name="{name}"' in page, name
    fields = {
        "algorithm": "optics",
        "max_eps": "0.2",
        "min_samples": "3",
        "xi": "",
        "pca": "8",
        "verify_top": "0",
    }
    assert curator.post(reverse("clustering:start_clustering"), fields).status_code == 302
    job = Job.objects.get(kind="cluster")
    assert job.params == {
        "model": "active",
        "algorithm": "optics",
        "max_eps": 0.2,
        "min_samples": 3,
        "pca": 8,
        "verify_top": 0,
    }
    assert curator.post(reverse("clustering:start_clustering"), {"pca": "1"}).status_code == 302
    assert curator.post(reverse("clustering:start_clustering"), {"min_samples": "two"}).status_code == 302
    assert Job.objects.filter(kind="cluster").count() == 1  # both refused with a message


def test_decisions_need_the_csrf_token(run):
    client, _ = client_for("historian", enforce_csrf_checks=True)
    proposal = proposal_with(GROUPS["G2"], run)
    response = client.post(reverse("review:decide", args=[proposal.pk]), {"action": "reject"})
    assert response.status_code == 403
    assert Proposal.objects.get(pk=proposal.pk).status == ProposalStatus.OPEN


def test_confirm_then_next_then_undo(run):
    client, user = client_for("historian")
    first = run.proposals.order_by("rank").first()
    members = list(first.members.values_list("artwork_id", flat=True))
    response = client.post(
        reverse("review:decide", args=[first.pk]), {"action": "confirm", "members": members}
    )
    second = run.proposals.filter(status=ProposalStatus.OPEN).order_by("rank").first()
    assert response.status_code == 302 and response["Location"] == reverse("review:review", args=[second.pk])
    created = ConnectionDecision.objects.filter(context__proposal=first.pk)
    assert created.count() >= 1 and all(d.user == user and d.type == "POSITIVE" for d in created)
    assert all(d.context["run"] == run.pk and d.context["model_version"] == 0 for d in created)
    before = Connection.objects.count()

    response = client.post(reverse("review:undo"))
    assert response["Location"] == reverse("review:review", args=[first.pk])
    assert Proposal.objects.get(pk=first.pk).status == ProposalStatus.OPEN
    assert Connection.objects.count() == before - created.count()
    assert Retraction.objects.count() == created.count()  # the history keeps the decisions, marked retracted
    exported = json.loads(client.get(reverse("review:decisions_json")).content)
    assert len(exported) == created.count() and all(d["retracted"] for d in exported)


def test_second_reviewer_is_told_what_changed(run):
    first_client, _ = client_for("first")
    second_client, _ = client_for("second")
    proposal = proposal_with(GROUPS["G2"], run)
    first_client.post(reverse("review:decide", args=[proposal.pk]), {"action": "reject"})
    response = second_client.post(
        reverse("review:decide", args=[proposal.pk]), {"action": "confirm"}, follow=True
    )
    text = response.content.decode()
    assert "first already decided this proposal: wrong cluster" in text and 'id="decided-notice"' in text
    assert not Connection.objects.filter(type="POSITIVE", latest__user__username="second").exists()


def test_queue_filters_and_counts(run):
    client, _ = client_for("historian")
    page = client.get(reverse("review:queue") + "?kind=extends").content.decode()
    assert (
        'Extends known <span class="count">2</span>' in page
        and 'New group <span class="count">1</span>' in page
    )
    assert page.count('class="strip"') == 2
    verification = run.metrics["verification"]
    assert f"{verification['verified']} of {verification['candidates']} candidate pairs verified" in page


def test_pages_use_a_bounded_number_of_queries(run, django_assert_max_num_queries):
    client, _ = client_for("historian")
    proposal = run.proposals.first()
    with django_assert_max_num_queries(14):
        assert client.get(reverse("review:queue")).status_code == 200
    with django_assert_max_num_queries(14):
        assert client.get(reverse("review:review", args=[proposal.pk])).status_code == 200


def test_map_data_and_lasso_proposal(run, collection):  # noqa: F811
    compute_layout_for(collection)
    client, _ = client_for("historian")
    data = json.loads(client.get(reverse("clustering:map_json", args=[0])).content)
    assert len(data["ids"]) == len(data["x"]) == len(data["cluster"]) == 20 and data["run"] == run.pk
    assert sorted(set(data["cluster"])) == [-1, 0, 1, 2]
    body = {"version": 0, "artworks": [pk(15), pk(16), pk(17)]}
    answer = json.loads(
        client.post(reverse("clustering:lasso"), json.dumps(body), content_type="application/json").content
    )
    lasso = Proposal.objects.get(pk=answer["proposal"])
    assert lasso.kind == "new_group" and lasso.run.algorithm == "manual" and lasso.size == 3
    known = {"version": 0, "artworks": [pk(0), pk(1)]}
    refused = client.post(reverse("clustering:lasso"), json.dumps(known), content_type="application/json")
    assert refused.status_code == 400 and "already decided" in refused.json()["error"]
    # The hand-made run is not "the latest run" of the queue.
    assert client.get(reverse("review:queue")).context["run"].pk == run.pk


def test_neighbours_panel_and_linking_from_it(run):
    client, user = client_for("historian")
    panel = client.get(reverse("training:neighbours", args=[pk(5)])).content.decode()
    # The twelve nearest by cosine similarity of the fixture's signatures, nearest first, itself left out.
    vectors = signatures(1)
    nearest = [i for i in np.argsort(-(vectors @ vectors[5]), kind="stable") if i != 5][:12]
    assert re.findall(r'<li data-id="(\d+)"', panel) == [str(pk(i)) for i in nearest]
    assert set(nearest[:2]) == {6, 7}, "its group G2 comes first"
    client.post(reverse("annotations:link", args=[pk(5)]), {"other": pk(6), "type": "DUPLICATE"})
    a, b = sorted([pk(5), pk(6)])
    connection = Connection.objects.get(artwork_a_id=a, artwork_b_id=b)
    assert (
        connection.type == "DUPLICATE"
        and connection.latest.user == user
        and connection.latest.source == "user"
    )
    assert (
        client.post(
            reverse("annotations:link", args=[pk(5)]), {"other": pk(5), "type": "POSITIVE"}
        ).status_code
        == 400
    )
    assert (
        client.post(reverse("annotations:link", args=[pk(5)]), {"other": pk(6), "type": "FRIEND"}).status_code
        == 400
    )


def test_search_by_artwork_side_by_side_and_upload_validation(run):
    client, _ = client_for("historian")
    page = client.get(reverse("training:search") + f"?artwork={pk(10)}&model=0&compare=0")
    assert len(page.context["columns"]) == 2
    assert page.context["columns"][0]["results"][0]["artwork"].pk in {pk(11), pk(12)}
    not_an_image = io.BytesIO(b"this is not an image")
    not_an_image.name = "notes.jpg"
    response = client.post(reverse("training:search") + "?model=0", {"image": not_an_image})
    assert "notes.jpg" in response.context["upload_error"] and not response.context["columns"]
    assert "Choose an image" in client.post(reverse("training:search"), {}).context["upload_error"]


def test_upload_search_finds_the_same_picture(collection, settings):  # noqa: F811
    """A real model version (round 0, EfficientNet-Lite0 at 64 px) so that an upload gets a signature."""
    from annotations.models import Artwork
    from training.models import ModelVersion
    from training.rounds import create_round_zero
    from training.trainer import TrainConfig

    ModelVersion.objects.all().delete()  # the hand-made signatures: replaced by a real round 0
    version = create_round_zero(TrainConfig(input_size=64, num_workers=0, extraction_batch_size=8))
    client, _ = client_for("historian")
    artwork = Artwork.objects.get(external_id="art-7")
    picture = io.BytesIO()
    Image.open(settings.DATA_DIR / artwork.image_relpath).convert("RGB").save(picture, "PNG")
    picture.seek(0)
    picture.name = "query.png"
    response = client.post(reverse("training:search") + f"?model={version.number}", {"image": picture})
    results = response.context["columns"][0]["results"]
    assert results[0]["artwork"].pk == artwork.pk and results[0]["score"] > 0.99


def test_undo_never_redirects_to_another_site(run):
    client, _ = client_for("historian")
    response = client.post(reverse("review:undo"), {"back": "https://evil.example/phish"})
    assert response.status_code == 302 and response["Location"] == reverse("review:queue")
    response = client.post(reverse("review:undo"), {"back": "/review/?kind=extends"})
    assert response["Location"] == "/review/?kind=extends"


def test_undo_is_refused_once_someone_else_decided_about_the_same_artworks(run):
    first, first_user = client_for("first")
    second, _ = client_for("second")
    g1 = proposal_with(GROUPS["G1"], run)
    members = list(g1.members.values_list("artwork_id", flat=True))
    first.post(reverse("review:decide", args=[g1.pk]), {"action": "confirm", "members": members})
    # The second historian states one of the same links on the artwork page: it is recorded although the
    # pair is POSITIVE already, so it is theirs too.
    second.post(reverse("annotations:link", args=[pk(3)]), {"other": pk(0), "type": "POSITIVE"})
    a, b = sorted([pk(0), pk(3)])
    assert ConnectionDecision.objects.filter(artwork_a_id=a, artwork_b_id=b, user__username="second").exists()
    response = first.post(reverse("review:undo"), follow=True)
    assert "Someone has decided about these artworks since" in response.content.decode()
    assert Proposal.objects.get(pk=g1.pk).status == ProposalStatus.CONFIRMED
    assert Connection.objects.get(artwork_a_id=a, artwork_b_id=b).type == "POSITIVE"
    assert not Retraction.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b"null",
        b'{"version": 0, "artworks": "1234"}',
        b'{"version": 0, "artworks": [1.5, 2]}',
        b'{"version": true, "artworks": [1, 2]}',
        b'{"version": 7, "artworks": [1, 2]}',
    ],
)
def test_lasso_refuses_malformed_requests(run, body):
    client, _ = client_for("historian")
    response = client.post(reverse("clustering:lasso"), body, content_type="application/json")
    assert response.status_code == 400 and "error" in response.json()
    assert ClusteringRun.objects.count() == 1
