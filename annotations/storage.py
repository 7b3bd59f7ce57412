"""Writing files safely (plain module, no Django): atomic writes, content-addressed placement, a lock.

Where files go is `workbench.paths` (images and thumbnails are named by their content's hash there).
Writes are atomic (temporary file in the same folder, then rename), so a killed process never
leaves a half-written file under a final name.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call `write` on a temporary file in the same folder, sync it, then rename it to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda handle: handle.write(data))


def stage_bytes(target: Path, data: bytes, existing: Path) -> None:
    """Put `data` at `target`: a hard link to `existing` when that file already holds it, else a copy.

    Always staged, even when the content is already in place: until this import commits, nothing says
    that file will stay (a concurrent import that placed it may fail and remove it again, issue 10.1).
    The link keeps the content alive at no cost. A staged file may share its inode with a committed one,
    so it is never opened for writing: a copy goes through a temporary file and a rename.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(existing, target)
        return
    except FileExistsError:
        return  # staged already, for another row of the same image (content-addressed: same bytes)
    except OSError:
        pass  # not there yet, or no hard links on this file system
    atomic_write_bytes(target, data)


@contextmanager
def exclusive_lock(
    path: Path, waiting: Callable[[], None] = lambda: None, poll: float = 0.2
) -> Iterator[None]:
    """An advisory lock on `path` held by one process at a time; the kernel releases it if the process dies.

    `waiting` is called while another process holds it (a job reports progress there, which is also
    where a cancel takes effect).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # Read-only and writable by all: a lock taken by a command run as another user than the worker's.
    descriptor = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
    with os.fdopen(descriptor, "rb") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waiting()
                time.sleep(poll)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def locked_folder(folder: Path) -> Iterator[Path]:
    """Create `folder` and hold an advisory lock on it while the block runs, then remove it.

    The kernel drops the lock when the process dies, even by SIGKILL, when the `finally` below never runs:
    `remove_abandoned` then knows that nobody is using the folder any more.
    """
    folder.mkdir(parents=True)
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        os.close(descriptor)


def remove_abandoned(folders: Iterable[Path], min_age_seconds: float) -> list[Path]:
    """Remove the folders of `locked_folder` whose process has died, and return them.

    A folder younger than `min_age_seconds` (by its last change) is left alone: between creating a folder
    and locking it, its process holds no lock yet.
    """
    removed = []
    for folder in folders:
        try:
            if folder.is_symlink() or not folder.is_dir():
                continue
            if time.time() - folder.stat().st_mtime < min_age_seconds:
                continue
            descriptor = os.open(folder, os.O_RDONLY)
        except FileNotFoundError:  # removed meanwhile by its import or another cleanup
            continue
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # its import still runs
                continue
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        finally:
            os.close(descriptor)
    return removed


def place_file(staged: Path, final: Path) -> bool:
    """Move a staged file to its content-addressed place. False when that content was already there."""
    if final.exists():
        staged.unlink(missing_ok=True)
        return False
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, final)
    return True
