"""Clustering runs of a model version's signatures and the proposals historians review."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from .proposals import KINDS


class Algorithm(models.TextChoices):
    OPTICS = "optics", "OPTICS"
    DBSCAN = "dbscan", "DBSCAN"
    HDBSCAN = "hdbscan", "HDBSCAN"
    MANUAL = "manual", "Selected by hand"


class ClusteringRunQuerySet(models.QuerySet):
    def automatic(self) -> ClusteringRunQuerySet:
        """Runs of an algorithm; not the one-proposal runs of a selection made by hand on the map."""
        return self.exclude(algorithm=Algorithm.MANUAL)


class ClusteringRun(models.Model):
    """One clustering of the signatures of `model_version`; per-artwork labels live in `assignments_file`."""

    model_version = models.ForeignKey(
        "training.ModelVersion", on_delete=models.PROTECT, related_name="clustering_runs"
    )
    algorithm = models.CharField(max_length=16, choices=Algorithm.choices)
    params = models.JSONField(default=dict, help_text="parameters as resolved, defaults included")
    collections = models.JSONField(default=list, blank=True, help_text="empty = every collection")
    artwork_count = models.PositiveIntegerField(default=0)
    cluster_count = models.PositiveIntegerField(default=0)
    noise_share = models.FloatField(default=0.0)
    metrics = models.JSONField(default=dict)
    duration_seconds = models.FloatField(default=0.0)
    assignments_file = models.CharField(
        max_length=500, blank=True, default="", help_text="relative to data folder"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ClusteringRunQuerySet.as_manager()

    class Meta:
        ordering = ["-pk"]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.get_algorithm_display()} on {self.model_version.label})"

    @property
    def label(self) -> str:
        return f"run {self.pk}"

    def heldout_scores(self) -> dict:
        return (self.metrics or {}).get("heldout", {})


class ProposalStatus(models.TextChoices):
    OPEN = "open", "To review"
    CONFIRMED = "confirmed", "Confirmed"
    PARTIAL = "partial", "Confirmed in part"
    SIMILAR = "similar", "Similar"
    REJECTED = "rejected", "Wrong cluster"
    SKIPPED = "skipped", "Skipped"


class Proposal(models.Model):
    """A cluster offered for review, with what is new about it (see clustering/proposals.py)."""

    run = models.ForeignKey(ClusteringRun, on_delete=models.CASCADE, related_name="proposals")
    label = models.IntegerField(help_text="cluster number in the run")
    kind = models.CharField(max_length=24, choices=[(kind, kind.replace("_", " ")) for kind in KINDS])
    size = models.PositiveIntegerField()
    confidence = models.FloatField()
    new_links = models.PositiveIntegerField(help_text="links that would join the members into one group")
    new_pairs = models.PositiveIntegerField(help_text="member pairs nobody has decided yet")
    rejected_pairs = models.JSONField(default=list, help_text="[[artwork_a, artwork_b], …] judged NEGATIVE")
    components = models.JSONField(default=list, help_text="sizes of the known components it touches")
    review_value = models.FloatField()
    rank = models.PositiveIntegerField(help_text="1 = review first")
    status = models.CharField(max_length=16, choices=ProposalStatus.choices, default=ProposalStatus.OPEN)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "rank"]
        constraints = [models.UniqueConstraint(fields=["run", "label"], name="one_proposal_per_cluster")]
        indexes = [
            models.Index(fields=["run", "status", "rank"]),
            models.Index(fields=["run", "kind", "rank"]),
        ]

    def __str__(self) -> str:
        return f"proposal {self.pk} (run {self.run_id}, cluster {self.label}, {self.kind})"


class ProposalMember(models.Model):
    proposal = models.ForeignKey(Proposal, on_delete=models.CASCADE, related_name="members")
    artwork = models.ForeignKey("annotations.Artwork", on_delete=models.CASCADE, related_name="+")
    strength = models.FloatField()
    position = models.PositiveIntegerField(help_text="0 = strongest member")

    class Meta:
        ordering = ["proposal", "position"]
        constraints = [models.UniqueConstraint(fields=["proposal", "artwork"], name="member_once")]

    def __str__(self) -> str:
        return f"artwork {self.artwork_id} in proposal {self.proposal_id} ({self.strength:.2f})"
