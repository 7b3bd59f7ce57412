"""OPTICS speed: the workbench (faiss neighbour graph + compiled ordering) vs sklearn.cluster.OPTICS.

Same parameters for both (thesis: metric cosine, max_eps 0.13, min_samples 2, xi 0.05), same float64
signatures. Synthetic signatures shaped like fine-tuned ones: 30 % of the points in small groups of 2–6 (a
shared pattern: members within about 0.02–0.1 cosine distance of each other), the rest spread out. For every
size and dimension it prints both times, the ratio, whether the labels are identical, and each run's peak
memory (ru_maxrss of a fresh child process per measurement). Then, workbench only: 100,000 × 256 end to end,
and the parameter preview on the cached 100,000-point graph.

    .venv/bin/python bench/optics_speed.py [--sizes 20000] [--dims 256 2048] [--large 100000] [--skip-sklearn]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARAMS = {"max_eps": 0.13, "min_samples": 2, "xi": 0.05}


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


def child(kind: str, count: int, dim: int, out: str) -> None:
    import warnings

    import numpy as np

    vectors = signatures(count, dim)
    started = time.perf_counter()
    if kind == "sklearn":
        from sklearn.cluster import OPTICS

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            labels = OPTICS(metric="cosine", **PARAMS).fit(vectors).labels_
        seconds = time.perf_counter() - started
        extra = {}
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


def measure(kind: str, count: int, dim: int, tmp: Path) -> dict:
    out = tmp / f"{kind}-{count}-{dim}.npy"
    line = (
        subprocess.run(
            [sys.executable, __file__, "--child", kind, str(count), str(dim), str(out)],
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    return {**json.loads(line), "labels": str(out)}


def main() -> None:
    import tempfile

    import numpy as np

    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[20000])
    parser.add_argument("--dims", type=int, nargs="+", default=[256, 2048])
    parser.add_argument("--large", type=int, default=100000)
    parser.add_argument("--skip-sklearn", action="store_true")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, count, dim, out = args.child
        child(kind, int(count), int(dim), out)
        return
    print(f"OPTICS {PARAMS}, cosine; {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        for count in args.sizes:
            for dim in args.dims:
                ours = measure("workbench", count, dim, tmp)
                labels = np.load(ours["labels"])
                clusters, noise = int(labels.max() + 1), float(np.mean(labels < 0))
                print(
                    f"{count:>7,} × {dim:<5} workbench {ours['seconds']:8.2f} s "
                    f"(graph {ours['graph_seconds']:.2f} s, "
                    f"{ours['edges']:,} pairs) peak {ours['peak_mib']:6.0f} MiB; {clusters} clusters, "
                    f"{noise:.0%} noise",
                    flush=True,
                )
                if args.skip_sklearn:
                    continue
                reference = measure("sklearn", count, dim, tmp)
                same = np.array_equal(np.load(reference["labels"]), labels)
                print(
                    f"{'':>15} sklearn   {reference['seconds']:8.2f} s "
                    f"peak {reference['peak_mib']:6.0f} MiB; "
                    f"× {reference['seconds'] / ours['seconds']:.1f} faster; labels identical: {same}",
                    flush=True,
                )
        if args.large:
            large = measure("workbench", args.large, 256, tmp)
            print(
                f"{args.large:>7,} × 256   workbench {large['seconds']:8.2f} s "
                f"(graph {large['graph_seconds']:.2f} s, "
                f"{large['edges']:,} pairs) peak {large['peak_mib']:6.0f} MiB",
                flush=True,
            )
            previews = measure("preview", args.large, 256, tmp)
            print(
                f"preview at {args.large:,} × 256, graph of radius 0.2 built once "
                f"in {previews['graph_seconds']:.1f} s:"
            )
            for entry in previews["previews"]:
                print(
                    f"  {entry['params']}: {entry['cluster_count']} clusters, "
                    f"{entry['noise_share']:.0%} noise "
                    f"in {entry['seconds']:.2f} s"
                )
            print(f"  peak {previews['peak_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
