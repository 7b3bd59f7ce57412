"""Retrieval quality of round 0 (pretrained EfficientNet-Lite0) vs round 1 (one training round) on held-out
connections, each data set in a fresh WORKBENCH_DATA_DIR and SQLite database in a child process.

* ``--dataset demo``: `annotations.demo.build_demo(folder, seed=7)`, imported as users get it (sources.csv
  without connections into "Met", derivatives.csv with connections_known.csv into "Derived"), then
  `training.rounds.train_round(...)`, which creates round 0 and trains round 1. Printed: the versions' own
  val/test metrics (known connections), and both versions against the demo's FULL ground truth
  (ground_truth.csv, hidden connections included):

  - ``gt-test``: queries are the artworks of ground-truth components that hold at least one test-split
    artwork and no train- or val-split artwork (so unlinked members hidden from the import count as
    queries too, and no query was ever trained on or used for model selection); components that mix test
    with train/val are left out (their count is printed). Partners: the other members of the component.
  - ``gt-hidden``: components with no imported connection at all (every member unlinked). Never trained as
    positives, but unlinked artworks are in the mining pool, so they may have served as negatives.

* ``--dataset peopleart``: N source paintings (fixed seed) from ../shared/data/peopleart, 1–2 derivatives
  each made with `annotations.demo.SINGLE_TRANSFORMS` (workshop copy, b/w photograph (DUPLICATE), detail,
  mirrored), all generated connections known, imported into one collection (originals copied beside the
  derivatives); round 0 vs round 1 on the versions' val/test metrics.

The gallery of every evaluation is the whole imported set; the query is excluded from its own gallery.

    .venv/bin/python bench/signature_quality.py --dataset demo [--epochs 2] [--size 128] [--negatives 3]
    .venv/bin/python bench/signature_quality.py --dataset peopleart [--sources 250] [--epochs 2] [--size 128]
    (either accepts --lr X to override TrainConfig.lr, 1e-5 by default)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEOPLEART = ROOT.parent / "shared" / "data" / "peopleart"
METRIC_KEYS = ("map", "recall@1", "recall@10", "precision_at_1", "n_queries")


# --- data sets (child process, Django set up) ------------------------------------------------------------


def import_demo(folder: Path) -> dict[str, Any]:
    from annotations.demo import build_demo
    from annotations.importer import import_collection

    build = build_demo(folder, seed=7)
    images = folder / "images"
    import_collection(images, folder / "sources.csv", None, "Met")
    import_collection(images, folder / "derivatives.csv", folder / "connections_known.csv", "Derived")
    return build.counts


def import_peopleart(folder: Path, data: Path, sources: int, seed: int) -> dict[str, Any]:
    from PIL import Image

    from annotations.demo import SINGLE_TRANSFORMS
    from annotations.importer import import_collection

    rng = random.Random(seed)
    with open(data / "metadata.csv", newline="") as handle:
        rows = sorted(csv.DictReader(handle), key=lambda row: row["path"])
    chosen = rng.sample(rows, k=min(sources, len(rows)))
    images = folder / "images"
    (images / "orig").mkdir(parents=True)
    (images / "derived").mkdir(parents=True)
    artworks: list[list[str]] = []
    edges: list[tuple[str, str, str]] = []
    kinds: dict[str, int] = {}
    for index, row in enumerate(chosen):
        source_id = f"pa-{index:04d}"
        rel = f"orig/{source_id}.jpg"
        shutil.copyfile(data / row["path"], images / rel)
        artworks.append([source_id, rel, row["title"], row["artist"], row["style"]])
        picture = Image.open(images / rel).convert("RGB")
        for number, kind in enumerate(rng.sample(list(SINGLE_TRANSFORMS), k=rng.choice((1, 2)))):
            transform, type_code, prefix = SINGLE_TRANSFORMS[kind]
            derived_id = f"{source_id}-d{number}-{kind}"
            derived_rel = f"derived/{derived_id}.jpg"
            transform(picture, rng).save(images / derived_rel, "JPEG", quality=88)
            title = f"{prefix} {row['title']}"
            artworks.append([derived_id, derived_rel, title, row["artist"], row["style"]])
            edges.append((source_id, derived_id, type_code))
            kinds[kind] = kinds.get(kind, 0) + 1
    with open(folder / "metadata.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "path", "title", "author", "style"])
        writer.writerows(artworks)
    with open(folder / "connections.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["img1", "img2", "type"])
        writer.writerows(edges)
    import_collection(images, folder / "metadata.csv", folder / "connections.csv", "PeopleArt")
    return {"source_paintings": len(chosen), "derivatives": len(edges), **kinds}


def ground_truth_metrics(folder: Path, numbers: list[int]) -> dict[str, Any]:
    """Both versions against the demo's full ground truth (see the module docstring for the query sets)."""
    import numpy as np

    from annotations.models import Artwork
    from annotations.splits import connected_components
    from training import signature_store
    from training.metrics import evaluate_retrieval
    from workbench import paths

    with open(folder / "ground_truth.csv", newline="") as handle:
        gt = [(row["img1"], row["img2"]) for row in csv.DictReader(handle)]
    external = dict(Artwork.objects.values_list("pk", "external_id"))
    split_of = dict(Artwork.objects.values_list("external_id", "split"))
    components = connected_components(gt)
    test_members: list[str] = []
    hidden_members: list[str] = []
    mixed = 0
    for component in components:
        splits = {split_of.get(node) or "" for node in component}
        if splits == {""}:
            hidden_members += component
        elif "test" in splits:
            if splits <= {"test", ""}:
                test_members += component
            else:
                mixed += 1
    result: dict[str, Any] = {
        "gt_components": len(components),
        "gt_test_components_mixed_left_out": mixed,
    }
    for number in numbers:
        stored = signature_store.load(paths.signatures_folder(number))
        ids = [external[pk] for pk in stored.ids]
        row = {art: index for index, art in enumerate(ids)}
        partners: dict[int, set[int]] = {}
        for component in components:
            rows = {row[node] for node in component if node in row}
            for r in rows:
                partners[r] = rows - {r}
        for name, members in (("gt-test", test_members), ("gt-hidden", hidden_members)):
            queries = np.array(sorted(row[m] for m in members if m in row), dtype=np.int64)
            result[f"v{number}/{name}"] = evaluate_retrieval(stored.vectors, queries, partners).as_dict()
    return result


def child(args: argparse.Namespace) -> None:
    """Runs with its own WORKBENCH_DATA_DIR and (migrated) SQLite database."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "workbench.settings")
    import django

    django.setup()
    from training.models import ModelVersion
    from training.rounds import train_round

    folder = Path(args.child) / "dataset"
    started = time.perf_counter()
    if args.dataset == "demo":
        counts = import_demo(folder)
    else:
        counts = import_peopleart(folder, args.data, args.sources, args.seed)
    imported = time.perf_counter()
    overrides = {"lr": args.lr} if args.lr is not None else {}
    log_lines: list[str] = []
    outcome = train_round(
        epochs=args.epochs,
        input_size=args.size,
        negatives_per_pair=args.negatives,
        num_workers=0,
        log=lambda line: (log_lines.append(line), print(line, file=sys.stderr, flush=True)),
        **overrides,
    )
    trained = time.perf_counter()
    versions = {v.number: v for v in ModelVersion.objects.order_by("number")}
    result: dict[str, Any] = {
        "counts": counts,
        "seconds_import": imported - started,
        "seconds_rounds": trained - imported,
        "summary": outcome.get("summary"),
        "log": log_lines,
        "lr": versions[max(versions)].config.get("lr"),
        "history": versions[max(versions)].config.get("history"),
        "metrics": {number: version.metrics for number, version in versions.items()},
    }
    if args.dataset == "demo":
        result["ground_truth"] = ground_truth_metrics(folder, sorted(versions))
    print(json.dumps(result))


# --- parent ------------------------------------------------------------------------------------------


def fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "   n/a"
    return f"{value:6.4f}"


def print_table(dataset: str, rows: list[tuple[str, str, dict]]) -> None:
    print(
        f"{'dataset':<10} {'version':<8} {'split':<10} {'mAP':>6} {'R@1':>6} {'R@10':>6} {'P@1':>6} "
        f"{'queries':>7}"
    )
    for version, split, m in rows:
        print(
            f"{dataset:<10} {version:<8} {split:<10} {fmt(m.get('map'))} {fmt(m.get('recall@1'))} "
            f"{fmt(m.get('recall@10'))} {fmt(m.get('precision_at_1'))} {m.get('n_queries', 0):>7}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", choices=("demo", "peopleart"), required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--size", type=int, default=128, help="input size for extraction and training")
    parser.add_argument("--negatives", type=int, default=3, help="negatives per pair")
    parser.add_argument("--lr", type=float, default=None, help="override TrainConfig.lr (default 1e-5)")
    parser.add_argument("--sources", type=int, default=250, help="peopleart: source paintings")
    parser.add_argument("--seed", type=int, default=0, help="peopleart: choice of paintings and derivatives")
    parser.add_argument("--data", type=Path, default=PEOPLEART)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    forwarded = [
        f"--dataset={args.dataset}",
        f"--epochs={args.epochs}",
        f"--size={args.size}",
        f"--negatives={args.negatives}",
        f"--sources={args.sources}",
        f"--seed={args.seed}",
        f"--data={args.data.resolve()}",
        *([f"--lr={args.lr}"] if args.lr is not None else []),
    ]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="workbench-quality-") as data_dir:
        env = {**os.environ, "DEBUG": "1", "WORKBENCH_DATA_DIR": data_dir}
        env.pop("DATABASE_URL", None)
        env.pop("CELERY_BROKER_URL", None)
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        completed = subprocess.run(
            [sys.executable, __file__, *forwarded, f"--child={data_dir}"],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    print(
        f"\n{args.dataset}: {json.dumps(result['counts'])}\n"
        f"round settings: tf_efficientnet_lite0, {args.epochs} epoch(s), {args.size} px, "
        f"{args.negatives} negatives/pair, lr {result['lr']:g}; import {result['seconds_import']:.0f} s, "
        f"rounds 0+1 {result['seconds_rounds']:.0f} s, total {time.perf_counter() - started:.0f} s"
    )
    for line in result["log"]:
        print(f"  log: {line}")
    metrics = {int(k): v for k, v in result["metrics"].items()}
    rows = [(f"v{n}", split, metrics[n][split]) for split in ("val", "test") for n in sorted(metrics)]
    gt = result.get("ground_truth")
    if gt:
        rows += [
            (f"v{n}", name, gt[f"v{n}/{name}"]) for name in ("gt-test", "gt-hidden") for n in sorted(metrics)
        ]
    print()
    print_table(args.dataset, rows)
    if 0 in metrics and 1 in metrics:
        pairs = [("test", metrics[0]["test"], metrics[1]["test"])]
        if gt:
            pairs += [(name, gt[f"v0/{name}"], gt[f"v1/{name}"]) for name in ("gt-test", "gt-hidden")]
        for split, zero, one in pairs:
            if zero.get("map") is not None and one.get("map") is not None:
                print(f"round 1 − round 0, {split} mAP: {one['map'] - zero['map']:+.4f}")
    if gt:
        print(
            f"ground truth: {gt['gt_components']} components; "
            f"{gt['gt_test_components_mixed_left_out']} test components mixed with train/val left out"
        )


if __name__ == "__main__":
    main()
