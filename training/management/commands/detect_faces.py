from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.cli import add_worker_arguments, run_worker_job
from jobs.pipeline import with_face_index
from training.face_detection import DEFAULT_MAX_FACES, DEFAULT_MAX_SIDE, DEFAULT_MIN_FACE_SIZE


class Command(BaseCommand):
    help = (
        "Detect faces in the collection's images with MTCNN (methods.md §5: thresholds 0.4/0.4/0.4, a small "
        "minimum face size) and store every face with its box, probability and landmarks; artworks already "
        "scanned with the same settings and unchanged images are skipped. Then the chosen faces are embedded "
        "into every version's face index (embed_faces) unless --no-index. Queued for a worker; --wait "
        "follows it, --inline runs here."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--collection", action="append", dest="collections", metavar="NAME")
        parser.add_argument(
            "--thresholds", type=float, nargs=3, metavar=("PNET", "RNET", "ONET"), help="default 0.4 0.4 0.4"
        )
        parser.add_argument(
            "--min-face-size", type=float, default=DEFAULT_MIN_FACE_SIZE, dest="min_face_size"
        )
        parser.add_argument("--max-side", type=int, default=DEFAULT_MAX_SIDE, dest="max_side")
        parser.add_argument("--max-faces", type=int, default=DEFAULT_MAX_FACES, dest="max_faces")
        parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
        parser.add_argument("--force", action="store_true", help="scan again even unchanged images")
        parser.add_argument("--no-index", action="store_true", dest="no_index", help="do not embed the faces")
        add_worker_arguments(parser)

    def handle(self, *args, **options) -> None:
        if options["thresholds"] and not all(0 <= t < 1 for t in options["thresholds"]):
            raise CommandError("--thresholds are three probabilities in [0, 1)")
        params = {
            name: options[name]
            for name in ("collections", "thresholds", "min_face_size", "max_side", "max_faces", "device")
            if options[name] is not None
        }
        params["force"] = options["force"]
        if not options["no_index"]:
            params = with_face_index(params)
        run_worker_job(self, "detect_faces", params, options)
