from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from training.cli import top_option, version_named
from training.face_detection import FaceIndexMissing
from training.face_search import FaceSearchError, search
from training.faces import DEFAULT_FACE_WEIGHT, MODES


class Command(BaseCommand):
    help = (
        "The artworks nearest to an artwork (or to one of its detected faces) under a model version: by the "
        "whole image, by face, or fused (weight × face cosine + (1 − weight) × whole-image cosine; artworks "
        "without a face keep their whole-image score). Prints the ranked ids with each score."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", default="active", help="a version (number or vN) or active")
        parser.add_argument("--artwork", type=int, help="the query artwork's id")
        parser.add_argument("--face", type=int, help="a detected face's id (its artwork is the query)")
        parser.add_argument("--mode", choices=MODES, default="whole")
        parser.add_argument("--weight", type=float, default=DEFAULT_FACE_WEIGHT, help="the face's weight")
        parser.add_argument("--top", type=int, default=20)

    def handle(self, *args, **options) -> None:
        top_option(options["top"])
        version = version_named(options["model"])
        try:
            result = search(
                version,
                options["artwork"],
                options["face"],
                options["mode"],
                options["weight"],
                options["top"],
            )
        except (FaceSearchError, FaceIndexMissing) as exc:
            raise CommandError(str(exc)) from None
        how = result.used if result.used != "fused" else f"fused, face weight {result.weight:g}"
        query = f"face {options['face']}" if options["face"] else f"artwork {options['artwork']}"
        note = f" ({result.note})" if result.note else ""
        self.stdout.write(f"{version.label}: nearest to {query} by {how}{note}")
        self.stdout.write(f"{'rank':>4} {'id':>8} {'score':>7} {'whole':>7} {'face':>7}")
        for rank, hit in enumerate(result.hits, start=1):
            face = "—" if hit.face is None else f"{hit.face:.3f}"
            self.stdout.write(f"{rank:>4} {hit.artwork_id:>8} {hit.score:>7.3f} {hit.whole:>7.3f} {face:>7}")
