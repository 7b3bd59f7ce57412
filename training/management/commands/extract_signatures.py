from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from annotations.collections import collections_option
from jobs.cli import add_worker_arguments, run_worker_job
from jobs.pipeline import with_follow_ups


class Command(BaseCommand):
    help = (
        "Compute the signatures of artworks that have none yet under a model version (incremental). "
        "With no model version at all, creates round 0 from the configured backbone and makes it active."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", default="active", help="VERSION (v3 or 3), active or latest")
        parser.add_argument("--collection", action="append", dest="collections")
        parser.add_argument(
            "--no-cluster",
            action="store_true",
            dest="no_cluster",
            help="do not cluster the signatures and recompute the map afterwards",
        )
        add_worker_arguments(parser)

    def handle(self, *args, **options) -> None:
        params = {"model": options["model"], "collections": collections_option(options["collections"])}
        if not options["no_cluster"]:
            params = with_follow_ups(params)
        run_worker_job(self, "extract_signatures", params, options)
