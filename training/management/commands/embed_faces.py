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
        parser.add_argument(
            "--faces", choices=POLICIES, dest="policy", help=f"default: the last chosen, or {DEFAULT_POLICY}"
        )
        parser.add_argument(
            "--min-side", type=float, dest="min_side", help=f"default: last chosen, or {DEFAULT_MIN_SIDE:g}"
        )
        add_worker_arguments(parser)

    def handle(self, *args, **options) -> None:
        params = {"model": options["model"]}
        params.update({name: options[name] for name in ("policy", "min_side") if options[name] is not None})
        run_worker_job(self, "embed_faces", params, options)
