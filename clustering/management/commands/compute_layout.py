from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from jobs.cli import add_worker_arguments, run_worker_job


class Command(BaseCommand):
    help = (
        "Compute the 2-D maps of a model version (UMAP similarity layout and time layout), aligned to the "
        "previous version's map so that rounds stay comparable."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", default="active", help="VERSION (v3 or 3), active or latest")
        add_worker_arguments(parser)

    def handle(self, *args, **options) -> None:
        run_worker_job(self, "compute_layout", {"model": options["model"]}, options)
