"""Wall time of one training round on the demo collection, and what one full extraction pass costs.

A round (`training.rounds.train_round`) mines, trains, validates and then computes every artwork's signature
for the new version. Until 2026-11 `trainer.fit` also re-extracted the whole gallery after training to fill
metrics its caller threw away: exactly one more extraction pass over the same images with the same model.
This benchmark times the round as it is and, in the same run, one such pass, and prints the round's time
against the round plus that pass (the old round's work). Run the same script on an older checkout to time
the old code directly (it only calls `train_round`).

The demo is built and imported in a fresh WORKBENCH_DATA_DIR and SQLite database (child process); round 0
(the pretrained model's signatures) is created first and not timed.

    .venv/bin/python bench/round_time.py [--epochs 1] [--negatives 3] [--size 160] [--limit 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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

    from training import rounds
    from training.trainer import signatures_for

    overrides = {"input_size": args.size, "negatives_per_pair": args.negatives, "num_workers": 0}
    started = time.perf_counter()
    rounds.extract_for_version(None)  # round 0, not timed below
    round0 = time.perf_counter() - started

    started = time.perf_counter()
    result = rounds.train_round(epochs=args.epochs, force=True, **overrides)
    round_seconds = time.perf_counter() - started

    from training.models import ModelVersion

    version = ModelVersion.objects.get(number=result["version"])
    model = rounds.load_version_model(version)
    gallery = rounds.build_gallery()
    config = rounds.config_for(version)
    started = time.perf_counter()
    signatures_for(model, gallery.data.paths, config)
    one_pass = time.perf_counter() - started
    return {
        "images": len(gallery.data.paths),
        "train_pairs": len(gallery.data.train_pairs),
        "round0_seconds": round0,
        "round_seconds": round_seconds,
        "extraction_pass_seconds": one_pass,
        "history": version.config.get("history"),
    }


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
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
    with tempfile.TemporaryDirectory(prefix="round-time-") as data_dir:
        env = {
            **os.environ,
            "DEBUG": "1",
            "WORKBENCH_DATA_DIR": data_dir,
            "DJANGO_SETTINGS_MODULE": "workbench.settings",
            "PYTHONPATH": str(ROOT),  # this checkout's code, whatever the virtual environment points at
        }
        env.pop("DATABASE_URL", None)
        out = subprocess.run(
            [sys.executable, __file__, "--child", *sys.argv[1:]],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    round_seconds, one_pass = figures["round_seconds"], figures["extraction_pass_seconds"]
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; code: {ROOT}")
    print(
        f"demo: {figures['images']} images, {figures['train_pairs']} train pairs; "
        f"epochs {args.epochs}, input {args.size}px, {args.negatives} negatives per pair"
    )
    print(f"round 0 (signatures only, not compared): {figures['round0_seconds']:.1f} s")
    print(f"training round:                          {round_seconds:.1f} s")
    print(f"one extraction pass over the gallery:    {one_pass:.1f} s")
    print(
        f"round / (round + one pass) = {round_seconds / (round_seconds + one_pass):.3f} "
        f"(the old fit() did one more pass: {one_pass / (round_seconds + one_pass):.1%} of its round)"
    )


if __name__ == "__main__":
    main()
