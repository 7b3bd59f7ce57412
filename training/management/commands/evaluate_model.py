from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from training.cli import version_with_signatures
from training.rounds import build_gallery, json_safe
from training.trainer import evaluate


class Command(BaseCommand):
    help = (
        "Evaluate a model version on the val and test components: mAP, recall@k over all partners, P@1, "
        "median rank of the first partner. Uses its stored signatures and today's connections."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", required=True, help="VERSION (v3 or 3), active or latest")
        parser.add_argument("--save", action="store_true", help="store the metrics on the model version")

    def handle(self, *args, **options) -> None:
        version, stored = version_with_signatures(options["model"])
        gallery = build_gallery()
        rows = stored.row_of()
        missing = [a.external_id for a in gallery.artworks if a.pk not in rows]
        if missing:
            raise CommandError(
                f"{len(missing)} artworks have no signature under {version.label} "
                f"(e.g. {missing[0]}): run extract_signatures --model {version.number}"
            )
        vectors = stored.vectors[[rows[a.pk] for a in gallery.artworks]]
        results = {split: evaluate(vectors, gallery.data, split) for split in ("val", "test")}
        self.stdout.write(f"{version.label} ({version.backbone}, weights: {version.weights_description})")
        for split, result in results.items():
            self.stdout.write(f"\n{split}:\n{result.table()}")
        if options["save"]:
            version.metrics = {split: json_safe(result.as_dict()) for split, result in results.items()}
            version.save(update_fields=["metrics"])
