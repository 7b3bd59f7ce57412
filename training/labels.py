"""Catalogue labels as training targets and as the yardstick of label retrieval (plain module, no Django).

Label-supervised methods (`style-classifier`, `multitask-knn`; methods.md §2 and §3) learn from what the
catalogue says of each artwork (its style, genre, author, or any other metadata column) instead of from
connections. This module turns label columns into class indices, refuses labels nothing can be learned
from, and measures leave-one-out precision at k by label, the figure both papers report.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

# A class needs this many labelled artworks to be kept: with a 70/15/15 split stratified by this label,
# enough for at least one example in each part and a few to learn from (a label the split is not
# stratified by, an artist say, may still miss a part). Rarer classes are dropped (their artworks count as
# unlabelled for that task) and the refusal or the version's record names them.
MIN_EXAMPLES_PER_CLASS = 6
PRECISION_KS = (1, 5, 10)


class UnusableLabels(ValueError):
    """A label column that cannot be trained on; the message says why and which classes were too rare."""


@dataclass(frozen=True)
class LabelTask:
    """One label column encoded: `targets[i]` is the class index of row i, -1 when unknown or dropped."""

    name: str
    classes: tuple[str, ...]
    targets: np.ndarray
    dropped: dict[str, int] = field(default_factory=dict)  # class → its count, below the minimum

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def describe_dropped(self, limit: int = 12) -> str:
        if not self.dropped:
            return ""
        items = sorted(self.dropped.items(), key=lambda item: (-item[1], item[0]))
        shown = ", ".join(f"{name} ({count})" for name, count in items[:limit])
        more = f" and {len(items) - limit} more" if len(items) > limit else ""
        return (
            f"{len(items)} classes of {self.name} with fewer than the minimum examples dropped: {shown}{more}"
        )

    def summary(self) -> dict:
        """What a model version records about the labels it was trained on."""
        counts = Counter(self.targets[self.targets >= 0].tolist())
        return {
            "classes": list(self.classes),
            "counts": [counts.get(index, 0) for index in range(self.n_classes)],
            "dropped": dict(sorted(self.dropped.items())),
        }


def encode_task(
    name: str,
    values: Sequence[str],
    min_examples: int = MIN_EXAMPLES_PER_CLASS,
    counted_rows: Sequence[int] | None = None,
) -> LabelTask:
    """Class indices of `values` (one per row; "" = unknown), keeping the classes with at least
    `min_examples` rows among `counted_rows` (default: all rows). Raises UnusableLabels when fewer than two
    classes remain, naming the classes that were too rare."""
    values = [(value or "").strip() for value in values]
    counted = range(len(values)) if counted_rows is None else counted_rows
    counts = Counter(values[row] for row in counted if values[row])
    kept = sorted(value for value, count in counts.items() if count >= min_examples)
    dropped = {value: count for value, count in counts.items() if count < min_examples}
    task = LabelTask(
        name=name,
        classes=tuple(kept),
        targets=_index_targets(values, kept),
        dropped=dropped,
    )
    if len(kept) < 2:
        labelled = sum(counts.values())
        reason = (
            f"no artwork has a {name!r} label"
            if not labelled
            else f"{len(kept)} class{'es' if len(kept) != 1 else ''} of {name!r} "
            f"{'has' if len(kept) == 1 else 'have'} at least {min_examples} labelled artworks "
            f"({labelled} labelled in {len(counts)} classes)"
        )
        details = f"; {task.describe_dropped()}" if dropped else ""
        raise UnusableLabels(f"cannot train on {name!r}: {reason}, and at least 2 are needed{details}")
    return task


def _index_targets(values: Sequence[str], kept: Sequence[str]) -> np.ndarray:
    index = {value: position for position, value in enumerate(kept)}
    return np.array([index.get(value, -1) for value in values], dtype=np.int64)


@dataclass(frozen=True)
class LabelPrecision:
    """Leave-one-out precision at k by one label: each query's k nearest others (cosine) among the rows,
    the share of them with the query's label, averaged over the queries."""

    label: str
    n_queries: int
    precision: dict[int, float]

    def as_dict(self) -> dict:
        # None for NaN (a k beyond the queries' neighbours): the figures are stored as JSON.
        return {
            "n_queries": self.n_queries,
            **{f"p@{k}": (None if value != value else float(value)) for k, value in self.precision.items()},
        }


def label_precision(
    vectors: np.ndarray, targets: np.ndarray, label: str, ks: Sequence[int] = PRECISION_KS
) -> LabelPrecision:
    """P@k over the rows with a label (targets ≥ 0), each the query once and excluded from its own
    neighbours; the neighbours are the other labelled rows. Rows of unknown label take no part: counting
    them as misses would measure how complete the catalogue is, not the signatures."""
    rows = np.flatnonzero(np.asarray(targets) >= 0)
    if len(rows) < 2:
        return LabelPrecision(label, 0, {k: float("nan") for k in ks})
    x = np.asarray(vectors, dtype=np.float32)[rows]
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.maximum(norms, 1e-12)
    y = np.asarray(targets)[rows]
    top = min(max(ks), len(rows) - 1)  # a k beyond the others is NaN, not the precision at fewer
    hits_at = {k: 0.0 for k in ks}
    for start in range(0, len(rows), 1024):
        block = x[start : start + 1024] @ x.T
        block[np.arange(len(block)), np.arange(start, start + len(block))] = -np.inf  # not itself
        nearest = np.argpartition(-block, top - 1, axis=1)[:, :top]
        order = np.take_along_axis(block, nearest, axis=1).argsort(axis=1)[:, ::-1]
        nearest = np.take_along_axis(nearest, order, axis=1)
        same = y[nearest] == y[start : start + len(block), None]
        for k in ks:
            hits_at[k] += same[:, : min(k, top)].mean(axis=1).sum()
    return LabelPrecision(
        label, len(rows), {k: float(hits_at[k] / len(rows)) if k <= top else float("nan") for k in ks}
    )


def precision_table(results: Sequence[LabelPrecision]) -> str:
    lines = [f"{'label':<16} {'queries':>8} " + " ".join(f"{'P@' + str(k):>7}" for k in PRECISION_KS)]
    for result in results:
        shown = [result.precision.get(k) for k in PRECISION_KS]
        values = " ".join(f"{100 * (v if v is not None else float('nan')):>7.2f}" for v in shown)
        lines.append(f"{result.label:<16} {result.n_queries:>8} {values}")
    return "\n".join(lines)
