"""Worker start and stop.

Start: jobs left "running" by a dead process on this host are failed at once.
Stop: the jobs the worker runs are cancelled rather than waited for. Celery's warm shutdown (the first
Ctrl-C, `docker compose stop`) would let a training round run on for an hour; cancelled, it ends within
seconds and resumes from its last checkpoint when started again.
"""

from __future__ import annotations

import logging
import threading
import time

from celery.signals import worker_ready, worker_shutting_down

logger = logging.getLogger(__name__)


@worker_ready.connect
def fail_jobs_of_dead_processes(**kwargs) -> None:
    from .models import Job

    Job.objects.reap_dead()


@worker_shutting_down.connect
def cancel_running_jobs(**kwargs) -> None:
    """Sent in the worker's main process, from its signal handler, on every shutdown signal.

    The main process knows which jobs its pool runs (its active requests), not their code: with the prefork
    pool they run in a child process that ignores SIGINT, so the cancel goes through each job's row. A
    thread writes it, with its own database connection: a signal handler may have interrupted the main
    thread in the middle of a query (the solo pool runs the job there).
    """
    from celery.worker import state

    from .runner import RUN_JOB_TASK

    job_ids = [
        request.args[0]
        for request in list(state.active_requests)
        if request.task_name == RUN_JOB_TASK and request.args
    ]
    if job_ids:
        threading.Thread(
            target=cancel_with_retries, args=(job_ids,), name="cancel-jobs-on-shutdown", daemon=True
        ).start()


def cancel_with_retries(job_ids: list[int], attempts: int = 10) -> None:
    from django.db import OperationalError, connection

    from .runner import cancel_for_worker_shutdown

    try:
        for attempt in range(attempts):
            try:
                stopped = cancel_for_worker_shutdown(job_ids)
            except OperationalError as exc:
                # SQLite: the job's own write transaction holds the lock for a while; try again.
                logger.warning("could not cancel jobs %s yet (%s)", job_ids, exc)
                time.sleep(min(2**attempt, 10))
                continue
            logger.warning("worker shutting down: cancelled %d running job(s) %s", stopped, job_ids)
            return
        logger.error("worker shutting down: could not cancel jobs %s; they end when the worker does", job_ids)
    finally:
        connection.close()
