"""The model registry: every trained (or pretrained "round 0") signature model is a version.

A version records the retrieval method that made it (`training.methods`), where its weights started
from (never pretending: a randomly initialised model says so), its configuration, its parent, the hash
of the connection set it was trained on, its held-out metrics and its checkpoint file. Exactly one
version is active: the one whose signatures the workbench uses. A new version becomes active only when
it beats the active one beyond the bootstrap interval of the difference (`training.gate`), or when a
curator promotes it; an inconclusive version stays a *candidate*, and its `gate` field says why.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q


class NotReviewModel(ValueError):
    """Refusal to make a version that does not feed the review loop the active one."""


class ModelVersion(models.Model):
    number = models.PositiveIntegerField(unique=True, help_text="0 = the pretrained backbone, then 1, 2, ...")
    method = models.CharField(
        max_length=32, default="connection", db_index=True, help_text="retrieval method (training.methods)"
    )
    backbone = models.CharField(max_length=64)
    weights_kind = models.CharField(max_length=32, help_text="file, torchvision-cache, package or random")
    weights_description = models.CharField(max_length=500)
    weights_sha256 = models.CharField(max_length=64, blank=True)
    config = models.JSONField(default=dict, help_text="input size, pooling, loss, optimiser, epochs, ...")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    connection_set_hash = models.CharField(max_length=64, blank=True, db_index=True)
    metrics = models.JSONField(
        default=dict,
        blank=True,
        help_text='{"val": {...}, "test": {...}, "synthetic": {...}}, each with "ci"',
    )
    gate = models.JSONField(
        default=dict, blank=True, help_text="the promotion gate's decision, reason and mAP differences"
    )
    checkpoint = models.CharField(max_length=500, blank=True, help_text="path under the data directory")
    signature_dim = models.PositiveIntegerField()
    is_active = models.BooleanField(default=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"], condition=Q(is_active=True), name="one_active_model"
            )
        ]

    def __str__(self) -> str:
        return f"v{self.number} ({self.backbone})"

    @property
    def label(self) -> str:
        return f"v{self.number}"

    @property
    def retrieval_method(self):
        from .methods import get

        return get(self.method)

    @property
    def method_label(self) -> str:
        from .methods import METHODS

        known = METHODS.get(self.method)
        return known.label if known else self.method

    @property
    def val_map(self) -> float | None:
        value = (self.metrics.get("val") or {}).get("map")
        return None if value is None or value != value else float(value)  # NaN → None

    @property
    def feeds_review(self) -> bool:
        from .methods import METHODS

        known = METHODS.get(self.method)
        return bool(known and known.feeds_review)

    @property
    def label_precision(self) -> list[dict]:
        """Leave-one-out precision by label on the label test split, as rows for the versions table."""
        return [
            {"label": name, **{key.replace("@", ""): value for key, value in values.items()}}
            for name, values in (self.metrics.get("labels") or {}).items()
        ]

    def activate(self) -> None:
        """Make this the version the review loop proposes connections from. Only a method that feeds
        review may be: the next round would otherwise continue training from a style classifier, and the
        review queue would propose clusters of a style. Any version can still be searched, clustered and
        mapped by naming it."""
        if not self.feeds_review:
            raise NotReviewModel(
                f"{self.label} is a {self.method_label} model: it does not feed the review loop, so it "
                f"cannot be the active version. Search, cluster (cluster --model {self.number}) or map it "
                "by name."
            )
        with transaction.atomic():
            ModelVersion.objects.filter(is_active=True).exclude(pk=self.pk).update(is_active=False)
            ModelVersion.objects.filter(pk=self.pk).update(is_active=True)
        self.is_active = True

    @property
    def gate_decision(self) -> str:
        return (self.gate or {}).get("decision", "")

    @property
    def is_candidate(self) -> bool:
        return self.gate_decision == "candidate" and not self.is_active


def active_version() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_active=True).first()


def resolve_version(name: str) -> ModelVersion:
    """`active`, `latest`, `v3` or `3` → the version; a clear error otherwise."""
    if name == "active":
        version = active_version()
        if version is None:
            raise ModelVersion.DoesNotExist(
                "no active model version yet: run extract_signatures or train_round"
            )
        return version
    if name == "latest":
        version = ModelVersion.objects.order_by("-number").first()
        if version is None:
            raise ModelVersion.DoesNotExist("no model version yet")
        return version
    digits = name[1:] if name.lower().startswith("v") else name
    # ASCII digits only, and few: "²" passes isdigit() and int() refuses 5,000 digits (issue 10.5).
    if not re.fullmatch(r"[0-9]{1,10}", digits):
        raise ModelVersion.DoesNotExist(f"{name[:40]!r} is not a model version (use active, latest, v3 or 3)")
    try:
        return ModelVersion.objects.get(number=int(digits))
    except ModelVersion.DoesNotExist:
        known = ", ".join(f"v{n}" for n in ModelVersion.objects.values_list("number", flat=True)) or "none"
        raise ModelVersion.DoesNotExist(f"no model version {name!r} (known: {known})") from None


class VersionReservation(models.Model):
    """A version number held by a round while it trains, before any file is written (issue 10.2).

    Two workers starting rounds at once used to compute the same next number, both write `models/vN.pt`
    and one fail after minutes on the unique number. A round now reserves its number first; the unique
    connection set per backbone makes the second round on unchanged connections skip, as it does with one
    worker. The round deletes its reservation when it ends; one whose job died is released by the next
    round (`training.rounds.reserve_version`).
    """

    number = models.PositiveIntegerField(unique=True)
    connection_set_hash = models.CharField(max_length=64)
    backbone = models.CharField(max_length=64)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection_set_hash", "backbone"], name="one_round_per_connection_set"
            )
        ]

    def __str__(self) -> str:
        return f"v{self.number} reserved by job #{self.job_id}"


class FaceScan(models.Model):
    """One face detection of one artwork's image with one detector setting (`training.face_detection`).

    Keyed by artwork and settings: a re-run with the same settings on the same image (same content hash)
    does nothing; a changed image is scanned again and its old faces replaced. A scan that found nothing is
    kept too, so an empty painting is not searched again on every run.
    """

    artwork = models.ForeignKey("annotations.Artwork", on_delete=models.CASCADE, related_name="face_scans")
    image_sha256 = models.CharField(max_length=64, help_text="the image content the faces were found in")
    settings_key = models.CharField(max_length=64, db_index=True, help_text="hash of `settings`")
    settings = models.JSONField(help_text="detector, weights, thresholds, minimum face size, ...")
    face_count = models.PositiveIntegerField()
    scanned_at = models.DateTimeField(auto_now_add=True)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["artwork", "settings_key"], name="one_face_scan_per_setting")
        ]

    def __str__(self) -> str:
        return f"faces of artwork {self.artwork_id}: {self.face_count}"


class Face(models.Model):
    """A detected face: its box and five landmarks in the original image's pixels, and its probability."""

    scan = models.ForeignKey(FaceScan, on_delete=models.CASCADE, related_name="faces")
    artwork = models.ForeignKey("annotations.Artwork", on_delete=models.CASCADE, related_name="faces")
    rank = models.PositiveIntegerField(help_text="0 = the most probable face of the scan")
    x1 = models.FloatField()
    y1 = models.FloatField()
    x2 = models.FloatField()
    y2 = models.FloatField()
    probability = models.FloatField()
    landmarks = models.JSONField(help_text="[[x, y] × 5]: eyes, nose, mouth corners")

    class Meta:
        ordering = ["scan_id", "rank"]

    def __str__(self) -> str:
        return f"face {self.pk} of artwork {self.artwork_id} ({self.probability:.2f})"

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1
