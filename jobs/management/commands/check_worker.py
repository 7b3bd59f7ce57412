from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from jobs.cli import run_job_from_command


class Command(BaseCommand):
    help = "Send a small job through the broker to a Celery worker and follow it: checks the job pipeline."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--steps", type=int, default=5)
        parser.add_argument("--delay", type=float, default=0.2)
        parser.add_argument("--no-wait", dest="wait", action="store_false", help="queue and return")

    def handle(self, *args, **options) -> None:
        params = {"steps": options["steps"], "delay": options["delay"]}
        run_job_from_command(
            self, "worker_check", params, {"wait": options["wait"], "background": True}, inline_ok=False
        )
