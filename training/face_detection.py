"""Faces in the collection: the `detect_faces` job (MTCNN over the artworks' images, stored as rows) and the
`embed_faces` job (the chosen faces' crops embedded into a face index per model version).

Detection (methods.md §5): MTCNN at the paper's thresholds 0.4/0.4/0.4 with a small minimum face size. Every
face is stored (box, probability, five landmarks, in the original image's pixels) with the settings that
found it (`FaceScan`); an artwork already scanned with the same settings and the same image content is not
scanned again, so re-running the job on an unchanged collection does nothing. Images are decoded at most
`max_side` pixels a side (JPEG draft mode) and the detector bounds its own memory (crops in fixed batches,
at most `max_faces` faces), so one huge painting or a crowd of tiny faces cannot exhaust a worker.

The face index of a version holds the signatures of face crops (`training.faces.crop_box`), computed by the
version's own embedder, so whole-image and face scores live in the same space; rows are `Face` ids. It is
updated incrementally: faces already embedded under the same choice are kept.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings as django_settings
from django.db import transaction
from django.db.models import Count, F, Max
from PIL import Image

from annotations.images import ImageProblem, decoded, read_limited, upright
from annotations.models import Artwork
from annotations.storage import atomic_write_bytes, exclusive_lock
from jobs.progress import JobRefused, ProgressCallback, no_progress
from workbench import paths

from . import faces as face_rules
from . import signature_store
from .models import Face, FaceScan, ModelVersion

# The paper's thresholds; 16 px is "small" (PNet's window is 12 px) while keeping a 1,600 px painting's
# first pyramid level affordable on a CPU (bench/faces.py measures both this and the detector's defaults).
DEFAULT_MIN_FACE_SIZE = 16
# Images are searched at most this many pixels a side: a face smaller than min_face_size there is lost, which
# on a 1,600 px reproduction is a face under 1 % of the picture's side.
DEFAULT_MAX_SIDE = 1600
DEFAULT_MAX_FACES = 500
# Artworks per transaction and progress report: a killed worker loses at most one batch, never half of one.
DETECT_BATCH = 16
# Crops embedded per call of the version's embedder (bounds the temporary files and the memory).
EMBED_BATCH = 256
# How often a long embedding saves what it has (each save rewrites the index file).
SAVE_EVERY_S = 120.0


class FaceIndexMissing(LookupError):
    """A face search under a version that has no face index yet."""


def settings_key(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:32]


def make_detector(
    thresholds: Sequence[float] | None = None,
    min_face_size: float = DEFAULT_MIN_FACE_SIZE,
    max_side: int = DEFAULT_MAX_SIDE,
    max_faces: int = DEFAULT_MAX_FACES,
    device: str = "auto",
):
    """The MTCNN detector, or JobRefused saying how to get its weights, or what is wrong with a setting."""
    from .extraction import pick_device
    from .face_weights import FETCH_COMMAND
    from .mtcnn import PAPER_THRESHOLDS, FaceDetector

    try:
        return FaceDetector(
            thresholds=thresholds or PAPER_THRESHOLDS,
            min_face_size=min_face_size,
            max_side=max_side,
            max_faces=max_faces,
            device=pick_device(device),
        )
    except FileNotFoundError as exc:
        raise JobRefused(f"{exc} (fetch them with: {FETCH_COMMAND})") from None
    except ValueError as exc:
        raise JobRefused(str(exc)) from None


def load_for_faces(artwork: Artwork, max_side: int) -> Image.Image:
    """The artwork's image, upright RGB, decoded at most about `max_side` a side (JPEG draft mode)."""
    data = read_limited(paths.absolute(artwork.image_relpath), django_settings.MAX_IMAGE_BYTES)
    image = upright(decoded(data, django_settings.MAX_IMAGE_PIXELS, max_side)[0]).convert("RGB")
    return image


def detect_faces(
    collections: Sequence[str] | None = None,
    thresholds: Sequence[float] | None = None,
    min_face_size: float = DEFAULT_MIN_FACE_SIZE,
    *,
    max_side: int = DEFAULT_MAX_SIDE,
    max_faces: int = DEFAULT_MAX_FACES,
    device: str = "auto",
    force: bool = False,
    job=None,
    progress: ProgressCallback = no_progress,
    log: Callable[[str], None] = lambda line: None,
) -> dict:
    """Detect and store the faces of every artwork (of `collections`) not yet scanned with these settings;
    these settings become the ones the pages and the face indexes use."""
    detector = make_detector(thresholds, min_face_size, max_side, max_faces, device)
    # One detection at a time: two would delete and insert the same artworks' scans.
    waiting = lambda: progress(0.0, "waiting for another face detection")  # noqa: E731
    with exclusive_lock(paths.face_lock_file(), waiting=waiting):
        result = detect_with(detector, collections, force, job, progress, log)
    save_choices(settings_key=result["settings_key"])
    return result


def detect_with(detector, collections, force: bool, job, progress: ProgressCallback, log) -> dict:
    detector_settings = detector.settings()
    key = settings_key(detector_settings)
    # Only what detection needs: a 100,000-artwork collection's rows stay small in the worker.
    artworks = Artwork.objects.order_by("pk").only(*ARTWORK_FIELDS)
    if collections:
        artworks = artworks.filter(collection__name__in=collections)
    scanned = dict(FaceScan.objects.filter(settings_key=key).values_list("artwork_id", "image_sha256"))
    todo = [a for a in artworks if force or scanned.get(a.pk) != a.image_sha256]
    skipped = artworks.count() - len(todo)
    log(
        f"MTCNN thresholds {'/'.join(f'{t:g}' for t in detector.thresholds)}, min face "
        f"{detector.min_face_size:g} px: {len(todo)} artworks to scan, {skipped} already scanned"
    )
    found = unreadable = 0
    with_faces = 0
    for start in range(0, len(todo), DETECT_BATCH):
        batch = todo[start : start + DETECT_BATCH]
        results = []
        for artwork in batch:
            try:
                image = load_for_faces(artwork, detector.max_side)
            except (ImageProblem, OSError) as exc:
                unreadable += 1
                log(f"artwork {artwork.pk} ({artwork.external_id}): unreadable image, skipped: {exc}")
                continue
            detected = detector.detect(image)
            # Boxes in the stored image's pixels, whatever size it was decoded at.
            scale_x, scale_y = artwork.width / image.width, artwork.height / image.height
            results.append((artwork, [scaled(face, scale_x, scale_y) for face in detected]))
        store_scans(results, key, detector_settings, job)
        found += sum(len(faces) for _, faces in results)
        with_faces += sum(1 for _, faces in results if faces)
        done = min(start + DETECT_BATCH, len(todo))
        progress(done / max(len(todo), 1), f"{done}/{len(todo)} artworks, {found} faces")
    summary = (
        f"{len(todo) - unreadable} artworks scanned ({skipped} unchanged), "
        f"{found} faces in {with_faces} of them"
        + (f", {unreadable} unreadable images skipped" if unreadable else "")
    )
    log(summary)
    return {
        "summary": summary,
        "scanned": len(todo) - unreadable,
        "unchanged": skipped,
        "faces": found,
        "with_faces": with_faces,
        "unreadable": unreadable,
        "settings_key": key,
    }


def scaled(face, scale_x: float, scale_y: float) -> dict:
    x1, y1, x2, y2 = face.box
    return {
        "box": (x1 * scale_x, y1 * scale_y, x2 * scale_x, y2 * scale_y),
        "probability": face.probability,
        "landmarks": [[x * scale_x, y * scale_y] for x, y in face.landmarks],
    }


def store_scans(
    results: Iterable[tuple[Artwork, list[dict]]], key: str, detector_settings: dict, job
) -> None:
    """One transaction per batch: an artwork's old scan with these settings and its faces are replaced."""
    results = list(results)
    if not results:
        return
    with transaction.atomic():
        FaceScan.objects.filter(settings_key=key, artwork__in=[a for a, _ in results]).delete()
        scans = FaceScan.objects.bulk_create(
            [
                FaceScan(
                    artwork=artwork,
                    image_sha256=artwork.image_sha256,
                    settings_key=key,
                    settings=detector_settings,
                    face_count=len(faces),
                    job=job,
                )
                for artwork, faces in results
            ]
        )
        scan_of = {scan.artwork_id: scan for scan in scans}
        if any(scan.pk is None for scan in scans):  # backends that do not return ids from bulk_create
            scan_of = {
                scan.artwork_id: scan
                for scan in FaceScan.objects.filter(settings_key=key, artwork__in=[a for a, _ in results])
            }
        Face.objects.bulk_create(
            [
                Face(
                    scan=scan_of[artwork.pk],
                    artwork=artwork,
                    rank=rank,
                    x1=face["box"][0],
                    y1=face["box"][1],
                    x2=face["box"][2],
                    y2=face["box"][3],
                    probability=face["probability"],
                    landmarks=face["landmarks"],
                )
                for artwork, faces in results
                for rank, face in enumerate(faces)
            ]
        )


def load_choices() -> dict:
    """{"settings_key", "policy", "min_side"} as last chosen (`save_choices`), {} before any."""
    try:
        return json.loads(paths.face_choices_file().read_text())
    except (OSError, ValueError):
        return {}


def save_choices(**changes) -> None:
    atomic_write_bytes(paths.face_choices_file(), json.dumps({**load_choices(), **changes}).encode())


def current_settings_key() -> str | None:
    """The detector settings of the last detection run (even one that found everything scanned): what the
    pages and the face indexes use. Before any run recorded it, those of the most recent scan."""
    key = load_choices().get("settings_key")
    if key:
        return key
    latest = FaceScan.objects.order_by("-pk").first()
    return latest.settings_key if latest else None


def current_faces(artwork_ids: Iterable[int] | None = None, key: str | None = None) -> dict[int, list[Face]]:
    """Each artwork's faces from its scan with settings `key` (default: the latest used), most probable first;
    only scans of the artwork's present image count."""
    key = key or current_settings_key()
    if key is None:
        return {}
    # Compared in the database, and only the fields boxes and crops need: 100,000 faces stay small.
    faces = (
        Face.objects.filter(scan__settings_key=key, scan__image_sha256=F("artwork__image_sha256"))
        .select_related("artwork")
        .only(*FACE_FIELDS, *(f"artwork__{name}" for name in ARTWORK_FIELDS))
    )
    if artwork_ids is not None:
        faces = faces.filter(artwork_id__in=list(artwork_ids))
    grouped: dict[int, list[Face]] = {}
    for face in faces.order_by("artwork_id", "rank"):
        grouped.setdefault(face.artwork_id, []).append(face)
    return grouped


FACE_FIELDS = ("id", "scan_id", "artwork_id", "rank", "x1", "y1", "x2", "y2", "probability")
ARTWORK_FIELDS = ("id", "external_id", "image_sha256", "image_ext", "width", "height")


def face_counts(key: str | None = None) -> dict[int, int]:
    """Faces per scanned artwork (0: scanned, none found) under settings `key` (default: the latest used);
    artworks whose image changed since their scan are left out, as unscanned."""
    key = key or current_settings_key()
    if key is None:
        return {}
    return dict(
        FaceScan.objects.filter(settings_key=key, image_sha256=F("artwork__image_sha256")).values_list(
            "artwork_id", "face_count"
        )
    )


# ---- The face index of a version ----


@dataclass
class FaceIndex:
    faces: signature_store.SignatureSet  # ids: Face primary keys
    artwork_of: dict[int, int]  # face id → artwork id
    side_of: dict[int, float]  # face id → the longer side of its box, in its image's pixels
    choice: dict  # policy, min_side, margin, settings_key
    artworks: np.ndarray  # per row of `faces`: its artwork id
    sides: np.ndarray  # per row of `faces`: the longer side of its box


def choice_file(folder: Path) -> Path:
    return folder / "choice.json"


def embed_faces(
    version: ModelVersion,
    policy: str | None = None,
    min_side: float | None = None,
    *,
    job=None,
    progress: ProgressCallback = no_progress,
    log: Callable[[str], None] = lambda line: None,
) -> dict:
    """Crop the chosen faces of every artwork with a signature under `version` and embed them into its face
    index. `policy` and `min_side` default to the last ones chosen (so a new version's index is made like
    the others), then to `faces.DEFAULT_POLICY`; a choice given here is remembered."""
    choices = load_choices()
    policy = policy or choices.get("policy") or face_rules.DEFAULT_POLICY
    if min_side is None:
        min_side = choices.get("min_side", face_rules.DEFAULT_MIN_SIDE)
    min_side = float(min_side)
    if policy not in face_rules.POLICIES:
        raise JobRefused(f"face policy must be one of {', '.join(face_rules.POLICIES)}, got {policy!r}")
    key = current_settings_key()
    if key is None:
        # Not a failure: every new version's chain ends here, on collections nobody has scanned for faces.
        summary = f"{version.label}: no faces detected yet (python manage.py detect_faces), no face index"
        log(summary)
        return {"summary": summary, "version": version.number, "skipped": True}
    save_choices(policy=policy, min_side=min_side)
    from .signatures import load as load_signatures

    stored = load_signatures(version)
    with_signature = set(stored.ids) if stored is not None else set()
    chosen: list[Face] = []
    for artwork_id, faces in current_faces(key=key).items():
        if artwork_id not in with_signature:
            continue  # never searchable under this version: its face would be embedded for nothing
        by_key = {face.pk: face for face in faces}
        picked = face_rules.select_faces(
            [face_rules.DetectedFace(face.pk, face.box) for face in faces], policy, min_side
        )
        chosen.extend(by_key[p.key] for p in picked)
    choice = {"policy": policy, "min_side": min_side, "margin": face_rules.CROP_MARGIN, "settings_key": key}
    folder = paths.face_index_folder(version.number)
    existing = signature_store.load(folder) if choice_file(folder).exists() else None
    same_choice = existing is not None and json.loads(choice_file(folder).read_text()) == choice
    wanted = {face.pk for face in chosen}
    keep_rows = [row for row, face_id in enumerate(existing.ids) if face_id in wanted] if same_choice else []
    # Rows as parts, joined only when saved: concatenating per batch would copy the index 400 times.
    ids = [existing.ids[row] for row in keep_rows]
    parts = [existing.vectors[keep_rows]] if keep_rows else []
    kept = set(ids)
    todo = [face for face in chosen if face.pk not in kept]
    log(f"{version.label}: {len(chosen)} faces chosen ({policy}), {len(todo)} to embed, {len(ids)} kept")
    if not todo and same_choice and len(ids) == len(existing.ids):
        summary = f"{version.label}: face index of {len(ids)} faces ({policy}) up to date, 0 newly embedded"
        log(summary)  # nothing rewritten: every web process keeps its cached index
        return {"summary": summary, "version": version.number, "faces": len(ids), "embedded": 0}

    def joined() -> signature_store.SignatureSet:
        if not parts:
            return signature_store.SignatureSet([], np.zeros((0, version.signature_dim), np.float32))
        return signature_store.SignatureSet(list(ids), np.concatenate(parts).astype(np.float32))

    embedded = unreadable = 0
    saved_at = time.monotonic()
    if todo:
        from .search import load_model_once

        model = load_model_once(version)
        for start in range(0, len(todo), EMBED_BATCH):
            batch = todo[start : start + EMBED_BATCH]
            with tempfile.TemporaryDirectory() as folder_name:
                cropped, files = write_crops(batch, Path(folder_name), log)
                unreadable += len(batch) - len(cropped)
                if cropped:
                    vectors = version.retrieval_method.embed(model, version, files, None, num_workers=0)
                    ids.extend(face.pk for face in cropped)
                    parts.append(normalised(vectors))
                    embedded += len(cropped)
            done = min(start + EMBED_BATCH, len(todo))
            progress(done / len(todo), f"{done}/{len(todo)} face crops embedded")
            if time.monotonic() - saved_at > SAVE_EVERY_S:
                # A cancelled or killed job keeps what it embedded: the next run goes on from there.
                save_index(folder, joined(), choice)
                saved_at = time.monotonic()
    save_index(folder, joined(), choice)
    summary = f"{version.label}: face index of {len(ids)} faces ({policy}), {embedded} newly embedded" + (
        f", {unreadable} faces of unreadable images skipped" if unreadable else ""
    )
    log(summary)
    return {"summary": summary, "version": version.number, "faces": len(ids), "embedded": embedded}


def normalised(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if not len(vectors):
        return vectors
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def save_index(folder: Path, faces: signature_store.SignatureSet, choice: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    # The choice first, then the signatures (ids last): a reader that sees the new ids sees their choice.
    atomic_write_bytes(choice_file(folder), json.dumps(choice, sort_keys=True).encode())
    signature_store.save(folder, faces)


def write_crops(
    faces: Sequence[Face], folder: Path, log: Callable[[str], None] = lambda line: None
) -> tuple[list[Face], list[str]]:
    """The faces whose crops could be made, and their crops as PNG files in `folder` (each image opened
    once); a face of an image that cannot be read any more is left out and logged."""
    done: list[Face] = []
    files: list[str] = []
    by_artwork: dict[int, list[int]] = {}
    for index, face in enumerate(faces):
        by_artwork.setdefault(face.artwork_id, []).append(index)
    for indices in by_artwork.values():
        artwork = faces[indices[0]].artwork
        try:
            image = load_for_crops(artwork, [faces[i] for i in indices])
        except (ImageProblem, OSError) as exc:
            log(f"artwork {artwork.pk} ({artwork.external_id}): unreadable image, its faces skipped: {exc}")
            continue
        for index in indices:
            crop = face_crop(image, faces[index], artwork.width, artwork.height)
            files.append(str(folder / f"face-{faces[index].pk}.png"))
            crop.save(files[-1], "PNG", compress_level=1)
            done.append(faces[index])
    return done, files


def load_for_crops(artwork: Artwork, faces: Sequence[Face]) -> Image.Image:
    """The artwork's image decoded only as large as the smallest of `faces`' crops needs to reach
    CROP_SIDE: a face in an 80-megapixel scan does not need the whole scan in memory."""
    smallest = min(max(face.width, face.height) for face in faces) * (1 + face_rules.CROP_MARGIN)
    shrink = min(1.0, face_rules.CROP_SIDE / max(smallest, 1.0))
    longest = max(artwork.width, artwork.height)
    return load_for_faces(artwork, max_side=max(1, math.ceil(longest * shrink)))


def face_crop(image: Image.Image, face: Face, width: int, height: int) -> Image.Image:
    """The face's square crop with context (`faces.crop_box`) from `image` (the artwork's picture at any
    size: the box is scaled from the stored width × height), at most CROP_SIDE a side."""
    scale_x, scale_y = image.width / width, image.height / height
    box = (face.x1 * scale_x, face.y1 * scale_y, face.x2 * scale_x, face.y2 * scale_y)
    crop = image.crop(face_rules.crop_box(box, image.width, image.height))
    crop.thumbnail((face_rules.CROP_SIDE, face_rules.CROP_SIDE), Image.Resampling.LANCZOS)
    return crop


_cache: dict[int, tuple[tuple, FaceIndex]] = {}
_lock = threading.Lock()


def load_index(version: ModelVersion) -> FaceIndex | None:
    """The version's face index, None when it has none. Kept per process while its file and the faces in
    the database are unchanged: a re-scan deletes faces, which then leave the index at once."""
    folder = paths.face_index_folder(version.number)
    ids_path = signature_store.ids_file(folder)
    if not ids_path.exists():
        return None
    status = ids_path.stat()
    faces = Face.objects.aggregate(count=Count("pk"), last=Max("pk"))
    stamp = (status.st_mtime_ns, status.st_ino, status.st_size, faces["count"], faces["last"])
    with _lock:
        cached = _cache.get(version.number)
        if cached is not None and cached[0] == stamp:
            return cached[1]
    stored = signature_store.load(folder)
    if stored is None:
        return None
    choice = json.loads(choice_file(folder).read_text())
    # Every face of the index's scans, not `pk__in` 100,000 ids: some SQLite builds allow only 32,766
    # query parameters.
    artwork_of, side_of = {}, {}
    for pk, artwork_id, x1, y1, x2, y2 in (
        Face.objects.filter(scan__settings_key=choice["settings_key"])
        .order_by()
        .values_list("pk", "artwork_id", "x1", "y1", "x2", "y2")
    ):
        artwork_of[pk] = artwork_id
        side_of[pk] = max(x2 - x1, y2 - y1)
    # A face deleted since (its artwork re-scanned or removed) drops out of the index until the next embed.
    present = [face_id for face_id in stored.ids if face_id in artwork_of]
    if len(present) != len(stored.ids):
        stored = stored.subset(present)
    index = FaceIndex(
        stored,
        artwork_of,
        side_of,
        choice,
        np.asarray([artwork_of[i] for i in stored.ids], dtype=np.int64),
        np.asarray([side_of[i] for i in stored.ids], dtype=np.float32),
    )
    with _lock:
        _cache[version.number] = (stamp, index)
    return index
