"""A refused import prints its problems, no traceback (issue #10, item 10); the job keeps the traceback."""

from __future__ import annotations

import subprocess

import pytest

from jobs.models import Job, JobState

from .conftest import manage_py

pytestmark = pytest.mark.django_db(transaction=True)


def test_refused_import_prints_only_its_problems(source, data_dir):
    (source.images / "img" / "2.jpg").unlink()
    source.connections.write_text("img1,img2,type\nart-0,art-9,POSITIVE\n")
    process = manage_py("import_collection", *source.import_arguments(), stderr=subprocess.PIPE)
    stdout, stderr = process.communicate(timeout=120)
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    assert result.returncode == 1
    assert "metadata.csv:4: img/2.jpg: image file not found" in result.stderr
    assert "connections.csv:2: unknown id in img2: 'art-9'" in result.stderr
    job = Job.objects.get(kind="import_collection")
    assert "Traceback" not in result.stderr + result.stdout
    assert f"job {job.pk} failed" not in result.stderr
    assert job.state == JobState.FAILED
    assert "Traceback (most recent call last)" in job.error, "the job keeps the traceback"
