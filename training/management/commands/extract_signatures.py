from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from jobs.cli import run_job_from_command


class Command(BaseCommand):
    help = (
        "Compute the signatures of artworks that have none yet under a model version (incremental). "
        "With no model version at all, creates round 0 from the configured backbone and makes it active."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", default="active", help="VERSION (v3 or 3), active or latest")
        parser.add_argument("--collection", action="append", dest="collections")
        parser.add_argument("--wait", action="store_true", help="follow the job's progress until it ends")
        parser.add_argument("--inline", action="store_true", help="run in this process instead of a worker")

    def handle(self, *args, **options) -> None:
        params = {"model": options["model"], "collections": options["collections"] or []}
        run_job_from_command(
            self,
            "extract_signatures",
            params,
            {} if options["inline"] else {"wait": options["wait"], "background": not options["wait"]},
            inline_ok=options["inline"],
        )
