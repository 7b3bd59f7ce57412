"""Artworks, their collections, and the connections historians draw between them.

A pair's connection is never edited in place: every statement about a pair (an import row, a
historian's click, a review decision) is appended as a `ConnectionDecision`; `Connection` is the
current state of the pair, maintained in the same transaction as the decision that changed it.
"""

from __future__ import annotations

import functools

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.urls import reverse

from .connection_types import CONNECTION_TYPES


class Split(models.TextChoices):
    TRAIN = "train", "Train"
    VAL = "val", "Validation"
    TEST = "test", "Test"


ConnectionType = models.TextChoices(
    "ConnectionType", [(code, info.label) for code, info in CONNECTION_TYPES.items()]
)


class DecisionSource(models.TextChoices):
    IMPORT = "import", "Imported file"
    USER = "user", "Annotation by a user"
    REVIEW = "review", "Review of a proposed cluster"
    # The simulated historian (`review.simulation`): the same review code path, in a snapshot of the
    # collection, so that its decisions can never pass for a person's. Exports leave them out by default.
    SIMULATED = "simulated", "Simulated review (not a person)"


@functools.cache
def _file_url_prefix() -> str:
    return reverse("annotations:file", args=["-"])[:-1]


def file_url(relpath: str) -> str:
    """URL of a file under the data folder. A page of the review queue shows hundreds of thumbnails, and
    `reverse` for each one was a third of its rendering time."""
    return _file_url_prefix() + relpath


class Collection(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Artwork(models.Model):
    external_id = models.CharField(max_length=255, unique=True, help_text="stable id from the source")
    collection = models.ForeignKey(Collection, on_delete=models.PROTECT, related_name="artworks")
    # Content-addressed: the file lives at images/<sha[:2]>/<sha>.<ext> under the data directory.
    image_sha256 = models.CharField(max_length=64, db_index=True)
    image_ext = models.CharField(max_length=8)
    source_path = models.CharField(max_length=1024, help_text="path in the imported folder")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    title = models.CharField(max_length=1000, blank=True)
    author = models.CharField(max_length=500, blank=True)
    date_text = models.CharField(max_length=200, blank=True)
    date_begin = models.IntegerField(null=True, blank=True, db_index=True)
    date_end = models.IntegerField(null=True, blank=True)
    style = models.CharField(max_length=200, blank=True)
    genre = models.CharField(max_length=200, blank=True)
    place = models.CharField(max_length=500, blank=True)
    url = models.URLField(max_length=2000, blank=True)
    iiif_url = models.URLField(max_length=2000, blank=True)
    extra = models.JSONField(default=dict, blank=True, help_text="the remaining CSV columns")
    split = models.CharField(
        max_length=5,
        choices=Split.choices,
        blank=True,
        default="",
        db_index=True,
        help_text="split of its connected component; empty while it has no linking connection",
    )
    label_split = models.CharField(
        max_length=5,
        choices=Split.choices,
        blank=True,
        default="",
        db_index=True,
        help_text="split for label-supervised training, by artwork, stratified (annotations.label_splits)",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["external_id"]

    def __str__(self) -> str:
        return self.external_id

    @property
    def image_relpath(self) -> str:
        from workbench.paths import image_relpath

        return image_relpath(self.image_sha256, self.image_ext)

    def thumbnail_relpath(self, size: str) -> str:
        from workbench.paths import thumbnail_relpath

        return thumbnail_relpath(self.image_sha256, size)

    @property
    def image_url(self) -> str:
        return file_url(self.image_relpath)

    @property
    def grid_thumbnail_url(self) -> str:
        return file_url(self.thumbnail_relpath("grid"))

    @property
    def viewer_thumbnail_url(self) -> str:
        return file_url(self.thumbnail_relpath("viewer"))


class ImportRecord(models.Model):
    """One run of `import_collection`: which files, by whom, and what it changed."""

    collection = models.ForeignKey(Collection, on_delete=models.PROTECT, related_name="imports")
    metadata_file = models.CharField(max_length=1024)
    metadata_sha256 = models.CharField(max_length=64)
    connections_file = models.CharField(max_length=1024, blank=True)
    connections_sha256 = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL)
    counts = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"import #{self.pk} into {self.collection_id}"


class ConnectionDecision(models.Model):
    """One statement about a pair of artworks. Append-only: rows are never updated or deleted."""

    uid = models.CharField(max_length=64, unique=True, help_text="link id (morphograph `uid`)")
    artwork_a = models.ForeignKey(Artwork, on_delete=models.PROTECT, related_name="+")
    artwork_b = models.ForeignKey(Artwork, on_delete=models.PROTECT, related_name="+")
    type = models.CharField(max_length=32, choices=ConnectionType.choices)
    source = models.CharField(max_length=16, choices=DecisionSource.choices)
    import_record = models.ForeignKey(ImportRecord, null=True, blank=True, on_delete=models.PROTECT)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT)
    round = models.PositiveIntegerField(null=True, blank=True, help_text="review round it came from")
    # Ids of the proposal / clustering run / model version behind a review decision, and the
    # original provenance columns of an imported export.
    context = models.JSONField(default=dict, blank=True)
    annotated_at = models.DateTimeField(help_text="when the statement was made (morphograph `annotated`)")
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["recorded_at", "id"]
        indexes = [models.Index(fields=["artwork_a", "artwork_b"])]
        constraints = [
            models.CheckConstraint(condition=Q(artwork_a__lt=F("artwork_b")), name="decision_pair_canonical")
        ]

    def __str__(self) -> str:
        return f"{self.uid}: {self.artwork_a_id}–{self.artwork_b_id} {self.type}"


class Retraction(models.Model):
    """A decision taken back by the user who made it (undo). Append-only, like the decisions themselves:
    the decision stays in the history, and the pair's state falls back to its previous decision."""

    decision = models.OneToOneField(ConnectionDecision, on_delete=models.PROTECT, related_name="retraction")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT)
    retracted_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"retraction of {self.decision_id}"


class Connection(models.Model):
    """Current state of a pair: the type of its latest decision that was not retracted."""

    artwork_a = models.ForeignKey(Artwork, on_delete=models.PROTECT, related_name="connections_as_a")
    artwork_b = models.ForeignKey(Artwork, on_delete=models.PROTECT, related_name="connections_as_b")
    type = models.CharField(max_length=32, choices=ConnectionType.choices, db_index=True)
    latest = models.ForeignKey(ConnectionDecision, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["artwork_a", "artwork_b"]
        constraints = [
            models.UniqueConstraint(fields=["artwork_a", "artwork_b"], name="connection_pair_unique"),
            models.CheckConstraint(
                condition=Q(artwork_a__lt=F("artwork_b")), name="connection_pair_canonical"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.artwork_a_id}–{self.artwork_b_id} {self.type}"


def canonical_pair(first_id: int, second_id: int) -> tuple[int, int]:
    if first_id == second_id:
        raise ValueError("an artwork cannot be connected to itself")
    return (first_id, second_id) if first_id < second_id else (second_id, first_id)
