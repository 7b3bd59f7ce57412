"""An unknown collection name is refused up front, naming the existing ones (issue #10, item 12).

Before, `train_round --collection demo` selected nothing and then said "no known connections in the train
split"; exports wrote empty files. Every command that takes --collection and every job handler that reads
`collections` from its parameters refuses the name at once.
"""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from annotations.collections import UnknownCollection, existing_collections
from annotations.models import Collection
from jobs.models import Job, JobState
from jobs.runner import execute

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def collections(data_dir):
    Collection.objects.create(name="Met")
    Collection.objects.create(name="Derived")


def test_check_returns_the_names_or_lists_the_existing_ones(collections):
    assert existing_collections(["Met", "Derived", "Met"]) == ["Met", "Derived"]
    assert existing_collections(None) == [] and existing_collections([]) == []
    with pytest.raises(UnknownCollection) as refusal:
        existing_collections(["Met", "demo", "other"])
    assert str(refusal.value) == "unknown collections 'demo', 'other'; the collections are: Derived, Met"


def test_check_says_when_there_are_no_collections(data_dir):
    with pytest.raises(UnknownCollection, match="there are no collections yet"):
        existing_collections(["demo"])


@pytest.mark.parametrize(
    "command",
    [
        ["train_round", "--collection", "demo", "--inline"],
        ["train_round", "--collection", "Met", "--collection", "demo"],
        ["extract_signatures", "--collection", "demo", "--inline"],
        ["export_signatures", "--model", "active", "--collection", "demo", "--out", "{tmp}/s.npz"],
        ["cluster", "--collection", "demo", "--inline"],
        ["cluster", "--collection", "demo", "--preview"],
        ["export_connections", "--collection", "demo", "--out", "{tmp}/c.csv"],
    ],
    ids=lambda command: " ".join(command[:2]),
)
def test_commands_refuse_an_unknown_collection(collections, tmp_path, command):
    out = tmp_path / "out"
    out.mkdir()
    arguments = [argument.replace("{tmp}", str(out)) for argument in command]
    with pytest.raises(CommandError) as refusal:
        call_command(*arguments)
    assert str(refusal.value) == "unknown collection 'demo'; the collections are: Derived, Met"
    assert not Job.objects.exists(), "nothing was queued or run"
    assert not list(out.iterdir()), "nothing was written"


@pytest.mark.parametrize("kind", ["train_round", "extract_signatures", "cluster"])
def test_queued_job_with_an_unknown_collection_fails_at_once(collections, kind):
    job = Job.objects.create(kind=kind, params={"collections": ["demo"]})
    execute(job)
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert job.message == "Failed: unknown collection 'demo'; the collections are: Derived, Met"
