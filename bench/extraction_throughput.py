"""Signature extraction throughput on CPU: the workbench path against plain PyTorch loops, on real paintings.

For each backbone, on N images of the WikiArt development set (../shared/data/wikiart-styles, 224×224), at
224 px, five methods:

* naive: one image at a time, fp32, NCHW, autograd ON (no no_grad / inference_mode), the way a first script
  is usually written; kept for reference, it is not a fair baseline;
* batch1-inference: the same loop (one image at a time, decoded in the main process, fp32, NCHW) under
  `torch.inference_mode()`;
* batched-fp32: the plain loop a competent engineer writes: a torch DataLoader over the same Dataset and
  transform, batches of --batch-size, `torch.inference_mode()`, fp32, NCHW. It uses the same number of
  DataLoader worker processes as the workbench (--workers). A DataLoader with workers rather than decoding in
  the main process because that is the textbook PyTorch inference pattern, and with the same worker count the
  comparison isolates what the workbench adds on top (channels_last, bf16 autocast where native) instead of
  crediting it with the parallel decoding every competent script has;
* workbench: training.extraction.extract_signatures: batched DataLoader with worker processes,
  inference_mode, channels_last, and bf16 autocast where the CPU computes bf16 natively ("auto");
* workbench-bf16: the same with bf16 autocast forced, to show what it does on this CPU.

The headline, per backbone, is the workbench's ("auto") speed-up over the STRONGEST plain baseline: the
fastest (median images/s) of naive, batch1-inference and batched-fp32 in this run. Every row also shows its
ratio to that baseline and to naive.

Each method is measured --runs times (default 3), each measurement in a fresh child process so that its peak
memory is its own: ru_maxrss of the process, and the peak proportional set size of the process with its
DataLoader workers (sampled every 0.25 s). The methods are interleaved round by round, each round in a rotated
order, so that a slow minute of this noisy machine hurts them alike. Speeds are reported as the median with
the lowest and highest run; ratios as the median of the per-round ratios (bench/timing.py); peak memory as the
median of the runs. The time includes starting the DataLoader workers but not building the model; a 2-image
warm-up runs first. ResNeXt-50 runs with random weights when no ImageNet weights are cached (speed does not
depend on the values); EfficientNet-Lite0 uses the offline package weights. The signatures of each method
(from its first run) are compared with the naive ones (lowest per-image cosine similarity).

    .venv/bin/python bench/extraction_throughput.py [--images 64] [--runs 3] \\
        [--backbones resnext50_32x4d tf_efficientnet_lite0]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import sys
import tempfile
import threading
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
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "wikiart-styles"
PLAIN = ("naive", "batch1-inference", "batched-fp32")
METHODS = (*PLAIN, "workbench", "workbench-bf16")
HEADLINE = "workbench"


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
    from torch.utils.data import DataLoader

    from training.backbones import build_model, input_normalisation
    from training.extraction import (
        ImageFileDataset,
        eval_transform,
        extract_signatures,
        load_rgb,
        resolve_precision,
    )

    torch.manual_seed(0)  # the same random ResNeXt weights in every child, so signatures can be compared
    model, origin = build_model(backbone, weights="auto")
    model.eval()
    transform = eval_transform(args.input_size, *input_normalisation(backbone))
    autocast = None
    if method == "naive":

        def run(items: list[str]) -> np.ndarray:
            # Autograd on, fp32, NCHW, batch of one: every forward builds a graph that is then thrown away.
            return np.stack([model(transform(load_rgb(p))[None])[0].detach().numpy() for p in items])

    elif method == "batch1-inference":

        def run(items: list[str]) -> np.ndarray:
            # The naive loop without autograd: decoding in the main process, fp32, NCHW, batch of one.
            with torch.inference_mode():
                return np.stack([model(transform(load_rgb(p))[None])[0].numpy() for p in items])

    elif method == "batched-fp32":

        def run(items: list[str]) -> np.ndarray:
            # The textbook loop: a DataLoader with as many decoding workers as the workbench, fp32, NCHW.
            loader = DataLoader(
                ImageFileDataset(items, transform), batch_size=args.batch_size, num_workers=args.workers
            )
            with torch.inference_mode():
                return np.concatenate([model(images).numpy() for _, images in loader])

    else:
        precision = "bf16" if method == "workbench-bf16" else "auto"
        dtype = resolve_precision(torch.device("cpu"), precision)
        autocast = str(dtype).removeprefix("torch.") if dtype is not None else None

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
        "autocast": autocast,
    }


def run_child(method: str, backbone: str, out: Path, forwarded: list[str]) -> dict:
    command = [sys.executable, __file__, *forwarded, "--child", method, backbone, str(out)]
    return child_result(command, f"{method} on {backbone}", cwd=ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--backbones", nargs="+", default=["resnext50_32x4d", "tf_efficientnet_lite0"])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--input-size", type=int, default=224)
    add_runs_argument(parser)
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

    print(machine_line())
    check_runs(args.runs)
    print(
        f"{len(paths)} images from {args.data}, {args.input_size} px, batch {args.batch_size}, "
        f"{args.workers} DataLoader workers, {args.runs} run(s) of each method in rotated order; "
        f"capability {torch.backends.cpu.get_cpu_capability()}, native bf16: {cpu_supports_bf16()}"
    )
    forwarded = [
        f"--{k.replace('_', '-')}={getattr(args, k)}"
        for k in ("images", "batch_size", "workers", "input_size", "data")
    ]
    headlines = []
    with tempfile.TemporaryDirectory() as folder:
        for backbone in args.backbones:
            runs: dict[str, list[dict]] = {method: [] for method in METHODS}
            vectors = {}
            for round_ in range(args.runs):
                shift = round_ % len(METHODS)
                for method in METHODS[shift:] + METHODS[:shift]:
                    out = Path(folder) / f"{backbone}-{method}-{round_}.npy"
                    runs[method].append(run_child(method, backbone, out, forwarded))
                    if round_ == 0:  # the signatures of the first run of each method are compared
                        vectors[method] = np.load(out)
                    out.unlink()

            speed = {m: Samples.of([r["images_per_s"] for r in runs[m]]) for m in METHODS}
            strongest = max(PLAIN, key=lambda m: speed[m].median)
            first = runs["naive"][0]
            autocast = runs[HEADLINE][0]["autocast"] or "none (fp32)"
            print(
                f"\n{backbone} (weights: {first['weights']}, {first['threads']} torch threads; "
                f"workbench autocast: {autocast}); strongest plain baseline: {strongest}"
            )
            columns = [strongest] if strongest == "naive" else [strongest, "naive"]
            print(
                f"  {'method':16s} {'images/s: median (lowest–highest)':40s} "
                + "".join(f"{'vs ' + c:22s} " for c in columns)
                + f"{'peak MiB: RSS / with workers (PSS)':35s} min cosine to naive"
            )
            for method in METHODS:
                rss = Samples.of([r["peak_rss_mib"] for r in runs[method]]).median
                pss = Samples.of([r["peak_tree_pss_mib"] for r in runs[method]]).median
                cosine = float((vectors[method] * vectors["naive"]).sum(axis=1).min())
                print(
                    f"  {method:16s} {speed[method].show('images/s'):40s} "
                    + "".join(f"{show_ratio(paired_ratio(speed[method], speed[c])):22s} " for c in columns)
                    + f"{f'{rss:.0f} / {pss:.0f} (median)':35s} {cosine:.5f}"
                )
            headline = show_ratio(paired_ratio(speed[HEADLINE], speed[strongest]))
            headlines.append(
                f"{backbone}: workbench {headline} against {strongest}, the fastest plain baseline "
                f"(workbench {speed[HEADLINE].show('images/s')}; "
                f"{strongest} {speed[strongest].show('images/s')})"
            )
    print("\nHEADLINE: workbench (precision auto) against the fastest plain loop, median of per-round ratios")
    for line in headlines:
        print(f"  {line}")


if __name__ == "__main__":
    main()
