"""Conditional search, "like this one, but <style>" (Backward Search, methods.md §4), on two real data sets
outside the repository: precision of the wanted class, similarity kept to the query, and latency, for the
optimisation, its distilled student and two baselines, all in the same run on the same pairs.

Data (`--data-root`, default ../shared/data): ``peopleart`` (2,869 paintings; `style`, 41 classes, and
`artist`) and ``wikiart`` (``wikiart-styles``, 2,100 paintings, 7 styles). Each set is split 70/15/15 by
artwork, stratified by style, exactly as `bench/label_retrieval.py` splits it (`label_retrieval.load_set`);
classes with fewer than 6 artworks are dropped (`training.labels.encode_task`).

Model: a `backward-search` model (`training.label_trainer.fit`, the workbench's recipe: EfficientNet-Lite0
with the offline ImageNet weights, 224 px, the top `--trainable-stages` stages learning at 1e-4, projection
and heads at Adam 0.01 ×0.1 every 10 epochs, batch 64, `--epochs` 30, best epoch by validation accuracy),
trained on the train split's `style` (People-Art: `style` and `artist`). Its z of every artwork of the set
is the gallery (L2-normalised, cosine), the query always left out; the paper kept the query in its gallery,
which inflates its figure (methods.md §4).

Pairs: `--pairs` (1,000) (query, condition) pairs, the query drawn from the test split, the condition a style
the query does not have, among the styles with at least 10 artworks in the gallery (so that P@10 can be 1);
drawn with a fixed seed, the same pairs for every method.

Methods, each ranking the gallery for each pair:

1. ``plain``: the query's nearest neighbours under the model, no condition (baseline);
2. ``filtered``: the nearest neighbours among the artworks whose predicted style (the model's head on their z)
   is the wanted one (baseline);
3. ``optimisation``: Backward Search from the query's z (Adam lr 0.2, ≤ 100 steps, patience 10, λ 1.1),
   then the nearest to the moved z; also at other λ (`--lambdas`), the trade-off it controls;
4. ``student``: the distilled student as the workbench's `train_student` job trains it
   (`training.conditional.train_student`: 8 random pairs per train-split query, one or two conditions, 50
   epochs, Adam 1e-3, batch 512), then the nearest to its z.

Measured: precision@10 of the wanted class (the paper's "mAP@10"); the mean cosine similarity of the top 10
to the query in the *pretrained* Lite0 feature space (not the space being optimised, so a method cannot score
by construction); and latency per query, one query at a time: the conditioning step alone (the part the
student replaces) and the whole query (conditioning + retrieval), at the set's size and with 100,000 indexed
items (the set's z tiled with small noise). PASS/FAIL lines: the optimisation beats plain neighbours on
P@10; the student is at least 50× faster than the optimisation per query (conditioning step) and within 10
points of its P@10.

    .venv/bin/python bench/conditional_search.py --json docs/conditional_search.json
    .venv/bin/python bench/conditional_search.py --dataset wikiart --limit 500 --epochs 3 --pairs 200  (smoke)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from label_retrieval import label_data, load_set, plain_extract, pretrained_model, say
from timing import _cpu_model_and_flags, machine_line

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BACKBONE = "tf_efficientnet_lite0"
LABELS = {"peopleart": ["style", "artist"], "wikiart": ["style"]}
TOP = 10
MIN_GALLERY_CLASS = 10
LARGE_INDEX = 100_000
PUBLISHED_P10 = 0.541  # methods.md §4: averaged over the paper's data sets, query kept in its gallery


def draw_pairs(style: np.ndarray, test: np.ndarray, n_pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(query rows, wanted style) pairs: test queries with a known style, a wanted style they do not have,
    among the styles with at least MIN_GALLERY_CLASS artworks."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(style[style >= 0], minlength=style.max() + 1)
    eligible = np.flatnonzero(counts >= MIN_GALLERY_CLASS + 1)
    queries = test[style[test] >= 0]
    rows = rng.choice(queries, size=n_pairs, replace=True)
    wanted = np.array([rng.choice(eligible[eligible != style[row]]) for row in rows])
    return rows, wanted


def top_rows(gallery: np.ndarray, vectors: np.ndarray, exclude: np.ndarray, allowed=None) -> np.ndarray:
    """Top-TOP gallery rows by cosine for each (normalised) vector, its query row excluded; `allowed`
    (pairs × gallery bool) restricts the candidates."""
    scores = vectors @ gallery.T
    scores[np.arange(len(vectors)), exclude] = -np.inf
    if allowed is not None:
        scores = np.where(allowed, scores, -np.inf)
    top = np.argpartition(-scores, TOP, axis=1)[:, :TOP]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
    top = np.take_along_axis(top, order, axis=1)
    valid = np.isfinite(np.take_along_axis(scores, top, axis=1))
    return np.where(valid, top, -1)


def normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def measure(
    top: np.ndarray, rows: np.ndarray, wanted: np.ndarray, style: np.ndarray, pre: np.ndarray
) -> dict:
    """P@10 of the wanted style and the mean pretrained-space cosine of the hits to the query."""
    hit_style = np.where(top >= 0, style[np.maximum(top, 0)], -2)
    precision = (hit_style == wanted[:, None]).mean(axis=1)
    kept = np.einsum("pd,pkd->pk", pre[rows], pre[np.maximum(top, 0)])
    kept = np.where(top >= 0, kept, np.nan)
    return {
        "p@10": float(precision.mean()),
        "p@10_per_pair": precision,
        "kept_similarity": float(np.nanmean(kept)),
    }


def time_per_query(fn, n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - started) / n * 1000


def bootstrap(a: np.ndarray, b: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed)
    diff = a - b
    samples = [diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(2000)]
    return float(diff.mean()), float(np.percentile(samples, 2.5)), float(np.percentile(samples, 97.5))


def run_dataset(name: str, args, scratch: Path) -> dict[str, Any]:
    import torch

    from training import conditional
    from training.label_trainer import LabelTrainConfig, fit, latents_for
    from training.labels import encode_task

    paths, labels, split = load_set(name, args.data_root, args.limit)
    columns = LABELS[name]
    tasks = [encode_task(column, labels[column]) for column in columns]
    data = label_data(paths, tasks, split)
    say(
        f"\n{name}: {len(paths)} artworks; "
        + ", ".join(f"{t.name} {t.n_classes} classes" for t in tasks)
        + f"; train {len(data.train)}, val {len(data.val)}, test {len(data.test)}"
    )
    config = LabelTrainConfig(
        method="backward-search",
        labels=columns,
        backbone=BACKBONE,
        augment="none",
        trainable_stages=args.trainable_stages,
        epochs=args.epochs,
        input_size=224,
        num_workers=args.num_workers,
    )
    checkpoints = scratch / f"{name}-checkpoints"
    checkpoints.mkdir(parents=True)
    started = time.perf_counter()
    result = fit(config, data, checkpoints, log=lambda line: say(f"  {line}"))
    fit_seconds = time.perf_counter() - started
    model = result.model.eval()
    heads = model.heads
    accuracy = result.test.accuracy if result.test else {}
    say(f"  trained in {fit_seconds:.0f} s (best epoch {result.best_epoch}); test accuracy {accuracy}")

    started = time.perf_counter()
    z = latents_for(model, paths, config)
    z_seconds = time.perf_counter() - started
    gallery = normalise(z).astype(np.float32)
    pre_model, _ = pretrained_model()
    pre = normalise(plain_extract(args.num_workers)(pre_model, paths)).astype(np.float32)
    say(f"  z of {len(paths)} artworks in {z_seconds:.0f} s; pretrained features for the kept similarity")

    style = tasks[0].targets
    rows, wanted = draw_pairs(style, data.test, args.pairs, args.seed)
    n_tasks = len(tasks)
    conditions = torch.full((len(rows), n_tasks), -1, dtype=torch.long)
    conditions[:, 0] = torch.from_numpy(wanted)
    z0 = torch.from_numpy(z[rows]).float()
    predicted_style = conditional.predict_attributes(heads, torch.from_numpy(z).float())[0][0]

    figures: dict[str, dict] = {}
    figures["plain"] = measure(top_rows(gallery, gallery[rows], rows), rows, wanted, style, pre)
    allowed = predicted_style[None, :] == wanted[:, None]
    figures["filtered"] = measure(top_rows(gallery, gallery[rows], rows, allowed), rows, wanted, style, pre)
    optimised = {}
    for lam in args.lambdas:
        moved = conditional.backward_search(heads, z0, conditions, lam).z.numpy()
        optimised[lam] = moved
        key = "optimisation" if lam == conditional.DEFAULT_LAMBDA[1] else f"optimisation λ {lam:g}"
        figures[key] = measure(top_rows(gallery, normalise(moved), rows), rows, wanted, style, pre)
        met = (conditional.predict_attributes(heads, torch.from_numpy(moved))[0][0] == wanted).mean()
        figures[key]["conditions_met"] = float(met)

    train_z = torch.from_numpy(z[data.train]).float()
    student_fit = conditional.train_student(
        heads, [t.n_classes for t in tasks], train_z, pairs_per_query=8, epochs=args.student_epochs,
        progress=lambda f, m: None,
    )  # fmt: skip
    student = student_fit.student.eval()
    with torch.no_grad():
        student_z = student(z0, conditions).numpy()
    figures["student"] = measure(top_rows(gallery, normalise(student_z), rows), rows, wanted, style, pre)
    figures["student"]["conditions_met"] = float(
        (conditional.predict_attributes(heads, torch.from_numpy(student_z))[0][0] == wanted).mean()
    )
    say(
        f"  student: {len(train_z) * 8} pairs optimised in {student_fit.teacher_seconds:.0f} s, trained in "
        f"{student_fit.seconds - student_fit.teacher_seconds:.0f} s, validation MSE {student_fit.val_mse:.4f}"
    )

    # Latency, one query at a time, on the first `--latency-queries` pairs.
    n = min(args.latency_queries, len(rows))
    torch.set_grad_enabled(True)
    rng = np.random.default_rng(1)
    tiles = int(np.ceil(LARGE_INDEX / len(gallery)))
    large = normalise(
        np.tile(gallery, (tiles, 1))[:LARGE_INDEX] + rng.normal(0, 0.02, (LARGE_INDEX, gallery.shape[1]))
    ).astype(np.float32)

    def optimise(i: int) -> np.ndarray:
        return conditional.backward_search(heads, z0[i : i + 1], conditions[i : i + 1]).z[0].numpy()

    def distil(i: int) -> np.ndarray:
        with torch.no_grad():
            return student(z0[i : i + 1], conditions[i : i + 1])[0].numpy()

    latency = {
        "optimisation_ms": time_per_query(optimise, n),
        "student_ms": time_per_query(distil, n),
    }
    for label, index in (("collection", gallery), ("100k", large)):
        latency[f"retrieval_{label}_ms"] = time_per_query(
            lambda i, index=index: conditional.cosine_top(z[rows[i]], index, TOP, exclude=[int(rows[i])]), n
        )
    for mode in ("optimisation", "student"):
        for label in ("collection", "100k"):
            latency[f"{mode}_total_{label}_ms"] = latency[f"{mode}_ms"] + latency[f"retrieval_{label}_ms"]
    latency["speedup"] = latency["optimisation_ms"] / latency["student_ms"]
    say(
        f"  latency per query: optimisation {latency['optimisation_ms']:.1f} ms, student "
        f"{latency['student_ms']:.3f} ms (×{latency['speedup']:.0f}); "
        f"retrieval {latency['retrieval_collection_ms']:.2f}"
        f" ms over {len(gallery)}, {latency['retrieval_100k_ms']:.1f} ms over {LARGE_INDEX:,}"
    )

    checks = []
    diff, low, high = bootstrap(figures["optimisation"]["p@10_per_pair"], figures["plain"]["p@10_per_pair"])
    checks.append(
        {
            "ok": low > 0,
            "text": f"{name}: optimisation beats plain neighbours on P@10 of the wanted style: "
            f"{100 * figures['optimisation']['p@10']:.1f} vs {100 * figures['plain']['p@10']:.1f} "
            f"({100 * diff:+.1f} pp, 95 % [{100 * low:+.1f}, {100 * high:+.1f}])",
        }
    )
    loss = figures["optimisation"]["p@10"] - figures["student"]["p@10"]
    end_to_end = {
        size: latency[f"optimisation_total_{size}_ms"] / latency[f"student_total_{size}_ms"]
        for size in ("collection", "100k")
    }
    latency["speedup_end_to_end"] = end_to_end
    checks.append(
        {
            "ok": latency["speedup"] >= 50 and loss <= 0.10,
            "text": f"{name}: student ×{latency['speedup']:.0f} faster than the optimisation per query "
            f"(conditioning step; end to end ×{end_to_end['collection']:.0f} "
            f"at {len(gallery)} items, ×{end_to_end['100k']:.0f} at 100k), "
            f"P@10 {100 * figures['student']['p@10']:.1f} vs {100 * figures['optimisation']['p@10']:.1f} "
            f"({-100 * loss:+.1f} pp; at most −10 allowed)",
        }
    )
    for entry in figures.values():
        entry.pop("p@10_per_pair")
    return {
        "artworks": len(paths),
        "tasks": {t.name: t.n_classes for t in tasks},
        "split": {"train": len(data.train), "val": len(data.val), "test": len(data.test)},
        "pairs": len(rows),
        "distinct_queries": int(len(np.unique(rows))),
        "test_accuracy": accuracy,
        "fit_seconds": fit_seconds,
        "seconds_per_epoch": result.seconds_per_epoch,
        "best_epoch": result.best_epoch,
        "extraction_images_per_second": len(paths) / z_seconds,
        "student": {
            "pairs": len(train_z) * 8,
            "teacher_seconds": student_fit.teacher_seconds,
            "seconds": student_fit.seconds,
            "val_mse": student_fit.val_mse,
            "best_epoch": student_fit.best_epoch,
        },
        "figures": figures,
        "latency": latency,
        "checks": checks,
    }


def print_dataset(name: str, result: dict[str, Any]) -> None:
    say(
        f"\n{name}: {result['pairs']} (query, wanted style) pairs "
        f"from {result['distinct_queries']} test queries; "
        f"gallery {result['artworks']} artworks, the query left out"
    )
    say(f"{'method':<28} {'P@10 (%)':>9} {'kept sim.':>10} {'met (%)':>8}")
    for method, entry in result["figures"].items():
        met = entry.get("conditions_met")
        say(
            f"{method:<28} {100 * entry['p@10']:>9.1f} {entry['kept_similarity']:>10.3f} "
            f"{'' if met is None else f'{100 * met:.1f}':>8}"
        )
    say(
        "[published] Backward Search, mean of its sets, query kept in gallery: "
        f"P@10 {100 * PUBLISHED_P10:.1f}"
    )
    latency = result["latency"]
    say(
        f"latency per query (ms): optimisation {latency['optimisation_ms']:.1f}, "
        f"student {latency['student_ms']:.3f}; "
        f"+ retrieval {latency['retrieval_collection_ms']:.2f} at {result['artworks']} items, "
        f"{latency['retrieval_100k_ms']:.1f} at {LARGE_INDEX:,}"
    )
    say(
        f"training: {result['seconds_per_epoch']:.1f} s/epoch, {result['fit_seconds']:.0f} s in all "
        f"(best epoch "
        f"{result['best_epoch']}), test accuracy "
        + ", ".join(f"{k} {v:.3f}" for k, v in result["test_accuracy"].items())
        + f"; extraction {result['extraction_images_per_second']:.0f} images/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", choices=("peopleart", "wikiart", "both"), default="both")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--trainable-stages", type=int, default=2)
    parser.add_argument("--student-epochs", type=int, default=50)
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--lambdas", type=float, nargs="+", default=[1.1, 0.3, 3.0])
    parser.add_argument("--latency-queries", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    import torch

    started = time.perf_counter()
    model_name, flags = _cpu_model_and_flags()
    say(machine_line())
    names = ["peopleart", "wikiart"] if args.dataset == "both" else [args.dataset]
    results: dict[str, Any] = {
        "machine": machine_line(),
        "cpu": {
            "model": model_name,
            "avx512_bf16": "avx512_bf16" in flags,
            "threads": torch.get_num_threads(),
        },
        "settings": {key: str(v) if isinstance(v, Path) else v for key, v in vars(args).items()},
        "published_p@10": PUBLISHED_P10,
        "datasets": {},
    }
    with tempfile.TemporaryDirectory(prefix="workbench-conditional-") as folder:
        for name in names:
            results["datasets"][name] = run_dataset(name, args, Path(folder))
    checks = []
    for name in names:
        print_dataset(name, results["datasets"][name])
        checks += results["datasets"][name]["checks"]
    say("\nfindings")
    for check in checks:
        say(f"{'PASS' if check['ok'] else 'FAIL'}: {check['text']}")
    results["wall_seconds"] = time.perf_counter() - started
    say(f"\nwall time {results['wall_seconds']:.0f} s; {machine_line()}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=float))
        say(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
