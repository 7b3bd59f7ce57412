"""Every background task is a `Job` row the UI can show (NetBox style).

A Celery message only carries the job id; the row holds parameters, state, progress, ETA, log
and error. Workers write a heartbeat while a job runs so that a job whose worker was killed is
marked failed instead of "running" forever (`Job.objects.reap_dead`).
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone


class JobState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATES = (JobState.QUEUED, JobState.RUNNING)
MAX_LOG_CHARS = 200_000


class JobQuerySet(models.QuerySet):
    def active(self) -> JobQuerySet:
        return self.filter(state__in=ACTIVE_STATES)

    def reap_dead(self, now=None) -> int:
        """Mark running jobs whose worker stopped writing heartbeats as failed.

        Returns how many jobs were reaped. Cheap enough to call on every jobs page view.
        """
        now = now or timezone.now()
        cutoff = now - timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT)
        stale = self.filter(state=JobState.RUNNING).filter(Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at=None))
        stale = stale.filter(Q(started_at__lt=cutoff) | Q(started_at=None))
        running = list(self.filter(state=JobState.RUNNING))
        # A live process on this host is not lost, only slow to write its heartbeat (e.g. an
        # import's long SQLite write transaction holds the lock the heartbeat needs).
        stale = stale.exclude(pk__in=[job.pk for job in running if job.worker_is_alive_here()])
        reaped = self.filter(pk__in=[job.pk for job in running if job.worker_is_gone()])
        reaped = reaped.update(
            state=JobState.FAILED,
            finished_at=now,
            error="The process running this job is gone (killed or crashed). Start the job again; "
            "resumable jobs continue from their last checkpoint.",
            message="Worker lost",
        )
        return reaped + stale.update(
            state=JobState.FAILED,
            finished_at=now,
            error=(
                f"The worker running this job stopped responding (no heartbeat for "
                f"{settings.JOB_HEARTBEAT_TIMEOUT} s); it was probably killed or the machine restarted. "
                "Start the job again; resumable jobs continue from their last checkpoint."
            ),
            message="Worker lost",
        )


class Job(models.Model):
    kind = models.CharField(max_length=64, db_index=True)
    params = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.QUEUED, db_index=True)
    progress = models.FloatField(default=0.0, help_text="0 to 1")
    message = models.CharField(max_length=500, blank=True)
    eta_seconds = models.FloatField(null=True, blank=True)
    log = models.TextField(blank=True)
    error = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True)
    cancel_requested = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    celery_task_id = models.CharField(max_length=64, blank=True)
    worker = models.CharField(max_length=255, blank=True, help_text="host:pid that runs the job")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.state})"

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    def as_progress_dict(self) -> dict:
        return {
            "id": self.pk,
            "kind": self.kind,
            "state": self.state,
            "progress": round(self.progress, 4),
            "message": self.message,
            "eta_seconds": None if self.eta_seconds is None else round(self.eta_seconds, 1),
            "error": self.error,
            "result": self.result,
            "next_job": self.next_job_summary(),
            "cancel_requested": self.cancel_requested,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "log_tail": self.log[-4000:],
        }

    def next_job_summary(self) -> dict | None:
        """{"id", "kind", "url"} of the step this job started when it succeeded, if any."""
        next_pk = (self.result or {}).get("next_job")
        kind = Job.objects.filter(pk=next_pk).values_list("kind", flat=True).first() if next_pk else None
        if kind is None:
            return None
        return {"id": next_pk, "kind": kind, "url": reverse("jobs:detail", args=[next_pk])}

    # --- state transitions; each is a single conditional UPDATE so that the web process and
    # the worker never overwrite each other's decision (e.g. a cancel racing a finish).

    def local_pid(self) -> int | None:
        """The pid of the job's process when it runs on this host (`worker` is host:pid)."""
        host, _, pid = self.worker.rpartition(":")
        return int(pid) if host == socket.gethostname() and pid.isdigit() else None

    def worker_is_alive_here(self) -> bool:
        pid = self.local_pid()
        return pid is not None and pid_alive(pid)

    def worker_is_gone(self) -> bool:
        """True when the job's process ran on this host and no longer exists."""
        pid = self.local_pid()
        return pid is not None and not pid_alive(pid)

    def request_cancel(self, reason: str = "") -> bool:
        """Cancel a queued job at once; ask a running one to stop at its next progress report.

        `reason` becomes the cancelled job's message; a running job's runner finds it in `result`, the one
        field of a running job that nothing else writes until it ends.
        """
        now = timezone.now()
        if Job.objects.filter(pk=self.pk, state=JobState.QUEUED).update(
            state=JobState.CANCELLED,
            cancel_requested=True,
            finished_at=now,
            message=reason or "Cancelled before start",
        ):
            self.refresh_from_db()
            return True
        updates = {"result": {"cancel_reason": reason[:500]}} if reason else {}
        changed = Job.objects.filter(pk=self.pk, state=JobState.RUNNING).update(
            cancel_requested=True, **updates
        )
        self.refresh_from_db()
        return bool(changed)

    def claim(self) -> bool:
        """Called by the worker: queued → running. False if the job was cancelled meanwhile."""
        now = timezone.now()
        claimed = Job.objects.filter(pk=self.pk, state=JobState.QUEUED).update(
            state=JobState.RUNNING,
            started_at=now,
            heartbeat_at=now,
            worker=current_worker_name(),
            message="Started",
        )
        self.refresh_from_db()
        return bool(claimed)

    def finish(self, state: str, *, message: str = "", error: str = "", result: dict | None = None) -> None:
        updates = {"state": state, "finished_at": timezone.now(), "eta_seconds": None}
        if message:
            updates["message"] = message[:500]
        if error:
            updates["error"] = error
        if result is not None:
            updates["result"] = result
        if state == JobState.SUCCEEDED:
            updates["progress"] = 1.0
        # Only a running job can finish; a job reaped meanwhile keeps its failure.
        Job.objects.filter(pk=self.pk, state=JobState.RUNNING).update(**updates)
        self.refresh_from_db()

    def append_log(self, line: str) -> None:
        stamp = timezone.now().strftime("%H:%M:%S")
        with transaction.atomic():
            job = Job.objects.select_for_update().only("log").get(pk=self.pk)
            log = f"{job.log}{stamp} {line}\n"
            Job.objects.filter(pk=self.pk).update(log=log[-MAX_LOG_CHARS:])

    def heartbeat(self) -> None:
        Job.objects.filter(pk=self.pk, state=JobState.RUNNING).update(heartbeat_at=timezone.now())

    def touch_progress(self, progress: float, message: str, eta_seconds: float | None) -> bool:
        """Write progress; returns whether a cancel was requested (checked in the same round trip)."""
        Job.objects.filter(pk=self.pk, state=JobState.RUNNING).update(
            progress=max(0.0, min(1.0, progress)),
            message=message[:500],
            eta_seconds=eta_seconds,
            heartbeat_at=timezone.now(),
        )
        return (
            Job.objects.filter(pk=self.pk)
            .filter(Q(cancel_requested=True) | ~Q(state=JobState.RUNNING))
            .exists()
        )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed, not yet reaped by its parent) still answers kill(0) but runs nothing. But the
    # process's main thread turns zombie before its other threads have exited, and until the last one has,
    # the process still holds its files and locks: a killed import's staging folder stayed locked after its
    # job was reaped (test_worker_killed_mid_import, PostgreSQL pass). Alive while any thread is not a zombie.
    if not os.path.isdir("/proc"):
        return True  # no way to tell on this system: kill(0) answered
    tasks_folder = f"/proc/{pid}/task"
    try:
        tasks = os.listdir(tasks_folder)
    except FileNotFoundError:
        return False  # gone since kill(0)
    except OSError:
        return True
    for task in tasks:
        try:
            with open(f"{tasks_folder}/{task}/stat") as stat:
                state = stat.read().split(") ", 1)[1][:1]
        except (OSError, IndexError):
            continue  # that thread has exited meanwhile
        if state not in ("Z", "X"):
            return True
    return False


def current_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"
