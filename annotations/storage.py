"""Writing files safely (plain module, no Django): atomic writes and content-addressed placement.

Where files go is `workbench.paths` (images and thumbnails are named by their content's hash there).
Writes are atomic (temporary file in the same folder, then rename), so a killed process never
leaves a half-written file under a final name.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
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


def place_file(staged: Path, final: Path) -> bool:
    """Move a staged file to its content-addressed place. False when that content was already there."""
    if final.exists():
        staged.unlink(missing_ok=True)
        return False
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, final)
    return True
