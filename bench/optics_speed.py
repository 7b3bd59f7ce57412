"""OPTICS speed: the workbench (faiss neighbour graph + compiled ordering) vs sklearn.cluster.OPTICS.

Same parameters for all (thesis: metric cosine, max_eps 0.13, min_samples 2, xi 0.05), same float64
signatures. Synthetic signatures shaped like fine-tuned ones: 30 % of the points in small groups of 2–6 (a
shared pattern: members within about 0.02–0.1 cosine distance of each other), the rest spread out.

Three variants per size and dimension:

* workbench: `clustering.neighbours.radius_graph` then `clustering.optics.optics`;
* sklearn cosine: `OPTICS(metric="cosine", ...)` on the signatures, the call the README compares with. Its
  algorithm is brute force whatever `algorithm` says (the trees do not take the cosine metric), and `n_jobs`
  changes nothing measurable: each ordering step queries one point against all n, and that time goes
  mostly into validating and re-normalising all n rows (`cosine_similarity` normalises its inputs on every
  call), not into work that joblib could split (0.34 s per step either way at 20,000 × 2048);
* sklearn precomputed: what a competent engineer does once that is seen: the dense n × n cosine distance
  matrix, built once with `sklearn.metrics.pairwise.cosine_distances` (in row blocks, see `cosine_matrix`),
  then `OPTICS(metric="precomputed", ...)` under `sklearn.config_context(assume_finite=True)`. Without
  that setting every ordering step re-checks the whole n × n matrix for NaNs (about 0.3 s per step at
  20,000 points, more than the cosine call's step at 256 dimensions); with it a step costs about a
  millisecond. The time includes building the matrix. Its peak is about n² × 16 bytes (the matrix, and the
  n × n int64 array of `argpartition` in scikit-learn's core-distance step: 6.3 GB at 20,000 points), so it
  is skipped, with a note, where that exceeds half the available memory.

Each variant is measured --runs times (default 3), each measurement in a fresh child process so that its
peak memory (ru_maxrss) is its own; the variants are interleaved round by round, each round in a rotated
order, so that a slow minute of this noisy machine hurts them alike. Times are the median with the lowest and
highest run; the ratios are medians of the per-round ratios (bench/timing.py), against each scikit-learn
variant and against the strongest one (the lower median); peak memory is the median of the runs. The labels
of every scikit-learn run are compared with those of the workbench run of the same round.

Then, workbench only, also --runs times and alternated: 100,000 × 256 end to end, and the parameter preview
on a cached 100,000-point graph.

    .venv/bin/python bench/optics_speed.py [--runs 3] [--sizes 20000] [--dims 256 2048] [--large 100000] \\
        [--sklearn cosine precomputed | --skip-sklearn]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

from timing import (
    Samples,
    add_runs_argument,
    check_runs,
    child_result,
    machine_line,
    paired_ratio,
    show_ratio,
)

ROOT = Path(__file__).resolve().parent.parent
PARAMS = {"max_eps": 0.13, "min_samples": 2, "xi": 0.05}
SKLEARN = {"cosine": "sklearn-cosine", "precomputed": "sklearn-precomputed"}
MATRIX_BLOCK = 2048  # rows of the distance matrix per block: 330 MB of temporaries at 20,000 points


def signatures(count: int, dim: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    grouped = int(count * 0.3)
    sizes = rng.integers(2, 7, size=grouped // 2)
    sizes = sizes[np.cumsum(sizes) <= grouped]
    centres = rng.normal(size=(len(sizes), dim))
    members = np.repeat(centres, sizes, axis=0)
    spread = rng.uniform(0.1, 0.35, size=(len(members), 1)) / np.sqrt(dim)  # 0.005-0.06 cosine distance
    members = members + rng.normal(size=members.shape) * spread
    rest = rng.normal(size=(count - len(members), dim))
    vectors = np.concatenate([members, rest]).astype(np.float32)  # stored signatures are float32
    return vectors[rng.permutation(count)].astype(np.float64)


def cosine_matrix(vectors):
    """`sklearn.metrics.pairwise.cosine_distances(vectors)`, built in row blocks.

    The one-call form computes X·Xᵀ, which numpy hands to OpenBLAS's multithreaded dsyrk; with the OpenBLAS
    0.3.31 that numpy ships here that segfaults at 20,000 × 256 (numpy issue 19685 describes the same; a
    block against the whole matrix goes through dgemm instead). The blocks also keep the temporaries at one
    block instead of a second n × n array. The diagonal is set to 0 as `cosine_distances(X)` does.
    """
    import numpy as np
    from sklearn.metrics.pairwise import cosine_distances

    count = len(vectors)
    distances = np.empty((count, count))
    for start in range(0, count, MATRIX_BLOCK):
        distances[start : start + MATRIX_BLOCK] = cosine_distances(
            vectors[start : start + MATRIX_BLOCK], vectors
        )
    np.fill_diagonal(distances, 0.0)
    return distances


def child(kind: str, count: int, dim: int, out: str) -> None:
    import warnings

    import numpy as np

    vectors = signatures(count, dim)
    started = time.perf_counter()
    extra: dict = {}
    if kind == "sklearn-cosine":
        from sklearn.cluster import OPTICS

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            labels = OPTICS(metric="cosine", **PARAMS).fit(vectors).labels_
        seconds = time.perf_counter() - started
    elif kind == "sklearn-precomputed":
        import sklearn
        from sklearn.cluster import OPTICS

        distances = cosine_matrix(vectors)
        extra["matrix_seconds"] = time.perf_counter() - started
        with warnings.catch_warnings(), sklearn.config_context(assume_finite=True):
            warnings.simplefilter("ignore")
            labels = OPTICS(metric="precomputed", **PARAMS).fit(distances).labels_
        seconds = time.perf_counter() - started
    elif kind == "workbench":
        sys.path.insert(0, str(ROOT))
        from clustering.neighbours import radius_graph
        from clustering.optics import optics

        graph = radius_graph(vectors, PARAMS["max_eps"])
        graph_seconds = time.perf_counter() - started
        labels = optics(graph, **PARAMS).labels
        seconds = time.perf_counter() - started
        extra = {"graph_seconds": graph_seconds, "edges": graph.edge_count}
    else:  # preview on a cached graph of a wider radius
        sys.path.insert(0, str(ROOT))
        from clustering.algorithms import ClusteringParams, preview
        from clustering.neighbours import radius_graph

        graph = radius_graph(vectors, 0.2)
        extra = {"graph_seconds": time.perf_counter() - started, "previews": []}
        for params in (
            ClusteringParams("optics"),
            ClusteringParams("optics", max_eps=0.1, min_samples=3),
            ClusteringParams("optics", max_eps=0.2, xi=0.1),
            ClusteringParams("dbscan", max_eps=0.08),
        ):
            result = preview(vectors, params, graph=graph)
            extra["previews"].append({"params": params.resolved().as_dict(), **result.as_dict()})
        labels = np.zeros(1)
        seconds = time.perf_counter() - started
    np.save(out, np.asarray(labels))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mib": peak, **extra}))


def measure(kind: str, count: int, dim: int, out: Path) -> dict:
    command = [sys.executable, __file__, "--child", kind, str(count), str(dim), str(out)]
    return {**child_result(command, f"{kind} at {count} × {dim}"), "labels": str(out)}


def rotated(variants: list[str], round_: int) -> list[str]:
    shift = round_ % len(variants)
    return variants[shift:] + variants[:shift]


def available_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def sklearn_variants(requested: list[str], count: int) -> list[str]:
    variants = []
    for name in requested:
        if name == "precomputed":
            # the float64 matrix, plus the int64 argpartition of all of it in OPTICS's core distances
            needed, available = count * count * 16, available_bytes()
            if available is not None and needed > available // 2:
                print(
                    f"  sklearn precomputed skipped: at {count:,} points it needs about "
                    f"{needed / 2**30:.1f} GiB, {available / 2**30:.1f} GiB available"
                )
                continue
        variants.append(SKLEARN[name])
    return variants


def compare_size(count: int, dim: int, requested: list[str], runs: int, tmp: Path) -> None:
    import numpy as np

    print(f"{count:,} × {dim}", flush=True)
    variants = ["workbench", *sklearn_variants(requested, count)]
    results: dict[str, list[dict]] = {variant: [] for variant in variants}
    for round_ in range(runs):
        for variant in rotated(variants, round_):
            out = tmp / f"{variant}-{count}-{dim}-{round_}.npy"
            results[variant].append(measure(variant, count, dim, out))

    def samples(variant: str, key: str) -> Samples:
        return Samples.of([result[key] for result in results[variant]])

    ours = samples("workbench", "seconds")
    labels = [np.load(result["labels"]) for result in results["workbench"]]
    stable = all(np.array_equal(labels[0], other) for other in labels[1:])
    clusters, noise = int(labels[0].max() + 1), float(np.mean(labels[0] < 0))
    graph, peak = samples("workbench", "graph_seconds"), samples("workbench", "peak_mib")
    print(
        f"  workbench            {ours.show('s')}; graph {graph.median:.2f} s, "
        f"{results['workbench'][0]['edges']:,} pairs; peak {peak.median:,.0f} MiB; "
        f"{clusters} clusters, {noise:.0%} noise" + ("" if stable else "; LABELS DIFFER BETWEEN RUNS"),
        flush=True,
    )
    baselines = [variant for variant in variants if variant != "workbench"]
    for variant in baselines:
        theirs = samples(variant, "seconds")
        same = sum(
            np.array_equal(np.load(result["labels"]), label)
            for result, label in zip(results[variant], labels, strict=True)
        )
        matrix = (
            f", of which distance matrix {samples(variant, 'matrix_seconds').median:.1f} s"
            if variant == "sklearn-precomputed"
            else ""
        )
        print(
            f"  {variant.replace('-', ' '):<20} {theirs.show('s')}{matrix}; "
            f"peak {samples(variant, 'peak_mib').median:,.0f} MiB; "
            f"workbench {show_ratio(paired_ratio(theirs, ours))} faster; "
            f"labels identical in {same}/{runs} runs",
            flush=True,
        )
    if len(baselines) > 1:
        strongest = min(baselines, key=lambda variant: samples(variant, "seconds").median)
        ratio = paired_ratio(samples(strongest, "seconds"), ours)
        print(
            f"  against the strongest baseline ({strongest.replace('-', ' ')}): "
            f"workbench {show_ratio(ratio)} faster",
            flush=True,
        )


def large_and_preview(count: int, runs: int, tmp: Path) -> None:
    variants = ["workbench", "preview"]
    results: dict[str, list[dict]] = {variant: [] for variant in variants}
    for round_ in range(runs):
        for variant in rotated(variants, round_):
            results[variant].append(measure(variant, count, 256, tmp / f"{variant}-{count}-{round_}.npy"))
    large, previews = results["workbench"], results["preview"]
    print(
        f"{count:,} × 256 workbench {Samples.of([r['seconds'] for r in large]).show('s')}; "
        f"graph {Samples.of([r['graph_seconds'] for r in large]).median:.2f} s, {large[0]['edges']:,} pairs; "
        f"peak {Samples.of([r['peak_mib'] for r in large]).median:,.0f} MiB",
        flush=True,
    )
    print(
        f"preview at {count:,} × 256, graph of radius 0.2 built once per run in "
        f"{Samples.of([r['graph_seconds'] for r in previews]).show('s')}:"
    )
    for index, entry in enumerate(previews[0]["previews"]):
        seconds = Samples.of([r["previews"][index]["seconds"] for r in previews])
        print(
            f"  {entry['params']}: {entry['cluster_count']} clusters, {entry['noise_share']:.0%} noise "
            f"in {seconds.show('s')}"
        )
    print(f"  peak {Samples.of([r['peak_mib'] for r in previews]).median:,.0f} MiB")


def main() -> None:
    import tempfile

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_runs_argument(parser)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20000])
    parser.add_argument("--dims", type=int, nargs="+", default=[256, 2048])
    parser.add_argument(
        "--large", type=int, default=100000, help="points of the workbench-only part (0: skip)"
    )
    parser.add_argument(
        "--sklearn",
        nargs="*",
        choices=sorted(SKLEARN),
        default=sorted(SKLEARN),
        help="scikit-learn variants to compare with (default both)",
    )
    parser.add_argument("--skip-sklearn", action="store_true", help="same as --sklearn with no variant")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, count, dim, out = args.child
        child(kind, int(count), int(dim), out)
        return
    print(machine_line())
    check_runs(args.runs)
    requested = [] if args.skip_sklearn else args.sklearn
    print(
        f"OPTICS {PARAMS}, cosine; {args.runs} run(s) of each variant in rotated order, "
        "each in a fresh process",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        for count in args.sizes:
            for dim in args.dims:
                compare_size(count, dim, requested, args.runs, tmp)
        if args.large:
            large_and_preview(args.large, args.runs, tmp)


if __name__ == "__main__":
    main()
