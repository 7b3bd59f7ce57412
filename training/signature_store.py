"""Signatures on disk: one array file per model version with an id mapping (plain module).

<folder>/vectors.npy   float32 (count, dim), row i belongs to ids[i]
<folder>/ids.json      artwork primary keys, in row order
(the folder of a version is `workbench.paths.signatures_folder`; `training.signatures` passes it in)
Written atomically (temporary files, then rename; ids last, so a reader never sees more ids than
rows). A database row per vector would make 100k × 2048 floats a slow table for no gain.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annotations.storage import atomic_write, atomic_write_bytes


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


def ids_file(folder: Path) -> Path:
    """Written last on every save: its modification time tells a reader that the signatures changed."""
    return folder / "ids.json"


def load(folder: Path) -> SignatureSet | None:
    if not ids_file(folder).exists():
        return None
    ids = json.loads(ids_file(folder).read_text())
    vectors = np.load(folder / "vectors.npy", mmap_mode="r")
    return SignatureSet(ids=ids, vectors=np.asarray(vectors[: len(ids)]))


def save(folder: Path, signatures: SignatureSet) -> None:
    vectors = np.ascontiguousarray(signatures.vectors, dtype=np.float32)
    atomic_write(folder / "vectors.npy", lambda handle: np.save(handle, vectors))
    atomic_write_bytes(ids_file(folder), json.dumps(signatures.ids).encode())


def merge(existing: SignatureSet | None, new_ids: list[int], new_vectors: np.ndarray) -> SignatureSet:
    """Existing rows plus the newly computed ones (incremental extraction)."""
    if existing is None or not existing.ids:
        return SignatureSet(list(new_ids), np.asarray(new_vectors, dtype=np.float32))
    return SignatureSet(
        existing.ids + list(new_ids), np.concatenate([existing.vectors, new_vectors]).astype(np.float32)
    )


def top_rows(scores: np.ndarray, k: int, excluded_rows: set[int]) -> list[int]:
    """Rows of the k highest `scores`, best first (ties in row order), `excluded_rows` left out: O(n) per
    query (argpartition), for search, conditional search and their benchmarks."""
    wanted = min(len(scores), k + len(excluded_rows))
    top = np.argpartition(-scores, wanted - 1)[:wanted] if wanted < len(scores) else np.arange(len(scores))
    top = top[np.argsort(-scores[top], kind="stable")]
    return [int(row) for row in top if int(row) not in excluded_rows][:k]
