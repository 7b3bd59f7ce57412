from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandParser

from annotations.iiif_import import DEFAULT_SIZE
from annotations.image_server import with_pyramids
from jobs.cli import add_job_arguments, run_job_from_command


class Command(BaseCommand):
    help = (
        "Import a IIIF Presentation 2.1 or 3.0 manifest, or a collection of them (a URL or a file): one "
        "artwork per canvas (--per-manifest: per manifest), each image fetched from its Image API service at "
        "--size px on the longer side, else the image the manifest names; label, metadata, navDate, rights "
        "and attribution kept, with the manifest, canvas and service ids. All or nothing; images fetched "
        "before a failure are kept, so running it again fetches only what is missing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--manifest", required=True, help="URL or file of a manifest or collection")
        parser.add_argument("--collection", help="collection name (default: the manifest's label)")
        parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="longer side in pixels")
        parser.add_argument("--per-manifest", action="store_true", dest="per_manifest")
        add_job_arguments(parser)

    def handle(self, *args, **options) -> None:
        location = options["manifest"]
        if not location.startswith(("http://", "https://")):
            location = str(Path(location).resolve())
        params = {
            "manifest": location,
            "collection": options["collection"] or "",
            "size": options["size"],
            "per_manifest": options["per_manifest"],
        }
        run_job_from_command(self, "import_iiif", with_pyramids(params), options)
