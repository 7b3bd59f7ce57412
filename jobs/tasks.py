"""Celery tasks: thin; they take a job id and hand over to `jobs.runner`."""

from __future__ import annotations

import time

from celery import shared_task

from .models import Job
from .registry import job_handler
from .runner import RUN_JOB_TASK, execute


@shared_task(name=RUN_JOB_TASK)
def run_job(job_id: int) -> None:
    try:
        job = Job.objects.get(pk=job_id)
    except Job.DoesNotExist:
        return  # deleted before a worker picked it up
    execute(job)


@job_handler("worker_check")
def worker_check(job: Job, progress, log) -> dict:
    """End-to-end check of the job pipeline (broker, worker, database, progress, cancel).

    `python manage.py check_worker` queues it; it counts `steps` steps of `delay` seconds.
    """
    steps = int(job.params.get("steps", 5))
    delay = float(job.params.get("delay", 0.2))
    if not 1 <= steps <= 10_000 or not 0 <= delay <= 60:
        raise ValueError("worker_check needs 1 <= steps <= 10000 and 0 <= delay <= 60")
    log(f"checking worker with {steps} steps of {delay}s")
    for step in range(1, steps + 1):
        time.sleep(delay)
        progress(step / steps, f"step {step}/{steps}")
    return {"summary": f"Worker answered {steps} steps", "steps": steps}
