"""The management commands as a user runs them: exit codes, messages, progress on the terminal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from annotations.models import Artwork
from jobs.models import Job, JobState

from .conftest import session_database_url

ROOT = Path(__file__).resolve().parent.parent
# Commands run jobs inline, whose progress thread writes through its own connection: the rows
# must be committed for it to see them, hence transactional tests.
pytestmark = pytest.mark.django_db(transaction=True)


def test_import_command_prints_progress_and_records_a_job(source, data_dir, capsys):
    call_command("import_collection", *source.import_arguments(), "--collection", "Cmd")
    captured = capsys.readouterr()
    assert "6 artworks created" in captured.out
    assert "100.0%" in captured.err and "ETA" in captured.err
    job = Job.objects.get(kind="import_collection")
    assert job.state == JobState.SUCCEEDED and job.result["artworks_created"] == 6
    assert Artwork.objects.filter(collection__name="Cmd").count() == 6


def test_import_command_lists_every_problem_and_fails(source, data_dir):
    (source.images / "img" / "2.jpg").unlink()
    source.connections.write_text("img1,img2,type\nart-0,art-9,POSITIVE\n")
    with pytest.raises(CommandError) as failure:
        call_command("import_collection", *source.import_arguments())
    text = str(failure.value)
    assert "metadata.csv:4: img/2.jpg: image file not found" in text
    assert "connections.csv:2: unknown id in img2: 'art-9'" in text
    assert Artwork.objects.count() == 0


def test_commands_exit_nonzero_with_the_problem(tmp_path):
    """As a process: a bad import exits 1 and says why on stderr."""
    missing = tmp_path / "missing.csv"
    env = {**os.environ, "DATABASE_URL": session_database_url()}
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "import_collection",
            "--images",
            str(tmp_path),
            "--metadata",
            str(missing),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 1
    assert "missing.csv: cannot open file" in result.stderr


def test_export_refuses_a_missing_folder(tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        call_command("export_connections", "--out", str(tmp_path / "nope" / "x.csv"))
