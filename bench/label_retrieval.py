"""Label retrieval of five signature models on two real data sets: leave-one-out precision at k by label
(methods.md §2 and §3), each model measured on the same test split of each set.

Data (outside the repository, `--data-root`, default ../shared/data):

* ``peopleart``: 2,869 paintings, labels `style` (41) and `artist` (474, most of them rare);
* ``wikiart``: ``wikiart-styles``, 2,100 paintings at 224 px, 7 styles, label `style` only.

Each set is split 70/15/15 by artwork with `annotations.splits.stratified_split`, stratified by style (seed
``bench-labels``), as the workbench's label split. Labels are encoded with `training.labels.encode_task`:
classes with fewer than `MIN_EXAMPLES_PER_CLASS` (6) artworks in the whole set are dropped (their artworks
count as unlabelled for that label); the output says how many classes and test queries remain.

Models (all EfficientNet-Lite0, ImageNet weights of the offline package, 224 px, global average pooling,
signatures compared raw by cosine):

1. ``pretrained``: the ImageNet features, no training (`training.backbones.build_model(..., pooling="avg")`).
2. ``connection``: the workbench's connection model (`training.trainer.fit`, compound hinge loss, mined
   hard negatives), trained once on the demo collection's known connections
   (`annotations.demo.build_demo(folder, seed=7)`: Met paintings and their workshop copies, photographs,
   details, mirrored copies, borrowed motifs), which know nothing of these sets' labels; then applied to
   both sets. The TrainingData is built here as `training.rounds.build_gallery` builds it, without a
   database: splits by connected component of the known connections (`annotations.splits.assign_splits`),
   unlinked artworks in the mining pool. 1 epoch, 3 negatives per pair, 224 px (`--connection-epochs`).
   Pooling is average, not TrainConfig's default GeM, so that it differs from the pretrained row only by
   its training; the whitening a round learns on its collection is not applied (nor to any other row).
3. ``style-classifier`` (methods.md §3): `training.label_trainer.fit` on `style`: stage 1 the head on the
   frozen trunk (`--stage1-epochs`, 5), stage 2 the top `--trainable-stages` trunk stages (`--epochs`),
   early stopping on validation accuracy. Signature: the 256-d layer.
4. ``multitask-style``: the multitask recipe on `style` alone (People-Art only), the ablation of §2.
5. ``multitask-knn`` (methods.md §2): one head per label plus 5 × the kNN triplet loss; on People-Art it
   trains `style` and `artist`, on WikiArt (style only) it trains `style` alone with the kNN term, so there
   it is a single-task model with a kNN term, not a multitask one. Signature: the 1280-d pooled trunk.
   Warm-up is min(5, epochs // 4) epochs (`label_trainer.fit`).

All label models: ``augment="none"`` (the frozen stages are then computed once and cached, which is what makes
this feasible on a 2-core CPU), batch 32, best epoch by validation.

Evaluation: every model's signatures of the test-split images through the extraction code path
(`training.extraction.extract_signatures`, `label_trainer.signatures_for`), then
`training.labels.label_precision` per label: P@1/5/10, each test image the query once, excluded from its own
neighbours, the neighbours being the other test images with that label. The 95 % intervals of the checks'
differences are a paired bootstrap over the queries of per-query P@1 (nearest neighbour), computed here.

Printed: one table per set (rows: models; columns: P@1/5/10 by label), published figures as reference rows
from different, larger sets, each trained model's difference and ratio to the pretrained row, training
seconds per epoch, extraction throughput, the CPU, and PASS/FAIL lines for the findings checked:

* each trained label model beats the pretrained features on its own labels (P@1): the style classifier on
  style, the multitask model on style and (People-Art) artist;
* the multitask model beats the style-only classifier on the second task (artist P@1, People-Art), and
  the same recipe trained on style alone (``multitask-style``, the paper's ablation of §2: what learning
  the second label with the kNN term adds on it);
* informative, not a finding of the issue: the connection model against the pretrained features.

    .venv/bin/python bench/label_retrieval.py --dataset both --json bench/results/label_retrieval.json
    .venv/bin/python bench/label_retrieval.py --dataset wikiart --limit 400 --epochs 2 --models pretrained \
        style-classifier    (a smoke test)
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from timing import _cpu_model_and_flags, machine_line

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BACKBONE = "tf_efficientnet_lite0"
SPLIT_SEED = "bench-labels"
MODELS = ("pretrained", "connection", "style-classifier", "multitask-style", "multitask-knn")
DATASETS = {"peopleart": ("peopleart", ("style", "artist")), "wikiart": ("wikiart-styles", ("style",))}
KS = (1, 5, 10)
BOOTSTRAP = 2000
# Published figures (methods.md), on other and larger sets: reference only, not comparable cell by cell.
PUBLISHED_MAE_WIKIART_STYLE = {1: 69.21, 5: 67.35, 10: 66.49}  # §2, ViT-B/16 MAE, style+genre+kNN triplet
PUBLISHED_NGA_ACCURACY = {"EfficientNet-B0": 0.79, "ResNet-50": 0.76}  # §3, 8 WikiArt styles, 24,493 images


def say(line: str = "") -> None:
    print(line, flush=True)


# --- data ---------------------------------------------------------------------------------------------


def load_set(name: str, data_root: Path, limit: int | None):
    """(paths, labels by column, split per row) of one data set; `limit` keeps a deterministic subset."""
    folder_name, columns = DATASETS[name]
    folder = data_root / folder_name
    with open(folder / "metadata.csv", newline="") as handle:
        rows = sorted(csv.DictReader(handle), key=lambda row: row["path"])
    if limit:
        rows = sorted(rows, key=lambda row: hashlib.sha256(row["path"].encode()).digest())[:limit]
        rows.sort(key=lambda row: row["path"])
    from annotations.splits import stratified_split

    split_of = stratified_split(
        {index: row["path"] for index, row in enumerate(rows)},
        {index: row["style"] for index, row in enumerate(rows)},
        SPLIT_SEED,
    )
    paths = [str(folder / row["path"]) for row in rows]
    labels = {column: [row[column] for row in rows] for column in columns}
    split = np.array([split_of[index] for index in range(len(rows))])
    return paths, labels, split


def label_data(paths, tasks, split):
    from training.label_trainer import LabelData

    labelled = (np.stack([task.targets for task in tasks], axis=1) >= 0).any(axis=1)
    return LabelData(
        paths=paths,
        tasks=list(tasks),
        train=np.flatnonzero((split == "train") & labelled),
        val=np.flatnonzero((split == "val") & labelled),
        test=np.flatnonzero((split == "test") & labelled),
    )


# --- models -------------------------------------------------------------------------------------------


def timed_extraction(model, paths: list[str], extract) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    vectors = extract(model, paths)
    return vectors, len(paths) / max(time.perf_counter() - started, 1e-9)


def pretrained_model():
    from training.backbones import build_model

    model, origin = build_model(BACKBONE, "pretrained", None, pooling="avg")
    return model.eval(), origin


def plain_extract(num_workers: int):
    from training.extraction import extract_signatures

    return lambda model, paths: extract_signatures(
        model, paths, batch_size=32, num_workers=num_workers, input_size=224
    )


def demo_training_data(folder: Path):
    """The demo collection's known connections as the trainer's arrays (what `rounds.build_gallery` makes
    of them after an import, without the database): splits by component of the known connections, the
    unlinked artworks in the mining pool."""
    from annotations.demo import build_demo
    from annotations.splits import assign_splits, connected_components
    from training.trainer import TrainingData

    build = build_demo(folder, seed=7)
    artworks = [*build.sources, *build.derivatives]
    row = {artwork.id: index for index, artwork in enumerate(artworks)}
    links = [(a, b) for a, b, _ in build.known]
    split = np.array([""] * len(artworks), dtype=object)
    for change in assign_splits(links, {}, {a.id: a.id for a in artworks}, "bench-connections"):
        split[row[change.node]] = change.new
    component_of = np.full(len(artworks), -1, dtype=np.int64)
    for number, component in enumerate(connected_components(links)):
        for node in component:
            component_of[row[node]] = number
    has_partner = component_of >= 0
    data = TrainingData(
        paths=[str(folder / "images" / artwork.path) for artwork in artworks],
        component_of=component_of,
        train_pairs=[(row[a], row[b]) for a, b in links if split[row[a]] == split[row[b]] == "train"],
        pool=np.flatnonzero((split == "train") | (split == "")),
        val_queries=np.flatnonzero((split == "val") & has_partner),
        test_queries=np.flatnonzero((split == "test") & has_partner),
    )
    counts = {**build.counts, "train_pairs": len(data.train_pairs), "pool": len(data.pool)}
    return data, counts


def train_connection_model(epochs: int, negatives: int, scratch: Path, num_workers: int) -> dict[str, Any]:
    from training.trainer import TrainConfig, fit

    started = time.perf_counter()
    data, counts = demo_training_data(scratch / "demo")
    built = time.perf_counter()
    config = TrainConfig(
        backbone=BACKBONE,
        pooling="avg",
        input_size=224,
        epochs=epochs,
        negatives_per_pair=negatives,
        num_workers=num_workers,
    )
    checkpoints = scratch / "connection-checkpoints"
    checkpoints.mkdir()
    result = fit(config, data, checkpoints, log=lambda line: say(f"  connection: {line}"))
    seconds = [h["seconds"] for h in result.history if h.get("seconds")]
    return {
        "model": result.model.eval(),
        "record": {
            "demo": counts,
            "config": asdict(config),
            "history": result.history,
            "best_epoch": result.best_epoch,
            "seconds_demo_build": built - started,
            "seconds_fit": time.perf_counter() - built,
            "seconds_per_epoch": float(np.mean(seconds)) if seconds else None,
        },
    }


def train_label_model(method: str, labels: list[str], data, args, scratch: Path) -> dict[str, Any]:
    from training.label_trainer import LabelTrainConfig, fit, signatures_for

    config = LabelTrainConfig(
        method=method,
        labels=labels,
        backbone=BACKBONE,
        augment="none",
        trainable_stages=args.trainable_stages,
        stage1_epochs=args.stage1_epochs,
        epochs=args.epochs,
        input_size=224,
        batch_size=32,
        num_workers=args.num_workers,
        **dict(args.set),
    )
    checkpoints = scratch / f"{method}-checkpoints"
    checkpoints.mkdir(parents=True)
    started = time.perf_counter()
    result = fit(config, data, checkpoints, log=lambda line: say(f"  {method}: {line}"))
    seconds = time.perf_counter() - started
    test = result.test.as_dict() if result.test else None
    return {
        "model": result.model.eval(),
        "extract": lambda model, paths: signatures_for(model, paths, config),
        "record": {
            "config": asdict(config),
            "labels": labels,
            "history": result.history,
            "best_epoch": result.best_epoch,
            "seconds_fit": seconds,
            "seconds_per_epoch": result.seconds_per_epoch,
            "fit_test": test,  # fit's own test evaluation (from the same signatures' layer)
        },
    }


# --- evaluation ---------------------------------------------------------------------------------------


def nearest_hits(vectors: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per labelled query: 1 when its nearest other labelled row (cosine) has its label (P@1 per query)."""
    rows = np.flatnonzero(targets >= 0)
    x = vectors[rows].astype(np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    return (targets[rows][sims.argmax(axis=1)] == targets[rows]).astype(np.float64)


def paired_interval(a: np.ndarray, b: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """Mean of a − b (per-query, same queries) with its 95 % bootstrap interval."""
    diff = a - b
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(BOOTSTRAP, len(diff)))].mean(axis=1)
    return float(diff.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def unmatched_queries(targets: np.ndarray) -> int:
    """Test queries whose label no other test image has: they score 0 whatever the model."""
    values, counts = np.unique(targets[targets >= 0], return_counts=True)
    return int(counts[counts == 1].sum())


def run_dataset(name: str, args, connection: dict | None, scratch: Path) -> dict[str, Any]:
    from training.labels import UnusableLabels, encode_task, label_precision

    started = time.perf_counter()
    paths, labels, split = load_set(name, args.data_root, args.limit)
    tasks = []
    for column, values in labels.items():
        try:
            tasks.append(encode_task(column, values))
        except UnusableLabels as exc:
            say(f"{name}: {exc}")
    data = label_data(paths, tasks, split)
    test = data.test
    test_paths = [paths[row] for row in test]
    summary = {
        "images": len(paths),
        "split": {part: int((split == part).sum()) for part in ("train", "val", "test")},
        "labels": {
            task.name: {
                "classes": task.n_classes,
                "dropped_classes": len(task.dropped),
                "dropped_images": int(sum(task.dropped.values())),
                "labelled_images": int((task.targets >= 0).sum()),
                "test_queries": int((task.targets[test] >= 0).sum()),
                "test_classes": int(len(np.unique(task.targets[test][task.targets[test] >= 0]))),
                "test_queries_without_same_label_partner": unmatched_queries(task.targets[test]),
            }
            for task in tasks
        },
    }
    say(f"\n=== {name}: {len(paths)} images, split {summary['split']}")
    for task in tasks:
        info = summary["labels"][task.name]
        say(
            f"  {task.name}: {info['classes']} classes kept ({info['labelled_images']} images), "
            f"{info['dropped_classes']} classes with < 6 images dropped ({info['dropped_images']} images); "
            f"test: {info['test_queries']} queries in {info['test_classes']} classes, "
            f"{info['test_queries_without_same_label_partner']} of them alone in their class"
        )
    models: dict[str, dict[str, Any]] = {}
    hits: dict[str, dict[str, np.ndarray]] = {}

    def measure(model_name: str, model, extract, record: dict) -> None:
        vectors, throughput = timed_extraction(model, test_paths, extract)
        precision = {}
        hits[model_name] = {}
        for task in tasks:
            targets = task.targets[test]
            precision[task.name] = label_precision(vectors, targets, task.name).as_dict()
            hits[model_name][task.name] = nearest_hits(vectors, targets)
        models[model_name] = {
            **record,
            "dim": int(vectors.shape[1]),
            "precision": precision,
            "extraction_images_per_s": throughput,
        }
        cells = "  ".join(
            f"{label} P@1 {100 * p['p@1']:.2f}" for label, p in precision.items() if p["n_queries"]
        )
        say(f"  {model_name}: {cells} ({throughput:.1f} images/s extraction)")

    if "pretrained" in args.models:
        model, origin = pretrained_model()
        measure("pretrained", model, plain_extract(args.num_workers), {"weights": origin.description})
    if connection is not None:
        measure("connection", connection["model"], plain_extract(args.num_workers), connection["record"])
    task_names = [task.name for task in tasks]
    if "style-classifier" in args.models and "style" in task_names:
        style_only = label_data(paths, [tasks[task_names.index("style")]], split)
        say(f"  training style-classifier on {len(style_only.train)} images ...")
        trained = train_label_model("style-classifier", ["style"], style_only, args, scratch / name)
        measure("style-classifier", trained["model"], trained["extract"], trained["record"])
    if "multitask-style" in args.models and "style" in task_names and len(task_names) > 1:
        # The paper's ablation (methods.md §2: genre P@1 64.6 trained on style alone, 77.2 with the
        # triplet term over both labels): the same recipe, style only, measured on the other label.
        style_only = label_data(paths, [tasks[task_names.index("style")]], split)
        say(f"  training multitask-knn on style alone ({len(style_only.train)} images) ...")
        trained = train_label_model("multitask-knn", ["style"], style_only, args, scratch / f"{name}-style")
        measure("multitask-style", trained["model"], trained["extract"], trained["record"])
    if "multitask-knn" in args.models:
        say(f"  training multitask-knn on {', '.join(task_names)} ({len(data.train)} images) ...")
        trained = train_label_model("multitask-knn", task_names, data, args, scratch / name)
        measure("multitask-knn", trained["model"], trained["extract"], trained["record"])
    return {
        "summary": summary,
        "models": models,
        "checks": checks(name, models, hits),
        "seconds": time.perf_counter() - started,
    }


def checks(name: str, models: dict, hits: dict) -> list[dict[str, Any]]:
    """The findings, each a comparison of P@1 on the same test queries (see the module docstring)."""
    wanted = [
        ("style-classifier", "pretrained", "style", True),
        ("multitask-knn", "pretrained", "style", True),
        ("multitask-knn", "pretrained", "artist", True),
        ("multitask-knn", "style-classifier", "artist", True),
        ("multitask-knn", "multitask-style", "artist", True),
        ("connection", "pretrained", "style", False),
        ("connection", "pretrained", "artist", False),
    ]
    found = []
    for model, baseline, label, finding in wanted:
        if model not in models or baseline not in models or label not in models[model]["precision"]:
            continue
        a, b = hits[model][label], hits[baseline][label]
        delta, low, high = paired_interval(a, b)
        pa, pb = models[model]["precision"][label], models[baseline]["precision"][label]
        found.append(
            {
                "dataset": name,
                "model": model,
                "baseline": baseline,
                "label": label,
                "finding": finding,
                "passed": bool(pa["p@1"] > pb["p@1"]),
                "p@1": pa["p@1"],
                "baseline_p@1": pb["p@1"],
                "delta_p@1": pa["p@1"] - pb["p@1"],
                "delta_p@1_nn_bootstrap": [delta, low, high],
                "delta_p@10": pa["p@10"] - pb["p@10"],
                "queries": pa["n_queries"],
            }
        )
    return found


# --- printing -----------------------------------------------------------------------------------------


def pct(value: float | None) -> str:
    return "    n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:7.2f}"


def print_dataset(name: str, result: dict[str, Any]) -> None:
    labels = list(result["summary"]["labels"])
    models = result["models"]
    header = f"{'model':<44}" + "".join(f" {label + ' P@' + str(k):>11}" for label in labels for k in KS)
    say(f"\n{name}: leave-one-out P@k (%) by label on the test split")
    counts = result["summary"]["labels"]
    queries = ", ".join(f"{label} {info['test_queries']}" for label, info in counts.items())
    say(f"(queries: {queries}; the same test images for every model)")
    say(header)
    say("-" * len(header))
    for model, record in models.items():
        cells = "".join(
            f" {pct(100 * record['precision'][label][f'p@{k}']):>11}" for label in labels for k in KS
        )
        say(f"{model:<44}{cells}")
    say("reference rows: published, on DIFFERENT and LARGER sets (methods.md), not comparable cell by cell")
    reference = "".join(
        f" {pct(PUBLISHED_MAE_WIKIART_STYLE[k] if label == 'style' else None):>11}"
        for label in labels
        for k in KS
    )
    say(f"{'[published] ViT-B MAE multitask, WikiArt (§2)':<44}{reference}")
    if "pretrained" in models:
        base = models["pretrained"]["precision"]
        say("\ndifference to pretrained (percentage points) and ratio, same run, same queries")
        for model, record in models.items():
            if model == "pretrained":
                continue
            cells = []
            for label in labels:
                for k in KS:
                    ours, theirs = record["precision"][label][f"p@{k}"], base[label][f"p@{k}"]
                    ratio = ours / theirs if theirs else float("nan")
                    cells.append(f"{label} P@{k} {100 * (ours - theirs):+6.2f} (×{ratio:.2f})")
            say(f"  {model:<18} " + "; ".join(cells))
    say("\nclassification accuracy of the heads on the test split (fit's own evaluation)")
    for model in ("style-classifier", "multitask-style", "multitask-knn"):
        test = (models.get(model) or {}).get("fit_test")
        if test:
            accuracy = ", ".join(f"{label} {value:.3f}" for label, value in test["accuracy"].items())
            say(f"  {model:<18} {accuracy}")
    published = ", ".join(f"{net} {value:.2f}" for net, value in PUBLISHED_NGA_ACCURACY.items())
    say(f"  [published] NGA style classifier, 8 WikiArt styles, 24,493 images (§3): {published}")
    say("\ntraining and extraction")
    for model, record in models.items():
        per_epoch = record.get("seconds_per_epoch")
        training = (
            f"{per_epoch:.1f} s/epoch ({record.get('seconds_fit', 0):.0f} s fit in all, "
            f"best epoch {record.get('best_epoch')}{phase_seconds(record.get('history') or [])})"
            if per_epoch
            else "no training"
        )
        say(f"  {model:<18} {training}; extraction {record['extraction_images_per_s']:.1f} images/s")


def phase_seconds(history: list[dict]) -> str:
    """Mean training seconds per epoch of each phase (fit's figure averages the classifier's two)."""
    phases: dict[str, list[float]] = {}
    for entry in history:
        if entry.get("phase") and entry.get("seconds") is not None:
            phases.setdefault(entry["phase"], []).append(entry["seconds"])
    if len(phases) < 2:
        return ""
    return "; " + ", ".join(f"{name}: {np.mean(values):.1f} s/epoch" for name, values in phases.items())


def print_checks(found: list[dict[str, Any]]) -> None:
    say("\nfindings (P@1 on the same test queries; interval: paired bootstrap of nearest-neighbour hits)")
    for check in found:
        delta, low, high = check["delta_p@1_nn_bootstrap"]
        verdict = ("PASS" if check["passed"] else "FAIL") if check["finding"] else "INFO"
        say(
            f"{verdict}: {check['dataset']}: {check['model']} beats {check['baseline']} on {check['label']}: "
            f"P@1 {100 * check['p@1']:.2f} vs {100 * check['baseline_p@1']:.2f} "
            f"({100 * check['delta_p@1']:+.2f} pp, 95 % [{100 * low:+.2f}, {100 * high:+.2f}]; "
            f"P@10 {100 * check['delta_p@10']:+.2f} pp; {check['queries']} queries)"
        )


# --- main ---------------------------------------------------------------------------------------------


def parse_setting(text: str) -> tuple[str, Any]:
    key, _, value = text.partition("=")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", choices=("peopleart", "wikiart", "both"), default="both")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--epochs", type=int, default=8, help="classifier stage 2 / multitask epochs")
    parser.add_argument("--stage1-epochs", type=int, default=5, help="classifier stage 1 (frozen trunk)")
    parser.add_argument("--trainable-stages", type=int, default=2, help="top trunk stages that learn")
    parser.add_argument("--connection-epochs", type=int, default=1)
    parser.add_argument("--negatives", type=int, default=3, help="connection model: negatives per pair")
    parser.add_argument("--num-workers", type=int, default=2, help="image-decoding workers")
    parser.add_argument("--limit", type=int, default=None, help="a deterministic subset of each set (smoke)")
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    parser.add_argument(
        "--set",
        type=parse_setting,
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="override a LabelTrainConfig field of both label models (e.g. base_lr=0.001), for ablations",
    )
    parser.add_argument("--reprint", type=Path, default=None, help="print the tables of a saved --json")
    args = parser.parse_args()
    if args.reprint:
        saved = json.loads(args.reprint.read_text())
        say(f"(figures of {args.reprint}, measured on {saved['machine']})")
        for name, result in saved["datasets"].items():
            print_dataset(name, result)
        print_checks(saved["checks"])
        say(f"\nwall time of that run {saved['wall_seconds']:.0f} s")
        return

    import torch

    started = time.perf_counter()
    model_name, flags = _cpu_model_and_flags()
    say(machine_line())
    say(f"cpu: {model_name}; avx512_bf16: {'yes' if 'avx512_bf16' in flags else 'no'}")
    names = ["peopleart", "wikiart"] if args.dataset == "both" else [args.dataset]
    results: dict[str, Any] = {
        "machine": machine_line(),
        "cpu": {
            "model": model_name,
            "avx512_bf16": "avx512_bf16" in flags,
            "threads": torch.get_num_threads(),
        },
        "settings": {key: str(v) if isinstance(v, Path) else v for key, v in vars(args).items()},
        "split_seed": SPLIT_SEED,
        "published": {
            "mae_multitask_wikiart_style_p@k": PUBLISHED_MAE_WIKIART_STYLE,
            "nga_style_classifier_test_accuracy": PUBLISHED_NGA_ACCURACY,
            "note": "different, larger sets (methods.md §2, §3); reference only",
        },
        "datasets": {},
    }
    with tempfile.TemporaryDirectory(prefix="workbench-label-retrieval-") as folder:
        scratch = Path(folder)
        connection = None
        if "connection" in args.models:
            say("training the connection model on the demo collection's known connections ...")
            connection = train_connection_model(
                args.connection_epochs, args.negatives, scratch, args.num_workers
            )
            record = connection["record"]
            say(
                f"  connection: demo {record['demo']['source_paintings']} paintings + "
                f"{record['demo']['derivatives']} derivatives, {record['demo']['train_pairs']} train pairs; "
                f"demo built in {record['seconds_demo_build']:.0f} s, fit {record['seconds_fit']:.0f} s "
                f"({record['seconds_per_epoch']:.0f} s per training epoch)"
            )
            results["connection_training"] = record
        for name in names:
            results["datasets"][name] = run_dataset(name, args, connection, scratch)
    found = []
    for name in names:
        print_dataset(name, results["datasets"][name])
        found += results["datasets"][name]["checks"]
    print_checks(found)
    results["checks"] = found
    results["wall_seconds"] = time.perf_counter() - started
    say(f"\nwall time {results['wall_seconds']:.0f} s; {machine_line()}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=float))
        say(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
