"""Nearest artworks under a model version: for the artwork page, the search page and uploads.

The signatures of a version are read once per process and kept while their file is unchanged (a new
extraction rewrites it, which changes its modification time). Vectors are L2-normalised, so the cosine
similarity is a dot product; the top k come from `argpartition`, O(n) per query.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import signature_store
from . import signatures as signature_files
from .models import ModelVersion

_cache: dict[int, tuple[float, signature_store.SignatureSet, dict[int, int]]] = {}
_lock = threading.Lock()


@dataclass
class Hit:
    artwork_id: int
    score: float  # cosine similarity


def signatures(version: ModelVersion) -> tuple[signature_store.SignatureSet, dict[int, int]] | None:
    path = signature_files.ids_file(version)
    if not path.exists():
        return None
    stamp = path.stat().st_mtime
    with _lock:
        cached = _cache.get(version.number)
        if cached is None or cached[0] != stamp:
            stored = signature_files.load(version)
            if stored is None:
                return None
            cached = (stamp, stored, stored.row_of())
            _cache[version.number] = cached
    return cached[1], cached[2]


def nearest_to_vector(
    version: ModelVersion, vector: np.ndarray, k: int, exclude: set[int] = frozenset()
) -> list[Hit]:
    loaded = signatures(version)
    if loaded is None:
        return []
    stored, _ = loaded
    scores = stored.vectors @ (vector / max(float(np.linalg.norm(vector)), 1e-12)).astype(np.float32)
    wanted = min(len(scores), k + len(exclude))
    top = np.argpartition(-scores, wanted - 1)[:wanted] if wanted < len(scores) else np.arange(len(scores))
    top = top[np.argsort(-scores[top], kind="stable")]
    hits = [
        Hit(int(stored.ids[row]), float(scores[row])) for row in top if int(stored.ids[row]) not in exclude
    ]
    return hits[:k]


def nearest_to_artwork(version: ModelVersion, artwork_id: int, k: int = 12) -> list[Hit] | None:
    """None when the artwork has no signature under `version`."""
    loaded = signatures(version)
    if loaded is None:
        return None
    stored, rows = loaded
    if artwork_id not in rows:
        return None
    return nearest_to_vector(version, stored.vectors[rows[artwork_id]], k, exclude={artwork_id})


_models: dict[int, object] = {}


def signature_of_image(version: ModelVersion, image_path: Path) -> np.ndarray:
    """The signature of an uploaded image under `version` (the model is loaded once per process)."""
    method = version.retrieval_method
    with _lock:
        model = _models.get(version.number)
        if model is None:
            _models.clear()  # one model in memory at a time: a web process is not a GPU box
            model = _models[version.number] = method.load_model(version)
    # In the web process: no DataLoader worker processes, one image.
    return method.embed(model, version, [str(image_path)], num_workers=0, extraction_batch_size=1)[0]
