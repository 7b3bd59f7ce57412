"""Hard-negative mining for the compound hinge loss (plain module, no Django).

methods.md §1: for each known connection (A, B), the negatives are the nearest neighbours of the
anchor A under the current model, drawn from the training pool, minus A's known partners; 10 per
pair; re-mined whenever validation improves; after a review round the members historians marked
wrong come first. We also exclude A's whole connected component (its members share the pattern,
so they are not negatives) and A's DUPLICATE/SIMILAR partners (alike by definition).

Only the training pool may be mined: artworks of val/test components must never enter training,
not even as negatives, or the held-out evaluation is no longer held out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def nearest_in_pool(
    signatures: np.ndarray, anchors: np.ndarray, pool: np.ndarray, k: int, chunk: int = 1024
) -> np.ndarray:
    """For each anchor row, the `k` pool rows of highest cosine similarity, best first.

    `signatures` are L2-normalised; returns an (len(anchors), k) array of row indices.
    """
    k = min(k, len(pool))
    pool_vectors = signatures[pool]
    result = np.empty((len(anchors), k), dtype=np.int64)
    for start in range(0, len(anchors), chunk):
        block = anchors[start : start + chunk]
        sims = signatures[block] @ pool_vectors.T
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(sims, part, axis=1)
        # Stable order: by similarity, then by pool position, so mining is reproducible.
        ranked = np.lexsort((part, -order), axis=1)
        result[start : start + chunk] = pool[np.take_along_axis(part, ranked, axis=1)]
    return result


def mine_triplets(
    signatures: np.ndarray,
    pairs: Sequence[tuple[int, int]],
    pool: np.ndarray,
    component_of: np.ndarray,
    excluded_partners: Mapping[int, set[int]],
    historian_negatives: Mapping[int, Sequence[int]],
    per_pair: int = 10,
) -> list[tuple[int, int, int]]:
    """Triplets (A, B, C) for the training pairs (row indices into `signatures`).

    `component_of[i]` is the connected-component id of row i (-1 when it has none);
    `excluded_partners[i]` are rows never to use as negatives of i (DUPLICATE/SIMILAR partners);
    `historian_negatives[i]` are rows a historian said are NOT connected to i: used first.
    """
    if per_pair < 1:
        raise ValueError("per_pair must be at least 1")
    pool = np.asarray(pool, dtype=np.int64)
    anchors = np.array([a for a, _ in pairs], dtype=np.int64)
    if len(anchors) == 0 or len(pool) == 0:
        return []
    # Enough candidates to survive the exclusions: the largest component plus partners.
    largest = int(np.bincount(component_of[component_of >= 0]).max()) if (component_of >= 0).any() else 0
    widest = max((len(v) for v in excluded_partners.values()), default=0)
    candidates = nearest_in_pool(signatures, anchors, pool, per_pair + largest + widest + 1)
    pool_set = set(pool.tolist())
    triplets: list[tuple[int, int, int]] = []
    for (a, b), neighbours in zip(pairs, candidates, strict=True):
        chosen: list[int] = []
        blocked = excluded_partners.get(a, set()) | excluded_partners.get(b, set()) | {a, b}
        component = component_of[a]
        for c in historian_negatives.get(a, ()):
            if c not in blocked and c in pool_set and c not in chosen:
                chosen.append(c)
        for c in neighbours.tolist():
            if len(chosen) >= per_pair:
                break
            if c in blocked or c in chosen or (component >= 0 and component_of[c] == component):
                continue
            chosen.append(c)
        triplets.extend((a, b, c) for c in chosen[:per_pair])
    return triplets
