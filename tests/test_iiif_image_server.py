"""A real IIIF image server (issue 15): Debian's IIPImage behind lighttpd, configured as in docker compose
(tests/iip_server.py). The workbench writes the pyramids it serves and points its manifests there (deep
zoom); and imports read manifests built with IIIF's own libraries (iiif-prezi3 for 3.0, iiif-prezi's
ManifestFactory for 2.1), each canvas made from the server's info.json, with the images from the server."""

from __future__ import annotations

import io
import json
import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import iiif_prezi3
import numpy as np
import pytest
from django.core.management import call_command
from iiif_prezi.factory import ManifestFactory
from PIL import Image, ImageOps

from annotations.iiif_import import download_folder, import_iiif
from annotations.iiif_source import Fetcher
from annotations.importer import ImportFailed, import_collection
from annotations.models import Artwork
from annotations.pyramids import pyramid_name, write_pyramid
from jobs.models import Job
from workbench import paths

from .conftest import draw_picture, import_large_collection
from .iip_server import ImageServer
from .test_iiif_out import validate_with_iiif_prezi3

FAST = {"timeout_s": 10.0, "retries": 1, "backoff_s": 0.0}


@pytest.fixture
def image_server(tmp_path):
    server = ImageServer(tmp_path / "iip")
    yield server
    server.close()


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def fetch_image(url: str) -> Image.Image:
    image = Image.open(io.BytesIO(fetch(url)))
    image.load()
    return image


def difference(a: Image.Image, b: Image.Image, side: int | None = None) -> float:
    """Mean absolute difference per channel, 0-255. With `side`, both are first averaged down to that
    width (the servers' and Pillow's resampling differ on fine stripes; the averages do not)."""
    if side:
        size = (side, round(side * a.height / a.width))
        a, b = a.convert("RGB").resize(size, Image.BOX), b.convert("RGB").resize(size, Image.BOX)
    pixels_a = np.asarray(a.convert("RGB"), float)
    pixels_b = np.asarray(b.convert("RGB").resize(a.size, Image.BOX), float)
    return float(np.abs(pixels_a - pixels_b).mean())


def picture_file(folder: Path, name: str, seed: int, size: tuple[int, int], orientation: int = 1) -> Path:
    path = folder / name
    draw_picture(path, seed=seed, size=size)
    if orientation != 1:
        exif = Image.Exif()
        exif[0x0112] = orientation  # EXIF Orientation: how a viewer must turn the stored pixels
        with Image.open(path) as image:
            image.save(path, "JPEG", exif=exif, quality=95)
    return path


def test_a_pyramid_is_tiled_upright_and_served_with_deep_zoom(tmp_path, image_server):
    source = picture_file(tmp_path, "turned.jpg", seed=3, size=(1200, 800), orientation=6)
    write_pyramid(source, image_server.pyramids / "p.tif")
    assert [p.name for p in image_server.pyramids.iterdir()] == ["p.tif"]  # written whole, no leftovers
    info = json.loads(fetch(image_server.iiif + "p.tif/info.json"))
    assert info["@id"] == image_server.iiif + "p.tif" and info["protocol"] == "http://iiif.io/api/image"
    assert (info["width"], info["height"]) == (800, 1200)  # upright, as the EXIF orientation says
    (tiles,) = info["tiles"]
    assert tiles["width"] == 256 and max(tiles["scaleFactors"]) >= 4  # levels down to a quarter and below
    tile = fetch_image(image_server.iiif + "p.tif/256,512,256,256/full/0/default.jpg")
    assert tile.size == (256, 256)
    with Image.open(source) as original:
        upright = ImageOps.exif_transpose(original)
        assert difference(tile, upright.crop((256, 512, 512, 768))) < 6  # the full-resolution pixels
        whole = fetch_image(image_server.iiif + "p.tif/full/200,/0/default.jpg")
        assert whole.size == (200, 300) and difference(whole, upright, side=40) < 6


@pytest.mark.django_db(transaction=True)  # the job's monitor thread writes through its own connection
def test_the_workbench_points_its_manifests_at_the_image_server(data_dir, tmp_path, settings, client):
    from django.contrib.auth.models import User

    import_large_collection(tmp_path / "large", 3, (1000, 750))
    server = ImageServer(tmp_path / "iip", pyramids=paths.pyramids_folder())
    try:
        settings.IIIF_IMAGE_SERVER = server.iiif
        call_command("build_pyramids", stdout=io.StringIO(), stderr=io.StringIO())
        assert Job.objects.get(kind="build_pyramids").result["written"] == 3
        call_command("build_pyramids", stdout=io.StringIO(), stderr=io.StringIO())  # nothing new to do
        assert Job.objects.filter(kind="build_pyramids").latest("pk").result == {
            "summary": "0 pyramids written (0.0 MB), 3 already there",
            "written": 0,
            "kept": 3,
            "unreadable": 0,
        }
        client.force_login(User.objects.create_user("historian", password="pw"))
        first, second = Artwork.objects.order_by("pk")[:2]
        manifest = client.get(f"/iiif/artworks/{first.pk}/manifest.json").json()
        validate_with_iiif_prezi3(manifest)
        body = manifest["items"][0]["items"][0]["items"][0]["body"]
        (service,) = body["service"]
        assert service == {
            "@id": server.iiif + pyramid_name(first.image_sha256),
            "@type": "ImageService2",
            "profile": "http://iiif.io/api/image/2/level1.json",
        }
        assert (body["width"], body["height"]) == (first.width, first.height) == (1000, 750)
        info = json.loads(fetch(service["@id"] + "/info.json"))
        assert info["@id"] == service["@id"] and (info["width"], info["height"]) == (1000, 750)
        full = fetch_image(body["id"])
        assert full.size == (1000, 750)
        with Image.open(paths.absolute(first.image_relpath)) as stored:
            assert difference(full, stored) < 6
        # An artwork whose pyramid is gone keeps the workbench's own level-0 service: never a broken canvas.
        (paths.pyramids_folder() / pyramid_name(second.image_sha256)).unlink()
        fallback = client.get(f"/iiif/artworks/{second.pk}/manifest.json").json()
        validate_with_iiif_prezi3(fallback)
        (own,) = fallback["items"][0]["items"][0]["items"][0]["body"]["service"]
        assert own["type"] == "ImageService3" and own["id"].endswith(f"/iiif/images/{second.pk}")
        settings.IIIF_IMAGE_SERVER = ""  # no server configured: level 0 throughout
        (own,) = client.get(f"/iiif/artworks/{first.pk}/manifest.json").json()["items"][0]["items"][0][
            "items"
        ][0]["body"]["service"]
        assert own["type"] == "ImageService3"
    finally:
        server.close()


def manifest21(server: ImageServer, name: str, image: str, label: str) -> str:
    """A 2.1 manifest written with iiif-prezi's ManifestFactory, its canvas sized from info.json."""
    factory = ManifestFactory()
    factory.set_base_prezi_uri(f"{server.base}/{name}/")
    factory.set_base_image_uri(server.iiif)
    factory.set_iiif_image_info(2.0, 1)
    factory.set_debug("error")
    manifest = factory.manifest(ident=f"{server.base}/{name}", label=label)
    manifest.set_metadata({"Date": "1500-06-01"})
    manifest.attribution = "The Met"
    canvas = manifest.sequence().canvas(ident="c1", label=f"canvas {image}")
    picture = canvas.annotation(ident="a1").image(image, iiif=True)
    picture.set_hw_from_iiif()
    canvas.set_hw(picture.height, picture.width)
    (server.documents / name).write_text(manifest.toString(compact=False))
    return f"{server.base}/{name}"


@pytest.mark.django_db(transaction=True)
def test_importing_a_collection_whose_images_come_from_the_image_server(data_dir, tmp_path, image_server):
    for seed, image in enumerate(("a.tif", "b.tif", "c.tif")):
        write_pyramid(picture_file(tmp_path, f"{seed}.jpg", seed, (900, 600)), image_server.pyramids / image)
    first = image_server.manifest3("m3.json", ["a.tif", "b.tif"], "A 3.0 manifest")
    second = manifest21(image_server, "m2.json", "c.tif", "A 2.1 manifest")
    collection = iiif_prezi3.Collection(
        id=f"{image_server.base}/collection.json",
        label={"en": ["Both"]},
        items=[
            iiif_prezi3.ManifestRef(id=first, type="Manifest", label={"en": ["3.0"]}),
            iiif_prezi3.ManifestRef(id=second, type="Manifest", label={"en": ["2.1"]}),
        ],
    )
    (image_server.documents / "collection.json").write_text(collection.json())
    import_iiif(f"{image_server.base}/collection.json", "From IIPImage", size=450, fetcher=Fetcher(**FAST))
    artworks = {a.title: a for a in Artwork.objects.filter(collection__name="From IIPImage")}
    # A manifest of one canvas names the artwork by its own label.
    assert sorted(artworks) == ["A 2.1 manifest", "canvas a.tif", "canvas b.tif"]
    a, c = artworks["canvas a.tif"], artworks["A 2.1 manifest"]
    # Fetched from each canvas's service, confined to 450 px.
    assert {(x.width, x.height) for x in artworks.values()} == {(450, 300)}
    assert a.iiif_url == image_server.iiif + "a.tif" and c.iiif_url == image_server.iiif + "c.tif"
    assert a.author == "Titian" and a.date_text == "1540-01-01" and a.extra["attribution"].endswith("Cini")
    assert a.extra["rights"].startswith("http://creativecommons.org/") and a.extra["iiif_manifest"] == first
    # Without a navDate, the 2.1 manifest's "Date" pair is the date.
    assert c.date_text == "1500-06-01" and c.extra["attribution"] == "The Met" and "iiif_date" not in c.extra
    asked = "/iiif/c.tif/full/!450,450/0/default.jpg"
    assert asked in image_server.requested(expected=asked)
    with Image.open(paths.absolute(a.image_relpath)) as stored:
        assert difference(stored, Image.open(tmp_path / "0.jpg"), side=40) < 6  # the picture itself, scaled


@pytest.mark.django_db(transaction=True)
def test_an_image_gone_from_the_server_half_way_writes_nothing_and_the_next_try_resumes(
    data_dir, tmp_path, image_server
):
    names = [f"{i}.tif" for i in range(4)]
    for seed, name in enumerate(names):
        write_pyramid(picture_file(tmp_path, f"{seed}.jpg", seed, (640, 480)), image_server.pyramids / name)
    url = image_server.manifest3("m3.json", names, "Four")
    shutil.move(image_server.pyramids / "2.tif", tmp_path / "2.tif")  # the server answers 404 for it now
    with pytest.raises(ImportFailed) as failed:
        import_iiif(url, "Four", fetcher=Fetcher(**FAST))
    assert "canvas/2.tif" in failed.value.report() and "HTTP 404" in failed.value.report()
    assert Artwork.objects.count() == 0  # all or nothing
    assert len(list((download_folder(url, 1600) / "images").iterdir())) == 3  # kept for the next try
    shutil.move(tmp_path / "2.tif", image_server.pyramids / "2.tif")
    # The first try's last request: the image the manifest names, after the service failed.
    first_try = image_server.requested(expected="/iiif/2.tif/full/full/0/default.jpg")
    import_iiif(url, "Four", fetcher=Fetcher(**FAST))
    assert Artwork.objects.count() == 4
    asked = "/iiif/2.tif/full/!640,640/0/default.jpg"
    images_asked = [p for p in image_server.requested(asked, after=len(first_try)) if "/full/" in p]
    assert images_asked == [asked]  # only the image the first try lacked


@pytest.mark.django_db(transaction=True)
def test_a_malformed_manifest_on_the_server_is_a_clear_error(data_dir, image_server):
    (image_server.documents / "broken.json").write_text('{"@context": "http://iiif.io/api/presentation/3/')
    with pytest.raises(ImportFailed) as failed:
        import_iiif(f"{image_server.base}/broken.json", "Broken", fetcher=Fetcher(**FAST))
    assert f"{image_server.base}/broken.json: not JSON" in failed.value.report()
    with pytest.raises(ImportFailed) as failed:
        import_iiif(f"{image_server.base}/missing.json", "Missing", fetcher=Fetcher(**FAST))
    assert f"{image_server.base}/missing.json: HTTP 404" in failed.value.report()
    assert Artwork.objects.count() == 0


def test_the_image_server_refuses_what_is_not_a_pyramid(image_server):
    """Only the pyramids folder is served: a path out of it is refused (FILESYSTEM_PREFIX)."""
    for path in ("../documents/x.json/info.json", "%2E%2E%2Fetc%2Fpasswd/info.json", "nothing.tif/info.json"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            fetch(image_server.iiif + path)
        assert refused.value.code in (400, 403, 404), path


@pytest.mark.django_db
def test_an_unreadable_image_is_reported_and_the_others_get_their_pyramids(data_dir, source):
    from annotations.image_server import build_pyramids

    import_collection(source.images, source.metadata, None, "Source")
    broken = Artwork.objects.order_by("pk").first()
    paths.absolute(broken.image_relpath).write_bytes(b"\xff\xd8\xff not a JPEG any more")
    # A build killed mid-write left a partial file a day ago; another build is writing one right now.
    paths.pyramids_folder().mkdir(parents=True)
    abandoned = paths.pyramids_folder() / f".{pyramid_name('0' * 64)}.123.456.part"
    in_progress = paths.pyramids_folder() / f".{pyramid_name('1' * 64)}.789.456.part"
    abandoned.write_bytes(b"half a TIFF")
    in_progress.write_bytes(b"a TIFF being written")
    os.utime(abandoned, (time.time() - 86400, time.time() - 86400))
    lines: list[str] = []
    result = build_pyramids(log=lines.append)
    assert not abandoned.exists() and in_progress.exists() and "removed 1 partial pyramids" in lines[0]
    in_progress.unlink()
    images = Artwork.objects.values("image_sha256").distinct().count()
    assert result["unreadable"] == 1 and result["written"] == images - 1
    assert any(f"artwork {broken.pk} ({broken.external_id}): no pyramid" in line for line in lines)
    written = sorted(p.name for p in paths.pyramids_folder().iterdir())
    assert pyramid_name(broken.image_sha256) not in written and len(written) == images - 1  # no leftovers
