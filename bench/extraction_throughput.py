"""Signature extraction throughput on CPU: the workbench path vs a naive loop, on real paintings.

For each backbone, on N images of the WikiArt development set (../shared/data/wikiart-styles, 224×224), at
224 px:

* naive: one image at a time, fp32, NCHW, autograd ON (no no_grad / inference_mode), the way a first script
  is usually written;
* workbench: training.extraction.extract_signatures: batched DataLoader with worker processes,
  inference_mode, channels_last, and bf16 autocast where the CPU computes bf16 natively ("auto");
* workbench-bf16: the same with bf16 autocast forced, to show what it does on this CPU.

Each measurement runs in a fresh child process so that its peak memory is its own: ru_maxrss of the process,
and the peak proportional set size of the process with its DataLoader workers (sampled every 0.25 s). The time
includes starting the DataLoader workers but not building the model; a 2-image warm-up runs first. ResNeXt-50
runs with random weights when no ImageNet weights are cached (speed does not depend on the values);
EfficientNet-Lite0 uses the offline package weights. The signatures of the three methods are compared (lowest
per-image cosine similarity to the naive ones).

    .venv/bin/python bench/extraction_throughput.py [--images 64] \\
        [--backbones resnext50_32x4d tf_efficientnet_lite0]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "wikiart-styles"
METHODS = ("naive", "workbench", "workbench-bf16")


def image_paths(data: Path, count: int) -> list[str]:
    with open(data / "metadata.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    # Every k-th row, so that all seven styles are represented rather than the first N of one style.
    step = max(1, len(rows) // count)
    return [str(data / row["path"]) for row in rows[::step][:count]]


def _descendants(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *_descendants(child)]
    return found


def tree_pss_mib() -> float:
    """Proportional set size of this process and all its descendants (DataLoader workers): shared pages, such
    as the model weights a forked worker inherits, are counted once in total rather than once per process."""
    total_kib = 0
    for pid in [os.getpid(), *_descendants(os.getpid())]:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kib += int(line.split()[1])
        except OSError:  # a worker that just exited
            pass
    return total_kib / 1024


class PeakSampler(threading.Thread):
    """Samples tree_pss_mib() every 0.25 s. ru_maxrss cannot give the workers' share: RUSAGE_CHILDREN is
    already ~430 MiB after `import torch` (it forks a helper at import time), whatever the workers use."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.25):
            self.peak = max(self.peak, tree_pss_mib())

    def stop(self) -> float:
        self.done.set()
        self.join()
        return max(self.peak, tree_pss_mib())


def measure(method: str, backbone: str, paths: list[str], args: argparse.Namespace, out: Path) -> dict:
    """Runs in the child process."""
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import torch

    from training.backbones import build_model, input_normalisation
    from training.extraction import eval_transform, extract_signatures, load_rgb

    torch.manual_seed(0)  # the same random ResNeXt weights in every child, so signatures can be compared
    model, origin = build_model(backbone, weights="auto")
    model.eval()
    if method == "naive":
        transform = eval_transform(args.input_size, *input_normalisation(backbone))

        def run(items: list[str]) -> np.ndarray:
            # Autograd on, fp32, NCHW, batch of one: every forward builds a graph that is then thrown away.
            return np.stack([model(transform(load_rgb(p))[None])[0].detach().numpy() for p in items])
    else:
        precision = "bf16" if method == "workbench-bf16" else "auto"

        def run(items: list[str]) -> np.ndarray:
            return extract_signatures(
                model,
                items,
                batch_size=args.batch_size,
                num_workers=args.workers,
                device="cpu",
                input_size=args.input_size,
                precision=precision,
            )

    run(paths[:2])
    sampler = PeakSampler()
    sampler.start()
    start = time.perf_counter()
    signatures = run(paths)
    seconds = time.perf_counter() - start
    peak_tree = sampler.stop()
    np.save(out, signatures)
    return {
        "seconds": seconds,
        "images_per_s": len(paths) / seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_tree_pss_mib": peak_tree,
        "weights": origin.kind,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--backbones", nargs="+", default=["resnext50_32x4d", "tf_efficientnet_lite0"])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--child", nargs=3, metavar=("METHOD", "BACKBONE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    paths = image_paths(args.data, args.images)

    if args.child:
        method, backbone, out = args.child
        print(json.dumps(measure(method, backbone, paths, args, Path(out))))
        return

    import numpy as np
    import torch

    from training.extraction import cpu_supports_bf16

    print(
        f"{len(paths)} images from {args.data}, {args.input_size} px, batch {args.batch_size}, "
        f"{args.workers} DataLoader workers; {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"capability {torch.backends.cpu.get_cpu_capability()}, native bf16: {cpu_supports_bf16()}"
    )
    forwarded = [
        f"--{k.replace('_', '-')}={getattr(args, k)}"
        for k in ("images", "batch_size", "workers", "input_size")
    ]
    with tempfile.TemporaryDirectory() as folder:
        for backbone in args.backbones:
            results, vectors = {}, {}
            for method in METHODS:
                out = Path(folder) / f"{backbone}-{method}.npy"
                completed = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        *forwarded,
                        f"--data={args.data}",
                        "--child",
                        method,
                        backbone,
                        str(out),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                    cwd=ROOT,
                )
                results[method] = json.loads(completed.stdout.strip().splitlines()[-1])
                vectors[method] = np.load(out)
            print(f"\n{backbone} (weights: {results['naive']['weights']})")
            base = results["naive"]["images_per_s"]
            for method in METHODS:
                r = results[method]
                cosine = float((vectors[method] * vectors["naive"]).sum(axis=1).min())
                print(
                    f"  {method:15s} {r['images_per_s']:7.2f} images/s  ×{r['images_per_s'] / base:5.2f}  "
                    f"peak RSS {r['peak_rss_mib']:5.0f} MiB, "
                    f"with workers (PSS) {r['peak_tree_pss_mib']:5.0f} MiB  "
                    f"min cosine to naive {cosine:.5f}"
                )


if __name__ == "__main__":
    main()
