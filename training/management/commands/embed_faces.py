from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from jobs.cli import add_worker_arguments, run_worker_job
from training.faces import DEFAULT_MIN_SIDE, DEFAULT_POLICY, POLICIES


class Command(BaseCommand):
    help = (
        "Crop the detected faces (detect_faces) and embed them under a model version into its face index, "
        "for face and fused search. --faces largest (the study's choice) or all (every face whose shorter "
        "side is at least --min-side px). Faces already embedded the same way are kept. Queued for a worker; "
        "--wait follows it, --inline runs here."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", default="active", help="a version (number or vN), active, or all")
        parser.add_argument("--faces", choices=POLICIES, default=DEFAULT_POLICY, dest="policy")
        parser.add_argument("--min-side", type=float, default=DEFAULT_MIN_SIDE, dest="min_side")
        add_worker_arguments(parser)

    def handle(self, *args, **options) -> None:
        params = {"model": options["model"], "policy": options["policy"], "min_side": options["min_side"]}
        run_worker_job(self, "embed_faces", params, options)
