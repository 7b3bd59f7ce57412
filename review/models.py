"""Simulated review runs and what each of their rounds yielded (`review.simulation`, `review.simulate`).

The simulation itself works in a snapshot of the collection (its own database and data folder under
`simulations/<id>/`), so its decisions, model versions and clustering runs never mix with real work; only
these records of what it measured live in the workbench's database.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

CANCELLED_MESSAGE = "Cancelled; the rounds recorded so far stay"


class SimulationState(models.TextChoices):
    RUNNING = "running", "Running"
    FINISHED = "finished", "Finished"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class Simulation(models.Model):
    truth_file = models.CharField(max_length=1024)
    truth_sha256 = models.CharField(max_length=64)
    policy = models.CharField(max_length=16)
    error_rate = models.FloatField(default=0.0)
    order = models.CharField(max_length=16, default="rank", help_text="review order of the queue")
    rounds = models.PositiveIntegerField(help_text="rounds asked for")
    per_round = models.PositiveIntegerField(help_text="proposals reviewed per round at most")
    seed = models.IntegerField(default=0)
    parameters = models.JSONField(
        default=dict, blank=True, help_text="clustering and training parameters, promotion rule"
    )
    start = models.JSONField(
        default=dict, blank=True, help_text="the snapshot: artworks, known links, hidden true pairs, model"
    )
    state = models.CharField(max_length=16, choices=SimulationState.choices, default=SimulationState.RUNNING)
    message = models.CharField(max_length=500, blank=True)
    sandbox = models.CharField(max_length=500, blank=True, help_text="snapshot folder under the data folder")
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-pk"]

    def __str__(self) -> str:
        return f"simulation {self.pk} ({self.policy}, {self.rounds} rounds of {self.per_round})"

    @property
    def label(self) -> str:
        return f"simulation {self.pk}"

    @property
    def policy_label(self) -> str:
        return f"{self.policy} (error rate {self.error_rate:g})" if self.policy == "noisy" else self.policy

    def reconcile(self) -> Simulation:
        """Follow a job that ended without its handler: cancelled while still queued, or reaped after its
        worker died. Without this the simulation would show "Running" (and its page poll) for ever."""
        from jobs.models import ACTIVE_STATES, JobState

        if self.state != SimulationState.RUNNING or self.job_id is None or self.job.state in ACTIVE_STATES:
            return self
        state, message = {
            JobState.CANCELLED: (SimulationState.CANCELLED, CANCELLED_MESSAGE),
            JobState.SUCCEEDED: (SimulationState.FINISHED, self.job.message or "Finished"),
        }.get(self.job.state, (SimulationState.FAILED, f"Failed: {self.job.message or 'the job stopped'}"))
        self.finish(state, message, self.job.finished_at, if_running=True)
        self.refresh_from_db()
        return self

    def finish(self, state: str, message: str, finished_at=None, *, if_running: bool = False) -> None:
        """Record how the simulation ended (now, unless `finished_at` says when); `if_running`: only if
        nothing has recorded an end yet."""
        rows = Simulation.objects.filter(pk=self.pk)
        if if_running:
            rows = rows.filter(state=SimulationState.RUNNING)
        rows.update(state=state, message=message[:500], finished_at=finished_at or timezone.now())


class SimulatedRound(models.Model):
    """One round: the proposals of `reviewed_version` answered from the truth, then the next round trained."""

    simulation = models.ForeignKey(Simulation, on_delete=models.CASCADE, related_name="round_records")
    number = models.PositiveIntegerField()
    reviewed_version = models.CharField(max_length=16, help_text="the model whose proposals were reviewed")
    proposals_shown = models.PositiveIntegerField()
    proposals_reviewed = models.PositiveIntegerField()
    reviewed_total = models.PositiveIntegerField(help_text="proposals reviewed in this and earlier rounds")
    confirmed = models.PositiveIntegerField()
    share_confirmed = models.FloatField(null=True)
    true_links_gained = models.PositiveIntegerField()
    links_per_proposal = models.FloatField(null=True)
    discovered_share = models.FloatField(null=True)
    wrong_links_accepted = models.PositiveIntegerField()
    figures = models.JSONField(
        default=dict, help_text="every figure of the round, the model's metrics, times"
    )
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["simulation", "number"]
        constraints = [models.UniqueConstraint(fields=["simulation", "number"], name="one_record_per_round")]

    def __str__(self) -> str:
        return f"round {self.number} of simulation {self.simulation_id}"
