"""Jobs through the configured broker and a real Celery worker process.

On the embedded default this is the filesystem broker and SQLite; in CI's second run it is Redis
and PostgreSQL (CELERY_BROKER_URL / DATABASE_URL).
"""

from __future__ import annotations

import pytest
from django.db import close_old_connections

from annotations.importer import import_collection, remove_abandoned_staging
from annotations.models import Artwork
from jobs.models import Job, JobState
from jobs.runner import enqueue

from .conftest import database_state, files_under, slow_source, wait_until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def fresh(job: Job) -> Job:
    close_old_connections()
    return Job.objects.get(pk=job.pk)


def test_job_runs_in_worker_and_reports_progress(celery_worker_process):
    job = enqueue("worker_check", {"steps": 10, "delay": 0.4})
    seen = set()

    def finished() -> bool:
        current = fresh(job)
        if current.state == JobState.RUNNING:
            seen.add(round(current.progress, 2))
        return not current.is_active

    wait_until(finished, timeout=90, interval=0.05, message="the job to finish")
    job = fresh(job)
    assert job.state == JobState.SUCCEEDED, job.error
    assert job.progress == 1.0 and job.result["steps"] == 10
    assert any(0 < p < 1 for p in seen), f"no intermediate progress seen: {sorted(seen)}"
    assert job.worker.split(":")[0], "the worker records where it ran"
    assert job.celery_task_id


def test_import_runs_in_worker(celery_worker_process, source):
    job = enqueue("import_collection", source.job_params("Via worker"))
    wait_until(lambda: not fresh(job).is_active, timeout=90, message="the import to finish")
    job = fresh(job)
    assert job.state == JobState.SUCCEEDED, job.error
    assert job.result["artworks_created"] == 6
    assert Artwork.objects.filter(collection__name="Via worker").count() == 6


def test_cancel_reaches_the_worker(celery_worker_process):
    job = enqueue("worker_check", {"steps": 300, "delay": 0.1})
    wait_until(lambda: fresh(job).progress > 0, timeout=90, message="the job to start")
    assert fresh(job).request_cancel()
    wait_until(lambda: not fresh(job).is_active, timeout=30, message="the job to stop")
    assert fresh(job).state == JobState.CANCELLED


def test_worker_killed_mid_import_leaves_data_as_it_was(data_dir, celery_worker_process, source, tmp_path):
    """SIGKILL (the OOM killer) while the worker checks and stages an import's images: the job is reaped as
    failed, no row of any data table and no committed file changed, and the staged copies it could not
    clean up itself are removed by the next import."""
    import_collection(source.images, source.metadata, source.connections, "Already there")
    before, files_before = database_state(), files_under(data_dir)
    slow = slow_source(tmp_path / "slow", count=120)
    job = enqueue("import_collection", slow.job_params("Killed", connections=False))
    wait_until(lambda: 0.02 < fresh(job).progress < 0.5, timeout=90, interval=0.05, message="staging")
    folders = list((data_dir / "staging").iterdir())
    assert len(folders) == 1 and any(folders[0].iterdir()), "killed while it has staged files"
    celery_worker_process.kill()
    # The jobs page and the JSON endpoint reap on every read; here we call what they call,
    # until the kernel has finished off the pool process.
    wait_until(lambda: Job.objects.reap_dead(), timeout=20, interval=0.2, message="the job to be reaped")
    job = fresh(job)
    assert job.state == JobState.FAILED
    assert "gone" in job.error
    assert database_state() == before
    committed = {
        name: data for name, data in files_under(data_dir).items() if not name.startswith("staging/")
    }
    assert committed == files_before
    assert folders[0].is_dir(), "a killed worker cannot clean up after itself"
    assert remove_abandoned_staging(min_age_seconds=0) == folders
    assert files_under(data_dir) == files_before
