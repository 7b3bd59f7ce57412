"""Signatures on disk: one array file per model version with an id mapping (plain module).

signatures/v<N>/vectors.npy   float32 (count, dim), row i belongs to ids[i]
signatures/v<N>/ids.json      artwork primary keys, in row order
Written atomically (temporary files, then rename; ids last, so a reader never sees more ids than
rows). A database row per vector would make 100k × 2048 floats a slow table for no gain.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class SignatureSet:
    ids: list[int]
    vectors: np.ndarray

    def row_of(self) -> dict[int, int]:
        return {artwork_id: row for row, artwork_id in enumerate(self.ids)}

    def subset(self, wanted: list[int]) -> SignatureSet:
        rows = self.row_of()
        present = [artwork_id for artwork_id in wanted if artwork_id in rows]
        return SignatureSet(present, self.vectors[[rows[a] for a in present]])


def folder_for(data_dir: Path, version_number: int) -> Path:
    return data_dir / "signatures" / f"v{version_number}"


def load(data_dir: Path, version_number: int) -> SignatureSet | None:
    folder = folder_for(data_dir, version_number)
    if not (folder / "ids.json").exists():
        return None
    ids = json.loads((folder / "ids.json").read_text())
    vectors = np.load(folder / "vectors.npy", mmap_mode="r")
    return SignatureSet(ids=ids, vectors=np.asarray(vectors[: len(ids)]))


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(data_dir: Path, version_number: int, signatures: SignatureSet) -> None:
    folder = folder_for(data_dir, version_number)

    def write_vectors(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            np.save(handle, np.ascontiguousarray(signatures.vectors, dtype=np.float32))

    def write_ids(tmp: str) -> None:
        Path(tmp).write_text(json.dumps(signatures.ids))

    _atomic(folder / "vectors.npy", write_vectors)
    _atomic(folder / "ids.json", write_ids)


def merge(existing: SignatureSet | None, new_ids: list[int], new_vectors: np.ndarray) -> SignatureSet:
    """Existing rows plus the newly computed ones (incremental extraction)."""
    if existing is None or not existing.ids:
        return SignatureSet(list(new_ids), np.asarray(new_vectors, dtype=np.float32))
    return SignatureSet(
        existing.ids + list(new_ids), np.concatenate([existing.vectors, new_vectors]).astype(np.float32)
    )
