"""A run's per-artwork labels and strengths on disk, and their CSV export.

One file per run (`workbench.paths.cluster_assignments_file`): artwork ids, labels (-1 noise) and
strengths, written atomically inside the transaction that creates the run (removed if it rolls back).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from annotations.models import Artwork
from annotations.storage import atomic_write
from workbench import paths

from .algorithms import Clustering
from .models import ClusteringRun


def save_assignments(run_id: int, ids: list[int], result: Clustering) -> Path:
    path = paths.cluster_assignments_file(run_id)
    atomic_write(
        path,
        lambda handle: np.savez(
            handle, ids=np.asarray(ids, dtype=np.int64), labels=result.labels, strength=result.strength
        ),
    )
    return path


def load_assignments(run: ClusteringRun) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.load(paths.absolute(run.assignments_file)) as data:
        return data["ids"], data["labels"], data["strength"]


def export_clusters(run: ClusteringRun, out: Path) -> int:
    """One row per clustered artwork: id (external id), cluster (-1 noise), strength; returns the count."""
    ids, labels, strength = load_assignments(run)
    external = dict(Artwork.objects.filter(pk__in=ids.tolist()).values_list("pk", "external_id"))

    def write(handle) -> None:
        text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
        writer = csv.writer(text)
        writer.writerow(["id", "cluster", "strength"])
        for artwork_id, label, value in zip(ids.tolist(), labels.tolist(), strength.tolist(), strict=True):
            writer.writerow([external[artwork_id], label, f"{value:.6f}"])
        text.flush()
        text.detach()

    atomic_write(out, write)
    return len(ids)
