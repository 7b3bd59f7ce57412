from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandParser

from annotations.image_server import with_pyramids
from jobs.cli import add_job_arguments, run_job_from_command


class Command(BaseCommand):
    help = (
        "Import a collection: images + metadata CSV (id, path, ...) and optionally a connections CSV "
        "(img1, img2, type[, uid, annotated]). All or nothing: every problem is reported with its file "
        "and line, and nothing is written when there is one. Re-running the same import changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--images", required=True, type=Path, help="folder the metadata paths are relative to"
        )
        parser.add_argument("--metadata", required=True, type=Path, help="metadata CSV")
        parser.add_argument("--connections", type=Path, help="connections CSV (morphograph format)")
        parser.add_argument("--collection", help="collection name (default: the images folder's name)")
        add_job_arguments(parser)

    def handle(self, *args, **options) -> None:
        params = {
            "images": str(options["images"].resolve()),
            "metadata": str(options["metadata"].resolve()),
            "connections": str(options["connections"].resolve()) if options["connections"] else "",
            "collection": options["collection"] or "",
        }
        run_job_from_command(self, "import_collection", with_pyramids(params), options)
