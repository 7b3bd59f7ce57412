"""Faces on People-Art (methods.md §5): MTCNN face detection against the set's person boxes at two settings,
and retrieval by artist with the whole image, the largest face, and the two fused (`training.faces.fuse`),
for the frozen Lite0 features and the workbench's connection model.

Data (outside the repository, `--data-root`, default ../shared/data): ``peopleart``, 2,869 paintings of 41
styles and 474 artists; `person_boxes` holds every person's box (x1:y1:x2:y2, image pixels), empty on the
paintings without people. The images are at most 384 px a side.

1. Detection (`training.mtcnn.FaceDetector`, facenet-pytorch's weights, CPU), two settings on the same images:

   * ``paper``: the workbench's default, the painting study's thresholds 0.4/0.4/0.4 (`PAPER_THRESHOLDS`),
     min face 16 px, max side 1,600 (`DEFAULT_MIN_FACE_SIZE`, `DEFAULT_MAX_SIDE` of
     `training/face_detection.py`, read from its source: that module imports the Django models);
   * ``defaults``: the detector's own (`DETECTOR_DEFAULTS`: 0.6/0.7/0.7, min face 20 px), tuned on
     photographs.

   Both: pyramid factor 0.709, at most 500 faces, max side 1,600 (no People-Art image is that large, so
   nothing is downscaled). The paper setting runs on every image (retrieval needs its faces); the comparison
   runs both on every `--compare-every`-th image sorted by path (default 2: the whole set at both settings
   takes over 10 minutes on a 2-core CPU), each image decoded once (`training.extraction.load_rgb`) and given
   to both detectors one after the other, the order alternating image by image so that a busy minute slows
   both alike; images/s is the detection's wall time only, decoding excluded. `--threads 1` keeps torch to
   one thread: on a machine where another job is running, MTCNN's many small operations at two threads wait
   on each other (measured here about ten times slower than at one thread). Measured: the
   share of person boxes holding a detected face (a face is in a box when the face box's centre lies inside
   it; each person box counts once however many faces it holds), faces lying outside every person box on
   the images that have person boxes (false detections, or people the annotators left out), faces on the
   images without person boxes, and images with at least one face.

2. Retrieval by artist on the images where the ``paper`` setting found at least one face. Each such image is
   a query once, excluded from its own neighbours; the gallery is every other face image. Queries whose artist
   has no other face image are left out (they score 0 whatever the model); the output says how many remain.
   P@k is the share of the top k with the query's artist, averaged over queries. Scores, as the workbench's
   face search computes them (`training.faces`): ``whole``, the whole-image cosine; ``face``, the best cosine
   between the query's indexed faces and the candidate's (`artwork_face_scores`), the largest face of each
   image (`select_faces(..., "largest")`) cropped square with context (`crop_box`, margin 0.4) and shrunk to
   at most `CROP_SIDE`, written as PNG and embedded like any image; ``fused``, `fuse(whole, face, "fused",
   w)` = w·face + (1 − w)·whole, at the default w = 0.5 (the headline) and a sweep of w. Models (Lite0,
   ImageNet weights of the offline package, 224 px, average pooling, `training.extraction.extract_signatures`
   for images and crops alike): ``pretrained``, the frozen features; ``connection``, the workbench's
   connection model trained on the demo collection's known connections exactly as `bench/label_retrieval.py`
   trains it (`label_retrieval.train_connection_model`, 1 epoch), knowing nothing of People-Art.
   The 95 % intervals of fused − whole and fused − face are a paired bootstrap over the queries of per-query
   P@1 (`label_retrieval.paired_interval`). Variations, all measured and all reported, on the same queries:
   the crop margin (`--margins`, besides the default 0.4) and the policy "all" (every face whose shorter side
   is at least `DEFAULT_MIN_SIDE`, the best pair scoring; a candidate left without an indexed face keeps its
   whole-image score in the fused mode and cannot rank in the face mode).

3. Size-aware fusion, on the default crops (largest face, margin 0.4): a face too small to be a good crop
   weighs less. Candidate i's face weight is w_i = w · min(1, min(q, c_i) / S), q and c_i the longer side
   (image pixels, the detector's box before any margin) of the query's and the candidate's largest face, S the
   full-weight side (`--full-weight-sides`, default 0 48 64 96; S = 0 is the plain fusion, checked to rank
   exactly as it); fused = w_i·face + (1 − w_i)·whole where the candidate has a face, whole where it has
   none. Each S × `--weights` value, each model: P@1/5/10 and the paired bootstrap intervals of P@1 against
   whole and face, and which (S, w) beat both (measured, not chosen).

`--cache DIR` keeps the detections (one JSON file per image list and detection plan: both settings, the
comparison's sampling, the code, CPU, torch and thread count, since the seconds are figures too) and the
embeddings (one .npz per model, image or crop list and crop setting; the connection model's key is its
training configuration, epochs, negatives and seed among it, the starting weights, the training code and the
thread count, and its training record is kept beside them), so that a re-run changing only the fusion
skips detection, training and embedding. A trained model's embeddings all come from one training: one
missing retrains it and replaces them all. Detection from the cache is said in the output, and its images/s
are those the cache stored from the run that measured them (its date, machine and load average shown).
A model's "seconds" figure then counts the cache's reading, not the extraction.

Printed: the CPU line, Markdown tables of the three parts (for the README), PASS/FAIL lines for the issue's
check "fusion beats both single scores on artist P@1" per model at the default weight, and the wall time.

    .venv/bin/python bench/faces.py --threads 1 --cache /tmp/faces-cache --json docs/faces.json
    .venv/bin/python bench/faces.py --limit 40    (a smoke test)
"""

from __future__ import annotations

import argparse
import ast
import csv
import datetime
import hashlib
import inspect
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from label_retrieval import (
    BACKBONE,
    paired_interval,
    plain_extract,
    pretrained_model,
    say,
    train_connection_model,
)
from timing import _cpu_model_and_flags, machine_line

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KS = (1, 5, 10)
DETECTION_SETTINGS = ("paper", "defaults")
MODELS = ("pretrained", "connection")


def workbench_face_settings() -> dict[str, Any]:
    """DEFAULT_MIN_FACE_SIZE, DEFAULT_MAX_SIDE and DEFAULT_MAX_FACES of training/face_detection.py, read from
    its source (importing it imports the Django models)."""
    wanted = {"DEFAULT_MIN_FACE_SIZE", "DEFAULT_MAX_SIDE", "DEFAULT_MAX_FACES"}
    tree = ast.parse((ROOT / "training" / "face_detection.py").read_text())
    found = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id in wanted
    }
    if set(found) != wanted:
        raise SystemExit(
            f"training/face_detection.py no longer defines {', '.join(sorted(wanted - set(found)))}"
        )
    return found


# --- data ---------------------------------------------------------------------------------------------


def load_rows(data_root: Path, limit: int | None, every: int) -> list[dict[str, Any]]:
    """People-Art's rows sorted by path, person boxes parsed; `every` keeps every k-th row, `limit` a
    deterministic subset (as `label_retrieval.load_set` draws it)."""
    with open(data_root / "peopleart" / "metadata.csv", newline="") as handle:
        rows = sorted(csv.DictReader(handle), key=lambda row: row["path"])
    rows = rows[::every]
    if limit:
        rows = sorted(rows, key=lambda row: hashlib.sha256(row["path"].encode()).digest())[:limit]
        rows.sort(key=lambda row: row["path"])
    for row in rows:
        row["persons"] = [tuple(float(v) for v in box.split(":")) for box in row["person_boxes"].split()]
        row["file"] = str(data_root / "peopleart" / row["path"])
    return rows


# --- cache --------------------------------------------------------------------------------------------


def source_digest(*sources: str | Callable) -> str:
    """sha256 of source files (paths relative to the repository) and of functions' source: the code that
    makes a cached figure is part of its key (this file's functions one by one, so that changing how the
    scores are fused or printed keeps the cache)."""
    digest = hashlib.sha256()
    for source in sources:
        if isinstance(source, str):
            digest.update(source.encode() + b"\0" + (ROOT / source).read_bytes())
        else:
            digest.update(source.__name__.encode() + b"\0" + inspect.getsource(source).encode())
    return digest.hexdigest()


def files_digest(paths: list[str]) -> str:
    """sha256 of each file's path, size and modification time, in order."""
    digest = hashlib.sha256()
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


class Cache:
    """`--cache DIR`: detections (JSON) and embeddings (.npz), each file named by the sha256 of its key (a
    JSON object of everything that changes what it holds) and holding the key's text, compared on reading.
    Files are written whole under a temporary name and renamed. Without a folder nothing is read or
    written."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)

    def _where(self, kind: str, key: dict, suffix: str) -> tuple[Path, str]:
        assert self.folder is not None
        text = json.dumps(key, sort_keys=True, default=str, ensure_ascii=False)
        return self.folder / f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:24]}{suffix}", text

    def _write(self, path: Path, write: Callable[[Any], None]) -> None:
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
            write(handle)
        os.chmod(handle.name, 0o644)
        os.replace(handle.name, path)

    def read_json(self, kind: str, key: dict) -> tuple[Any, str] | None:
        """The stored value and its file's name, None when absent (or stored under another key)."""
        if self.folder is None:
            return None
        path, text = self._where(kind, key, ".json")
        if not path.exists():
            return None
        stored = json.loads(path.read_text())
        return (stored["value"], path.name) if stored.get("key") == text else None

    def write_json(self, kind: str, key: dict, value: Any) -> None:
        if self.folder is None:
            return
        path, text = self._where(kind, key, ".json")
        body = json.dumps({"key": text, "value": value}, default=float, ensure_ascii=False).encode()
        self._write(path, lambda handle: handle.write(body))

    def read_array(self, kind: str, key: dict) -> np.ndarray | None:
        if self.folder is None:
            return None
        path, text = self._where(kind, key, ".npz")
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as stored:
            return stored["array"] if str(stored["key"]) == text else None

    def write_array(self, kind: str, key: dict, array: np.ndarray) -> None:
        if self.folder is None:
            return
        path, text = self._where(kind, key, ".npz")
        self._write(path, lambda handle: np.savez(handle, array=array, key=np.array(text)))


# --- detection ----------------------------------------------------------------------------------------


def make_detectors(workbench: dict[str, Any]) -> dict[str, Any]:
    from training.mtcnn import DETECTOR_DEFAULTS, PAPER_THRESHOLDS, FaceDetector

    common = {"max_side": workbench["DEFAULT_MAX_SIDE"], "max_faces": workbench["DEFAULT_MAX_FACES"]}
    return {
        "paper": FaceDetector(
            thresholds=PAPER_THRESHOLDS, min_face_size=workbench["DEFAULT_MIN_FACE_SIZE"], **common
        ),
        "defaults": FaceDetector(**DETECTOR_DEFAULTS, **common),
    }


def detect_all(
    rows: list[dict], detectors: dict[str, Any], compare_every: int
) -> tuple[dict[str, list], dict[str, list]]:
    """Each setting's faces of each image and its detection seconds (decoding excluded), None where it did not
    run: the first setting ("paper") on every image, all settings on every `compare_every`-th image, one after
    the other on the same decoded image, the order alternating."""
    from training.extraction import load_rgb

    names = list(detectors)
    faces: dict[str, list] = {name: [None] * len(rows) for name in names}
    seconds: dict[str, list] = {name: [None] * len(rows) for name in names}
    started = time.perf_counter()
    for index, row in enumerate(rows):
        image = load_rgb(row["file"])
        compared = index % compare_every == 0
        order = (names if (index // compare_every) % 2 == 0 else names[::-1]) if compared else names[:1]
        for name in order:
            began = time.perf_counter()
            faces[name][index] = detectors[name].detect(image)
            seconds[name][index] = time.perf_counter() - began
        if (index + 1) % 250 == 0 or index + 1 == len(rows):
            found = ", ".join(f"{name} {sum(len(f) for f in faces[name] if f)}" for name in names)
            say(f"  {index + 1}/{len(rows)} images, faces: {found} ({time.perf_counter() - started:.0f} s)")
    return faces, seconds


def cached_detection(
    rows: list[dict], detectors: dict[str, Any], compare_every: int, cache: Cache
) -> tuple[dict[str, list], dict[str, list], dict[str, Any]]:
    """`detect_all`, or its faces and seconds from the cache, keyed by the images (path, size, mtime), the
    settings, the comparison's sampling, the detector's and the decoder's code, the CPU, torch and its thread
    count (the seconds are figures too); the third value says where they came from and when they were
    measured."""
    import torch

    from training.mtcnn import Face

    key = {
        "what": "faces and detection seconds, the settings alternating image by image",
        "settings": {name: detector.settings() for name, detector in detectors.items()},
        "code": source_digest("training/mtcnn.py", "training/extraction.py", detect_all),
        "images": files_digest([row["file"] for row in rows]),
        "image_count": len(rows),
        "compare_every": compare_every,
        "cpu": _cpu_model_and_flags()[0],
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    found = cache.read_json("detection", key)
    if found is not None:
        stored, name = found
        faces = {
            setting: [
                None
                if listed is None
                else [
                    Face(tuple(box), probability, [tuple(point) for point in points])
                    for box, probability, points in listed
                ]
                for listed in per_image
            ]
            for setting, per_image in stored["faces"].items()
        }
        return faces, stored["seconds"], {"source": f"cache file {name}", **stored["measured"]}
    measured: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine_line(),
        "load_average_before": os.getloadavg(),
    }
    began = time.perf_counter()
    faces, seconds = detect_all(rows, detectors, compare_every)
    measured["wall_seconds"] = time.perf_counter() - began
    measured["load_average_after"] = os.getloadavg()
    listed = {
        setting: [
            None
            if found is None
            else [[list(f.box), f.probability, [list(p) for p in f.landmarks]] for f in found]
            for found in per_image
        ]
        for setting, per_image in faces.items()
    }
    cache.write_json("detection", key, {"faces": listed, "seconds": seconds, "measured": measured})
    return faces, seconds, {"source": "measured in this run", **measured}


def detection_figures(rows: list[dict], faces: list, seconds: list[float], detector) -> dict[str, Any]:
    persons = covered = faces_with_persons = outside = faces_without_persons = 0
    with_face = person_images = person_images_with_face = 0
    for row, found in zip(rows, faces, strict=True):
        with_face += bool(found)
        boxes = np.array(row["persons"], dtype=np.float64).reshape(-1, 4)
        if not len(boxes):
            faces_without_persons += len(found)
            continue
        person_images += 1
        person_images_with_face += bool(found)
        persons += len(boxes)
        faces_with_persons += len(found)
        if not found:
            continue
        centres = np.array([((f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2) for f in found])
        cx, cy = centres[:, :1], centres[:, 1:]
        inside = (cx >= boxes[:, 0]) & (cx <= boxes[:, 2]) & (cy >= boxes[:, 1]) & (cy <= boxes[:, 3])
        covered += int(inside.any(axis=0).sum())
        outside += int((~inside.any(axis=1)).sum())
    total = sum(seconds)
    return {
        "settings": detector.settings(),
        "images": len(rows),
        "images_with_person_boxes": person_images,
        "images_with_face": with_face,
        "images_with_person_boxes_and_face": person_images_with_face,
        "person_boxes": persons,
        "person_boxes_with_face": covered,
        "person_box_recall": covered / persons if persons else None,
        "faces": sum(map(len, faces)),
        "faces_on_images_with_person_boxes": faces_with_persons,
        "faces_outside_every_person_box": outside,
        "share_of_faces_outside": outside / faces_with_persons if faces_with_persons else None,
        "faces_on_images_without_person_boxes": faces_without_persons,
        "detection_seconds": total,
        "images_per_second": len(rows) / total if total else None,
        "ms_per_image_median": 1000 * statistics.median(seconds) if seconds else None,
        "ms_per_image_p95": 1000 * float(np.percentile(seconds, 95)) if seconds else None,
    }


# --- retrieval ----------------------------------------------------------------------------------------


@dataclass
class ModelSource:
    """A model for the retrieval: the key its embeddings are cached under, how to get it with its record
    (what it is, how it was trained), the record when known without building it (None: build to know), and
    whether its embeddings may come partly from the cache and partly new (a deterministic model: the frozen
    one; a trained model's embeddings all come from one training)."""

    key: dict
    build: Callable[[], tuple[Any, dict]]
    record: dict | None
    mixable: bool


def crop_specs(faces: list, policy: str) -> list[tuple[int, int, tuple[float, float, float, float]]]:
    """The faces to index, as `select_faces` chooses them: (row, face number, box), row by row."""
    from training.faces import DetectedFace, select_faces

    return [
        (index, face.key, face.box)
        for index, found in enumerate(faces)
        for face in select_faces([DetectedFace(k, f.box) for k, f in enumerate(found)], policy)
    ]


def write_crops(rows: list[dict], specs: list[tuple], margin: float, folder: Path) -> list[str]:
    """The faces' crops as PNG files, as the workbench's `face_crop` cuts them, in the order of `specs`."""
    from PIL import Image

    from training.extraction import load_rgb
    from training.faces import CROP_SIDE, crop_box

    folder.mkdir(parents=True)
    files: list[str] = []
    image, loaded = None, None
    for index, key, box in specs:
        if loaded != index:
            image, loaded = load_rgb(rows[index]["file"]), index
        crop = image.crop(crop_box(box, image.width, image.height, margin))
        crop.thumbnail((CROP_SIDE, CROP_SIDE), Image.Resampling.LANCZOS)
        files.append(str(folder / f"{index}-{key}.png"))
        crop.save(files[-1], "PNG", compress_level=1)
    return files


def normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def score_names(weights: list[float]) -> list[tuple[str, str, float]]:
    return [("whole", "whole", 0.0), ("face", "face", 0.0)] + [
        (f"fused w={w:g}", "fused", w) for w in weights
    ]


def size_aware_name(full_side: float, weight: float) -> str:
    return f"S={full_side:g} w={weight:g}"


def size_aware_fuse(
    whole: np.ndarray,
    face: np.ndarray | None,
    weight: float,
    full_side: float,
    query_side: float,
    sides: np.ndarray,
) -> np.ndarray:
    """The workbench's size-aware fusion (`training.faces.face_weights` then `fuse`, as `face_search` does):
    w_i = weight · min(1, min(query_side, sides[i]) / full_side), the sides being the longer side of the
    largest face's box in image pixels (NaN: no face); full_side 0: the plain fusion."""
    from training.faces import face_weights, fuse

    if full_side == 0 or face is None or not np.any(~np.isnan(face)):
        return fuse(whole, face, "fused", weight)
    return fuse(whole, face, "fused", face_weights(weight, query_side, sides, full_side))


def retrieval_hits(
    whole: np.ndarray,
    face_vectors: np.ndarray,
    face_rows: np.ndarray,
    artists: np.ndarray,
    queries: np.ndarray,
    weights: list[float],
    size_aware: tuple[list[float], np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Per score: queries × k hits (1 when the k-th neighbour has the query's artist), the query excluded;
    a candidate the score cannot rank (-inf) is a miss. size_aware: (full-weight sides, each row's largest
    face's longer side) adds `size_aware_fuse` for each side and weight."""
    from training.faces import artwork_face_scores, fuse

    n = len(whole)
    top_k = max(KS)
    scorers: list[tuple[str, str, float, float | None]] = [
        (name, mode, weight, None) for name, mode, weight in score_names(weights)
    ]
    if size_aware is not None:
        scorers += [(size_aware_name(s, w), "fused", w, s) for s in size_aware[0] for w in weights]
    hits = {name: np.zeros((len(queries), top_k)) for name, *_ in scorers}
    for number, query in enumerate(queries):
        whole_scores = whole @ whole[query]
        face_scores = artwork_face_scores(face_vectors[face_rows == query], face_vectors, face_rows, n)
        for name, mode, weight, full_side in scorers:
            if full_side is None:
                scores = fuse(whole_scores, face_scores, mode, weight)
            else:
                sides = size_aware[1]  # type: ignore[index]
                scores = size_aware_fuse(whole_scores, face_scores, weight, full_side, sides[query], sides)
            scores[query] = -np.inf
            top = np.argsort(-scores, kind="stable")[:top_k]
            hits[name][number] = (artists[top] == artists[query]) & np.isfinite(scores[top])
    return hits


def precision(hits: np.ndarray) -> dict[str, float]:
    return {f"p@{k}": float(hits[:, :k].mean()) for k in KS}


def cosine_spread(vectors: np.ndarray) -> dict[str, float]:
    sims = vectors @ vectors.T
    off = sims[~np.eye(len(sims), dtype=bool)]
    return {"mean": float(off.mean()), "std": float(off.std())}


def intervals_against(hits: dict[str, np.ndarray], names: list[str]) -> dict[str, tuple[float, float, float]]:
    return {
        f"{name} − {other}": paired_interval(hits[name][:, 0], hits[other][:, 0])
        for name in names
        for other in ("whole", "face")
    }


def run_retrieval(
    rows: list[dict], faces: list, models: dict[str, ModelSource], args, scratch: Path, cache: Cache
) -> dict[str, Any]:
    import torch

    from training.faces import CROP_MARGIN, CROP_SIDE, DEFAULT_MIN_SIDE, crop_box

    kept = [index for index, found in enumerate(faces) if found]
    face_rows_all = [rows[index] for index in kept]
    face_lists = [faces[index] for index in kept]
    artists = np.array([row["artist"] for row in face_rows_all])
    names, counts = np.unique(artists, return_counts=True)
    shared = set(names[counts >= 2])
    queries = np.array([i for i, artist in enumerate(artists) if artist in shared], dtype=np.int64)
    largest_side = [max(max(f.width, f.height) for f in found) for found in face_lists]
    say(
        f"\nretrieval: {len(kept)} images with a face (paper setting) by {len(names)} artists; "
        f"{len(queries)} queries whose artist has another face image, {len(shared)} such artists; "
        f"the largest face's longer side: median {np.median(largest_side) if kept else 0:.0f} px"
    )
    if not len(queries):
        say("  no queries: no artist has two face images in this sample (take a larger one)")
        return {"images_with_face": len(kept), "queries": 0, "models": {}}
    crops = {"largest, margin 0.4 (default)": ("largest", CROP_MARGIN)}
    crops.update({f"largest, margin {m:g}": ("largest", m) for m in args.margins if m != CROP_MARGIN})
    if args.all_faces:
        crops[f"all ≥ {DEFAULT_MIN_SIDE} px, margin {CROP_MARGIN:g}"] = ("all", CROP_MARGIN)
    specs = {label: crop_specs(face_lists, policy) for label, (policy, _) in crops.items()}
    face_rows = {label: np.array([index for index, _, _ in specs[label]], dtype=np.int64) for label in crops}
    for label in crops:
        say(f"  crops {label}: {len(specs[label])} faces of {len(np.unique(face_rows[label]))} images")
    # The size-aware fusion's sides: the longer side of each image's largest face (the default's crop).
    chosen_side = np.array(
        [max(box[2] - box[0], box[3] - box[1]) for _, _, box in crop_specs(face_lists, "largest")]
    )
    whole_paths = [row["file"] for row in face_rows_all]
    images_key = files_digest(whole_paths)
    extraction_key = {
        "batch_size": 32,
        "input_size": 224,
        "code": source_digest("training/extraction.py", plain_extract),
        "threads": torch.get_num_threads(),
    }
    vector_keys = {"whole": {"what": "whole images", "images": images_key, "count": len(whole_paths)}}
    for label, (policy, margin) in crops.items():
        vector_keys[label] = {
            "what": "face crops",
            "images": images_key,
            "faces": hashlib.sha256(json.dumps(specs[label]).encode()).hexdigest(),
            "policy": policy,
            "margin": margin,
            "crop_side": CROP_SIDE,
            "code": source_digest(crop_box, write_crops),
        }
    crop_files: dict[str, list[str]] = {}

    def paths_of(name: str) -> list[str]:
        if name == "whole":
            return whole_paths
        if name not in crop_files:
            folder = scratch / f"crops-{list(crops).index(name)}"
            crop_files[name] = write_crops(face_rows_all, specs[name], crops[name][1], folder)
        return crop_files[name]

    extract = plain_extract(args.num_workers)
    sides_under = {
        f"{s:g}": {
            "face_images": float(np.mean(chosen_side < s)),
            "queries": float(np.mean(chosen_side[queries] < s)),
        }
        for s in args.full_weight_sides
        if s > 0
    }
    result: dict[str, Any] = {
        "images_with_face": len(kept),
        "artists": int(len(names)),
        "queries": int(len(queries)),
        "artists_with_queries": len(shared),
        "weights": args.weights,
        "largest_face_side_px": {
            "median": float(np.median(largest_side)),
            "p10": float(np.percentile(largest_side, 10)),
            "p90": float(np.percentile(largest_side, 90)),
        },
        "crops": {
            label: {
                "policy": p,
                "margin": m,
                "faces": len(specs[label]),
                "images_with_indexed_face": int(len(np.unique(face_rows[label]))),
                "queries_with_indexed_face": int(np.isin(queries, face_rows[label]).sum()),
            }
            for label, (p, m) in crops.items()
        },
        "size_aware": {
            "full_weight_sides": args.full_weight_sides,
            "weights": args.weights,
            "crops": next(iter(crops)),
            "rule": "w_i = w · min(1, min(q, c_i) / S); S = 0: w_i = w",
            "side_of_largest_face_px": {
                "definition": "longer side of the box of the face select_faces(..., 'largest') picks",
                "median": float(np.median(chosen_side)),
                "p10": float(np.percentile(chosen_side, 10)),
                "p90": float(np.percentile(chosen_side, 90)),
            },
            "share_under_S": sides_under,
        },
        "models": {},
    }
    headline = next(iter(crops))
    from training.faces import DEFAULT_FACE_WEIGHT, FULL_WEIGHT_SIDE

    # The headline is what the workbench does by default (size-aware when FULL_WEIGHT_SIDE > 0).
    default_fused = (
        size_aware_name(FULL_WEIGHT_SIDE, DEFAULT_FACE_WEIGHT)
        if FULL_WEIGHT_SIDE > 0
        else f"fused w={DEFAULT_FACE_WEIGHT:g}"
    )
    if FULL_WEIGHT_SIDE > 0 and (
        FULL_WEIGHT_SIDE not in args.full_weight_sides or DEFAULT_FACE_WEIGHT not in args.weights
    ):
        raise SystemExit(
            f"--full-weight-sides and --weights must include the workbench's default "
            f"(S={FULL_WEIGHT_SIDE:g}, w={DEFAULT_FACE_WEIGHT:g})"
        )
    for model_name, source in models.items():
        started = time.perf_counter()
        keys = {
            name: {"model": source.key, "extraction": extraction_key, **key}
            for name, key in vector_keys.items()
        }
        raw: dict[str, np.ndarray | None] = {
            name: cache.read_array("vectors", key) for name, key in keys.items()
        }
        record = source.record
        missing = [name for name, vectors in raw.items() if vectors is None]
        if (missing or record is None) and not source.mixable:
            missing = list(raw)  # a trained model: every embedding from the same training
        if missing or record is None:
            model, record = source.build()
            for name in missing:
                raw[name] = extract(model, paths_of(name))
                cache.write_array("vectors", keys[name], raw[name])
        from_cache = [name for name in raw if name not in missing]
        if cache.folder is not None:
            say(f"  {model_name}: embeddings from the cache: {', '.join(from_cache) or 'none'}")
        whole = normalise(raw["whole"])
        figures: dict[str, Any] = {"record": record, "dim": int(whole.shape[1]), "crops": {}}
        figures["embeddings_from_cache"] = from_cache
        figures["cosine_whole"] = cosine_spread(whole)
        for label in crops:
            face_vectors = normalise(raw[label])
            aware = (args.full_weight_sides, chosen_side) if label == headline else None
            hits = retrieval_hits(
                whole, face_vectors, face_rows[label], artists, queries, args.weights, aware
            )
            plain = [name for name, _, _ in score_names(args.weights)]
            entry: dict[str, Any] = {"precision": {name: precision(hits[name]) for name in plain}}
            entry["intervals_p@1"] = intervals_against(
                hits, [name for name in plain if name.startswith("fused")]
            )
            if label == headline:
                figures["cosine_face"] = cosine_spread(face_vectors)
                aware_names = [size_aware_name(s, w) for s in args.full_weight_sides for w in args.weights]
                figures["size_aware"] = {
                    "precision": {name: precision(hits[name]) for name in ["whole", "face", *aware_names]},
                    "intervals_p@1": intervals_against(hits, aware_names),
                    "S=0 equals the plain fusion": all(
                        np.array_equal(hits[size_aware_name(0, w)], hits[f"fused w={w:g}"])
                        for w in args.weights
                    )
                    if 0 in args.full_weight_sides
                    else None,
                }
            figures["crops"][label] = entry
        figures["seconds"] = time.perf_counter() - started
        p1 = {name: value["p@1"] for name, value in headline_figures(figures, headline)[0].items()}
        figures["fusion_beats_both_p@1"] = bool(
            default_fused in p1 and p1[default_fused] > p1["whole"] and p1[default_fused] > p1["face"]
        )
        result["models"][model_name] = figures
        say(
            f"  {model_name}: P@1 whole {100 * p1['whole']:.2f}, face {100 * p1['face']:.2f}, "
            + ", ".join(f"{name} {100 * p1[name]:.2f}" for name in p1 if name.startswith("fused"))
            + f" ({figures['seconds']:.0f} s)"
        )
    result["headline_crops"] = headline
    result["headline_score"] = default_fused
    return result


def headline_figures(figures: dict[str, Any], headline: str) -> tuple[dict, dict]:
    """Precision and P@1 intervals of the default crops: the size-aware table when it was measured (it
    holds whole, face and the workbench's default fusion), else the plain one."""
    from training.faces import FULL_WEIGHT_SIDE

    aware = figures.get("size_aware")
    source = aware if aware and FULL_WEIGHT_SIDE > 0 else figures["crops"][headline]
    return source["precision"], source["intervals_p@1"]


# --- printing -----------------------------------------------------------------------------------------


def share(part: int, whole: int) -> str:
    return f"{part} / {whole} ({100 * part / whole:.1f} %)" if whole else f"{part} / 0"


def print_detection(detection: dict[str, Any]) -> None:
    say("\n### Face detection on People-Art (MTCNN, CPU)\n")
    settings = detection["settings"]
    first = next(iter(settings.values()))
    sample = (
        f"one image in {detection['compare_every']}, sorted by path" if detection["compare_every"] > 1 else ""
    )
    say(
        f"Both settings on the same {first['images']} images{' (' + sample + ')' if sample else ''}, "
        f"{first['images_with_person_boxes']} of them with person boxes ({first['person_boxes']} boxes); "
        "a person box holds a face when a face box's centre lies inside it. Images/s: detection only "
        f"(decoding excluded), {detection['threads']} torch thread(s), the two settings alternating on each "
        "decoded image.\n"
    )
    timing = detection.get("timing", {"source": "measured in this run"})
    if timing["source"] != "measured in this run":
        say(
            f"Detection not run here: faces and timings from the {timing['source']}, as measured on "
            f"{timing['date']} ({timing['machine']}; load average {timing['load_average_before'][0]:.2f} "
            f"before, {timing['load_average_after'][0]:.2f} after).\n"
        )
    say(
        "| setting | images | thresholds | min face | images/s | ms/image (median) | images with a face "
        "| person boxes holding a face | faces | faces outside every person box¹ "
        "| faces on images without person boxes |"
    )
    say("|---|---|---|---|---|---|---|---|---|---|---|")
    rows = list(settings.items())
    if "paper_all_images" in detection:
        rows.append(("paper, all images", detection["paper_all_images"]))
    for name, d in rows:
        thresholds = "/".join(f"{t:g}" for t in d["settings"]["thresholds"])
        say(
            f"| {name} | {d['images']} | {thresholds} | {d['settings']['min_face_size']:g} px "
            f"| {d['images_per_second']:.1f} | {d['ms_per_image_median']:.0f} "
            f"| {share(d['images_with_face'], d['images'])} "
            f"| {share(d['person_boxes_with_face'], d['person_boxes'])} | {d['faces']} "
            f"| {share(d['faces_outside_every_person_box'], d['faces_on_images_with_person_boxes'])} "
            f"| {d['faces_on_images_without_person_boxes']} |"
        )
    say("\n¹ of the faces found on the images that have person boxes.")


def pct(value: float) -> str:
    return f"{100 * value:.2f}"


def print_retrieval(retrieval: dict[str, Any]) -> None:
    if not retrieval["queries"]:
        say("\nretrieval: no queries in this sample")
        return
    headline = retrieval["headline_crops"]
    say("\n### Retrieval by artist on the images with a face (P@k, %)\n")
    say(
        f"{retrieval['images_with_face']} images where the paper setting found a face; "
        f"{retrieval['queries']} queries (artist has another such image; "
        f"{retrieval['artists_with_queries']} artists), query excluded. "
        f"Face: the largest face of each image, crop margin 0.4; fused: w·face + (1 − w)·whole.\n"
    )
    say("| model | score | P@1 | P@5 | P@10 |")
    say("|---|---|---|---|---|")
    for model, figures in retrieval["models"].items():
        for name, p in figures["crops"][headline]["precision"].items():
            bold = "**" if name == retrieval["headline_score"] else ""
            say(f"| {model} | {bold}{name}{bold} | {pct(p['p@1'])} | {pct(p['p@5'])} | {pct(p['p@10'])} |")
    say("\nP@1 differences (percentage points), paired bootstrap 95 % over the queries:\n")
    say("| model | fused w | fused − whole | fused − face |")
    say("|---|---|---|---|")
    for model, figures in retrieval["models"].items():
        intervals = figures["crops"][headline]["intervals_p@1"]
        for w in retrieval["weights"]:
            cells = []
            for other in ("whole", "face"):
                mean, low, high = intervals[f"fused w={w:g} − {other}"]
                cells.append(f"{100 * mean:+.2f} [{100 * low:+.2f}, {100 * high:+.2f}]")
            say(f"| {model} | {w:g} | {cells[0]} | {cells[1]} |")
    if len(retrieval["crops"]) > 1:
        say("\nVariations of the face crops (P@1, %; same queries; whole-image P@1 in the first column):\n")
        weights = retrieval["weights"]
        say(
            "| model | face crops | queries with an indexed face² | whole | face | "
            + " | ".join(f"fused w={w:g}" for w in weights)
            + " |"
        )
        say("|---|---|---|---|---|" + "---|" * len(weights))
        for model, figures in retrieval["models"].items():
            for label, entry in figures["crops"].items():
                p = entry["precision"]
                cells = " | ".join(pct(p[f"fused w={w:g}"]["p@1"]) for w in weights)
                indexed = retrieval["crops"][label]["queries_with_indexed_face"]
                say(
                    f"| {model} | {label} | {indexed} / {retrieval['queries']} | {pct(p['whole']['p@1'])} "
                    f"| {pct(p['face']['p@1'])} | {cells} |"
                )
        say(
            "\n² a query without an indexed face (policy 'all': no face whose shorter side is at least "
            "24 px) is ranked by its whole image in every mode, as the workbench's search "
            "falls back; its face column is then the whole-image score. A candidate without one cannot rank "
            "by face, and keeps its whole-image score in the fused mode."
        )
    say("\ncosine spread over all pairs (mean ± std): what a weighted sum of the two scores mixes")
    for model, figures in retrieval["models"].items():
        whole, face = figures["cosine_whole"], figures["cosine_face"]
        say(
            f"  {model}: whole {whole['mean']:.3f} ± {whole['std']:.3f}, "
            f"largest face {face['mean']:.3f} ± {face['std']:.3f}"
        )


def print_size_aware(retrieval: dict[str, Any]) -> None:
    if not retrieval["queries"] or not any("size_aware" in f for f in retrieval["models"].values()):
        return
    aware = retrieval["size_aware"]
    side = aware["side_of_largest_face_px"]
    say("\n### Size-aware fusion (retrieval by artist, P@k, %)\n")
    under = ", ".join(
        f"{s} px: {100 * v['face_images']:.0f} % of the face images, {100 * v['queries']:.0f} % of queries"
        for s, v in aware["share_under_S"].items()
    )
    say(
        f"Same queries and crops ({aware['crops']}). Fused with a face weight per candidate i: "
        "w_i = w · min(1, min(q, c_i) / S), q and c_i the longer side of the query's and the candidate's "
        "largest face (its box in image pixels, before the margin), S the full-weight side; S = 0 is the "
        "plain fusion. "
        f"The largest face's longer side: median {side['median']:.0f} px (p10 {side['p10']:.0f}, "
        f"p90 {side['p90']:.0f}); under S: {under or 'no S > 0'}. Last two columns: P@1 difference in "
        "percentage points, paired bootstrap 95 % over the queries.\n"
    )
    say("| model | S (px) | w | P@1 | P@5 | P@10 | P@1 fused − whole | P@1 fused − face |")
    say("|---|---|---|---|---|---|---|---|")
    for model, figures in retrieval["models"].items():
        p, intervals = figures["size_aware"]["precision"], figures["size_aware"]["intervals_p@1"]
        for name in ("whole", "face"):
            say(
                f"| {model} | — | {name} | {pct(p[name]['p@1'])} | {pct(p[name]['p@5'])} "
                f"| {pct(p[name]['p@10'])} | | |"
            )
        for s in aware["full_weight_sides"]:
            for w in aware["weights"]:
                name = size_aware_name(s, w)
                cells = []
                for other in ("whole", "face"):
                    mean, low, high = intervals[f"{name} − {other}"]
                    cells.append(f"{100 * mean:+.2f} [{100 * low:+.2f}, {100 * high:+.2f}]")
                say(
                    f"| {model} | {s:g} | {w:g} | {pct(p[name]['p@1'])} | {pct(p[name]['p@5'])} "
                    f"| {pct(p[name]['p@10'])} | {cells[0]} | {cells[1]} |"
                )


def print_checks(retrieval: dict[str, Any]) -> list[dict[str, Any]]:
    if not retrieval["queries"]:
        return []
    headline, fused = retrieval["headline_crops"], retrieval["headline_score"]
    say("\nfindings (artist P@1, default crops and weight)")
    found = []
    for model, figures in retrieval["models"].items():
        precision, intervals = headline_figures(figures, headline)
        p = {name: value["p@1"] for name, value in precision.items()}
        ok = figures["fusion_beats_both_p@1"]
        text = (
            f"{model}: {fused} beats both single scores on artist P@1: {pct(p[fused])} vs whole "
            f"{pct(p['whole'])} ({100 * intervals[f'{fused} − whole'][0]:+.2f} pp) and face {pct(p['face'])} "
            f"({100 * intervals[f'{fused} − face'][0]:+.2f} pp)"
        )
        say(f"{'PASS' if ok else 'FAIL'}: {text}")
        others = [
            f"{label}, {name}"
            for label, entry in figures["crops"].items()
            for name, value in entry["precision"].items()
            if name.startswith("fused")
            and value["p@1"] > entry["precision"]["whole"]["p@1"]
            and value["p@1"] > entry["precision"]["face"]["p@1"]
        ]
        say(f"  variants where fusion beats both (measured, not chosen): {'; '.join(others) or 'none'}")
        aware = figures.get("size_aware")
        beating = []
        if aware:
            p_aware = aware["precision"]
            for name, value in p_aware.items():
                if name in ("whole", "face"):
                    continue
                if value["p@1"] > p_aware["whole"]["p@1"] and value["p@1"] > p_aware["face"]["p@1"]:
                    mean, low, high = aware["intervals_p@1"][f"{name} − whole"]
                    beating.append(
                        f"{name} ({100 * mean:+.2f} pp vs whole [{100 * low:+.2f}, {100 * high:+.2f}])"
                    )
            say(f"  size-aware (S, w) beating both (measured, not chosen): {'; '.join(beating) or 'none'}")
        found.append(
            {
                "model": model,
                "passed": ok,
                "text": text,
                "variants_beating_both": others,
                "size_aware_beating_both": beating,
            }
        )
    return found


# --- main ---------------------------------------------------------------------------------------------


def model_sources(args, scratch: Path, cache: Cache) -> dict[str, ModelSource]:
    """The models, built only when an embedding is not in the cache. The frozen model's key: its weights
    (file and sha256) and pooling; the connection model's: its training configuration (epochs, negatives,
    seed and the rest), the starting weights, the training code and the thread count. The connection
    model's record (its training figures) is cached with its embeddings."""
    import torch

    from training.trainer import TrainConfig

    sources: dict[str, ModelSource] = {}
    model, origin = pretrained_model()
    pretrained_key = {
        "model": "pretrained",
        "backbone": BACKBONE,
        "pooling": "avg",
        "weights": asdict(origin),
    }
    if "pretrained" in args.models:
        record = {"weights": origin.description}
        sources["pretrained"] = ModelSource(pretrained_key, lambda: (model, record), record, mixable=True)
    if "connection" in args.models:
        config = TrainConfig(
            backbone=BACKBONE,
            pooling="avg",
            input_size=224,
            epochs=args.connection_epochs,
            negatives_per_pair=args.negatives,
            num_workers=args.num_workers,
        )
        key = {
            "model": "connection",
            "config": asdict(config),
            "start": pretrained_key,
            "code": source_digest(
                "training/trainer.py",
                "training/backbones.py",
                "annotations/demo.py",
                "bench/label_retrieval.py",
            ),
            "threads": torch.get_num_threads(),
        }
        cached = cache.read_json("connection-record", key)
        if cached is not None:
            say(
                f"\nconnection model: its record from the cache ({cached[1]}); "
                "trained only if an embedding is not there"
            )

        def train() -> tuple[Any, dict]:
            say("\ntraining the connection model on the demo collection's known connections ...")
            connection = train_connection_model(
                args.connection_epochs, args.negatives, scratch, args.num_workers
            )
            record = connection["record"]
            if record["config"] != asdict(config):
                raise SystemExit(
                    "bench/faces.py's connection configuration no longer matches label_retrieval's"
                )
            say(
                f"  connection: {record['demo']['train_pairs']} train pairs, "
                f"fit {record['seconds_fit']:.0f} s"
            )
            cache.write_json("connection-record", key, record)
            return connection["model"], record

        sources["connection"] = ModelSource(key, train, cached[0] if cached else None, mixable=False)
    return sources


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--every", type=int, default=1, help="keep every k-th image (sorted by path)")
    parser.add_argument(
        "--limit", type=int, default=None, help="a deterministic subset of the images (smoke)"
    )
    parser.add_argument(
        "--compare-every",
        type=int,
        default=2,
        help="the detector's defaults run on every k-th image (the paper setting on all)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--weights", type=float, nargs="+", default=[0.25, 0.5, 0.75], help="face weights")
    parser.add_argument(
        "--full-weight-sides",
        type=float,
        nargs="*",
        default=[0.0, 48.0, 64.0, 96.0],
        help="size-aware fusion: the face side (px) at which a face gets the full weight; 0: plain fusion",
    )
    parser.add_argument("--margins", type=float, nargs="*", default=[0.0, 1.0], help="crop margins to vary")
    parser.add_argument(
        "--all-faces", action=argparse.BooleanOptionalAction, default=True, help="also the policy 'all'"
    )
    parser.add_argument("--connection-epochs", type=int, default=1)
    parser.add_argument("--negatives", type=int, default=3, help="connection model: negatives per pair")
    parser.add_argument("--num-workers", type=int, default=2, help="image-decoding workers")
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="keep detections and embeddings here (keyed by what makes them): a re-run skips them",
    )
    args = parser.parse_args()
    if args.every < 1 or args.compare_every < 1:
        raise SystemExit("--every and --compare-every must be at least 1")
    if any(s < 0 for s in args.full_weight_sides):
        raise SystemExit("--full-weight-sides must be at least 0")
    if 0.5 not in args.weights:
        args.weights = sorted({*args.weights, 0.5})  # the default weight is the headline

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    model_name, flags = _cpu_model_and_flags()
    say(machine_line())
    say(f"cpu: {model_name}; avx512_bf16: {'yes' if 'avx512_bf16' in flags else 'no'}")
    load_start = os.getloadavg()
    say(f"load average at start {load_start[0]:.2f} (other jobs on this machine slow every figure alike)")
    workbench = workbench_face_settings()
    rows = load_rows(args.data_root, args.limit, args.every)
    sample = f"one image in {args.every}, sorted by path" if args.every > 1 else "all images"
    if args.limit:
        sample = f"--limit {args.limit}: a subset drawn by sha256 of the path" + (
            f" from one image in {args.every}" if args.every > 1 else ""
        )
    say(f"People-Art: {len(rows)} images ({sample})")
    results: dict[str, Any] = {
        "machine": machine_line(),
        "cpu": {
            "model": model_name,
            "avx512_bf16": "avx512_bf16" in flags,
            "threads": torch.get_num_threads(),
        },
        "load_average_start": load_start,
        "settings": {key: str(v) if isinstance(v, Path) else v for key, v in vars(args).items()},
        "sample": {"images": len(rows), "description": sample},
        "workbench_face_settings": workbench,
    }

    compared = list(range(0, len(rows), args.compare_every))
    say(
        f"\ndetection: the paper setting on all {len(rows)} images, both settings on {len(compared)} of them "
        f"(one in {args.compare_every}) ..."
        if args.compare_every > 1
        else f"\ndetection: both settings on each of the {len(rows)} images ..."
    )
    cache = Cache(args.cache)
    detectors = make_detectors(workbench)
    faces, seconds, timing = cached_detection(rows, detectors, args.compare_every, cache)
    if timing["source"] != "measured in this run":
        say(
            f"  detection from the {timing['source']}: faces and timings as measured on {timing['date']} "
            f"({timing['machine']}; load average {timing['load_average_before'][0]:.2f} before, "
            f"{timing['load_average_after'][0]:.2f} after); images/s below are that run's"
        )
    subset = [rows[i] for i in compared]
    results["detection"] = {
        "compare_every": args.compare_every,
        "compared_images": len(compared),
        "threads": torch.get_num_threads(),
        "timing": timing,
        "settings": {
            name: detection_figures(
                subset, [faces[name][i] for i in compared], [seconds[name][i] for i in compared], detector
            )
            for name, detector in detectors.items()
        },
    }
    if args.compare_every > 1:
        results["detection"]["paper_all_images"] = detection_figures(
            rows, faces["paper"], seconds["paper"], detectors["paper"]
        )
    for name, d in [
        *results["detection"]["settings"].items(),
        ("paper, all", results["detection"].get("paper_all_images")),
    ]:
        if d is None:
            continue
        say(
            f"  {name}: {d['images']} images, {d['images_per_second']:.1f} images/s, {d['faces']} faces in "
            f"{d['images_with_face']} images, {d['person_boxes_with_face']}/{d['person_boxes']} person boxes "
            "holding a face"
        )

    with tempfile.TemporaryDirectory(prefix="workbench-faces-") as folder:
        scratch = Path(folder)
        models = model_sources(args, scratch, cache)
        results["retrieval"] = run_retrieval(rows, faces["paper"], models, args, scratch, cache)

    print_detection(results["detection"])
    print_retrieval(results["retrieval"])
    print_size_aware(results["retrieval"])
    results["checks"] = print_checks(results["retrieval"])
    results["load_average_end"] = os.getloadavg()
    results["wall_seconds"] = time.perf_counter() - started
    say(f"\nwall time {results['wall_seconds']:.0f} s; {machine_line()}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=float, ensure_ascii=False))
        say(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
