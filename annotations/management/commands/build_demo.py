from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandParser

from annotations.demo import DERIVED_COLLECTION, SOURCE_COLLECTION, build_demo
from jobs.cli import run_job_from_command
from jobs.progress import ProgressTracker, TerminalBar
from workbench import paths


class Command(BaseCommand):
    help = (
        "Build the demo collection (174 Met Open Access paintings and generated derivatives that imitate "
        "pattern propagation) and import it, with part of its ground-truth connections as known."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--limit", type=int, help="use only the first N paintings (quick tries)")
        parser.add_argument("--out", type=Path, help="where to write the demo files (default: DATA_DIR/demo)")
        parser.add_argument("--no-import", action="store_true", help="only write the files")

    def handle(self, *args, **options) -> None:
        folder = (options["out"] or paths.demo_folder()).resolve()
        self.stdout.write(f"Building the demo in {folder}")
        bar = TerminalBar(self.stderr._out)
        build = build_demo(
            folder, seed=options["seed"], limit=options["limit"], progress=ProgressTracker([bar])
        )
        bar.close()
        self.stdout.write(json.dumps(build.counts, indent=2))
        if options["no_import"]:
            return
        images = str(folder / "images")
        run_job_from_command(
            self,
            "import_collection",
            {
                "images": images,
                "metadata": str(folder / "sources.csv"),
                "connections": "",
                "collection": SOURCE_COLLECTION,
            },
            {},
        )
        run_job_from_command(
            self,
            "import_collection",
            {
                "images": images,
                "metadata": str(folder / "derivatives.csv"),
                "connections": str(folder / "connections_known.csv"),
                "collection": DERIVED_COLLECTION,
            },
            {},
        )
        self.stdout.write(
            f"Ground truth for evaluation (known and hidden connections): {folder / 'ground_truth.csv'}"
        )
