from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from annotations.image_server import base_url
from jobs.cli import add_job_arguments, run_job_from_command


class Command(BaseCommand):
    help = (
        "Write a tiled pyramidal TIFF of every image that has none, into the pyramids folder the IIIF image "
        "server (IIPImage, docker/iipsrv/) reads; manifests then offer deep zoom to the full resolution. "
        "Imports do it by themselves when WORKBENCH_IIIF_IMAGE_SERVER is set. Incremental and resumable."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--collection", help="only this collection's images")
        parser.add_argument("--force", action="store_true", help="rewrite pyramids that exist")
        add_job_arguments(parser)

    def handle(self, *args, **options) -> None:
        if not base_url():
            self.stderr.write(
                "note: WORKBENCH_IIIF_IMAGE_SERVER is unset; manifests keep the level-0 service until it is"
            )
        params = {"collection": options["collection"] or "", "force": options["force"]}
        run_job_from_command(self, "build_pyramids", params, options)
