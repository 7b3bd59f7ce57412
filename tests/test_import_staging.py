"""Staging folders of imports that died are removed by the next import; those of running imports are not
(`annotations.storage.locked_folder` / `remove_abandoned`): the kernel drops a dead process's lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from annotations.storage import locked_folder, remove_abandoned

from .conftest import ROOT


def test_a_running_imports_folder_is_kept_and_removed_when_it_ends(tmp_path):
    folder = tmp_path / "staging" / "import-a"
    with locked_folder(folder):
        (folder / "picture.jpg").write_bytes(b"staged")
        assert remove_abandoned([folder], min_age_seconds=0) == []
        assert (folder / "picture.jpg").exists()
    assert not folder.exists()


def test_a_killed_imports_folder_is_removed_once_old_enough(tmp_path):
    folder = tmp_path / "staging" / "import-b"
    # Another process takes the folder and is killed (SIGKILL: no `finally` runs), as the OOM killer would.
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from annotations.storage import locked_folder
        with locked_folder(Path({str(folder)!r})) as folder:
            (folder / "picture.jpg").write_bytes(b"staged")
            print("ready", flush=True)
            time.sleep(600)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        assert remove_abandoned([folder], min_age_seconds=0) == [], "its import still runs"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        child.kill()
    assert (folder / "picture.jpg").exists()
    assert remove_abandoned([folder], min_age_seconds=3600) == [], "changed too recently to judge"
    assert remove_abandoned([folder], min_age_seconds=0) == [folder]
    assert not folder.exists()


def test_cleanup_ignores_what_is_not_a_staging_folder(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep.txt").write_text("not staging")
    link = tmp_path / "import-link"
    link.symlink_to(target)
    stray = tmp_path / "import-file"
    stray.write_text("a file")
    assert remove_abandoned([link, stray, tmp_path / "import-gone"], min_age_seconds=0) == []
    assert (target / "keep.txt").exists() and stray.exists()
