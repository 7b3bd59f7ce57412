"""Leave-one-out precision at k by catalogue label, for any model version (the Django side of
`labels.label_precision`).

Every version, whatever its method, is measured the same way on the label split's test part
(`annotations.label_splits`), beside the connection metrics, so that the rounds page compares a
connection model with a style classifier on one table.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from annotations.label_splits import BUILT_IN_LABELS, assign_label_splits, available_labels, label_value
from annotations.models import Artwork

from . import labels as label_codes


def label_artworks(collections: Sequence[str] | None = None) -> list[Artwork]:
    artworks = Artwork.objects.order_by("pk")
    if collections:
        artworks = artworks.filter(collection__name__in=collections)
    return list(
        artworks.only(
            "pk",
            "external_id",
            "image_sha256",
            "image_ext",
            "style",
            "genre",
            "author",
            "extra",
            "label_split",
        )
    )


def label_metrics(
    vectors: np.ndarray, artworks: Sequence[Artwork], columns: Sequence[str] | None = None
) -> dict[str, dict]:
    """Leave-one-out P@1/5/10 by each label on the label split's test part, for any version (`vectors` in
    the artworks' order). `columns`: the labels to measure; by default every built-in label column the
    collection can train on. Labels nothing can be measured on are left out."""
    assign_label_splits()
    artworks = [*artworks]
    fresh = dict(Artwork.objects.values_list("pk", "label_split"))
    test = np.array([fresh.get(a.pk) == "test" for a in artworks])
    if columns is None:
        columns = [c for c in BUILT_IN_LABELS if c in available_labels(artworks)]
    results = {}
    for column in columns:
        try:
            task = label_codes.encode_task(column, [label_value(a, column) for a in artworks])
        except label_codes.UnusableLabels:
            continue
        targets = np.where(test, task.targets, -1)
        measured = label_codes.label_precision(vectors, targets, column)
        if measured.n_queries:
            results[column] = measured.as_dict()
    return results


def gallery_label_metrics(
    vectors: np.ndarray, artworks: Sequence[Artwork], columns: Sequence[str] | None = None
) -> dict:
    """`label_metrics` of a gallery's signatures (`artworks`: the gallery's, in its row order; their label
    fields need not be loaded)."""
    by_pk = {a.pk: a for a in label_artworks()}
    return label_metrics(vectors, [by_pk[a.pk] for a in artworks], columns)


def label_table(by_label: dict[str, dict]) -> str:
    """`label_metrics` as the text table of `labels.precision_table`."""
    return label_codes.precision_table(
        [
            label_codes.LabelPrecision(
                name,
                values["n_queries"],
                {k: values.get(f"p@{k}", float("nan")) for k in label_codes.PRECISION_KS},
            )
            for name, values in by_label.items()
        ]
    )
