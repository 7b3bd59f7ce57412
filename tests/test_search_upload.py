"""A search upload is decoded once, at reduced size where the format allows, and a damaged one is refused
(issue 10.3 and 10.11): a 64-megapixel PNG of 200 KB used to be decoded twice at full size in the web
process, holding the request for about 20 s."""

from __future__ import annotations

import io

import pytest
from django.urls import reverse
from PIL import Image, ImageFile

from training.models import ModelVersion
from training.rounds import create_round_zero
from training.trainer import TrainConfig

from .test_clustering_runs import collection  # noqa: F401 - fixture
from .test_import_corrupt_jpeg import photograph_like_jpeg, zeroed_block
from .test_review_views import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def version(collection):  # noqa: F811 - the imported fixture
    ModelVersion.objects.all().delete()  # the hand-made signatures: replaced by a real round 0
    return create_round_zero(TrainConfig(input_size=64, num_workers=0, extraction_batch_size=8))


@pytest.fixture
def decodes(monkeypatch) -> list[tuple[int, int]]:
    """The size of every image decoded in this process while the test runs."""
    sizes: list[tuple[int, int]] = []
    real_load = ImageFile.ImageFile.load

    def counting_load(self):
        if self.tile:  # something left to decode (load() on a decoded image does nothing)
            sizes.append(self.size)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counting_load)
    return sizes


def upload(data: bytes, name: str) -> io.BytesIO:
    handle = io.BytesIO(data)
    handle.name = name
    return handle


def search_with(version, data: bytes, name: str):
    client, _ = client_for("historian")
    return client.post(reverse("training:search") + f"?model={version.number}", {"image": upload(data, name)})


def test_huge_png_is_decoded_once(version, decodes):
    picture = io.BytesIO()
    Image.new("RGB", (8000, 8000), (120, 30, 200)).save(picture, "PNG")
    assert len(picture.getvalue()) < 300_000  # small file, 64 megapixels
    response = search_with(version, picture.getvalue(), "huge.png")
    assert response.status_code == 200 and response.context["columns"][0]["results"]
    assert decodes.count((8000, 8000)) == 1, decodes
    assert all(w * h <= 1024 * 1024 for w, h in decodes if (w, h) != (8000, 8000)), decodes


def test_large_jpeg_is_decoded_at_reduced_size(version, decodes):
    picture = io.BytesIO()
    Image.new("RGB", (6000, 4000), (20, 130, 90)).save(picture, "JPEG")
    response = search_with(version, picture.getvalue(), "large.jpg")
    assert response.status_code == 200 and response.context["columns"][0]["results"]
    assert decodes and max(w * h for w, h in decodes) <= 1500 * 1000, decodes  # libjpeg at 1/4 scale


def test_damaged_jpeg_upload_is_refused(version):
    response = search_with(version, zeroed_block(photograph_like_jpeg()), "damaged.jpg")
    assert "damaged.jpg" in response.context["upload_error"]
    assert "JPEG data is damaged" in response.context["upload_error"]
    assert not response.context["columns"]


def test_upload_over_the_pixel_limit_is_refused_before_decoding(version, decodes, settings):
    settings.MAX_IMAGE_PIXELS = 1_000_000
    picture = io.BytesIO()
    Image.new("RGB", (2000, 1000)).save(picture, "PNG")
    response = search_with(version, picture.getvalue(), "wide.png")
    assert "over the limit of 1,000,000" in response.context["upload_error"]
    assert decodes == []


def test_upload_over_the_size_limit_is_refused_unread(version, decodes, settings):
    settings.MAX_IMAGE_BYTES = 100_000
    noise = Image.frombytes("RGB", (300, 300), bytes(range(256)) * 1055)
    picture = io.BytesIO()
    noise.save(picture, "PNG", compress_level=0)
    size = len(picture.getvalue())
    assert size > 100_000
    response = search_with(version, picture.getvalue(), "noisy.png")
    assert response.context["upload_error"] == (
        f"noisy.png is {size:,} bytes, over the limit of 100,000 bytes for a search."
    )
    assert decodes == [] and not response.context["columns"]


def test_search_upload_limit_is_the_smaller_of_the_import_and_search_limits(version, settings):
    from training.views import MAX_SEARCH_UPLOAD_BYTES, upload_problem

    class Upload:
        name, size = "big.jpg", MAX_SEARCH_UPLOAD_BYTES + 1

    settings.MAX_IMAGE_BYTES = 10 * MAX_SEARCH_UPLOAD_BYTES
    assert f"over the limit of {MAX_SEARCH_UPLOAD_BYTES:,} bytes" in upload_problem(Upload())
    Upload.size = MAX_SEARCH_UPLOAD_BYTES
    assert upload_problem(Upload()) is None


@pytest.mark.parametrize(
    "data, name, message",
    [
        (b"id,title\nart-1,Judith\n", "list.jpg", "not an image"),
        (b"", "empty.png", "not an image"),
        (None, "scan.ppm", "unsupported image format PPM; use JPEG, PNG, TIFF, WebP, GIF or BMP"),
    ],
)
def test_upload_of_another_type_is_refused(version, data, name, message):
    if data is None:
        picture = io.BytesIO()
        Image.new("RGB", (64, 64), (200, 10, 10)).save(picture, "PPM")
        data = picture.getvalue()
    response = search_with(version, data, name)
    assert response.status_code == 200
    assert (
        response.context["upload_error"].startswith(f"{name}: ")
        and message in response.context["upload_error"]
    )
    assert not response.context["columns"]
