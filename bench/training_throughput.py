"""Training-step throughput on CPU: the workbench step vs a plain fp32 NCHW loop that makes the same
BatchNorm choice.

For each backbone, a batch of B triplets (3·B images) of random tensors at S px (data loading and augmentation
are excluded: only forward → compound hinge loss → backward → Adam step is timed). The variants:

* plain: fp32, NCHW, a plain loop, with BatchNorm frozen the way the workbench freezes it (the model in train
  mode, then `training.trainer.freeze_batchnorm`: BatchNorm layers in eval mode, so their running statistics
  stay fixed, and their affine parameters with `requires_grad` off, so they get no gradient and Adam skips
  them). This is the headline baseline: it differs from the workbench only in how the step is computed;
* naive-bn-train: the same plain loop with BatchNorm training (batch statistics, running averages updated,
  affine parameters learnt), the way a first script would do it;
* workbench: `training.trainer.train_one_epoch` itself (channels_last, `autocast_for(device)`, which is fp32
  on a CPU without native bf16, BatchNorm frozen as `TrainConfig.freeze_batchnorm` says), fed a list of
  pre-built batches;
* workbench-bf16: the same with `autocast_for` patched to force bf16 autocast, to show its effect on this CPU.

The headline ratios are the workbench variants against plain (like with like). Freezing BatchNorm is a
modelling choice (batches of 4–8 triplets give useless batch statistics), not a speed-up of the workbench's
implementation, whatever it does to the speed; its own effect is reported apart, as plain (frozen) against
naive-bn-train, both plain fp32 NCHW loops.

Each variant is measured `--runs` times (default 3), each run in a fresh child process, so the peak RSS
(ru_maxrss) printed is that variant's own. The runs go round by round, every variant once a round, the order
rotated from round to round so that no variant always runs first (or last) on a noisy machine. The table gives
the median with the lowest and highest run and the spread ((highest − lowest) / median); a ratio is the median
of the per-round ratios (bench/timing.py). Within a run, 2 warm-up steps are not timed, then
`--steps` steps are. ResNeXt-50 runs with random weights when no ImageNet weights are cached (speed does not
depend on the values); EfficientNet-Lite0 uses the offline package weights. The model, optimizer and loss are
built as `training.trainer.fit` builds them (Adam over the parameters that require a gradient, lr and weight
decay from TrainConfig, compound hinge m = 0.01, m2 = 0.1), for every variant.

    .venv/bin/python bench/training_throughput.py [--runs 3] [--steps 5] [--batch-triplets 4] [--size 224] \\
        [--backbones resnext50_32x4d tf_efficientnet_lite0] \\
        [--variants plain naive-bn-train workbench workbench-bf16]
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
BASELINE, BN_TRAINING = "plain", "naive-bn-train"
VARIANTS = (BASELINE, BN_TRAINING, "workbench", "workbench-bf16")


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
    # The optimizer as fit builds it, for every variant (before any freezing): frozen BatchNorm parameters
    # then get no gradient and Adam skips them, as in the workbench. channels_last below keeps the same
    # Parameter objects.
    optimizer = torch.optim.Adam(
        [p for p in model.parameters() if p.requires_grad], lr=config.lr, weight_decay=config.weight_decay
    )
    if variant in (BASELINE, BN_TRAINING):
        model.train()
        if variant == BASELINE and config.freeze_batchnorm:
            trainer.freeze_batchnorm(model)

        def run(items: list) -> None:
            for a, b, c in items:
                signatures = model(torch.cat([a, b, c]))
                loss = loss_fn(*signatures.chunk(3))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    else:
        if variant == "workbench-bf16":
            trainer.autocast_for = lambda device: torch.autocast("cpu", dtype=torch.bfloat16)
        model = model.to(memory_format=torch.channels_last)

        def run(items: list) -> None:
            trainer.train_one_epoch(model, items, optimizer, loss_fn, device, config)

    run(warmup)
    start = time.perf_counter()
    run(timed)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "steps_per_s": args.steps / seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "weights": origin.kind,
        "threads": torch.get_num_threads(),
    }


def run_child(variant: str, backbone: str, forwarded: list[str]) -> dict:
    command = [sys.executable, __file__, *forwarded, "--child", variant, backbone]
    return child_result(command, f"{variant} on {backbone}", cwd=ROOT)


def labels(freeze_batchnorm: bool) -> dict[str, str]:
    choice = "frozen" if freeze_batchnorm else "training"
    return {
        BASELINE: f"plain, BatchNorm {choice} (as the workbench)",
        BN_TRAINING: "naive, BatchNorm training",
        "workbench": "workbench",
        "workbench-bf16": "workbench, forced bf16",
    }


def table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_runs_argument(parser)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per run (after 2 warm-up)")
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
    from training.trainer import TrainConfig

    print(machine_line())
    check_runs(args.runs)
    variants = list(dict.fromkeys(args.variants))
    freeze = TrainConfig().freeze_batchnorm
    names = labels(freeze)
    images = 3 * args.batch_triplets
    print(
        f"training step: {args.batch_triplets} triplets ({images} images), random tensors, {args.size} px, "
        f"2 warm-up + {args.steps} timed steps a run, {args.runs} run(s) a variant in rotated rounds, "
        f"each run a fresh process; data loading excluded. "
        f"Capability {torch.backends.cpu.get_cpu_capability()}, native bf16: {cpu_supports_bf16()}, "
        f"workbench BatchNorm: {'frozen' if freeze else 'training'}"
    )
    forwarded = [f"--steps={args.steps}", f"--batch-triplets={args.batch_triplets}", f"--size={args.size}"]
    for backbone in args.backbones:
        results: dict[str, list[dict]] = {variant: [] for variant in variants}
        for round_index in range(args.runs):
            shift = round_index % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                results[variant].append(run_child(variant, backbone, forwarded))

        steps = {v: Samples.of([r["steps_per_s"] for r in runs]) for v, runs in results.items()}
        first = results[variants[0]][0]
        threads = sorted({r["threads"] for runs in results.values() for r in runs})
        print(f"\n{backbone} (weights: {first['weights']}, {'/'.join(map(str, threads))} torch threads)")
        ratio_column = f"vs {BASELINE} (per round)"
        rows = [["variant", "images/s", "spread", "steps/s", "s/step", ratio_column, "peak RSS"]]
        for variant in variants:
            s = steps[variant]
            rss = Samples.of([r["peak_rss_mib"] for r in results[variant]])
            ratio = show_ratio(paired_ratio(s, steps[BASELINE])) if BASELINE in steps else "n/a"
            rows.append(
                [
                    names[variant],
                    Samples.of([v * images for v in s.values]).show(digits=2),
                    f"{s.spread_percent:.0f}%" if len(s.values) > 1 else "-",
                    f"{s.median:.3f}",
                    f"{1 / s.median:.2f}",
                    "baseline" if variant == BASELINE else ratio,
                    rss.show("MiB", digits=0),
                ]
            )
        table(rows)
        if BASELINE in steps:
            for variant, lead in (("workbench", "headline"), ("workbench-bf16", "bf16 forced")):
                if variant in steps:
                    print(
                        f"{lead}: {names[variant]} vs {BASELINE} (same BatchNorm choice, like with like): "
                        f"{show_ratio(paired_ratio(steps[variant], steps[BASELINE]))}"
                    )
            if BN_TRAINING in steps and freeze:
                print(
                    "BatchNorm choice, a modelling choice and not a speed-up of the workbench's "
                    "implementation: plain loop, BatchNorm frozen vs training: "
                    f"{show_ratio(paired_ratio(steps[BASELINE], steps[BN_TRAINING]))}"
                )


if __name__ == "__main__":
    main()
