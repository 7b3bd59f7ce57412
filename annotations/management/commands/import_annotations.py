from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotations.annotation_exchange import import_file
from annotations.importer import ImportFailed


class Command(BaseCommand):
    help = (
        "Import connections from W3C Web Annotations (JSON-LD: an Annotation, AnnotationPage or "
        "AnnotationCollection with its page embedded), as export_connections --format webannotation writes "
        "them: two targets (artworks by external id, IIIF canvas, or this workbench's own canvas) and a "
        "tagging body naming the type. All or nothing; decisions already recorded are recognised by their id."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--file", required=True, type=Path)
        parser.add_argument(
            "--base-url", dest="base_url", help="this workbench's address in the file's canvases (default "
            "WORKBENCH_PUBLIC_URL)"
        )  # fmt: skip

    def handle(self, *args, **options) -> None:
        try:
            result = import_file(options["file"], base=options["base_url"] or settings.PUBLIC_URL)
        except ImportFailed as exc:
            raise CommandError(exc.report()) from None
        self.stdout.write(
            f"{result['annotations']} annotations: {result['added']} new connections, "
            f"{result['already_recorded']} already recorded"
        )
