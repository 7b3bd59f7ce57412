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
  mirrored), imported into one collection (originals copied beside the derivatives). As in the demo, about
  half the components are imported as known (`annotations.demo.choose_known`) and the rest stay hidden
  (``--all-known`` imports them all); gt-test and gt-hidden as above.

Both print each version's val, test and synthetic metrics with their 95 % intervals, the gate's decision
with the paired differences it was made on, and the paired difference round 1 − round 0 on gt-test and
gt-hidden (bootstrap over ground-truth components). ``--set KEY=JSON`` overrides any TrainConfig field
(e.g. ``--set ssl_weight=1``), for ablations of the training recipe.

The gallery of every evaluation is the whole imported set; the query is excluded from its own gallery.

* ``--ablation reranking``: the round-0 descriptor's global ranking (TrainConfig's defaults) against
  re-ranking its top k by spatial verification (SIFT + RANSAC, `training.verification`) and verification
  + query expansion, on demo-hidden and dev, with paired differences, and the time local features and
  matches cost.
* ``--ablation descriptors``: no training and no database: the pretrained backbone's signatures under each
  descriptor ingredient (whitening learned on the collection, input size, GeM pooling, multi-scale and
  flipped views, EfficientNet-Lite2), on the three sets of `bench/quality_sets.py` (the demo's hidden
  connections, the People-Art development set, the synthetic validation). Each cell: mAP with its 95 %
  bootstrap interval over query components, and the paired difference to the first row with its interval.

    .venv/bin/python bench/signature_quality.py --ablation descriptors [--variants all|quick]
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

from timing import machine_line

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


def add_peopleart_arguments(parser: argparse.ArgumentParser, sources: int) -> None:
    """--sources, --seed and --data of the People-Art development collection, and the hidden --child."""
    parser.add_argument("--sources", type=int, default=sources, help="peopleart: source paintings")
    parser.add_argument("--seed", type=int, default=0, help="peopleart: choice of paintings and derivatives")
    parser.add_argument("--data", type=Path, default=PEOPLEART)
    parser.add_argument("--child", help=argparse.SUPPRESS)


def import_peopleart(folder: Path, data: Path, sources: int, seed: int, hidden: bool) -> dict[str, Any]:
    from PIL import Image

    from annotations.demo import SINGLE_TRANSFORMS, choose_known
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
    # As in the demo: about half the components are imported as known, the rest stay hidden.
    known = choose_known(edges, rng) if hidden else edges
    write_edges(folder / "connections.csv", known)
    write_edges(folder / "ground_truth.csv", edges)
    import_collection(images, folder / "metadata.csv", folder / "connections.csv", "PeopleArt")
    return {"source_paintings": len(chosen), "derivatives": len(edges), "known_edges": len(known), **kinds}


def write_edges(path: Path, edges: list[tuple[str, str, str]]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["img1", "img2", "type"])
        writer.writerows(edges)


def ground_truth_metrics(folder: Path, numbers: list[int]) -> dict[str, Any]:
    """Both versions against the demo's full ground truth (see the module docstring for the query sets)."""
    import numpy as np

    from annotations.models import Artwork
    from annotations.splits import connected_components
    from training import signature_store
    from training.metrics import bootstrap_difference, evaluate_retrieval
    from workbench import paths

    per_query: dict[str, dict[int, tuple[dict, dict]]] = {}
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
        groups = {
            r: component_number
            for component_number, component in enumerate(components)
            for r in (row.get(n) for n in component)
            if r is not None
        }
        for name, members in (("gt-test", test_members), ("gt-hidden", hidden_members)):
            queries = np.array(sorted(row[m] for m in members if m in row), dtype=np.int64)
            metrics = evaluate_retrieval(stored.vectors, queries, partners, groups=groups)
            result[f"v{number}/{name}"] = metrics.as_dict()
            by_artwork = {ids[q]: ap for q, ap in metrics.per_query_ap().items()}
            per_query.setdefault(name, {})[number] = (by_artwork, {ids[q]: g for q, g in groups.items()})
    # Paired difference of the last version to v0 on the same queries (artworks, whatever their rows).
    last = max(numbers)
    for name, by_version in per_query.items():
        if last == 0 or 0 not in by_version:
            continue
        (zero, group_of), (latest, _) = by_version[0], by_version[last]
        common = sorted(set(zero) & set(latest))
        if common:
            delta = bootstrap_difference(
                [latest[a] for a in common], [zero[a] for a in common], [group_of[a] for a in common]
            )
            result[f"delta/{name}"] = {"delta": delta.value, "low": delta.low, "high": delta.high}
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
        counts = import_peopleart(folder, args.data, args.sources, args.seed, args.hidden)
    imported = time.perf_counter()
    overrides = {"lr": args.lr} if args.lr is not None else {}
    for setting in args.set:
        key, _, value = setting.partition("=")
        overrides[key] = json.loads(value)
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
        "gate": versions[max(versions)].gate,
    }
    if (folder / "ground_truth.csv").exists():
        result["ground_truth"] = ground_truth_metrics(folder, sorted(versions))
    print(json.dumps(result))


# --- descriptor ablation (plain, in this process) ---------------------------------------------------------

# name → (backbone, input size, pooling, whitening shrinkage or None, views: (scale, flipped) pairs)
SINGLE = ((1.0, False),)
DESCRIPTOR_VARIANTS: dict[str, tuple[str, int, str, float | None, tuple[tuple[float, bool], ...]]] = {
    "Lite0 224 px avg, raw (before)": ("tf_efficientnet_lite0", 224, "avg", None, SINGLE),
    "+ whitening (shrinkage 1)": ("tf_efficientnet_lite0", 224, "avg", 1.0, SINGLE),
    "+ whitening (shrinkage 3)": ("tf_efficientnet_lite0", 224, "avg", 3.0, SINGLE),
    "+ whitening, GeM p=3": ("tf_efficientnet_lite0", 224, "gem", 1.0, SINGLE),
    "+ whitening, 320 px": ("tf_efficientnet_lite0", 320, "avg", 1.0, SINGLE),
    "+ whitening, flip": ("tf_efficientnet_lite0", 224, "avg", 1.0, ((1.0, False), (1.0, True))),
    "+ whitening, 2 scales + flip": (
        "tf_efficientnet_lite0",
        224,
        "avg",
        1.0,
        ((1.0, False), (1.0, True), (1.41, False), (1.41, True)),
    ),
    "Lite2 224 px + whitening": ("tf_efficientnet_lite2", 224, "avg", 1.0, SINGLE),
    "Lite2 260 px + whitening": ("tf_efficientnet_lite2", 260, "avg", 1.0, SINGLE),
}
QUICK = ("Lite0 224 px avg, raw (before)", "+ whitening (shrinkage 1)", "+ whitening, flip")


def view_signatures(model, paths: list[str], size: int, flipped: bool) -> Any:
    """L2-normalised signatures of one view (input size, mirrored or not) of each image."""
    import torch

    from training.extraction import extract_signatures

    class Flipped(torch.nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner, self.backbone = inner, inner.backbone

        def forward(self, images):
            return self.inner(torch.flip(images, dims=[3]))

    return extract_signatures(
        Flipped(model) if flipped else model, paths, batch_size=32, num_workers=2, input_size=size
    )


def descriptor_ablation(args: argparse.Namespace) -> None:
    import numpy as np
    from quality_sets import demo_sets, dev_set

    from training import whitening
    from training.backbones import build_model
    from training.metrics import bootstrap_difference, evaluate_retrieval

    names = list(DESCRIPTOR_VARIANTS) if args.variants == "all" else list(QUICK)
    with tempfile.TemporaryDirectory(prefix="workbench-ablation-") as scratch:
        sets = [*demo_sets(Path(scratch) / "demo"), dev_set(Path(scratch) / "dev", args.sources)]
        for quality_set in sets:
            print(
                f"{quality_set.name}: {len(quality_set.queries)} queries, {len(quality_set.paths)} images, "
                f"{json.dumps(quality_set.notes)}"
            )
        results: dict[str, dict[str, Any]] = {}
        cache: dict[tuple, Any] = {}
        for name in names:
            backbone, size, pooling, shrinkage, views = DESCRIPTOR_VARIANTS[name]
            model, origin = build_model(backbone, "pretrained", None, pooling)
            started = time.perf_counter()
            results[name] = {}
            for quality_set in sets:
                # One extraction per image and view, shared by the variants and sets that use it; the
                # views of a variant are summed and renormalised.
                raw = 0
                for scale, flipped in views:
                    view_size = int(round(size * scale))
                    known = cache.setdefault((backbone, pooling, view_size, flipped), {})
                    missing = [path for path in quality_set.paths if path not in known]
                    if missing:
                        vectors = view_signatures(model, missing, view_size, flipped)
                        known.update(zip(missing, vectors, strict=True))
                    raw = raw + np.stack([known[path] for path in quality_set.paths])
                raw = raw / np.linalg.norm(raw, axis=1, keepdims=True)
                vectors = raw
                if shrinkage is not None:
                    vectors = whitening.fit(raw[: quality_set.collection_rows], shrinkage).apply(raw)
                results[name][quality_set.name] = evaluate_retrieval(
                    vectors, quality_set.queries, quality_set.partners, groups=quality_set.groups
                )
            print(
                f"  {name}: {time.perf_counter() - started:.0f} s ({origin.kind})",
                file=sys.stderr,
                flush=True,
            )
        baseline = results[names[0]]
        print(
            f"\n{'variant':<32}" + "".join(f"{s.name + ' mAP [95 % CI]; Δ vs first row':>54}" for s in sets)
        )
        for name in names:
            cells = []
            for quality_set in sets:
                metrics = results[name][quality_set.name]
                low, high = metrics.intervals["map"]
                cell = f"{metrics.map:.3f} [{low:.3f}, {high:.3f}]"
                if name != names[0]:
                    delta = bootstrap_difference(
                        metrics.average_precisions,
                        baseline[quality_set.name].average_precisions,
                        metrics.query_groups,
                    )
                    cell += f"; {delta.value:+.3f} [{delta.low:+.3f}, {delta.high:+.3f}]"
                cells.append(f"{cell:>54}")
            print(f"{name:<32}" + "".join(cells))
        print(f"\n{machine_line()}")


# --- re-ranking ablation (plain, in this process) ---------------------------------------------------------


class Reranker:
    """Re-scores the top k of each query's global ranking by spatial verification (and query expansion),
    caching the local features and the inlier counts it computes, and timing them."""

    def __init__(self, paths: list[str], vectors: Any, top_k: int, cache: Path) -> None:
        self.paths, self.vectors, self.top_k, self.cache = paths, vectors, top_k, cache
        self.inliers: dict[tuple[int, int], int] = {}
        self.feature_seconds: list[float] = []
        self.match_seconds: list[float] = []

    def features(self, row: int):
        import hashlib

        from training import verification

        target = self.cache / f"{hashlib.sha256(self.paths[row].encode()).hexdigest()}.npz"
        if target.exists():
            return verification.Features.load(target)
        started = time.perf_counter()
        found = verification.extract(self.paths[row])
        self.feature_seconds.append(time.perf_counter() - started)
        found.save(target)
        return found

    def counts(self, query: int, candidates: list[int]) -> list[int]:
        from training import verification

        for candidate in candidates:
            if (query, candidate) not in self.inliers:
                a, b = self.features(query), self.features(candidate)
                started = time.perf_counter()
                self.inliers[query, candidate] = verification.match(a, b).inliers
                self.match_seconds.append(time.perf_counter() - started)
        return [self.inliers[query, candidate] for candidate in candidates]

    def rescore(self, expand: bool):
        import numpy as np

        from training import verification

        def rescore(block, similarities):
            # The product's re-ranking (training.search.nearest_to_vector), query by query.
            scores = similarities.copy()
            for index, query in enumerate(block.tolist()):
                top = np.argsort(-similarities[index], kind="stable")[: self.top_k].tolist()
                counts = dict(zip(top, self.counts(query, top), strict=True))
                scores[index] = verification.reranked_scores(
                    self.vectors[query], self.vectors, similarities[index], counts, expand=expand
                )
                scores[index, query] = -np.inf
            return scores

        return rescore


def reranking_ablation(args: argparse.Namespace) -> None:
    """Global search (the round-0 descriptor: Lite0, GeM, 224 px, whitened) vs re-ranking its top k by spatial
    verification (`training.verification`), with and without query expansion, on demo-hidden and dev."""
    import numpy as np
    from quality_sets import demo_sets, dev_set

    from training import whitening
    from training.backbones import build_model
    from training.metrics import bootstrap_difference, evaluate_retrieval
    from training.trainer import TrainConfig

    with tempfile.TemporaryDirectory(prefix="workbench-rerank-") as scratch:
        sets = [demo_sets(Path(scratch) / "demo")[0], dev_set(Path(scratch) / "dev", args.sources)]
        # The product's round-0 descriptor: its default backbone, pooling, input size and whitening.
        config = TrainConfig()
        model, _ = build_model(config.backbone, "pretrained", None, config.pooling)
        lines, feature_seconds, match_seconds = [], [], []
        for quality_set in sets:
            raw = view_signatures(model, quality_set.paths, config.input_size, False)
            vectors = whitening.fit(raw[: quality_set.collection_rows], config.whitening_shrinkage).apply(raw)
            reranker = Reranker(quality_set.paths, vectors, args.top_k, Path(scratch) / "features")
            common = {"groups": quality_set.groups}
            base = evaluate_retrieval(vectors, quality_set.queries, quality_set.partners, **common)
            results = {
                "global (round-0 descriptor)": base,
                f"+ spatial verification of the top {args.top_k}": evaluate_retrieval(
                    vectors,
                    quality_set.queries,
                    quality_set.partners,
                    rescore=reranker.rescore(False),
                    **common,
                ),
                "+ verification + query expansion": evaluate_retrieval(
                    vectors,
                    quality_set.queries,
                    quality_set.partners,
                    rescore=reranker.rescore(True),
                    **common,
                ),
            }
            feature_seconds += reranker.feature_seconds
            match_seconds += reranker.match_seconds
            for name, metrics in results.items():
                low, high = metrics.intervals["map"]
                cell = f"{metrics.map:.3f} [{low:.3f}, {high:.3f}]  P@1 {metrics.precision_at_1:.3f}"
                if metrics is not base:
                    delta = bootstrap_difference(
                        metrics.average_precisions, base.average_precisions, metrics.query_groups
                    )
                    cell += f"; Δ mAP {delta.value:+.3f} [{delta.low:+.3f}, {delta.high:+.3f}]"
                lines.append(f"{quality_set.name:<12} {name:<44} {cell}")
        print(f"\n{'set':<12} {'ranking':<44} mAP [95 % CI]")
        print("\n".join(lines))
        match_ms = 1000 * float(np.median(match_seconds))
        print(
            f"\nlocal features: median {1000 * float(np.median(feature_seconds)):.0f} ms per image "
            f"({len(feature_seconds)} images); one match (straight + mirrored): median {match_ms:.1f} ms, "
            f"so verifying a query's top {args.top_k} costs about {args.top_k * match_ms:.0f} ms once "
            "the features are cached"
        )
        print(machine_line())


# --- parent ------------------------------------------------------------------------------------------


def fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "   n/a"
    return f"{value:6.4f}"


def print_table(dataset: str, rows: list[tuple[str, str, dict]]) -> None:
    print(
        f"{'dataset':<10} {'version':<8} {'split':<10} {'mAP [95 % CI]':>22} {'R@1':>6} {'R@10':>6} "
        f"{'P@1':>6} {'queries':>7}"
    )
    for version, split, m in rows:
        low, high = (m.get("ci") or {}).get("map") or (None, None)
        interval = f"{fmt(m.get('map'))} [{fmt(low)},{fmt(high)}]" if low is not None else fmt(m.get("map"))
        print(
            f"{dataset:<10} {version:<8} {split:<10} {interval:>22} {fmt(m.get('recall@1'))} "
            f"{fmt(m.get('recall@10'))} {fmt(m.get('precision_at_1'))} {m.get('n_queries', 0):>7}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", choices=("demo", "peopleart"))
    parser.add_argument(
        "--ablation", choices=("descriptors", "reranking"), help="an ablation table (see above)"
    )
    parser.add_argument("--top-k", type=int, default=20, help="--ablation reranking: candidates verified")
    parser.add_argument("--variants", choices=("all", "quick"), default="all", help="--ablation rows")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--size", type=int, default=128, help="input size for extraction and training")
    parser.add_argument("--negatives", type=int, default=3, help="negatives per pair")
    parser.add_argument("--lr", type=float, default=None, help="override TrainConfig.lr (default 1e-5)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=JSON", help="override a TrainConfig field"
    )
    parser.add_argument(
        "--all-known", dest="hidden", action="store_false", help="peopleart: import every connection as known"
    )
    add_peopleart_arguments(parser, sources=250)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.ablation:
        sys.path.insert(0, str(ROOT))
        (descriptor_ablation if args.ablation == "descriptors" else reranking_ablation)(args)
        return
    if not args.dataset:
        parser.error("give --dataset or --ablation")

    forwarded = [
        f"--dataset={args.dataset}",
        f"--epochs={args.epochs}",
        f"--size={args.size}",
        f"--negatives={args.negatives}",
        f"--sources={args.sources}",
        f"--seed={args.seed}",
        f"--data={args.data.resolve()}",
        *([f"--lr={args.lr}"] if args.lr is not None else []),
        *(f"--set={setting}" for setting in args.set),
        *([] if args.hidden else ["--all-known"]),
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
    splits = [split for split in ("val", "test", "synthetic") if split in metrics[min(metrics)]]
    rows = [(f"v{n}", split, metrics[n][split]) for split in splits for n in sorted(metrics)]
    gt = result.get("ground_truth")
    if gt:
        rows += [
            (f"v{n}", name, gt[f"v{n}/{name}"]) for name in ("gt-test", "gt-hidden") for n in sorted(metrics)
        ]
    print()
    print_table(args.dataset, rows)
    gate = result.get("gate") or {}
    for name, d in (gate.get("differences") or {}).items():
        print(
            f"gate, {name}: mAP {d['delta']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}], {d['queries']} queries"
        )
    if gate:
        print(f"gate decision: {gate['decision']} ({gate['reason']})")
    for name in ("gt-test", "gt-hidden"):
        d = (gt or {}).get(f"delta/{name}")
        if d:
            print(
                f"round 1 − round 0, {name} mAP: {d['delta']:+.4f} "
                f"[{d['low']:+.4f}, {d['high']:+.4f}] (paired)"
            )
    if gt:
        print(
            f"ground truth: {gt['gt_components']} components; "
            f"{gt['gt_test_components_mixed_left_out']} test components mixed with train/val left out"
        )


if __name__ == "__main__":
    main()
