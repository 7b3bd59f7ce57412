"""Job rows: progress with ETA, cancellation, failure details, and reaping jobs of dead workers."""

from __future__ import annotations

import io
import os
from datetime import timedelta

import pytest
from django.utils import timezone

from annotations.importer import import_collection
from annotations.models import Artwork
from jobs.models import Job, JobState
from jobs.progress import JobCancelled, ProgressTracker, TerminalBar, format_duration
from jobs.runner import execute

from .conftest import database_state, files_under, start_job_thread, wait_until


def test_eta_is_extrapolated_from_elapsed_time():
    now = [100.0]
    seen = []
    tracker = ProgressTracker([lambda f, m, eta: seen.append((f, m, eta))], clock=lambda: now[0])
    tracker(0.0, "start")
    now[0] = 110.0
    tracker(0.25, "a quarter")
    now[0] = 140.0
    tracker(1.0, "done")
    assert seen == [(0.0, "start", None), (0.25, "a quarter", 30.0), (1.0, "done", 0.0)]


def test_terminal_bar_on_a_pipe_writes_lines():
    out = io.StringIO()
    bar = TerminalBar(out, width=10, pipe_interval=0)
    bar(0.5, "half", 65.0)
    bar(1.0, "done", 0.0)
    assert out.getvalue().splitlines() == [
        "[#####-----]  50.0%  ETA 01:05  half",
        "[##########] 100.0%  ETA 00:00  done",
    ]
    assert format_duration(3725) == "1:02:05"


@pytest.mark.django_db(transaction=True)
def test_inline_job_reports_progress_and_succeeds():
    job = Job.objects.create(kind="worker_check", params={"steps": 4, "delay": 0.3})
    seen: list[float] = []
    execute(job, extra_sinks=[lambda f, m, eta: seen.append(f)])
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert job.progress == 1.0
    assert job.result["steps"] == 4
    assert seen == [0.25, 0.5, 0.75, 1.0]
    assert "checking worker with 4 steps" in job.log
    assert job.started_at <= job.finished_at


@pytest.mark.django_db(transaction=True)
def test_running_job_can_be_cancelled():
    job = Job.objects.create(kind="worker_check", params={"steps": 200, "delay": 0.05})
    runner = start_job_thread(job)
    wait_until(lambda: Job.objects.get(pk=job.pk).progress > 0, message="progress")
    assert Job.objects.get(pk=job.pk).request_cancel()
    runner.join(timeout=30)
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    assert 0 < job.progress < 1


@pytest.mark.django_db(transaction=True)
def test_import_cancelled_while_writing_leaves_database_and_files_as_they_were(source, data_dir):
    """Cancelling at the last progress report, inside the write transaction, after files were placed."""

    def cancel_when_recording(fraction: float, message: str = "") -> None:
        if message == "Recording connections":
            assert Artwork.objects.count() == 6, "artworks are written in the transaction by now"
            raise JobCancelled("cancelled by the test")

    before_db, before_files = database_state(), files_under(data_dir)
    with pytest.raises(JobCancelled):
        import_collection(
            source.images, source.metadata, source.connections, "C", progress=cancel_when_recording
        )
    assert database_state() == before_db
    assert files_under(data_dir) == before_files


@pytest.mark.django_db
def test_cancelling_a_queued_job_is_immediate():
    job = Job.objects.create(kind="worker_check")
    assert job.request_cancel()
    assert job.state == JobState.CANCELLED
    assert not job.claim(), "a worker must not start a cancelled job"
    assert not job.request_cancel(), "an ended job cannot be cancelled again"


@pytest.mark.django_db(transaction=True)
def test_failed_import_job_lists_the_problems(source, data_dir):
    (source.images / "img" / "1.jpg").write_text("junk")
    job = Job.objects.create(
        kind="import_collection", params={"images": str(source.images), "metadata": str(source.metadata)}
    )
    execute(job)
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert job.result["problem_count"] == 1
    assert "metadata.csv:3: img/1.jpg: not an image" in job.result["problems"][0]


@pytest.mark.django_db
def test_job_without_heartbeat_is_reaped():
    long_ago = timezone.now() - timedelta(minutes=10)
    stale = Job.objects.create(
        kind="worker_check",
        state=JobState.RUNNING,
        worker="other-host:123",
        started_at=long_ago,
        heartbeat_at=long_ago,
    )
    fresh = Job.objects.create(
        kind="worker_check",
        state=JobState.RUNNING,
        worker="other-host:124",
        started_at=long_ago,
        heartbeat_at=timezone.now(),
    )
    assert Job.objects.reap_dead() == 1
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.state == JobState.FAILED and "stopped responding" in stale.error
    assert fresh.state == JobState.RUNNING


@pytest.mark.django_db
def test_job_of_a_dead_process_on_this_host_is_reaped_at_once():
    import socket
    import subprocess

    gone_pid = subprocess.Popen(["true"])  # a pid that existed and is gone now
    gone_pid.wait()
    job = Job.objects.create(
        kind="worker_check",
        state=JobState.RUNNING,
        worker=f"{socket.gethostname()}:{gone_pid.pid}",
        started_at=timezone.now(),
        heartbeat_at=timezone.now(),
    )
    alive = Job.objects.create(
        kind="worker_check",
        state=JobState.RUNNING,
        worker=f"{socket.gethostname()}:{os.getpid()}",
        started_at=timezone.now(),
        heartbeat_at=timezone.now(),
    )
    assert Job.objects.reap_dead() == 1
    job.refresh_from_db()
    alive.refresh_from_db()
    assert job.state == JobState.FAILED and "gone" in job.error
    assert alive.state == JobState.RUNNING


@pytest.mark.django_db
def test_live_process_on_this_host_is_not_reaped_for_a_late_heartbeat():
    """An import's long SQLite write can delay heartbeats; a live local worker is not lost."""
    import socket

    long_ago = timezone.now() - timedelta(minutes=10)
    job = Job.objects.create(
        kind="worker_check",
        state=JobState.RUNNING,
        worker=f"{socket.gethostname()}:{os.getpid()}",
        started_at=long_ago,
        heartbeat_at=long_ago,
    )
    assert Job.objects.reap_dead() == 0
    job.refresh_from_db()
    assert job.state == JobState.RUNNING
