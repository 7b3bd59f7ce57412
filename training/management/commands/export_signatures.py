from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotations.collections import collections_option
from annotations.models import Artwork
from annotations.storage import atomic_write_bytes
from training.cli import version_with_signatures


class Command(BaseCommand):
    help = (
        "Write a model version's signatures as .npz: `ids` (external ids, strings) and `vectors` (float32)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", required=True, help="VERSION (v3 or 3), active or latest")
        parser.add_argument("--collection", action="append", dest="collections")
        parser.add_argument("--out", required=True, type=Path)

    def handle(self, *args, **options) -> None:
        collections = collections_option(options["collections"])
        version, stored = version_with_signatures(options["model"])
        artworks = Artwork.objects.filter(pk__in=stored.ids)
        if collections:
            artworks = artworks.filter(collection__name__in=collections)
        external = dict(artworks.values_list("pk", "external_id"))
        wanted = [pk for pk in stored.ids if pk in external]
        subset = stored.subset(wanted)
        buffer = io.BytesIO()
        np.savez(
            buffer,
            ids=np.array([external[pk] for pk in subset.ids], dtype=str),
            vectors=subset.vectors.astype(np.float32),
        )
        if not options["out"].parent.is_dir():
            raise CommandError(f"folder {options['out'].parent} does not exist")
        atomic_write_bytes(options["out"], buffer.getvalue())
        self.stdout.write(
            f"Wrote {len(subset.ids)} signatures of {version.label} ({subset.vectors.shape[1]}-d) "
            f"to {options['out']}"
        )
