"""Two rounds started at once on two workers: one trains, the other skips (the connections are the same);
no raw IntegrityError after minutes of training, and one model file per version (issue 10.2).

Real processes, as two workers would run them: `train_round --inline` twice, at the same moment, against
the test database (SQLite in the first pass of .ci/run, PostgreSQL in the second)."""

from __future__ import annotations

import subprocess

import pytest
import torch

from training.models import ModelVersion, VersionReservation
from training.rounds import extract_for_version, next_version_number, reserve_version
from workbench import paths

from .conftest import manage_py
from .test_training_rounds import demo_collection  # noqa: F401 - fixture


def start_round() -> subprocess.Popen:
    return manage_py(
        "train_round", "--inline", "--no-cluster", "--epochs", "2", "--input-size", "64", "--batch-size", "8"
    )


@pytest.mark.django_db(transaction=True)
def test_two_rounds_at_once_train_one_version(demo_collection):  # noqa: F811 - the imported fixture
    extract_for_version(None)  # round 0 exists: the race is for the next number
    first, second = start_round(), start_round()
    outputs = [process.communicate(timeout=600)[0] for process in (first, second)]
    assert [process.returncode for process in (first, second)] == [0, 0], "\n\n".join(outputs)
    assert sorted(ModelVersion.objects.values_list("number", flat=True)) == [0, 1]
    trained = [text for text in outputs if "v1 against v0: " in text]
    skipped = [text for text in outputs if "Skipped:" in text]
    assert len(trained) == 1 and len(skipped) == 1, "\n\n".join(outputs)
    assert "IntegrityError" not in skipped[0] and "Traceback" not in skipped[0]
    files = sorted(path.name for path in (paths.root() / "models").glob("v*.pt"))
    assert files == ["v0.pt", "v1.pt"]
    saved = torch.load(paths.model_file(1), map_location="cpu", weights_only=False)
    assert saved["config"]["epochs"] == 2
    assert not VersionReservation.objects.exists(), "the winner released its reservation"


@pytest.mark.django_db(transaction=True)
def test_reservations_give_distinct_numbers_and_skip_the_same_connections(demo_collection):  # noqa: F811 - the imported fixture
    extract_for_version(None)
    mine, holder = reserve_version("a" * 64, "efficientnet_lite0")
    assert mine.number == 1 and holder is None
    other, holder = reserve_version("b" * 64, "efficientnet_lite0")
    assert other.number == 2 and holder is None
    again, holder = reserve_version("a" * 64, "efficientnet_lite0")
    assert again is None and holder.pk == mine.pk
    assert next_version_number() == 3


@pytest.mark.django_db(transaction=True)
def test_a_dead_rounds_reservation_is_released(demo_collection):  # noqa: F811 - the imported fixture
    from jobs.models import Job, JobState

    extract_for_version(None)
    dead = Job.objects.create(kind="train_round", params={}, state=JobState.FAILED)
    VersionReservation.objects.create(number=1, connection_set_hash="a" * 64, backbone="x", job=dead)
    mine, holder = reserve_version("a" * 64, "x")
    assert holder is None and mine.number == 1
