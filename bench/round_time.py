"""Wall time of one training round on the demo collection, and what one full extraction pass costs.

A round (`training.rounds.train_round`) mines, trains, validates and then computes every artwork's signature
for the new version. Until 2026-11 `trainer.fit` also re-extracted the whole gallery after training to fill
metrics its caller threw away: exactly one more extraction pass over the same images with the same model.
This benchmark times the round as it is and one such pass, and prints the round's time against the round
plus that pass (the old round's work). Run the same script on an older checkout to time the old code directly
(it only calls `train_round`).

The demo is built and imported once, in a fresh WORKBENCH_DATA_DIR and SQLite database (child process);
round 0 (the pretrained model's signatures) is created first, once, and not timed: it also loads the model
code and reads the images into the page cache. Then --runs times (default 3): a forced round and one
extraction pass over the gallery with the model that round produced, in alternating order (round first in
runs 1, 3, ...; the pass first in runs 2, 4, ..., with the previous run's model, which costs the same: the
same architecture and input size, only the weights differ). Round 0 is made active again before every round,
so that every round fine-tunes from round 0 as the first one does and does the same work (otherwise a round
would start from whichever earlier round won the validation gate); each round's resumable checkpoints are
removed when it ends, so none resumes from another. Times are the median with the lowest and highest run;
the ratio round / (round + pass) is the median of the per-run ratios (bench/timing.py).

A run (round + pass) on the whole demo (365 images, input 160 px, 1 epoch) is short: extrapolated from a
quarter of the demo, about half a minute on 2 cores, so the default 3 runs cost little; more runs narrow
the spread further.

    .venv/bin/python bench/round_time.py [--runs 3] [--epochs 1] [--negatives 3] [--size 160] [--limit 0]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
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


def child(args: argparse.Namespace) -> dict:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.conf import settings

    from annotations.demo import build_demo
    from annotations.importer import import_collection

    folder = Path(settings.DATA_DIR) / "demo"
    build_demo(folder, seed=7, limit=args.limit or None)
    images = folder / "images"
    import_collection(images, folder / "sources.csv", None, "Met")
    import_collection(images, folder / "derivatives.csv", folder / "connections_known.csv", "Derived")

    import torch

    from training import rounds
    from training.models import ModelVersion
    from training.trainer import signatures_for

    overrides = {"input_size": args.size, "negatives_per_pair": args.negatives, "num_workers": 0}
    started = time.perf_counter()
    round_zero = ModelVersion.objects.get(number=rounds.extract_for_version(None)["version"])  # not timed
    round0_seconds = time.perf_counter() - started
    gallery = rounds.build_gallery()

    def timed_round() -> tuple[float, ModelVersion, dict]:
        round_zero.activate()  # every round fine-tunes from round 0, as the first one does
        started = time.perf_counter()
        result = rounds.train_round(epochs=args.epochs, force=True, **overrides)
        seconds = time.perf_counter() - started
        return seconds, ModelVersion.objects.get(number=result["version"]), result

    def timed_pass(version: ModelVersion) -> float:
        model = rounds.load_version_model(version)  # loading is not part of a pass: fit() had the model
        config = rounds.config_for(version)
        started = time.perf_counter()
        signatures_for(model, gallery.data.paths, config)
        return time.perf_counter() - started

    round_seconds: list[float] = []
    pass_seconds: list[float] = []
    resumed: list[int | None] = []
    version: ModelVersion | None = None
    for run in range(args.runs):
        if version is not None and run % 2 == 1:
            pass_seconds.append(timed_pass(version))  # the previous run's model: the same work
            seconds, version, result = timed_round()
            round_seconds.append(seconds)
        else:
            seconds, version, result = timed_round()
            round_seconds.append(seconds)
            pass_seconds.append(timed_pass(version))
        resumed.append(result.get("resumed_from_epoch"))
    return {
        "images": len(gallery.data.paths),
        "train_pairs": len(gallery.data.train_pairs),
        "torch": f"torch {torch.__version__}, {torch.get_num_threads()} threads",
        "round0_seconds": round0_seconds,
        "round_seconds": round_seconds,
        "extraction_pass_seconds": pass_seconds,
        "resumed_from_epoch": resumed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_runs_argument(parser)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--negatives", type=int, default=3)
    parser.add_argument(
        "--size", type=int, default=160, help="input size (pixels) for training and extraction"
    )
    parser.add_argument("--limit", type=int, default=0, help="demo source paintings (0 = all 174)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    print(machine_line(), flush=True)
    check_runs(args.runs)
    with tempfile.TemporaryDirectory(prefix="round-time-") as data_dir:
        env = {
            **os.environ,
            "DEBUG": "1",
            "WORKBENCH_DATA_DIR": data_dir,
            "DJANGO_SETTINGS_MODULE": "workbench.settings",
            "PYTHONPATH": str(ROOT),  # this checkout's code, whatever the virtual environment points at
        }
        env.pop("DATABASE_URL", None)
        command = [sys.executable, __file__, "--child", *sys.argv[1:]]
        figures = child_result(command, "the benchmark's child process", cwd=ROOT, env=env)
    rounds = Samples.of(figures["round_seconds"])
    passes = Samples.of(figures["extraction_pass_seconds"])
    old_rounds = Samples.of([a + b for a, b in zip(rounds.values, passes.values, strict=True)])
    share = paired_ratio(passes, old_rounds)
    print(f"code: {ROOT}; {figures['torch']}")
    print(
        f"demo: {figures['images']} images, {figures['train_pairs']} train pairs; "
        f"epochs {args.epochs}, input {args.size}px, {args.negatives} negatives per pair; "
        f"{args.runs} run(s), each round from round 0, round and pass in alternating order"
    )
    if any(figures["resumed_from_epoch"]):
        print(f"WARNING: rounds resumed from a checkpoint (epochs {figures['resumed_from_epoch']})")
    print(f"round 0 (signatures only, once, not compared): {figures['round0_seconds']:.1f} s")
    print(f"training round:                          {rounds.show('s', 1)}")
    print(f"one extraction pass over the gallery:    {passes.show('s', 1)}")
    spread = f", {share.low:.1%}–{share.high:.1%}" if len(share.values) > 1 else ""
    print(
        f"round / (round + one pass) = {show_ratio(paired_ratio(rounds, old_rounds))} "
        f"(the old fit() did one more pass: {share.median:.1%} of its round{spread})"
    )


if __name__ == "__main__":
    main()
