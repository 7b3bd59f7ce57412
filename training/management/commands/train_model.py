from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotations.collections import collections_option
from jobs.cli import add_worker_arguments, run_worker_job
from jobs.pipeline import with_label_follow_ups
from training.backbones import ALL_BACKBONES
from training.label_models import LABEL_METHODS


class Command(BaseCommand):
    help = (
        "Train a label-supervised retrieval model on the catalogue's labels (style, genre, author or any "
        "metadata column): style-classifier (methods.md §3) or multitask-knn (§2). Trains on the label "
        "split's train part, picks the best epoch on val, reports test; registers a model version with the "
        "signatures of every artwork and computes its map. The version does not become active (the review "
        "loop keeps the connection model); search, cluster and map it by its number. Queued for a Celery "
        "worker; --wait follows its progress, --inline runs here. Starting again after a crash resumes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--method", required=True, choices=LABEL_METHODS)
        parser.add_argument(
            "--collection", action="append", dest="collections", help="limit to collection(s)"
        )
        parser.add_argument(
            "--labels",
            nargs="+",
            help="label columns (default: style for the classifier; style and genre, those the collection "
            "has, for multitask-knn)",
        )
        parser.add_argument("--backbone", choices=sorted(ALL_BACKBONES))
        parser.add_argument("--epochs", type=int, help="most epochs (the classifier's stage 2)")
        parser.add_argument("--stage1-epochs", type=int, dest="stage1_epochs")
        parser.add_argument("--batch-size", type=int, dest="batch_size")
        parser.add_argument("--input-size", type=int, dest="input_size")
        parser.add_argument(
            "--trainable-stages",
            type=int,
            dest="trainable_stages",
            help="top backbone stages that learn (-1: all)",
        )
        parser.add_argument(
            "--augment", choices=("standard", "none"), help="'none' lets the frozen stages be computed once"
        )
        parser.add_argument(
            "--weights", dest="weights_file", help="pretrained weights file (e.g. MAE ViT-B/16)"
        )
        parser.add_argument("--device", help="auto, cpu or cuda")
        parser.add_argument("--force", action="store_true", help="train even if the same model exists")
        parser.add_argument(
            "--no-map", action="store_true", dest="no_map", help="do not compute its map afterwards"
        )
        add_worker_arguments(parser)

    def handle(self, *args, **options) -> None:
        for name in ("epochs", "stage1_epochs", "batch_size", "input_size"):
            if options[name] is not None and options[name] < (2 if name == "batch_size" else 1):
                raise CommandError(f"--{name.replace('_', '-')} is too small")
        options["collections"] = collections_option(options["collections"]) or None
        names = (
            "collections",
            "labels",
            "backbone",
            "epochs",
            "stage1_epochs",
            "batch_size",
            "input_size",
            "trainable_stages",
            "augment",
            "weights_file",
            "device",
        )
        params = {"method": options["method"], "force": options["force"]}
        params.update({name: options[name] for name in names if options[name] is not None})
        if not options["no_map"]:
            params = with_label_follow_ups(params)
        run_worker_job(self, "train_model", params, options)
