"""Spatial verification of candidate connections with local features (plain module, no Django).

A global signature says two pictures look alike; it cannot say that the *same* figure sits in both. Local
features can: SIFT keypoints (Lowe, IJCV 2004) described as RootSIFT (Arandjelović & Zisserman, CVPR
2012), matched with Lowe's ratio test, and a geometric model fitted with RANSAC. Enough inliers means one
picture contains a (possibly cropped, rescaled, recoloured, slightly rotated or re-photographed) copy of a
part of the other: the classic re-ranking step of instance retrieval (Philbin et al., CVPR 2007). The
inliers are also the *why*: the matched points are drawn in the pair view.

A reversed copy (an engraving after a painting) mirrors the composition, which SIFT does not survive; the
query is therefore also matched mirrored, and the better of the two counts.

Features are computed on a grey copy whose longest side is at most `MAX_SIDE` px, at most `MAX_FEATURES`
per image, and cached by the caller (`Features.save`/`load`, a few tens of kB per image).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

MAX_SIDE = 640
MAX_FEATURES = 800
RATIO = 0.8
MIN_INLIERS = 12  # below this an affine fit by RANSAC is often luck (tested on unrelated paintings)
RANSAC_THRESHOLD = 8.0  # px at MAX_SIDE
# Names the settings an inlier count depends on: counts cached under another key are not reused. The
# revision changes with the matching itself (2: the corrected reflection of mirrored descriptors).
MATCHER_REVISION = 2
MATCHER_KEY = f"sift{MAX_FEATURES}-{MAX_SIDE}px-ratio{RATIO}-ransac{RANSAC_THRESHOLD}-r{MATCHER_REVISION}"


@dataclass
class Features:
    points: np.ndarray  # (K, 2) float32, x y in the original image's pixels
    descriptors: np.ndarray  # (K, 128) float32, RootSIFT
    size: tuple[int, int]  # the original image's width, height

    @cached_property
    def mirrored(self) -> Features:
        """The features of the mirrored image, without detecting again: x → width − x and the descriptor's
        bins reflected (SIFT's 4×4 spatial cells by 8 orientations). Kept: a query is matched against
        every candidate of its top k."""
        points = self.points.copy()
        points[:, 0] = self.size[0] - points[:, 0]
        return Features(points, _mirror_descriptors(self.descriptors), self.size)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
        np.savez_compressed(
            temporary,
            points=self.points,
            descriptors=self.descriptors.astype(np.float16),
            size=np.array(self.size),
        )
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: Path) -> Features:
        with np.load(path) as data:
            return cls(
                data["points"].astype(np.float32),
                data["descriptors"].astype(np.float32),
                tuple(int(v) for v in data["size"]),
            )


def _mirror_descriptors(descriptors: np.ndarray) -> np.ndarray:
    """SIFT descriptor layout: 4 rows × 4 columns of cells in the keypoint's frame (columns along its
    orientation θ, rows across it), 8 bins of gradient angle relative to θ each.

    Mirrored, a keypoint's orientation becomes π − θ: its frame's first axis is the mirror of the old one
    and its second axis the mirror reversed, so the rows swap (not the columns), and a gradient at angle α
    relative to θ lies at −α relative to π − θ (bin k → −k). An earlier version swapped the columns and
    mapped k → 4 − k (the same cells seen from a frame turned by 180°): on the demo's Met paintings it
    matched 5-15 % of the keypoints detected on the mirrored image, this 75-90 %, and the demo's reversed
    copies went unverified."""
    if len(descriptors) == 0:
        return descriptors
    cells = descriptors.reshape(-1, 4, 4, 8)[:, ::-1, :, :]
    orientation = (-np.arange(8)) % 8
    return np.ascontiguousarray(cells[..., orientation].reshape(-1, 128))


def extract(image_path: str | os.PathLike[str], max_side: int = MAX_SIDE) -> Features:
    """SIFT keypoints and RootSIFT descriptors of an image (EXIF orientation applied, as everywhere)."""
    import cv2

    from .extraction import load_rgb

    picture = load_rgb(image_path)
    width, height = picture.size
    scale = min(1.0, max_side / max(width, height))
    if scale < 1.0:
        picture = picture.resize((max(1, round(width * scale)), max(1, round(height * scale))))
    grey = np.asarray(picture.convert("L"))
    sift = cv2.SIFT_create(nfeatures=MAX_FEATURES)
    keypoints, descriptors = sift.detectAndCompute(grey, None)
    if descriptors is None or not keypoints:
        return Features(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32), (width, height))
    # RootSIFT: L1-normalise, then square root; Euclidean distance then compares like the Hellinger kernel.
    descriptors = descriptors / np.maximum(descriptors.sum(axis=1, keepdims=True), 1e-7)
    descriptors = np.sqrt(descriptors).astype(np.float32)
    points = np.array([kp.pt for kp in keypoints], dtype=np.float32) / scale
    return Features(points, descriptors, (width, height))


@dataclass
class Match:
    inliers: int
    mirrored: bool
    pairs: np.ndarray  # (inliers, 4) float32: x_a, y_a, x_b, y_b in the original images' pixels


NO_MATCH = Match(0, False, np.zeros((0, 4), np.float32))


def _match_once(a: Features, b: Features) -> Match:
    import cv2

    if len(a.descriptors) < 3 or len(b.descriptors) < 3:
        return NO_MATCH
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    candidates = matcher.knnMatch(a.descriptors, b.descriptors, k=2)
    good = [m for m, n in (pair for pair in candidates if len(pair) == 2) if m.distance < RATIO * n.distance]
    if len(good) < 3:
        return NO_MATCH
    source = np.float32([a.points[m.queryIdx] for m in good])
    target = np.float32([b.points[m.trainIdx] for m in good])
    # A similarity or general affine map covers copies, details (scale + shift), slight rotation and
    # a moderately oblique photograph; a homography overfits few matches.
    threshold = RANSAC_THRESHOLD * max(b.size) / MAX_SIDE
    _, mask = cv2.estimateAffine2D(
        source, target, method=cv2.RANSAC, ransacReprojThreshold=threshold, maxIters=2000, confidence=0.99
    )
    if mask is None:
        return NO_MATCH
    keep = mask.ravel().astype(bool)
    return Match(int(keep.sum()), False, np.hstack([source[keep], target[keep]]))


def match(a: Features, b: Features) -> Match:
    """The geometric match of `a` against `b`, trying `a` as it is and mirrored; the one with more inliers."""
    straight = _match_once(a, b)
    reversed_ = _match_once(a.mirrored, b)
    if reversed_.inliers > straight.inliers:
        pairs = reversed_.pairs.copy()
        pairs[:, 0] = a.size[0] - pairs[:, 0]  # back to the unmirrored picture's coordinates
        return Match(reversed_.inliers, True, pairs)
    return straight


def verified_score(similarity: float, inliers: int, weight: float = 1.0, saturation: int = 60) -> float:
    """Global cosine plus a bonus for verified inliers (none below MIN_INLIERS, full at `saturation`), so a
    verified candidate moves above every unverified one of similar look."""
    if inliers < MIN_INLIERS:
        return similarity
    return similarity + weight * min(inliers, saturation) / saturation


def reranked_scores(
    query: np.ndarray,
    vectors: np.ndarray,
    similarities: np.ndarray,
    inliers: dict[int, int],
    expand: bool = True,
) -> np.ndarray:
    """Scores of every gallery row after verification of some of them (`inliers`: row → inlier count).

    With `expand`, the query is first expanded with the signatures of the verified rows (average query
    expansion, Chum et al., "Total recall", ICCV 2007) and the gallery scored again; then every verified
    row gets its bonus (`verified_score`). `similarities` are the query's own cosine similarities; the
    rows to exclude (the query) are the caller's to mask."""
    passed = [row for row, count in inliers.items() if count >= MIN_INLIERS]
    scores = similarities
    if expand and passed:
        expanded = query + vectors[passed].sum(axis=0)
        scores = vectors @ (expanded / np.linalg.norm(expanded)).astype(np.float32)
    final = np.array(scores, dtype=np.float32, copy=True)
    for row, count in inliers.items():
        final[row] = verified_score(float(scores[row]), count)
    return final


def render_matches(
    first_path: str | os.PathLike[str],
    second_path: str | os.PathLike[str],
    found: Match,
    height: int = 480,
    max_lines: int = 150,
) -> bytes:
    """A PNG of both images side by side at `height` px, a line (and two dots) per matched keypoint pair,
    at most `max_lines` of them, evenly chosen."""
    import io

    from PIL import Image, ImageDraw

    from .extraction import load_rgb

    first, second = load_rgb(first_path), load_rgb(second_path)
    scales = [height / first.height, height / second.height]
    first = first.resize((max(1, round(first.width * scales[0])), height))
    second = second.resize((max(1, round(second.width * scales[1])), height))
    gap = 12
    canvas = Image.new("RGB", (first.width + gap + second.width, height), (255, 255, 255))
    canvas.paste(first, (0, 0))
    canvas.paste(second, (first.width + gap, 0))
    draw = ImageDraw.Draw(canvas)
    pairs = found.pairs
    if len(pairs) > max_lines:
        pairs = pairs[np.linspace(0, len(pairs) - 1, max_lines).astype(int)]
    for index, (xa, ya, xb, yb) in enumerate(pairs.tolist()):
        colour = (40 + (index * 53) % 200, 200 - (index * 31) % 150, 60 + (index * 97) % 180)
        a = (xa * scales[0], ya * scales[0])
        b = (first.width + gap + xb * scales[1], yb * scales[1])
        draw.line([a, b], fill=colour, width=1)
        for x, y in (a, b):
            draw.ellipse((x - 2.5, y - 2.5, x + 2.5, y + 2.5), outline=colour, width=2)
    output = io.BytesIO()
    canvas.save(output, "PNG", optimize=False, compress_level=3)
    return output.getvalue()
