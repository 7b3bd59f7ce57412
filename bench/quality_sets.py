"""Evaluation sets for bench/signature_quality.py --ablation (plain: no Django, no database).

* ``demo-hidden``: the demo collection (`annotations.demo.build_demo`, seed 7) with its full ground truth;
  queries are the members of ground-truth components that hold no imported ("known") connection, i.e. what
  a round has to discover. Gallery: every demo image.
* ``dev``: a People-Art development set: N source paintings of ../shared/data/peopleart with 1-2 derivatives
  each (`annotations.demo.SINGLE_TRANSFORMS`: workshop copy, b/w photograph, detail, mirrored copy) and a
  motif of one in eight sources pasted into a distractor, among 1,000 other People-Art paintings as
  distractors. (Its real connections, titles such as "...-after-millet", name works that are not in the set,
  so it has none to offer.) Queries: every member of a component.
* ``synthetic``: the workbench's synthetic validation (`training.synthetic`) generated from the demo's
  images that have no known connection, against the demo gallery.

Each set is (paths, partners, groups, queries) over one gallery; `whiten_on` is the rows a collection's
whitening is learned on (the gallery itself, never the synthetic queries).
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from annotations.demo import SINGLE_TRANSFORMS, borrowed_motif, build_demo
from annotations.splits import connected_components
from training import synthetic

ROOT = Path(__file__).resolve().parent.parent
PEOPLEART = ROOT.parent / "shared" / "data" / "peopleart"


@dataclass
class QualitySet:
    name: str
    paths: list[str]  # the gallery, then (synthetic) the queries that are not in the collection
    partners: dict[int, set[int]]
    groups: dict[int, int]
    queries: list[int]
    collection_rows: int  # rows [0, collection_rows) are the collection (whitening is learned on them)
    notes: dict = field(default_factory=dict)


def components_as_rows(components: list[list[str]], row: dict[str, int]):
    partners, groups = {}, {}
    for number, component in enumerate(components):
        rows = {row[m] for m in component if m in row}
        for r in rows:
            partners[r], groups[r] = rows - {r}, number
    return partners, groups


def demo_sets(folder: Path, synthetic_sources: int = synthetic.SOURCE_COUNT) -> list[QualitySet]:
    build_demo(folder, seed=7)
    ids, paths = [], []
    for name in ("sources.csv", "derivatives.csv"):
        with open(folder / name, newline="") as handle:
            for record in csv.DictReader(handle):
                ids.append(record["id"])
                paths.append(str(folder / "images" / record["path"]))
    row = {art: index for index, art in enumerate(ids)}
    with open(folder / "ground_truth.csv", newline="") as handle:
        truth = [(r["img1"], r["img2"]) for r in csv.DictReader(handle)]
    with open(folder / "connections_known.csv", newline="") as handle:
        known_nodes = {n for r in csv.DictReader(handle) for n in (r["img1"], r["img2"])}
    components = connected_components(truth)
    hidden = [c for c in components if not set(c) & known_nodes]
    partners, groups = components_as_rows(components, row)
    queries = sorted(row[m] for c in hidden for m in c)
    demo_hidden = QualitySet(
        "demo-hidden",
        paths,
        partners,
        groups,
        queries,
        len(paths),
        {"components": len(hidden), "of_all_components": len(components)},
    )
    # The product's candidates: artworks without a known connection (rounds.synthetic_validation).
    candidates = [(index, ids[index]) for index in range(len(ids)) if ids[index] not in known_nodes]
    sources = synthetic.choose_sources(candidates, synthetic_sources)
    chosen = set(sources)
    built = synthetic.build(
        folder / "synthetic", paths, ids, sources, [r for r in range(len(ids)) if r not in chosen]
    )
    s_partners, s_groups = synthetic.truth(built, len(paths))
    synthetic_set = QualitySet(
        "synthetic",
        paths + built.paths,
        s_partners,
        s_groups,
        sorted(s_partners),
        len(paths),
        {"sources": len(sources)},
    )
    return [demo_hidden, synthetic_set]


def dev_set(folder: Path, sources: int = 250, distractors: int = 1000, seed: int = 0) -> QualitySet:
    with open(PEOPLEART / "metadata.csv", newline="") as handle:
        records = sorted(csv.DictReader(handle), key=lambda r: r["path"])
    rng = random.Random(seed)
    rng.shuffle(records)
    chosen, extra = records[:sources], records[sources : sources + distractors]
    folder.mkdir(parents=True, exist_ok=True)
    ids = [r["path"] for r in extra]
    paths = [str(PEOPLEART / r["path"]) for r in extra]
    edges: list[tuple[str, str]] = []
    pictures = {}
    for index, record in enumerate(chosen):
        source_id = record["path"]
        ids.append(source_id)
        paths.append(str(PEOPLEART / source_id))
        picture = Image.open(PEOPLEART / source_id).convert("RGB")
        pictures[source_id] = picture
        for number, kind in enumerate(rng.sample(list(SINGLE_TRANSFORMS), k=rng.choice((1, 2)))):
            derived = f"d{index}-{number}-{kind}"
            target = folder / f"{derived}.jpg"
            image = SINGLE_TRANSFORMS[kind][0](picture, rng)  # always drawn: keeps the rng sequence
            if not target.exists():
                image.save(target, "JPEG", quality=88)
            ids.append(derived)
            paths.append(str(target))
            edges.append((source_id, derived))
    for index in range(sources // 8):
        motif_source, host = chosen[index]["path"], extra[index]["path"]
        derived, target = f"m{index}", folder / f"m{index}.jpg"
        image = borrowed_motif(pictures[motif_source], Image.open(PEOPLEART / host).convert("RGB"), rng)
        if not target.exists():
            image.save(target, "JPEG", quality=88)
        ids.append(derived)
        paths.append(str(target))
        edges += [(motif_source, derived), (host, derived)]
    row = {art: index for index, art in enumerate(ids)}
    components = connected_components(edges)
    partners, groups = components_as_rows(components, row)
    return QualitySet(
        "dev",
        paths,
        partners,
        groups,
        sorted(partners),
        len(paths),
        {"sources": sources, "derivatives": len(ids) - distractors - sources, "distractors": distractors},
    )
