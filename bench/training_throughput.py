"""Training-step throughput on CPU: the workbench step vs a naive fp32 NCHW loop.

For each backbone, a batch of B triplets (3·B images) of random tensors at S px (data loading and augmentation
are excluded: only forward → compound hinge loss → backward → Adam step is timed):

* naive: fp32, NCHW, the whole model in train mode (BatchNorm updating its statistics), a plain loop;
* workbench: `training.trainer.train_one_epoch` itself (channels_last, `autocast_for(device)`, which is fp32
  on a CPU without native bf16, BatchNorm frozen for real), fed a list of pre-built batches;
* workbench-bf16: the same with `autocast_for` patched to force bf16 autocast, to show its effect on this CPU.

Each measurement runs in a fresh child process, so the peak RSS (ru_maxrss) printed is that variant's own.
A warm-up of 2 steps runs first and is not timed. ResNeXt-50 runs with random weights when no ImageNet weights
are cached (speed does not depend on the values); EfficientNet-Lite0 uses the offline package weights. The
model, optimizer and loss are built as `training.trainer.fit` builds them (Adam, lr and weight decay from
TrainConfig, compound hinge m = 0.01, m2 = 0.1).

    .venv/bin/python bench/training_throughput.py [--steps 5] [--batch-triplets 4] [--size 224] \\
        [--backbones resnext50_32x4d tf_efficientnet_lite0] [--variants naive workbench workbench-bf16]
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
VARIANTS = ("naive", "workbench", "workbench-bf16")


def measure(variant: str, backbone: str, args: argparse.Namespace) -> dict:
    """Runs in the child process: build, warm up, time `args.steps` steps."""
    sys.path.insert(0, str(ROOT))
    import torch

    from training import trainer
    from training.backbones import build_model
    from training.losses import make_loss

    torch.manual_seed(0)
    config = trainer.TrainConfig(backbone=backbone, input_size=args.size, batch_size=args.batch_triplets)
    model, origin = build_model(backbone, "auto", None, config.pooling)
    loss_fn = make_loss(config.loss, margin=config.margin, positive_margin=config.positive_margin)
    device = torch.device("cpu")
    shape = (args.batch_triplets, 3, args.size, args.size)

    def batches(count: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        return [(torch.randn(shape), torch.randn(shape), torch.randn(shape)) for _ in range(count)]

    warmup, timed = batches(2), batches(args.steps)
    if variant == "naive":
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        model.train()

        def run(items: list) -> None:
            for a, b, c in items:
                signatures = model(torch.cat([a, b, c]))
                loss = loss_fn(*signatures.chunk(3))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    else:
        if variant == "workbench-bf16":
            trainer.autocast_for = lambda device: torch.autocast("cpu", dtype=torch.bfloat16)
        model = model.to(memory_format=torch.channels_last)
        optimizer = torch.optim.Adam(
            [p for p in model.parameters() if p.requires_grad], lr=config.lr, weight_decay=config.weight_decay
        )

        def run(items: list) -> None:
            trainer.train_one_epoch(model, items, optimizer, loss_fn, device, config)

    run(warmup)
    start = time.perf_counter()
    run(timed)
    seconds = time.perf_counter() - start
    steps_per_s = args.steps / seconds
    return {
        "seconds": seconds,
        "steps_per_s": steps_per_s,
        "triplets_per_s": steps_per_s * args.batch_triplets,
        "images_per_s": steps_per_s * args.batch_triplets * 3,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "weights": origin.kind,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=5, help="timed steps per variant (after 2 warm-up)")
    parser.add_argument("--batch-triplets", type=int, default=4)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--backbones", nargs="+", default=["resnext50_32x4d", "tf_efficientnet_lite0"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "BACKBONE"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(measure(args.child[0], args.child[1], args)))
        return

    import torch

    sys.path.insert(0, str(ROOT))
    from training.extraction import cpu_supports_bf16

    images = 3 * args.batch_triplets
    print(
        f"training step: {args.batch_triplets} triplets ({images} images), random tensors, {args.size} px, "
        f"2 warm-up + {args.steps} timed steps; data loading excluded. {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, capability {torch.backends.cpu.get_cpu_capability()}, "
        f"native bf16: {cpu_supports_bf16()}"
    )
    forwarded = [f"--steps={args.steps}", f"--batch-triplets={args.batch_triplets}", f"--size={args.size}"]
    for backbone in args.backbones:
        results: dict[str, dict] = {}
        for variant in args.variants:
            completed = subprocess.run(
                [sys.executable, __file__, *forwarded, "--child", variant, backbone],
                check=True,
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
            results[variant] = json.loads(completed.stdout.strip().splitlines()[-1])
        first = next(iter(results.values()))
        print(f"\n{backbone} (weights: {first['weights']}, {first['threads']} torch threads)")
        print(
            f"{'variant':<16} {'s/step':>8} {'steps/s':>8} {'triplets/s':>11} {'images/s':>9} "
            f"{'vs naive':>9} {'peak RSS':>10}"
        )
        base = results.get("naive", {}).get("steps_per_s")
        for variant, r in results.items():
            ratio = f"{r['steps_per_s'] / base:.2f}x" if base else "n/a"
            print(
                f"{variant:<16} {r['seconds'] / args.steps:8.2f} {r['steps_per_s']:8.3f} "
                f"{r['triplets_per_s']:11.2f} {r['images_per_s']:9.2f} {ratio:>9} "
                f"{r['peak_rss_mib']:7.0f} MiB"
            )


if __name__ == "__main__":
    main()
