from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from training.cli import version_with_signatures
from training.metrics import RetrievalMetrics
from training.rounds import build_gallery, evaluate_vectors


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
        metrics = evaluate_vectors(vectors, gallery)
        self.stdout.write(f"{version.label} ({version.backbone}, weights: {version.weights_description})")
        for split in ("val", "test"):
            values = metrics[split]
            table = RetrievalMetrics(
                map=values["map"],
                recall={int(k.split("@")[1]): v for k, v in values.items() if k.startswith("recall@")},
                precision_at_1=values["precision_at_1"],
                median_first_rank=values["median_first_rank"],
                n_queries=values["n_queries"],
                n_skipped=values["n_skipped"],
            ).table()
            self.stdout.write(f"\n{split}:\n{table}")
        if options["save"]:
            version.metrics = metrics
            version.save(update_fields=["metrics"])
