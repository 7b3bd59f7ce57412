"""IIIF out (issue 15, item 2): an artwork, its known connections and a proposal as Presentation 3.0
manifests, and each image as a level-0 Image API 3.0 service that serves exactly the sizes it lists."""

from __future__ import annotations

import io

import pytest
from django.urls import reverse
from PIL import Image

from annotations.iiif import parse_size
from annotations.importer import import_collection
from annotations.models import Artwork
from clustering.models import ClusteringRun, Proposal, ProposalMember
from training.models import ModelVersion

pytestmark = pytest.mark.django_db


@pytest.fixture
def historian(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("historian", password="pw"))
    return client


@pytest.fixture
def imported(data_dir, source):
    import_collection(source.images, source.metadata, source.connections, "Source")
    return {artwork.external_id: artwork for artwork in Artwork.objects.all()}


def validate_with_iiif_prezi3(data: dict) -> None:
    """The manifest against IIIF's own Presentation 3.0 model (iiif-prezi3: pydantic classes generated from
    the specification's JSON schema), which raises on a wrongly typed or shaped property. It is lenient
    about what is missing (a canvas without an id passes), hence `check_manifest`'s own checks besides."""
    import iiif_prezi3

    iiif_prezi3.Manifest(**data)


def test_the_iiif_model_rejects_a_broken_manifest():
    """The validator is not vacuous: a canvas's width must be a number, a 2.x service must say its type."""
    import pydantic

    canvas = {"id": "http://x/c", "type": "Canvas", "width": "wide", "height": 10}
    with pytest.raises(pydantic.ValidationError, match="width"):
        validate_with_iiif_prezi3({"id": "http://x/m", "type": "Manifest", "label": {}, "items": [canvas]})
    service = {"@id": "http://x/s", "profile": "http://iiif.io/api/image/2/level1.json"}
    body = {"id": "http://x/i.jpg", "type": "Image", "service": [service]}
    annotation = {"id": "http://x/a", "type": "Annotation", "motivation": "painting", "target": "http://x/c"}
    page = {"id": "http://x/p", "type": "AnnotationPage", "items": [{**annotation, "body": body}]}
    canvas = {"id": "http://x/c", "type": "Canvas", "width": 10, "height": 10, "items": [page]}
    with pytest.raises(pydantic.ValidationError):
        validate_with_iiif_prezi3({"id": "http://x/m", "type": "Manifest", "label": {}, "items": [canvas]})


def check_manifest(data: dict, artworks: list[Artwork], client) -> None:
    """What Presentation 3.0 requires of a manifest and its canvases (IIIF's model and our own checks),
    and that every image it names is served at the size it states."""
    validate_with_iiif_prezi3(data)
    assert data["@context"] == "http://iiif.io/api/presentation/3/context.json"
    assert data["type"] == "Manifest" and data["id"].startswith("http://testserver/iiif/")
    assert set(data["label"]) == {"none"} and data["label"]["none"][0]
    assert [canvas["label"]["none"][0] for canvas in data["items"]] == [a.title for a in artworks]
    for canvas, artwork in zip(data["items"], artworks, strict=True):
        assert canvas["type"] == "Canvas" and (canvas["width"], canvas["height"]) == (
            artwork.width,
            artwork.height,
        )
        (page,) = canvas["items"]
        (painting,) = page["items"]
        assert page["type"] == "AnnotationPage" and painting["motivation"] == "painting"
        assert painting["target"] == canvas["id"]
        body = painting["body"]
        assert body["type"] == "Image" and body["format"] == "image/jpeg"
        assert body["service"][0]["type"] == "ImageService3" and body["service"][0]["profile"] == "level0"
        served = client.get(body["id"].removeprefix("http://testserver"))
        assert served.status_code == 200 and served["Content-Type"] == "image/jpeg"
        with Image.open(io.BytesIO(b"".join(served.streaming_content))) as image:
            assert image.size == (body["width"], body["height"])
        assert canvas["homepage"][0]["id"].endswith(f"/artworks/{artwork.pk}/")
        assert {"label": {"none": ["Id"]}, "value": {"none": [artwork.external_id]}} in canvas["metadata"]


def test_an_artwork_as_a_manifest_with_a_level0_image_service(historian, imported):
    artwork = imported["art-0"]
    response = historian.get(f"/iiif/artworks/{artwork.pk}/manifest.json")
    assert response.status_code == 200 and "presentation/3/context.json" in response["Content-Type"]
    check_manifest(response.json(), [artwork], historian)

    service = f"/iiif/images/{artwork.pk}"
    assert historian.get(service).url.endswith(f"{service}/info.json")  # the base URI redirects
    info = historian.get(f"{service}/info.json").json()
    assert info["type"] == "ImageService3" and info["profile"] == "level0"
    assert info["id"] == f"http://testserver{service}" and (info["width"], info["height"]) == (120, 90)
    sizes = [(size["width"], size["height"]) for size in info["sizes"]]
    assert sizes == sorted(sizes) and sizes[-1] == (120, 90)  # the thumbnails: never larger than the image
    for width, height in sizes:
        for request in (f"{width},", f"{width},{height}", f",{height}", f"!{width},{height}"):
            assert historian.get(f"{service}/full/{request}/0/default.jpg").status_code == 200, request
    assert historian.get(f"{service}/full/max/0/default.jpg").status_code == 200
    # Level 0 serves what it lists and answers everything else with 400, saying what it serves.
    for bad in ("full/77,/0/default.jpg", "0,0,10,10/max/0/default.jpg", "full/max/90/default.jpg",
                "full/max/0/gray.jpg", "full/max/0/default.png", "full/pct:50/0/default.jpg"):  # fmt: skip
        answer = historian.get(f"{service}/{bad}")
        assert answer.status_code == 400, bad
    assert "sizes served are" in historian.get(f"{service}/full/77,/0/default.jpg").content.decode()
    assert historian.get("/iiif/images/999999/info.json").status_code == 404
    historian.logout()
    assert historian.get(f"{service}/info.json").status_code == 302  # private collections stay private


def test_a_group_of_connected_artworks_and_a_proposal_side_by_side(historian, imported):
    # art-0 — art-1 — art-2 are linked (POSITIVE), art-3 — art-4 are duplicates, art-5 is rejected with art-0.
    response = historian.get(f"/iiif/artworks/{imported['art-1'].pk}/component.json")
    check_manifest(response.json(), [imported[f"art-{i}"] for i in (0, 1, 2)], historian)
    alone = historian.get(f"/iiif/artworks/{imported['art-5'].pk}/component.json").json()
    assert len(alone["items"]) == 1

    proposal = hand_made_proposal([imported["art-4"], imported["art-2"]])
    data = historian.get(f"/iiif/proposals/{proposal.pk}/manifest.json").json()
    check_manifest(data, [imported["art-4"], imported["art-2"]], historian)
    assert "confidence 0.80" in data["summary"]["none"][0]
    assert historian.get("/iiif/proposals/999999/manifest.json").status_code == 404
    review_page = historian.get(reverse("review:review", args=[proposal.pk])).content.decode()
    assert f'href="/iiif/proposals/{proposal.pk}/manifest.json"' in review_page


def hand_made_proposal(members: list[Artwork]) -> Proposal:
    """A proposal of `members`, strongest first, in a run of a version that has no signatures."""
    version = ModelVersion.objects.create(
        number=1,
        backbone="tf_efficientnet_lite0",
        weights_kind="random",
        weights_description="test",
        signature_dim=32,
    )
    run = ClusteringRun.objects.create(model_version=version, algorithm="optics")
    size = len(members)
    proposal = Proposal.objects.create(
        run=run, label=0, kind="new_group", size=size, confidence=0.8, new_links=size - 1,
        new_pairs=size * (size - 1) // 2, review_value=1.0, rank=1,
    )  # fmt: skip
    for position, artwork in enumerate(members):
        ProposalMember.objects.create(
            proposal=proposal, artwork=artwork, strength=1 - position / 10, position=position
        )
    return proposal


def test_size_requests_of_level_0():
    sizes = [(64, 48), (120, 90)]
    assert parse_size("max", sizes) == (120, 90)
    assert parse_size("64,", sizes) == (64, 48) and parse_size(",90", sizes) == (120, 90)
    assert parse_size("!100,100", sizes) is None  # confined to 100×100: no listed size touches it
    assert parse_size("!120,200", sizes) == (120, 90)
    for bad in ("65,", "64,49", "abc", "1,2,3", ",", "", "pct:50", "^max"):
        assert parse_size(bad, sizes) is None, bad
    assert parse_size("max", []) is None


def test_the_pages_link_their_manifests(historian, imported):
    artwork = imported["art-0"]
    page = historian.get(f"/artworks/{artwork.pk}/").content.decode()
    for url in ("manifest.json", "component.json"):
        assert f'href="/iiif/artworks/{artwork.pk}/{url}"' in page
    assert f'href="/iiif/images/{artwork.pk}/info.json"' in page


def test_the_viewer_page_takes_manifests_from_here_or_http_and_refuses_others(historian, imported):
    manifest = f"/iiif/artworks/{imported['art-0'].pk}/manifest.json"
    page = historian.get("/iiif/viewer/", {"manifest": [manifest, "https://museum.example/m.json"]})
    assert page.status_code == 200 and page.context["installed"]  # bin/fetch_mirador.sh ran at set-up
    assert "vendor/mirador-4.0.0/mirador.min.js" in page.content.decode()
    for bad in ([], ["//evil.example/m.json"], ["javascript:alert(1)"], ["relative.json"], [manifest] * 13):
        assert historian.get("/iiif/viewer/", {"manifest": bad}).status_code == 400, bad
