"""A clustering run scored against what historians know (the Django side of `metrics`)."""

from __future__ import annotations

from annotations.knowledge import Knowledge
from annotations.models import Artwork

from .algorithms import Clustering, size_histogram
from .metrics import component_scores


def run_scores(result: Clustering, ids: list[int], known: Knowledge) -> dict:
    """Thesis precision/recall and ARI against the held-out (val+test) components, and all of them."""
    row = {artwork_id: index for index, artwork_id in enumerate(ids)}
    split = dict(Artwork.objects.filter(pk__in=known.component_of.keys()).values_list("pk", "split"))
    groups: dict[int, list[int]] = {}
    for artwork_id, component in known.component_of.items():
        if artwork_id in row:
            groups.setdefault(component, []).append(artwork_id)
    heldout, everything = [], []
    for members in groups.values():
        rows = [row[a] for a in members]
        everything.append(rows)
        if split.get(members[0]) in ("val", "test"):
            heldout.append(rows)
    sizes = result.sizes()
    return {
        "heldout": component_scores(result.labels, heldout),
        "all": component_scores(result.labels, everything),
        "cluster_count": result.cluster_count,
        "noise_share": result.noise_share,
        "size_histogram": size_histogram(sizes),
        "largest_cluster": int(sizes.max()) if len(sizes) else 0,
    }
