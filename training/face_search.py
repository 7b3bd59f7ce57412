"""Search by whole image, by face, or both fused (`training.faces.fuse`), under one model version.

The query is an artwork (its indexed faces) or one of its detected faces (a box clicked on the artwork page;
embedded on the spot when the index chose another face of that painting). Whole-image scores come from the
version's signatures, face scores from its face index (`face_detection.embed_faces`), both cosines in the
version's own space. A query without a face, or a version whose index holds none of the query's faces and
no face to embed, falls back to the whole image and says so.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from annotations.images import ImageProblem
from annotations.models import Artwork

from . import faces as face_rules
from .face_detection import FaceIndexMissing, face_crop, load_for_crops, load_index
from .models import Face, ModelVersion
from .search import load_model_once, signatures
from .signature_store import top_rows


class FaceSearchError(ValueError):
    """A face search that cannot be answered: a clear message for the page and the command line."""


@dataclass
class FaceHit:
    artwork_id: int
    score: float  # what the hits are ordered by (the mode's score)
    whole: float  # cosine of the whole images
    face: float | None  # best face cosine (None: the hit has no indexed face)


@dataclass
class FaceSearch:
    mode: str  # the mode asked for
    used: str  # the mode that ranked the hits ("whole" after a fallback)
    weight: float
    hits: list[FaceHit]
    query_faces: list[int] = field(default_factory=list)  # the query's face ids that were used
    note: str = ""


def search(
    version: ModelVersion,
    artwork_id: int | None = None,
    face_id: int | None = None,
    mode: str = "fused",
    weight: float = face_rules.DEFAULT_FACE_WEIGHT,
    k: int = 24,
) -> FaceSearch:
    """The k artworks nearest to the query (the query's artwork left out) under `mode`."""
    if mode not in face_rules.MODES:
        raise FaceSearchError(f"mode must be one of {', '.join(face_rules.MODES)}, got {mode!r}")
    if not 0.0 <= weight <= 1.0:
        raise FaceSearchError(f"the face weight must be between 0 and 1, got {weight:g}")
    face = None
    if face_id is not None:
        face = Face.objects.select_related("artwork").filter(pk=face_id).first()
        if face is None:
            raise FaceSearchError(f"no face with id {face_id}")
        if artwork_id is not None and face.artwork_id != artwork_id:
            raise FaceSearchError(f"face {face_id} belongs to artwork {face.artwork_id}, not {artwork_id}")
        artwork_id = face.artwork_id
    if artwork_id is None:
        raise FaceSearchError("name an artwork or a face to search from")
    loaded = signatures(version)
    if loaded is None:
        raise FaceSearchError(f"{version.label} has no signatures yet")
    stored, rows = loaded
    if artwork_id not in rows:
        raise FaceSearchError(f"artwork {artwork_id} has no signature under {version.label}")
    whole = stored.vectors @ stored.vectors[rows[artwork_id]]
    face_scores = None
    used, note, query_faces = "whole", "", []
    asked_weight = weight  # per candidate below when faces weigh by their size
    if mode != "whole":
        index = load_index(version)
        if index is None:
            raise FaceIndexMissing(
                f"{version.label} has no face index yet: detect faces, then "
                f"python manage.py embed_faces --model {version.number}"
            )
        query_vectors, query_faces = query_face_vectors(version, index, artwork_id, face)
        face_rows = whole_rows(index, stored.ids)
        keep = face_rows >= 0  # faces of artworks without a signature under this version are not ranked
        if len(query_vectors) and keep.any():
            all_kept = bool(keep.all())  # then no copy of the face matrix (100,000 × 1280 is 512 MB)
            face_scores = face_rules.artwork_face_scores(
                query_vectors,
                index.faces.vectors if all_kept else index.faces.vectors[keep],
                face_rows if all_kept else face_rows[keep],
                len(stored.ids),
            )
            used = mode
            if mode == "fused" and face_rules.FULL_WEIGHT_SIDE > 0:
                sides = [max(face.width, face.height)] if face else [index.side_of[i] for i in query_faces]
                weight = size_aware_weights(
                    index.sides[keep], face_rows[keep], len(stored.ids), max(sides), weight
                )
        else:
            note = (
                "no face in the query: ranked by the whole image"
                if not len(query_vectors)
                else ("no other artwork has an indexed face: ranked by the whole image")
            )
    scores = face_rules.fuse(whole, face_scores, used, weight)
    excluded = {rows[artwork_id]}
    hits = []
    for row in top_rows(scores, k, excluded):
        if not np.isfinite(scores[row]):
            break  # face-only: the artworks without a face are not ranked
        face_score = None if face_scores is None or np.isnan(face_scores[row]) else float(face_scores[row])
        hits.append(FaceHit(int(stored.ids[row]), float(scores[row]), float(whole[row]), face_score))
    return FaceSearch(mode, used, asked_weight, hits, query_faces, note)


_rows_cache: dict[tuple[int, int], tuple[object, object, np.ndarray]] = {}


def whole_rows(index, ids: list[int]) -> np.ndarray:
    """Per face of the index: the whole-image row of its artwork (-1: none), kept while both are the same
    objects (each is cached per process until its files change)."""
    key = (id(index), id(ids))
    cached = _rows_cache.get(key)
    if cached is not None and cached[0] is index and cached[1] is ids:
        return cached[2]
    row_of = {artwork_id: row for row, artwork_id in enumerate(ids)}
    rows = np.fromiter(
        (row_of.get(int(a), -1) for a in index.artworks), dtype=np.int64, count=len(index.artworks)
    )
    _rows_cache.clear()  # one entry: the last index searched
    _rows_cache[key] = (index, ids, rows)
    return rows


def size_aware_weights(
    sides: np.ndarray, rows: np.ndarray, n_rows: int, query_side: float, weight: float
) -> np.ndarray:
    """The face weight per row (`faces.face_weights`): by the smaller of the query's largest face and the
    candidate's largest indexed face. (Under the "all" policy the weight follows the candidate's largest
    face, not the one that matched best.)"""
    candidate_sides = np.full(n_rows, -np.inf, dtype=np.float32)
    np.maximum.at(candidate_sides, rows, sides)
    candidate_sides[np.isneginf(candidate_sides)] = np.nan
    return face_rules.face_weights(weight, query_side, candidate_sides)


def query_face_vectors(version: ModelVersion, index, artwork_id: int, face: Face | None):
    """The query's face vectors: the clicked face's (from the index, or embedded now), else every indexed
    face of the artwork."""
    if face is not None:
        row = index.faces.row_of().get(face.pk)
        if row is not None:
            return index.faces.vectors[[row]], [face.pk]
        return embed_face(version, face)[None, :], [face.pk]
    mine = [face_id for face_id in index.faces.ids if index.artwork_of[face_id] == artwork_id]
    if not mine:
        return np.zeros((0, index.faces.vectors.shape[1]), dtype=np.float32), []
    return index.faces.subset(mine).vectors, mine


def embed_face(version: ModelVersion, face: Face) -> np.ndarray:
    """One face's signature under `version`, computed now (a face the index did not choose); the image is
    decoded only as large as the crop needs."""
    artwork: Artwork = face.artwork
    try:
        image = load_for_crops(artwork, [face])
    except (ImageProblem, OSError) as exc:
        raise FaceSearchError(f"the image of artwork {artwork.pk} cannot be read: {exc}") from None
    crop = face_crop(image, face, artwork.width, artwork.height)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "face.png"
        crop.save(path, "PNG", compress_level=1)
        vector = version.retrieval_method.embed(
            load_model_once(version), version, [str(path)], num_workers=0, extraction_batch_size=1
        )[0]
    vector = np.asarray(vector, dtype=np.float32)
    return vector / max(float(np.linalg.norm(vector)), 1e-12)
