from __future__ import annotations

import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotations.collections import collections_option
from annotations.exporting import write_connections_csv
from annotations.storage import atomic_write_bytes


class Command(BaseCommand):
    help = (
        "Export connections as CSV: the morphograph columns (uid, img1, img2, type, annotated) "
        "plus provenance columns; or, with --format webannotation, as W3C Web Annotations (JSON-LD), the "
        "artworks' IIIF canvases as targets (re-import with import_annotations)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", required=True, help="output CSV file, or - for standard output")
        parser.add_argument(
            "--history", action="store_true", help="every decision, not only each pair's current one"
        )
        parser.add_argument("--collection", help="only pairs with an artwork in this collection")
        parser.add_argument("--format", choices=("csv", "webannotation"), default="csv")
        parser.add_argument(
            "--base-url",
            dest="base_url",
            help="the workbench's address in the ids (default WORKBENCH_PUBLIC_URL)",
        )
        parser.add_argument(
            "--include-simulated",
            action="store_true",
            dest="include_simulated",
            help="also the simulated historian's decisions (left out by default: no person made them)",
        )

    def handle(self, *args, **options) -> None:
        import io

        if options["collection"] is not None:
            collections_option([options["collection"]])
        buffer = io.StringIO()
        if options["format"] == "webannotation":
            from django.conf import settings

            from annotations.annotation_exchange import export_document

            document = export_document(
                options["base_url"] or settings.PUBLIC_URL,
                history=options["history"],
                collection_name=options["collection"],
                include_simulated=options["include_simulated"],
            )
            json.dump(document, buffer, ensure_ascii=False, indent=1)
            count = document["total"]
        else:
            count = write_connections_csv(
                buffer,
                history=options["history"],
                collection=options["collection"],
                include_simulated=options["include_simulated"],
            )
        if options["out"] == "-":
            sys.stdout.write(buffer.getvalue())
            return
        out = Path(options["out"])
        if not out.parent.is_dir():
            raise CommandError(f"folder {out.parent} does not exist")
        atomic_write_bytes(out, buffer.getvalue().encode("utf-8"))
        self.stdout.write(f"Wrote {count} {'annotations' if options['format'] != 'csv' else 'rows'} to {out}")
