"""Faces as a second index beside the whole image (methods.md §5 and its authors' future work): which faces
to embed, how to crop them, and how a face score and a whole-image score make one ranking. Plain: no Django.

The painting-similarity study embedded the largest face of each painting separately ("with face" index) and
searched the two indexes apart; its authors proposed fusing them. Here a candidate's face score is the best
cosine between any of the query's indexed faces and any of its own; the fused score is a weighted sum of that
and the whole-image cosine. A candidate without an indexed face keeps its whole-image score (the fallback),
so fusion never hides a painting for lacking a face; face-only search ranks only the artworks that have one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Which detected faces become crops in the face index.
POLICIES = ("largest", "all")
# The study's choice: the largest face only. "all" indexes every face whose box is at least MIN_SIDE.
DEFAULT_POLICY = "largest"
# A face smaller than this (the box's shorter side, in image pixels) is a blur at the extractor's 224 px: it
# would add noise to the index, not a sitter. Applies to "all"; "largest" takes the largest whatever its size.
DEFAULT_MIN_SIDE = 24
# Context around the box: MTCNN's box is tight (brows to chin); hair, headdress and ears carry a painter's
# hand and a sitter's type. The crop is a square of the box's longer side × (1 + CROP_MARGIN).
CROP_MARGIN = 0.4
# Crops are stored at most this many pixels a side: the extractors look at 224-320 px.
CROP_SIDE = 320

MODES = ("whole", "face", "fused")
# The face side (px) from which a face counts fully in fused search (`face_weights`); 0: always fully.
FULL_WEIGHT_SIDE = 96.0
# Equal weight by default; measured on People-Art by artist (bench/faces.py), adjustable per search.
DEFAULT_FACE_WEIGHT = 0.5


@dataclass(frozen=True)
class DetectedFace:
    """What `select_faces` needs of a stored face: its box in image pixels."""

    key: int
    box: tuple[float, float, float, float]

    @property
    def area(self) -> float:
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])

    @property
    def shorter_side(self) -> float:
        return min(self.box[2] - self.box[0], self.box[3] - self.box[1])


def select_faces(
    faces: Sequence[DetectedFace], policy: str = DEFAULT_POLICY, min_side: float = DEFAULT_MIN_SIDE
) -> list[DetectedFace]:
    """The faces of one image to embed: the largest (ties: the first, i.e. the most probable), or every face
    whose shorter side is at least `min_side`, largest first."""
    if policy not in POLICIES:
        raise ValueError(f"face policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    if min_side < 0:
        raise ValueError(f"min_side must be at least 0, got {min_side}")
    if not faces:
        return []
    by_size = sorted(faces, key=lambda face: -face.area)  # stable: equal areas keep their order
    if policy == "largest":
        return by_size[:1]
    return [face for face in by_size if face.shorter_side >= min_side]


def crop_box(
    box: Sequence[float], width: int, height: int, margin: float = CROP_MARGIN
) -> tuple[int, int, int, int]:
    """The square crop (left, top, right, bottom; integer pixels, right/bottom exclusive) around a face box.

    Side = the box's longer side × (1 + margin), centred on the box. A square that would cross the image's
    edge is shifted back inside rather than cut, so a face at the border keeps its context on the other side;
    only when the square is larger than the image is it cut to the image. Never empty for a box that
    overlaps the image.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}×{height}")
    if margin < 0:
        raise ValueError(f"margin must be at least 0, got {margin}")
    x1, y1, x2, y2 = (float(v) for v in box)
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"empty face box {tuple(box)}")
    side = max(x2 - x1, y2 - y1) * (1.0 + margin)
    centre_x, centre_y = (x1 + x2) / 2, (y1 + y2) / 2

    def span(centre: float, limit: int) -> tuple[int, int]:
        length = min(side, float(limit))
        start = min(max(centre - length / 2, 0.0), limit - length)
        low = int(np.floor(start))
        high = int(np.ceil(start + length))
        return max(0, low), max(min(limit, high), max(0, low) + 1)

    left, right = span(centre_x, width)
    top, bottom = span(centre_y, height)
    return left, top, right, bottom


def artwork_face_scores(
    query_faces: np.ndarray, face_vectors: np.ndarray, face_rows: np.ndarray, n_rows: int
) -> np.ndarray:
    """Per whole-image row: the best cosine between any query face and any of that artwork's faces; NaN for
    an artwork without an indexed face. Vectors are L2-normalised (cosine = dot product); `face_rows[i]` is
    the whole-image row of face i's artwork."""
    scores = np.full(n_rows, -np.inf, dtype=np.float32)
    if len(query_faces) and len(face_vectors):
        best = (face_vectors @ np.atleast_2d(query_faces).T).max(axis=1).astype(np.float32)
        np.maximum.at(scores, np.asarray(face_rows, dtype=np.int64), best)
    scores[np.isneginf(scores)] = np.nan
    return scores


def face_weights(
    weight: float, query_side: float, candidate_sides: np.ndarray, full_side: float = FULL_WEIGHT_SIDE
) -> np.ndarray:
    """The face's weight per candidate: `weight` × min(1, min(query's, candidate's face side) / full_side).

    A face a few dozen pixels high makes a blurred crop at the extractor's 224 px, and its cosine says
    little about the hand that painted it; the smaller of the two faces compared bounds what the face
    score can know. `full_side` 0 gives every face the full weight. Sides are the longer side of the
    detected box in the image's own pixels; NaN (no face) gives 0."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the face weight must be between 0 and 1, got {weight}")
    sides = np.minimum(np.asarray(candidate_sides, dtype=np.float32), np.float32(query_side))
    if full_side <= 0:
        return np.where(np.isnan(sides), 0.0, weight).astype(np.float32)
    return (weight * np.clip(np.nan_to_num(sides, nan=0.0) / full_side, 0.0, 1.0)).astype(np.float32)


def fuse(
    whole: np.ndarray,
    face: np.ndarray | None,
    mode: str,
    weight: float | np.ndarray = DEFAULT_FACE_WEIGHT,
) -> np.ndarray:
    """One score per row to rank by, -inf for rows the mode cannot rank.

    whole: the whole-image cosine. face: `artwork_face_scores` (None or all NaN: the query has no face,
    and every mode falls back to the whole image). fused: weight·face + (1 − weight)·whole where the
    candidate has a face, its whole-image score where it has none; `weight` one number, or one per row
    (`face_weights`).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if not np.all((0.0 <= np.asarray(weight)) & (np.asarray(weight) <= 1.0)):
        raise ValueError(f"the face weight must be between 0 and 1, got {weight}")
    whole = np.asarray(whole, dtype=np.float32)
    if mode == "whole" or face is None or not np.any(~np.isnan(face)):
        return whole.copy()
    has_face = ~np.isnan(face)
    if mode == "face":
        return np.where(has_face, face, -np.inf).astype(np.float32)
    return np.where(has_face, weight * np.nan_to_num(face) + (1.0 - weight) * whole, whole).astype(np.float32)
