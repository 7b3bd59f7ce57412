"""Synthetic validation: copies and variants generated from the collection's unlinked images (plain module).

A collection with a few dozen known connections has a val split of a dozen queries, too few to tell two
models apart (issue 11). Its unlinked images are many, though, and the kinds of derivative a historian
looks for can be imitated: a cropped detail, a workshop copy with shifted colours, a black-and-white
photograph of the object, a reversed (engraved) copy, a motif pasted into another painting, a photograph
taken at an angle, a picture in its frame. Each generated image is a query whose partners are its source
(and, for a pasted motif, the painting it was pasted into); the gallery is the whole collection plus every
generated image.

This validation is *synthetic* and is reported as such, beside the known-connection val and never mixed
with it: it measures how well a model finds a picture's derivatives, not whether it finds what historians
connect. Its sources are excluded from everything a round learns from, so it stays held out
(`rounds.build_gallery` drops them from the self-supervised pool).

Sources are chosen by a hash of the image content, so the same images are chosen as the collection grows
(until it has more candidates than `SOURCE_COUNT`, a new image enters only if its hash ranks among the
first). Generated files are cached by source hash, kind and seed.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from annotations.demo import borrowed_motif, bw_photograph, cropped_detail, mirrored_copy, workshop_copy
from annotations.storage import atomic_write

from .extraction import load_rgb
from .metrics import BOOTSTRAP_SAMPLES, RetrievalMetrics, evaluate_retrieval

SOURCE_COUNT = 200
KINDS_PER_SOURCE = 2
# Longest side of a generated image: enough for every extraction size we use (320 px and multi-scale).
MAX_SIDE = 512
SEED = 0


def perspective_photograph(image: Image.Image, rng: random.Random) -> Image.Image:
    """The painting photographed at an angle: a keystone warp, slight colour cast, a little wall around it."""
    w, h = image.size
    d = rng.uniform(0.06, 0.16)
    # Corners of the painting in the photograph (one side nearer the camera than the other).
    if rng.random() < 0.5:
        quad = [(0, h * d * rng.uniform(0.2, 1)), (w, 0), (w, h), (0, h * (1 - d * rng.uniform(0.2, 1)))]
    else:
        quad = [(0, 0), (w, h * d * rng.uniform(0.2, 1)), (w, h * (1 - d * rng.uniform(0.2, 1))), (0, h)]
    coefficients = _perspective_coefficients(quad, [(0, 0), (w, 0), (w, h), (0, h)])
    wall = tuple(rng.randint(150, 215) for _ in range(3))
    warped = image.transform((w, h), Image.PERSPECTIVE, coefficients, Image.BICUBIC, fillcolor=wall)
    tint = Image.new("RGB", warped.size, tuple(rng.randint(200, 255) for _ in range(3)))
    return Image.blend(warped, tint, rng.uniform(0.05, 0.15))


def _perspective_coefficients(target: Sequence[tuple[float, float]], source: Sequence[tuple[float, float]]):
    """PIL's 8 coefficients mapping output pixels (`target` quad) back to input pixels (`source` quad)."""
    rows = []
    for (x, y), (u, v) in zip(target, source, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    return np.linalg.solve(np.array(rows), np.array(source).reshape(8)).tolist()


def framed(image: Image.Image, rng: random.Random) -> Image.Image:
    """The painting in a gilt or dark frame with a strip of wall: what a gallery photograph shows."""
    w, h = image.size
    width = int(min(w, h) * rng.uniform(0.06, 0.14))
    colour = rng.choice([(150, 110, 40), (90, 60, 30), (40, 30, 25), (180, 150, 90)])
    framed_image = ImageOps.expand(image, border=width, fill=colour)
    draw = ImageDraw.Draw(framed_image)
    for step in range(0, width, max(2, width // 5)):  # mouldings
        shade = tuple(max(0, c - 25 + (step % 3) * 20) for c in colour)
        draw.rectangle(
            (step, step, framed_image.width - 1 - step, framed_image.height - 1 - step), outline=shade
        )
    wall = tuple(rng.randint(170, 235) for _ in range(3))
    return ImageOps.expand(framed_image, border=int(width * rng.uniform(0.5, 1.5)), fill=wall)


# Single-image transforms; "motif" (a part of the source pasted into a host painting) needs two images.
TRANSFORMS: dict[str, Callable[[Image.Image, random.Random], Image.Image]] = {
    "crop": cropped_detail,
    "colour": workshop_copy,
    "bw_photograph": bw_photograph,
    "mirror": mirrored_copy,
    "perspective": perspective_photograph,
    "frame": framed,
}
KINDS = (*TRANSFORMS, "motif")


@dataclass(frozen=True)
class SyntheticQuery:
    name: str  # file name under the synthetic folder, also the query's id
    kind: str
    source: int  # gallery row of the image it was made from
    partners: tuple[int, ...]  # gallery rows it should find: the source, and the host of a pasted motif


@dataclass
class SyntheticSet:
    folder: Path
    queries: list[SyntheticQuery]

    @property
    def paths(self) -> list[str]:
        return [str(self.folder / query.name) for query in self.queries]

    @property
    def names(self) -> list[str]:
        return [query.name for query in self.queries]


def content_rank(key: str) -> str:
    return hashlib.sha256(f"synthetic-validation:{key}".encode()).hexdigest()


def choose_sources(candidates: Sequence[tuple[int, str]], count: int = SOURCE_COUNT) -> list[int]:
    """Rows (of `(row, content key)` candidates) to generate from: the `count` of lowest content rank."""
    return sorted(row for row, _ in sorted(candidates, key=lambda item: content_rank(item[1]))[:count])


def fit_size(image: Image.Image, max_side: int = MAX_SIDE) -> Image.Image:
    if max(image.size) > max_side:
        image = image.copy()
        image.thumbnail((max_side, max_side), Image.LANCZOS)
    return image


def make_image(kind: str, source: Image.Image, host: Image.Image | None, rng: random.Random) -> Image.Image:
    if kind == "motif":
        if host is None:
            raise ValueError("a pasted motif needs a host image")
        return borrowed_motif(source, host, rng)
    return TRANSFORMS[kind](source, rng)


def build(
    folder: Path,
    paths: Sequence[str],
    keys: Sequence[str],
    sources: Sequence[int],
    host_rows: Sequence[int],
    per_source: int = KINDS_PER_SOURCE,
    seed: int = SEED,
    progress: Callable[[float, str], None] = lambda fraction, message: None,
) -> SyntheticSet:
    """Generate (or find cached) `per_source` derivatives of each source row.

    `paths[row]` and `keys[row]` (a content hash) describe every gallery row; `host_rows` are the rows a
    motif may be pasted into (never a source). The kinds and hosts of a source depend only on its key and
    the seed, so a source keeps its derivatives when the collection changes around it (hosts aside).
    """
    if per_source < 1 or per_source > len(KINDS):
        raise ValueError(f"per_source must lie in 1..{len(KINDS)}, got {per_source}")
    folder.mkdir(parents=True, exist_ok=True)
    source_rows = set(sources)
    hosts = [row for row in host_rows if row not in source_rows]
    queries: list[SyntheticQuery] = []
    for number, row in enumerate(sources):
        rng = random.Random(f"{seed}:{keys[row]}")
        kinds = rng.sample(KINDS, k=per_source)
        source_image: Image.Image | None = None
        for kind in kinds:
            host = rng.choice(hosts) if kind == "motif" and hosts else None
            if kind == "motif" and host is None:
                kind = "colour"
            name = f"{keys[row]}-{kind}-{seed}" + (f"-{keys[host][:16]}" if host is not None else "") + ".jpg"
            target = folder / name
            if not target.exists():
                if source_image is None:
                    source_image = fit_size(load_rgb(paths[row]))
                host_image = fit_size(load_rgb(paths[host])) if host is not None else None
                picture = make_image(kind, source_image, host_image, random.Random(f"{seed}:{name}"))
                atomic_write(
                    target, lambda handle, picture=picture: fit_size(picture).save(handle, "JPEG", quality=90)
                )
            partners = (row,) if host is None else (row, host)
            queries.append(SyntheticQuery(name, kind, row, partners))
        progress(
            (number + 1) / max(len(sources), 1), f"synthetic validation images {number + 1}/{len(sources)}"
        )
    return SyntheticSet(folder, queries)


def evaluate(
    gallery_vectors: np.ndarray,
    query_vectors: np.ndarray,
    synthetic: SyntheticSet,
    bootstrap: int = BOOTSTRAP_SAMPLES,
) -> RetrievalMetrics:
    """Each generated image against the collection plus every generated image, itself excluded.

    Partners: its source (and host), and the other images generated from the same source. Bootstrap groups:
    the source, so that two derivatives of one painting count as one draw. Query rows in the result are
    gallery size + query index.
    """
    if len(query_vectors) != len(synthetic.queries):
        raise ValueError(f"{len(query_vectors)} query vectors for {len(synthetic.queries)} synthetic queries")
    base = len(gallery_vectors)
    vectors = np.concatenate([np.asarray(gallery_vectors, np.float32), np.asarray(query_vectors, np.float32)])
    partners, groups = truth(synthetic, base)
    return evaluate_retrieval(vectors, list(partners), partners, groups=groups, bootstrap=bootstrap)


def truth(synthetic: SyntheticSet, base: int) -> tuple[dict[int, set[int]], dict[int, int]]:
    """Partners and bootstrap groups of the queries, numbered `base` + query index (after a gallery of
    `base` rows): each query's source (and host), and the other images generated from the same source;
    grouped by source."""
    siblings: dict[int, set[int]] = {}
    for index, query in enumerate(synthetic.queries):
        siblings.setdefault(query.source, set()).add(base + index)
    partners = {
        base + index: set(query.partners) | siblings[query.source]
        for index, query in enumerate(synthetic.queries)
    }
    groups = {base + index: query.source for index, query in enumerate(synthetic.queries)}
    return partners, groups
