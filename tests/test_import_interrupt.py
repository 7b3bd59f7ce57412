"""Ctrl-C on an inline import cancels it and writes nothing (the README's promise): a real
`manage.py import_collection` process, interrupted with SIGINT while it checks its images."""

from __future__ import annotations

import signal

import pytest
from django.db import close_old_connections

from jobs.models import Job, JobState

from .conftest import database_state, files_under, manage_py, slow_source, wait_until


def import_job() -> Job | None:
    close_old_connections()
    return Job.objects.filter(kind="import_collection").first()


@pytest.mark.django_db(transaction=True)
def test_ctrl_c_cancels_an_inline_import_and_writes_nothing(source, data_dir, tmp_path):
    from annotations.importer import import_collection

    import_collection(source.images, source.metadata, source.connections, "Already there")
    before, files_before = database_state(), files_under(data_dir)
    slow = slow_source(tmp_path / "slow")
    process = manage_py(
        "import_collection",
        *slow.import_arguments(connections=False),
        "--collection",
        "Interrupted",
        env_extra={"WORKBENCH_IMPORT_THREADS": "1"},
    )
    try:
        wait_until(
            lambda: (job := import_job()) is not None and 0.02 < job.progress < 0.5,
            timeout=120,
            interval=0.05,
            message="the import to be checking its images",
        )
        assert any((data_dir / "staging").iterdir()), "interrupted while it has staged files"
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=60)[0]
    finally:
        process.kill()
    job = import_job()
    assert process.returncode == 1, output
    assert f"Interrupted; job #{job.pk} (import_collection) was cancelled and changed nothing." in output
    assert "Traceback" not in output
    assert (
        job.state == JobState.CANCELLED and job.message == "Interrupted on the terminal; nothing was changed"
    )
    assert database_state() == before
    assert files_under(data_dir) == files_before, "its staged files are gone too"
