from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from jobs.cli import add_worker_arguments, run_worker_job
from jobs.pipeline import with_label_follow_ups
from training.backbones import ALL_BACKBONES


class Command(BaseCommand):
    help = (
        "Register a frozen extractor as a model version (methods.md §5): a pretrained backbone used as it "
        "is, no training: dino_vits16 (DINO ViT-S/16, 384-d class token) or convnext_base (ConvNeXt-Base, "
        "1024-d pooled) from --weights or torch hub's cache, tf_efficientnet_lite0 offline. Computes "
        "every artwork's signature and its map; searched, clustered and compared like any version. Refused "
        "without pretrained weights. Queued for a worker; --wait follows it, --inline runs here."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--backbone", required=True, choices=sorted(ALL_BACKBONES))
        parser.add_argument("--weights", dest="weights_file", help="the backbone's weights file")
        parser.add_argument("--input-size", type=int, dest="input_size")
        parser.add_argument("--device", help="auto, cpu or cuda")
        parser.add_argument("--force", action="store_true", help="register even if the same weights are")
        parser.add_argument("--no-map", action="store_true", dest="no_map")
        add_worker_arguments(parser)

    def handle(self, *args, **options) -> None:
        params = {"backbone": options["backbone"], "force": options["force"]}
        for name in ("weights_file", "input_size", "device"):
            if options[name] is not None:
                params[name] = options[name]
        if not options["no_map"]:
            params = with_label_follow_ups(params)
        run_worker_job(self, "register_frozen", params, options)
