"""Catalogue labels of artworks and their persisted label split (Django side of `splits.stratified_split`).

Label-supervised models (`training.label_rounds`) train on the label split's train part, choose their best
epoch on val and report test, 70/15/15 by artwork. The split is stored on each artwork (`label_split`) the
first time it is needed (a label model trains, or a version is measured by label: every new version is)
and never recomputed, so every later version is measured on the same test artworks and none trains on what
an earlier one was tested on. Artworks imported later get theirs the next time, stratified among
themselves (a class with one or two new artworks: each by its own hash).

Stratified by the collection's primary label (style where the catalogue has styles, else genre, else
author): one split serves every label, so a multitask model trained on style and genre never sees a test
artwork of either.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import Artwork
from .splits import stratified_split

BUILT_IN_LABELS = ("style", "genre", "author")
STRATIFY_BY = BUILT_IN_LABELS


def label_value(artwork: Artwork, column: str) -> str:
    """The artwork's value of a label column: a field of its own (style, genre, author) or an extra column
    of the imported metadata (e.g. People-Art's `artist`)."""
    if column in BUILT_IN_LABELS:
        return (getattr(artwork, column) or "").strip()
    value = (artwork.extra or {}).get(column, "")
    return str(value).strip() if value is not None else ""


def available_labels(artworks: Iterable[Artwork]) -> dict[str, int]:
    """Label columns with at least one value among `artworks`, with how many artworks have one."""
    counts: dict[str, int] = {}
    for artwork in artworks:
        for column in BUILT_IN_LABELS:
            if label_value(artwork, column):
                counts[column] = counts.get(column, 0) + 1
        for column, value in (artwork.extra or {}).items():
            if value not in ("", None):
                counts[column] = counts.get(column, 0) + 1
    return counts


def primary_label(artworks: Sequence[Artwork]) -> str | None:
    present = available_labels(artworks)
    return next((column for column in STRATIFY_BY if present.get(column)), None)


def assign_label_splits() -> int:
    """Give every artwork without a label split one; returns how many were assigned. Existing splits stay."""
    with transaction.atomic():
        everything = list(Artwork.objects.select_for_update().order_by("pk"))
        stratum_label = primary_label(everything)
        new = [artwork for artwork in everything if not artwork.label_split]
        if not new:
            return 0
        chosen = stratified_split(
            {artwork.pk: artwork.external_id for artwork in new},
            {artwork.pk: label_value(artwork, stratum_label) if stratum_label else "" for artwork in new},
            settings.SPLIT_SEED + "/labels",
        )
        now = timezone.now()
        for part in ("train", "val", "test"):
            ids = [pk for pk, split in chosen.items() if split == part]
            for start in range(0, len(ids), 500):
                Artwork.objects.filter(pk__in=ids[start : start + 500]).update(
                    label_split=part, updated_at=now
                )
        return len(new)
