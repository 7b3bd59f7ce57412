"""`build_demo` refuses what would make the demo's files disagree with what was imported (issue #10, 9)."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from annotations.demo import build_demo

from .conftest import files_under


@pytest.mark.parametrize("limit", [-1, 0])
def test_build_demo_refuses_a_limit_below_one(tmp_path, limit):
    with pytest.raises(ValueError, match="limit"):
        build_demo(tmp_path / "demo", limit=limit)
    assert files_under(tmp_path / "demo") == {}


@pytest.mark.django_db
def test_command_refuses_a_negative_limit_and_writes_nothing(tmp_path):
    with pytest.raises(CommandError, match="--limit"):
        call_command("build_demo", "--limit", "-1", "--no-import", "--out", str(tmp_path / "demo"))
    assert files_under(tmp_path / "demo") == {}


@pytest.mark.django_db(transaction=True)
def test_imported_demo_is_not_rewritten_without_force(data_dir):
    call_command("build_demo", "--limit", "6", "--seed", "5")
    folder = data_dir / "demo"
    imported = files_under(folder)

    # Other parameters would write another ground truth under the imported collections.
    for arguments in (["--limit", "8", "--seed", "5"], ["--limit", "6", "--seed", "6"], []):
        with pytest.raises(CommandError, match="--force") as refusal:
            call_command("build_demo", *arguments, "--no-import")
        assert "imported" in str(refusal.value)
        assert files_under(folder) == imported

    # The same parameters build the same files: allowed, nothing changes.
    call_command("build_demo", "--limit", "6", "--seed", "5", "--no-import")
    assert files_under(folder) == imported

    call_command("build_demo", "--limit", "8", "--seed", "5", "--no-import", "--force")
    assert files_under(folder)["ground_truth.csv"] != imported["ground_truth.csv"]


@pytest.mark.django_db
def test_a_demo_folder_that_was_never_imported_is_rebuilt_freely(tmp_path):
    folder = tmp_path / "demo"
    call_command("build_demo", "--limit", "6", "--no-import", "--out", str(folder))
    first = files_under(folder)
    call_command("build_demo", "--limit", "7", "--no-import", "--out", str(folder))
    assert files_under(folder)["ground_truth.csv"] != first["ground_truth.csv"]
