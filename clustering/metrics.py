"""Scores of a clustering against the known connected components (plain module, no Django).

Thesis metric (methods.md §1), per ground-truth component C (size ≥ 2): take the predicted cluster K holding
most of C's images; recall = |C ∩ K| / |C|, precision = (|C ∩ K| − 1) / (|K| − 1); both averaged over the
components. Two choices the thesis left open, made explicit here:
- noise is not a cluster. A component none of whose images is in any cluster has recall 0 and no precision
  (it is left out of the precision mean and counted in `components_missed`);
- ties for "most images" go to the smaller cluster (the higher precision), then the lower cluster number.
Adjusted Rand index on the annotated images only (the members of the components), each noise point counted as
a cluster of its own, so that putting everything in noise does not score as agreement.

Precision and recall carry 95 % bootstrap intervals over the components (`training.metrics.bootstrap_means`;
precision over the components that were found, as its mean is). ARI is not a mean over components and has
none.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from training.metrics import bootstrap_means


def component_scores(labels: np.ndarray, components: Sequence[Sequence[int]]) -> dict:
    """Thesis precision/recall and ARI of `labels` (per point, -1 noise) against `components` (point rows)."""
    from sklearn.metrics import adjusted_rand_score

    labels = np.asarray(labels)
    groups = [list(component) for component in components if len(component) >= 2]
    if not groups:
        return {
            "components": 0,
            "precision": None,
            "recall": None,
            "components_missed": 0,
            "perfect": 0,
            "ari": None,
            "ci": {},
        }
    cluster_sizes = np.bincount(labels[labels >= 0]) if np.any(labels >= 0) else np.zeros(0, int)
    precisions, recalls, missed, perfect = [], [], 0, 0
    for members in groups:
        found = labels[members]
        found = found[found >= 0]
        if len(found) == 0:
            recalls.append(0.0)
            missed += 1
            continue
        clusters, counts = np.unique(found, return_counts=True)
        best = max(zip(clusters, counts, strict=True), key=lambda cc: (cc[1], -cluster_sizes[cc[0]], -cc[0]))
        cluster, count = int(best[0]), int(best[1])
        size = int(cluster_sizes[cluster])
        recall = count / len(members)
        precision = (count - 1) / (size - 1) if size > 1 else 0.0
        recalls.append(recall)
        precisions.append(precision)
        perfect += int(count == len(members) == size)
    annotated = np.concatenate([np.asarray(members) for members in groups])
    truth = np.concatenate([np.full(len(members), index) for index, members in enumerate(groups)])
    predicted = labels[annotated].astype(np.int64).copy()
    noise = predicted < 0
    predicted[noise] = -1 - np.arange(int(noise.sum()))  # each noise point its own cluster
    return {
        "components": len(groups),
        "precision": float(np.mean(precisions)) if precisions else None,
        "recall": float(np.mean(recalls)),
        "components_missed": missed,
        "perfect": perfect,
        "ari": float(adjusted_rand_score(truth, predicted)),
        "ci": {
            name: [float(bound[0]) for bound in bootstrap_means(np.array(values), np.arange(len(values)))]
            for name, values in (("precision", precisions), ("recall", recalls))
            if values
        },
    }
