"""Running a job: in a Celery worker (the `jobs.run_job` task of `jobs.tasks`) or inline from a command.

`JobMonitor` is a thread with its own database connection. The job's code only hands it the
latest progress; the thread writes it, the heartbeat and the log, and reads the cancel flag.
Writing from a separate connection matters: services do their writes in one transaction, and
progress written on that connection would stay invisible until commit (and vanish on rollback).
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import OperationalError, close_old_connections, connection, transaction
from django.utils import timezone

from .models import ACTIVE_STATES, Job, JobState
from .progress import JobCancelled, JobRefused, ProgressSink, ProgressTracker
from .registry import get_handler

logger = logging.getLogger(__name__)

# The Celery task that runs a job row (`jobs.tasks.run_job`). Sent by name, so that this module does not
# import the tasks module that imports it.
RUN_JOB_TASK = "jobs.run_job"

WORKER_SHUTDOWN_REASON = (
    "Stopped because its worker shut down; start it again to go on (a training round resumes from its "
    "last epoch's checkpoint)"
)


class JobMonitor(threading.Thread):
    def __init__(self, job: Job, flush_interval: float = 0.5) -> None:
        super().__init__(name=f"job-{job.pk}-monitor", daemon=True)
        self.job = job
        self.flush_interval = flush_interval
        self.heartbeat_interval = settings.JOB_HEARTBEAT_INTERVAL
        self.cancelled = threading.Event()
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.pending: tuple[float, str, float | None] | None = None
        self.pending_log: list[str] = []

    # --- called from the job's thread -----------------------------------------------------
    def __call__(self, fraction: float, message: str, eta_seconds: float | None) -> None:
        with self.lock:
            self.pending = (fraction, message, eta_seconds)
        if self.cancelled.is_set():
            raise JobCancelled(f"job {self.job.pk} was cancelled")

    def log(self, line: str) -> None:
        with self.lock:
            self.pending_log.append(line)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=30)

    # --- the monitor thread ---------------------------------------------------------------
    def run(self) -> None:
        last_beat = 0.0
        try:
            while True:
                stopping = self.stopping.wait(self.flush_interval)
                try:
                    self.flush()
                    last_beat += self.flush_interval
                    if last_beat >= self.heartbeat_interval:
                        self.job.heartbeat()
                        last_beat = 0.0
                except OperationalError as exc:
                    # SQLite: the job's own write transaction holds the lock; try again later.
                    logger.debug("job %s monitor could not write yet: %s", self.job.pk, exc)
                if stopping:
                    break
        finally:
            connection.close()

    def flush(self) -> None:
        with self.lock:
            pending, self.pending = self.pending, None
            lines, self.pending_log = self.pending_log, []
        try:
            while lines:
                self.job.append_log(lines[0])
                lines.pop(0)
            if pending is not None:
                if self.job.touch_progress(*pending):
                    self.cancelled.set()
                pending = None
            elif Job.objects.filter(pk=self.job.pk, cancel_requested=True).exists():
                self.cancelled.set()
        except OperationalError:
            # Database busy: keep what was not written for the next flush, older lines first.
            with self.lock:
                self.pending_log[:0] = lines
                if self.pending is None:
                    self.pending = pending
            raise


def execute(job: Job, extra_sinks: list[ProgressSink] | None = None, follow_ups: str = "enqueue") -> Job:
    """Claim and run `job` in this process, recording the outcome on the row.

    A job whose params hold `then` (a list of {"kind", "params"}) starts the first of them when it succeeds,
    handing it the rest: train → extract → cluster → map is such a chain. `follow_ups` says how:
    "enqueue" (for a worker), "inline" (right here, as a command does) or "none". A result with `skipped`
    ends the chain (nothing changed, so there is nothing new to cluster), and so does `stop_chain` (a new
    model version that did not become active has no proposals to make).
    """
    if not job.claim():
        return job
    handler = get_handler(job.kind)
    monitor = JobMonitor(job)
    monitor.start()
    tracker = ProgressTracker([monitor, *(extra_sinks or [])])
    try:
        try:
            result = handler(job, tracker, monitor.log)
        finally:
            # Also on KeyboardInterrupt or SystemExit, which the handlers below let through: a monitor left
            # running would keep writing heartbeats for a job that no longer runs.
            monitor.stop()
    except JobCancelled:
        job.finish(JobState.CANCELLED, message=cancel_message(job))
    except Exception as exc:  # noqa: BLE001 - any failure must end up on the job row
        # Exceptions may carry details for the UI (an import's list of problems).
        details = getattr(exc, "result", None)
        if details is not None or isinstance(exc, JobRefused):
            # Expected: the input was refused and the message (or the problem list) says why. A command
            # running the job prints exactly that; a traceback there would bury it.
            logger.info("job %s refused: %s", job.pk, exc)
        else:
            logger.exception("job %s failed", job.pk)
        job.finish(
            JobState.FAILED,
            message=f"Failed: {exc}"[:500],
            error=f"{exc}\n\n{traceback.format_exc()}",
            result=details,
        )
    else:
        follow_up = None
        try:
            follow_up = create_follow_up(job, result, follow_ups)
        except Exception as exc:  # noqa: BLE001 - the job itself succeeded; say why the chain stopped
            logger.exception("job %s: the next step could not be created", job.pk)
            result = {**result, "follow_up_error": str(exc)}
        if follow_up is not None:
            result = {**result, "next_job": follow_up.pk}
        job.finish(JobState.SUCCEEDED, message=str(result.get("summary", "Done")), result=result)
        if follow_up is not None:
            # The next step starts once this one is recorded as finished; not after a cancel or a reap.
            if job.state != JobState.SUCCEEDED or job.cancel_requested:
                Job.objects.filter(pk=follow_up.pk, state=JobState.QUEUED).update(
                    state=JobState.CANCELLED,
                    finished_at=timezone.now(),
                    message="The step before it did not finish",
                )
            elif follow_ups == "inline":
                execute(follow_up, extra_sinks, follow_ups)
            else:
                send_to_worker(follow_up)
    return job


def cancel_message(job: Job) -> str:
    """What a cancelled job says: the reason whoever cancelled it gave (see `Job.request_cancel`)."""
    job.refresh_from_db(fields=["result"])
    return (job.result or {}).get("cancel_reason") or "Cancelled; nothing was changed"


def cancel_for_worker_shutdown(job_ids: list[int]) -> int:
    """Stop the jobs a stopping worker runs, at their next progress report, saying how to go on.

    Called from the worker's shutdown (`jobs.signals`). Through the row, because under the prefork pool the
    job runs in a child process that the shutdown signal does not reach; the job's monitor reads the flag.
    """
    stopped = 0
    for job in Job.objects.filter(pk__in=job_ids, state__in=ACTIVE_STATES):
        stopped += job.request_cancel(reason=WORKER_SHUTDOWN_REASON)
    return stopped


def create_follow_up(job: Job, result: dict, how: str) -> Job | None:
    """The row of the chain's next step (not yet sent), or None when the chain ends here.

    The step works on what this job produced: the model version it made or used (so a chain started on v5
    does not cluster whatever is active when it runs) and the same collections.
    """
    chain = list(job.params.get("then") or [])
    if not chain or how == "none" or result.get("skipped") or result.get("stop_chain"):
        return None
    step, rest = chain[0], chain[1:]
    get_handler(step["kind"])
    params = dict(step.get("params", {}))
    if "version" in result and params.get("model", "active") == "active":
        params["model"] = str(result["version"])
    if job.params.get("collections") and "collections" not in params:
        params["collections"] = job.params["collections"]
    if rest:
        params["then"] = rest
    return Job.objects.create(kind=step["kind"], params=params, created_by=job.created_by)


def send_to_worker(job: Job) -> None:
    from celery import current_app

    def send() -> None:
        # The registered task object, not `send_task`: `.delay` honours CELERY_TASK_ALWAYS_EAGER.
        async_result = current_app.tasks[RUN_JOB_TASK].delay(job.pk)
        Job.objects.filter(pk=job.pk).update(celery_task_id=async_result.id or "")

    transaction.on_commit(send)


def enqueue(kind: str, params: dict[str, Any], user=None) -> Job:
    """Create the job row and send it to the workers once the surrounding transaction commits."""
    get_handler(kind)  # refuse unknown kinds before writing anything
    job = Job.objects.create(kind=kind, params=params, created_by=user)
    send_to_worker(job)
    return job


def wait_for(
    job: Job, sinks: list[ProgressSink], poll: float = 0.5, sleep: Callable[[float], None] | None = None
) -> Job:
    """Follow a job run by a worker until it ends, feeding its progress to `sinks`."""
    import time

    sleep = sleep or time.sleep
    while True:
        close_old_connections()
        Job.objects.filter(pk=job.pk).reap_dead()
        job.refresh_from_db()
        for sink in sinks:
            sink(job.progress, job.message, job.eta_seconds)
        if not job.is_active:
            return job
        sleep(poll)
