from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from training.models import ModelVersion, NotReviewModel, active_version, resolve_version


class Command(BaseCommand):
    help = "Make a model version the active one (a curator's decision that overrides the val-mAP gate)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", required=True, help="VERSION (v3 or 3) or latest")

    def handle(self, *args, **options) -> None:
        try:
            version = resolve_version(options["model"])
        except ModelVersion.DoesNotExist as exc:
            raise CommandError(str(exc)) from None
        previous = active_version()
        try:
            version.activate()
        except NotReviewModel as exc:
            raise CommandError(str(exc)) from None
        before = previous.label if previous else "none"
        self.stdout.write(f"{version.label} is now active (was {before}).")
