from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotations.label_splits import BUILT_IN_LABELS
from training.cli import version_with_signatures
from training.label_evaluation import label_artworks, label_metrics, label_table
from training.rounds import build_gallery, synthetic_validation, validate


class Command(BaseCommand):
    help = (
        "Evaluate a model version, whatever its method, on the val and test components and on the "
        "synthetic validation (derivatives generated from unlinked images): mAP, recall@k over all partners, "
        "P@1, median rank of the first partner, each with its 95 % bootstrap interval over query components; "
        "and by catalogue label (style, genre, author and the labels it was trained on): leave-one-out "
        "P@1/5/10 on the label split's test artworks. Uses its stored signatures and today's connections."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", required=True, help="VERSION (v3 or 3), active or latest")
        parser.add_argument("--save", action="store_true", help="store the metrics on the model version")
        parser.add_argument(
            "--no-synthetic", action="store_true", help="skip the synthetic validation (needs the model)"
        )

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
        by_pk = {a.pk: a for a in label_artworks()}
        synthetic_set = None if options["no_synthetic"] else synthetic_validation(gallery)
        validation = validate(version, None, vectors, gallery, synthetic_set)
        self.stdout.write(
            f"{version.label}: {version.method_label} ({version.backbone}, "
            f"weights: {version.weights_description})"
        )
        for split, result in validation.results.items():
            title = (
                "synthetic (generated derivatives, not historians' connections)"
                if split == "synthetic"
                else split
            )
            self.stdout.write(f"\n{title}:\n{result.table()}")
        label_columns = sorted({*version.config.get("labels", []), *BUILT_IN_LABELS})
        by_label = label_metrics(vectors, [by_pk[a.pk] for a in gallery.artworks], label_columns)
        self.stdout.write(
            "\nlabels (leave-one-out precision at k on the label split's test artworks, in %):\n"
            + (label_table(by_label) if by_label else "no label with 2 classes of 6 artworks to measure")
        )
        accuracy = version.metrics.get("label_accuracy")
        if accuracy:
            self.stdout.write(
                "classification accuracy on test (at training): "
                + ", ".join(f"{k} {100 * v:.1f} %" for k, v in accuracy.items() if v is not None)
            )
        if options["save"]:
            version.metrics = {**version.metrics, **validation.metrics(), "labels": by_label}
            version.save(update_fields=["metrics"])
