from __future__ import annotations

import json
import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from annotations.demo import DERIVED_COLLECTION, SOURCE_COLLECTION, build_demo, built_with, check_limit
from annotations.image_server import with_pyramids
from annotations.models import ImportRecord
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
        parser.add_argument(
            "--force",
            action="store_true",
            help="rewrite an imported demo folder even though its files then differ from what was imported",
        )

    def handle(self, *args, **options) -> None:
        try:
            check_limit(options["limit"])
        except ValueError as exc:
            raise CommandError(f"--limit: {exc}") from None
        folder = (options["out"] or paths.demo_folder()).resolve()
        imported = imported_from(folder)
        if imported and not options["force"] and not built_with(folder, options["seed"], options["limit"]):
            # ground_truth.csv is the truth about what was imported (benchmarks score rounds against it);
            # another build would silently disagree with the collections in the database.
            raise CommandError(
                f"The demo in {folder} was imported (collections: {', '.join(imported)}); building it with "
                f"another seed or limit would rewrite its files, ground_truth.csv included, so that they no "
                f"longer match what was imported. Use --out for another folder, or --force to rewrite it."
            )
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
            }
            | with_pyramids({}),
            {},
        )
        self.stdout.write(
            f"Ground truth for evaluation (known and hidden connections): {folder / 'ground_truth.csv'}"
        )


def imported_from(folder: Path) -> list[str]:
    """The collections imported from files in `folder` (the import records their resolved paths)."""
    prefix = f"{folder}{os.sep}"
    records = ImportRecord.objects.filter(
        Q(metadata_file__startswith=prefix) | Q(connections_file__startswith=prefix)
    )
    return sorted(set(records.values_list("collection__name", flat=True)))
