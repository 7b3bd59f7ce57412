"""Damaged JPEGs are refused with file and line; Pillow alone decodes them grey from the damage down."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from PIL import Image, ImageFilter

from annotations.images import ImageProblem, decode
from annotations.importer import ImportFailed, import_collection

from .conftest import SourceCollection, database_state, files_under

pytestmark = pytest.mark.django_db


def photograph_like_jpeg(seed: int = 0, progressive: bool = False, mode: str = "RGB") -> bytes:
    """Noise blurred into texture: enough entropy-coded data for damage to land mid-scan."""
    rng = random.Random(seed)
    noise = Image.frombytes("RGB", (480, 360), bytes(rng.randrange(256) for _ in range(480 * 360 * 3)))
    picture = noise.filter(ImageFilter.GaussianBlur(2)).convert(mode)
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=90, progressive=progressive)
    return out.getvalue()


def zeroed_block(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes(1024) + data[middle + 1024 :]


def cut_and_closed(data: bytes) -> bytes:
    return data[: len(data) // 2] + b"\xff\xd9"


def chunk_dropped(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + data[middle + 4096 :]


DAMAGES = [zeroed_block, cut_and_closed, chunk_dropped]


def pillow_accepts(data: bytes) -> bool:
    image = Image.open(io.BytesIO(data))
    image.load()
    return True


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
def test_damaged_jpeg_is_refused_though_pillow_decodes_it(damage, progressive):
    damaged = damage(photograph_like_jpeg(progressive=progressive))
    assert pillow_accepts(damaged)  # what made the bug: Pillow fills the rest with grey and says nothing
    with pytest.raises(ImageProblem, match="corrupt or truncated image"):
        decode(damaged, max_pixels=10**8)


@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
def test_intact_jpegs_of_every_kind_pass(mode, progressive):
    image, ext = decode(photograph_like_jpeg(seed=3, progressive=progressive, mode=mode), max_pixels=10**8)
    assert (ext, image.size, image.mode) == ("jpg", (480, 360), mode)


def test_import_reports_the_damaged_file_with_its_line(source: SourceCollection, data_dir: Path):
    (source.images / "img" / "3.jpg").write_bytes(zeroed_block(photograph_like_jpeg(seed=5)))
    before_db, before_files = database_state(), files_under(data_dir)
    with pytest.raises(ImportFailed) as failure:
        import_collection(source.images, source.metadata, source.connections, "Test collection")
    assert database_state() == before_db
    assert files_under(data_dir) == before_files
    [problem] = failure.value.problems
    assert problem.file.endswith("metadata.csv") and problem.line == 5  # row of art-3, after the header
    assert "img/3.jpg" in problem.message and "JPEG data is damaged" in problem.message


def padded_before_frame(data: bytes) -> bytes:
    """Two fill bytes before the SOF marker: libjpeg warns "extraneous bytes", the picture is intact."""
    at = data.index(b"\xff\xc0")
    return data[:at] + b"\x00\x00" + data[at:]


def newer_jfif_version(data: bytes) -> bytes:
    at = data.index(b"JFIF\x00") + 5
    return data[:at] + b"\x02\x01" + data[at + 2 :]


@pytest.mark.parametrize("quirk", [padded_before_frame, newer_jfif_version], ids=lambda q: q.__name__)
def test_harmless_libjpeg_warnings_do_not_refuse_a_picture(quirk):
    """Strict about lost picture data only: these files decode to the very same pixels."""
    original = photograph_like_jpeg(seed=7)
    image, ext = decode(quirk(original), max_pixels=10**8)
    assert ext == "jpg" and image.tobytes() == Image.open(io.BytesIO(original)).tobytes()


def test_multi_picture_camera_jpeg_is_accepted():
    first = Image.open(io.BytesIO(photograph_like_jpeg(seed=8)))
    out = io.BytesIO()
    first.save(out, "MPO", save_all=True, append_images=[first.copy()])
    image, ext = decode(out.getvalue(), max_pixels=10**8)
    assert ext == "jpg" and image.size == (480, 360)
