"""Stopping a worker cancels its running job instead of waiting for it (issue #10, item 13).

`bin/start`'s Ctrl-C sends SIGINT to the terminal's process group and then SIGTERM to the worker (its
trap); `docker compose stop` sends SIGTERM. Celery's warm shutdown would wait for a training round to
finish; the worker must instead cancel the job (it is resumable) and exit within seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest
from django.db import close_old_connections

from jobs.models import Job, JobState
from jobs.runner import WORKER_SHUTDOWN_REASON, enqueue, execute

from .conftest import wait_until


def fresh(job: Job) -> Job:
    close_old_connections()
    return Job.objects.get(pk=job.pk)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stop", ["ctrl-c in bin/start", "sigterm"])
def test_stopping_the_worker_cancels_its_running_job(celery_worker_process, stop):
    job = enqueue("worker_check", {"steps": 3000, "delay": 0.1})  # five minutes
    wait_until(lambda: fresh(job).progress > 0, timeout=90, message="the job to start")
    process = celery_worker_process.process
    if stop == "sigterm":
        process.send_signal(signal.SIGTERM)
    else:
        os.killpg(process.pid, signal.SIGINT)  # the terminal: every process of the group, pool included
        time.sleep(0.2)
        process.send_signal(signal.SIGTERM)  # then bin/start's trap
    # Celery itself takes 4 to 8 s to stop an idle worker here (embedded broker); the job would take 300 s.
    started = time.monotonic()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker still runs {time.monotonic() - started:.0f} s after the signal")
    job = fresh(job)
    assert job.state == JobState.CANCELLED, (job.state, job.message, job.error)
    assert job.message == WORKER_SHUTDOWN_REASON
    assert 0 < job.progress < 0.5


@pytest.mark.django_db(transaction=True)
def test_interrupted_inline_job_stops_its_monitor_thread():
    """A KeyboardInterrupt (not an Exception) in a job must not leave its monitor thread running."""
    job = Job.objects.create(kind="worker_check", params={"steps": 5, "delay": 0.05})

    def interrupt(fraction: float, message: str, eta: float | None) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        execute(job, extra_sinks=[interrupt])
    monitors = [thread for thread in threading.enumerate() if thread.name == f"job-{job.pk}-monitor"]
    assert not any(thread.is_alive() for thread in monitors)
