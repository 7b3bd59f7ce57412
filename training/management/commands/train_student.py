from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.cli import add_worker_arguments, run_worker_job
from training.models import ModelVersion, resolve_version


class Command(BaseCommand):
    help = (
        "Distil a backward-search version's conditional search into its student (methods.md §4): random "
        "(query, conditions) pairs of the label split's train artworks, optimised, then regressed by a small "
        "network that answers in one forward pass. train_model --method backward-search queues this after "
        "training; run it again after a failed or cancelled student job. Queued for a worker; --wait follows "
        "it, --inline runs here."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", required=True, help="a backward-search version (number or vN)")
        parser.add_argument("--epochs", type=int, default=50)
        parser.add_argument("--pairs-per-query", type=int, default=8, dest="pairs_per_query")
        add_worker_arguments(parser)

    def handle(self, *args, **options) -> None:
        try:
            version = resolve_version(options["model"])
        except ModelVersion.DoesNotExist as exc:
            raise CommandError(str(exc)) from None
        if version.method != "backward-search":
            raise CommandError(
                f"{version.label} is a {version.method} model: only backward-search ones have a student"
            )
        if not 1 <= options["epochs"] <= 1000 or not 1 <= options["pairs_per_query"] <= 100:
            raise CommandError("--epochs must be 1–1000 and --pairs-per-query 1–100")
        params = {
            "model": str(version.number),
            "epochs": options["epochs"],
            "pairs_per_query": options["pairs_per_query"],
        }
        run_worker_job(self, "train_student", params, options)
