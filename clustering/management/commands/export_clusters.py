from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...assignments import export_clusters
from ...models import ClusteringRun
from ...runs import resolve_run


class Command(BaseCommand):
    help = (
        "Write a clustering run as CSV: one row per clustered artwork, id (external id), "
        "cluster (-1 noise), strength."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--run", default="latest", help="run number or latest")
        parser.add_argument("--out", required=True, type=Path)

    def handle(self, *args, **options) -> None:
        try:
            run = resolve_run(options["run"])
        except ClusteringRun.DoesNotExist as exc:
            raise CommandError(str(exc)) from None
        count = export_clusters(run, options["out"])
        self.stdout.write(f"Wrote {count} rows of {run.label} to {options['out']}")
