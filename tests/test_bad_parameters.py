"""Bad request parameters answer 400 with a message, never 500 (issue #10, item 5).

Unicode digits that `str.isdigit` accepts ("²"), numbers too long for `int()` or for a 64-bit column, JSON
that Python's parser refuses only by raising (huge integers, deep nesting) and NUL bytes, which PostgreSQL
cannot store or compare in text (refused on every backend, so these tests mean the same on SQLite).
"""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

from annotations.models import Artwork, Connection
from clustering.models import ClusteringRun
from jobs.models import Job
from workbench.roles import CURATORS

from .test_clustering_runs import collection, pk  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db

HUGE = "9" * 5000  # beyond Python's 4,300-digit limit for int() of a string
TOO_BIG = str(2**64)  # 20 digits: a Python int, not a 64-bit database integer


def client_for(username: str, curator: bool = False) -> Client:
    user = User.objects.create_user(username)
    if curator:
        user.groups.add(Group.objects.get_or_create(name=CURATORS)[0])
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


def refused(response, *words: str) -> str:
    """The 400 page's text, checked to say what was wrong."""
    text = response.content.decode()
    assert response.status_code == 400, (response.status_code, text[:300])
    for word in words:
        assert word in text, (word, text[:500])
    return text


# --- the parsing helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["²", "٣", "1.5", "-", "", " ", "1e3", "0x10", HUGE, "12\x00"])
def test_integer_refuses_what_is_not_ascii_digits(value):
    from workbench import params

    with pytest.raises(params.BadParameter, match="epochs"):
        params.integer(value, "epochs", low=1, high=200)


def test_integer_checks_the_range_and_says_it():
    from workbench import params

    assert params.integer(" 7 ", "epochs", low=1, high=200) == 7
    assert params.integer("-3", "offset", low=-5, high=5) == -3
    with pytest.raises(params.BadParameter, match="from 1 to 200"):
        params.integer("201", "epochs", low=1, high=200)
    with pytest.raises(params.BadParameter, match="from 1 to"):
        params.database_id(TOO_BIG, "artwork")
    assert params.database_id(str(2**63 - 1), "artwork") == 2**63 - 1
    with pytest.raises(params.BadParameter, match="artwork"):
        params.database_id(0, "artwork")
    with pytest.raises(params.BadParameter, match="artwork"):
        params.database_id(True, "artwork")  # JSON true is no id
    with pytest.raises(params.BadParameter, match="q"):
        params.text("a\x00b", "q")
    with pytest.raises(params.BadParameter, match="at most 5"):
        params.text("abcdef", "q", max_length=5)


# --- pages ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["²", HUGE, TOO_BIG, "-1"])
def test_search_refuses_an_artwork_that_is_no_id(collection, value):  # noqa: F811
    refused(client_for("anna").get(reverse("training:search"), {"artwork": value}), "artwork")


def test_search_still_finds_an_artwork(collection):  # noqa: F811
    response = client_for("anna").get(reverse("training:search"), {"artwork": pk(0)})
    assert response.status_code == 200 and response.context["artwork"].pk == pk(0)


@pytest.mark.parametrize("value", ["²", HUGE, TOO_BIG])
def test_link_refuses_another_artwork_that_is_no_id(collection, value):  # noqa: F811
    response = client_for("anna").post(
        reverse("annotations:link", args=[pk(5)]), {"other": value, "type": "NEGATIVE"}
    )
    refused(response, "other")
    assert not Connection.objects.filter(type="NEGATIVE").exists()


def test_start_round_refuses_unicode_digits():
    response = client_for("cora", curator=True).post(reverse("training:start_round"), {"epochs": "²"})
    refused(response, "epochs", "1 to 200")
    assert not Job.objects.exists()


def lasso(client: Client, body: bytes | str):
    return client.post(reverse("clustering:lasso"), body, content_type="application/json")


@pytest.mark.parametrize(
    "body",
    [
        lambda: {"version": 0, "artworks": [pk(5), int(TOO_BIG)]},  # OverflowError in the query
        lambda: {"version": 0, "artworks": [pk(5), 2**63]},
        lambda: {"version": int(TOO_BIG), "artworks": [pk(5), pk(6)]},
        lambda: f'{{"version": 0, "artworks": [{pk(5)}, {HUGE}]}}',  # json.loads: ValueError
        lambda: '{"version": 0, "artworks": ' + "[" * 100_000 + "]" * 100_000 + "}",  # RecursionError
    ],
    ids=["20 digits", "2**63", "version of 20 digits", "5000 digits", "deep nesting"],
)
def test_lasso_refuses_ids_out_of_range_with_json(collection, body):  # noqa: F811
    payload = body()
    response = lasso(client_for("anna"), payload if isinstance(payload, str) else json.dumps(payload))
    assert response.status_code == 400, response.content[:300]
    assert response["Content-Type"] == "application/json" and response.json()["error"]
    assert not ClusteringRun.objects.exists()


def test_lasso_still_makes_a_proposal(collection):  # noqa: F811
    response = lasso(client_for("anna"), json.dumps({"version": 0, "artworks": [pk(5), pk(6), pk(7)]}))
    assert response.status_code == 200 and "proposal" in response.json()


@pytest.mark.parametrize(
    "url",
    [
        "/search/?q=a%00b",
        "/collections/{collection}/?q=%00",
        "/jobs/?state=queued%00",
        "/jobs/?sta%00te=queued",
        "/?anything=%00",
    ],
)
def test_a_nul_byte_in_any_parameter_is_refused(collection, url):  # noqa: F811
    collection_id = Artwork.objects.values_list("collection_id", flat=True).first()
    response = client_for("anna").get(url.format(collection=collection_id))
    refused(response, "NUL")


def test_a_nul_byte_in_a_form_is_refused(collection):  # noqa: F811
    response = client_for("anna").post(
        reverse("annotations:link", args=[pk(5)]), {"other": pk(6), "type": "NEGATIVE\x00"}
    )
    refused(response, "NUL", "type")
    assert not Connection.objects.filter(type="NEGATIVE").exists()


def test_jobs_list_refuses_an_unknown_state():
    client = client_for("anna")
    refused(client.get(reverse("jobs:list"), {"state": "bogus"}), "state", "queued")
    assert client.get(reverse("jobs:list"), {"state": "failed"}).status_code == 200


def test_the_400_page_escapes_what_it_was_sent(collection):  # noqa: F811
    text = refused(client_for("anna").get(reverse("training:search"), {"artwork": "<b>x</b>"}), "artwork")
    assert "<b>x</b>" not in text and "&lt;b&gt;" in text


def test_a_json_client_gets_a_json_400():
    client = client_for("anna")
    response = client.get(reverse("jobs:list"), {"state": "bogus"}, HTTP_ACCEPT="application/json")
    assert response.status_code == 400 and "state" in response.json()["error"]
