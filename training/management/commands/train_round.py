from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from annotations.collections import collections_option
from jobs.cli import add_worker_arguments, run_worker_job
from jobs.pipeline import with_follow_ups
from training.backbones import BACKBONES


class Command(BaseCommand):
    help = (
        "Fine-tune the signature model on the known connections of the train split, evaluate it on the "
        "val/test components, register it as a new model version and compute every artwork's signature. "
        "Queued for a Celery worker; --wait follows its progress. Skipped when the connections did not "
        "change since the last round (unless --force). Starting again after a crash resumes from the last "
        "epoch's checkpoint."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--collection", action="append", dest="collections", help="limit to collection(s)"
        )
        parser.add_argument("--backbone", choices=sorted(BACKBONES))
        parser.add_argument("--epochs", type=int)
        parser.add_argument("--input-size", type=int, dest="input_size")
        parser.add_argument("--lr", type=float)
        parser.add_argument("--batch-size", type=int, dest="batch_size")
        parser.add_argument(
            "--weights-file", dest="weights_file", help="pretrained weights to start round 0 from"
        )
        parser.add_argument("--device", help="auto, cpu or cuda")
        parser.add_argument(
            "--force", action="store_true", help="train even if the connections did not change"
        )
        parser.add_argument(
            "--no-cluster",
            action="store_true",
            dest="no_cluster",
            help="do not cluster the signatures and recompute the map afterwards",
        )
        add_worker_arguments(parser)

    def handle(self, *args, **options) -> None:
        if options["epochs"] is not None and options["epochs"] < 1:
            from django.core.management.base import CommandError

            raise CommandError("--epochs must be at least 1")
        options["collections"] = collections_option(options["collections"]) or None
        names = (
            "collections",
            "backbone",
            "epochs",
            "input_size",
            "lr",
            "batch_size",
            "weights_file",
            "device",
        )
        params = {name: options[name] for name in names if options[name] is not None}
        params["force"] = options["force"]
        if not options["no_cluster"]:
            params = with_follow_ups(params)
        run_worker_job(self, "train_round", params, options)
