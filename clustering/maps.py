"""The 2-D maps of a model version, computed and stored (the Django side of `layouts`).

One file per version (`workbench.paths.layout_file`): artwork ids, the similarity layout and the time
layout. A new version's map starts from the newest earlier version's map and is aligned to it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from annotations.models import Artwork
from annotations.storage import atomic_write
from jobs.progress import ProgressCallback, no_progress
from training import signatures
from training.models import ModelVersion
from workbench import paths

from .layouts import Layout, compute_layout


def load_layout(version: ModelVersion) -> Layout | None:
    path = paths.layout_file(version.number)
    if not path.exists():
        return None
    with np.load(path) as data:
        return Layout(ids=data["ids"].tolist(), similarity=data["similarity"], time=data["time"])


def compute_layout_for(
    version: ModelVersion,
    *,
    progress: ProgressCallback = no_progress,
    log: Callable[[str], None] = lambda line: None,
) -> Layout:
    # Every artwork that has a signature under this version (an extraction limited to some collections
    # leaves the others without one; the map shows what there is).
    stored = signatures.require(version, for_clustering=True)  # the clusters' space (signatures.load)
    ids, vectors = list(stored.ids), np.asarray(stored.vectors)
    previous = None
    for earlier in ModelVersion.objects.filter(number__lt=version.number).order_by("-number"):
        previous = load_layout(earlier)
        if previous is not None:
            log(f"aligning to the map of {earlier.label}")
            break
    years = dict(Artwork.objects.filter(pk__in=ids).values_list("pk", "date_begin"))
    layout = compute_layout(ids, vectors, [years.get(a) for a in ids], previous, progress=progress)
    atomic_write(
        paths.layout_file(version.number),
        lambda handle: np.savez(
            handle, ids=np.asarray(layout.ids, dtype=np.int64), similarity=layout.similarity, time=layout.time
        ),
    )
    return layout
