"""Clustering of signatures: OPTICS, DBSCAN, HDBSCAN, optional PCA (plain module, no Django).

Every algorithm returns the same `Clustering`: a label per signature (-1 = noise), a per-member strength in
[0, 1] (how firmly the point belongs to its cluster; 0 for noise) and a confidence per cluster (the mean
strength
of its members), which the review queue uses to put the surest proposals first.

Strength, per algorithm:
- OPTICS: 1 − reachability / max_eps, where a cluster's first point (reached from outside the cluster, or
  not at all) takes its core distance instead: a member reached at distance 0 is certain, one at the edge of
  max_eps barely in.
- DBSCAN: 1 − (distance to the nearest other member of its cluster) / eps.
- HDBSCAN: the `hdbscan` package's membership probability ("leaf" cluster selection: the many small clusters
  of a shared pattern, not the few large ones "eom" prefers).

Cosine distances throughout. HDBSCAN works in Euclidean space; on L2-normalised vectors the Euclidean distance
is sqrt(2 · cosine distance), a monotone function of it, so the hierarchy is the cosine one. PCA (optional,
fitted on the signatures being clustered) is followed by a new L2 normalisation.

OPTICS and DBSCAN also take spatially verified pairs into their graph (`verify_top`, `clustering.verified`):
the caller passes a `Verifier`, since counting inliers needs the images.
"""

from __future__ import annotations

import math
import re
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from jobs.progress import ProgressCallback as Progress
from jobs.progress import no_progress

from .neighbours import NeighbourGraph, normalise, radius_graph
from .optics import optics
from .verified import Verifier, verify, with_verified_edges

ALGORITHMS = ("optics", "dbscan", "hdbscan")
# methods.md §1: OPTICS on the raw signatures, cosine, max_eps 0.13, min_samples 2, xi 0.05 (scikit-learn
# defaults otherwise); DBSCAN compared at eps 0.08, min_samples 2. verify_top is ours (clustering.verified):
# the 10 nearest neighbours of each signature are spatially verified; 0 turns it off.
VERIFY_TOP = 10
DEFAULTS: dict[str, dict] = {
    "optics": {
        "max_eps": 0.13,
        "min_samples": 2,
        "xi": 0.05,
        "min_cluster_size": None,
        "verify_top": VERIFY_TOP,
    },
    "dbscan": {"max_eps": 0.08, "min_samples": 2, "verify_top": VERIFY_TOP},
    "hdbscan": {"min_cluster_size": 2, "min_samples": 2},
}
# The valid range of every parameter, checked before any work (the web form, the command, the job): out of
# range, scikit-learn fails deep inside after the neighbour search, or every point silently becomes noise.
# A neighbourhood of 10,000 signatures is far beyond any group a historian reviews; PCA to more components
# than a signature has is pointless. The number of signatures bounds both sizes too (`check_size`).
MAX_NEIGHBOURHOOD = 10_000
WHOLE_RANGES: dict[str, tuple[int, int]] = {
    "min_samples": (2, MAX_NEIGHBOURHOOD),
    "min_cluster_size": (2, MAX_NEIGHBOURHOOD),
    "pca": (2, 4096),
    "verify_top": (0, 100),  # 100 verifications per signature: about 1.3 s each on 2 CPUs
}
HDBSCAN_MIN_SAMPLES = 1  # hdbscan counts the point itself differently: 1 is a valid neighbourhood there
REAL_RANGES: dict[str, tuple[str, float, float, str]] = {  # (low bracket, low, high, high bracket)
    "max_eps": ("(", 0.0, 2.0, "]"),  # a cosine distance
    "xi": ("(", 0.0, 1.0, ")"),
}
# Text from a form or the command line: ASCII digits only (int() and float() accept other scripts' digits,
# "nan" and "inf"), and short, so that int() never parses 5,000 digits.
WHOLE_TEXT = re.compile(r"[+-]?[0-9]{1,18}", re.ASCII)
REAL_TEXT = re.compile(r"[+-]?([0-9]{1,18}\.?[0-9]{0,18}|\.[0-9]{1,18})([eE][+-]?[0-9]{1,3})?", re.ASCII)


def shown(value: object, limit: int = 40) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int of more than 4,300 digits cannot even be written out
        return "a number too long to show"
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def whole_range(algorithm: str, name: str) -> tuple[int, int]:
    low, high = WHOLE_RANGES[name]
    return (HDBSCAN_MIN_SAMPLES, high) if (algorithm, name) == ("hdbscan", "min_samples") else (low, high)


def valid_range(algorithm: str, name: str) -> str:
    """What a parameter must be, for messages: "a whole number from 2 to 10,000", "a number in (0, 1)"."""
    if name in WHOLE_RANGES:
        low, high = whole_range(algorithm, name)
        return f"a whole number from {low:,} to {high:,}"
    opening, low, high, closing = REAL_RANGES[name]
    return f"a number in {opening}{low:g}, {high:g}{closing}"


def checked(algorithm: str, name: str, value: object) -> int | float:
    """`value` if it lies in the parameter's range (a whole float such as 3.0 becomes 3); else ValueError
    naming the parameter and the range."""
    if name in WHOLE_RANGES:
        low, high = whole_range(algorithm, name)
        whole = not isinstance(value, bool) and (
            isinstance(value, (int, np.integer))
            or (isinstance(value, (float, np.floating)) and float(value).is_integer())
        )
        valid = whole and low <= value <= high
    else:
        opening, low, high, closing = REAL_RANGES[name]
        real = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
        valid = (
            real
            and math.isfinite(value)
            and (low < value if opening == "(" else low <= value)
            and (value < high if closing == ")" else value <= high)
        )
    if not valid:
        raise ValueError(f"{name} must be {valid_range(algorithm, name)}, got {shown(value)}")
    return int(value) if name in WHOLE_RANGES else float(value)


@dataclass
class ClusteringParams:
    algorithm: str = "optics"
    max_eps: float | None = None
    min_samples: int | None = None
    xi: float | None = None
    min_cluster_size: int | None = None
    pca: int | None = None  # number of components, None = raw signatures
    verify_top: int | None = None  # nearest neighbours spatially verified per signature, 0 = none

    @classmethod
    def tunable(cls) -> dict[str, type]:
        """Every parameter a user may set, with its type: the command, the job and the web form read this."""
        hints = typing.get_type_hints(cls)
        return {
            f.name: next(t for t in typing.get_args(hints[f.name]) if t is not type(None))
            for f in fields(cls)
            if f.name != "algorithm"
        }

    @classmethod
    def from_values(cls, values: Mapping[str, object]) -> ClusteringParams:
        """From a job's params, a command's options or a form: the parameters given (not None or blank),
        text cast to each one's type (ValueError, with the valid range, when it is not such a number)."""
        algorithm = values.get("algorithm")
        algorithm = "optics" if algorithm is None else str(algorithm)
        given = {}
        for name, kind in cls.tunable().items():
            value = values.get(name)
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            if isinstance(value, str):
                if not (WHOLE_TEXT if kind is int else REAL_TEXT).fullmatch(value.strip()):
                    raise ValueError(f"{name} must be {valid_range(algorithm, name)}, got {shown(value)}")
                value = kind(value.strip())
            given[name] = value
        return cls(algorithm=algorithm, **given)

    def given(self) -> dict:
        """The tunable parameters that are set (for a job's params)."""
        return {name: getattr(self, name) for name in self.tunable() if getattr(self, name) is not None}

    def resolved(self) -> ClusteringParams:
        """Defaults of the algorithm filled in, and every value checked (ValueError names the bad one)."""
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {self.algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
        values = {**DEFAULTS[self.algorithm]}
        for key in self.tunable():
            if key == "pca":
                continue
            given = getattr(self, key)
            if given is not None:
                if key not in values:
                    raise ValueError(f"{self.algorithm} has no parameter {key.replace('_', '-')}")
                values[key] = given
        values["pca"] = self.pca
        checked_values = {
            key: None if value is None else checked(self.algorithm, key, value)
            for key, value in values.items()
        }
        return ClusteringParams(algorithm=self.algorithm, **checked_values)

    def check_size(self, count: int) -> None:
        """Refuse a min_samples or min_cluster_size above the `count` signatures being clustered: OPTICS
        fails inside scikit-learn, DBSCAN and HDBSCAN silently call every point noise."""
        limit = max(count, 2)  # the defaults stay valid on an empty or one-point selection
        for name in ("min_samples", "min_cluster_size"):
            value = getattr(self, name)
            if value is not None and value > limit:
                raise ValueError(
                    f"{name} is {value:,} but only {count:,} signatures are clustered; "
                    f"choose at most {limit:,}"
                )

    def as_dict(self) -> dict:
        return {key: value for key, value in asdict(self).items() if value is not None}

    @property
    def needs_graph(self) -> bool:
        return self.algorithm in ("optics", "dbscan")


@dataclass
class Clustering:
    labels: np.ndarray  # int64, -1 = noise, clusters numbered 0..k-1
    strength: np.ndarray  # float64 in [0, 1], 0 for noise
    confidence: dict[int, float] = field(default_factory=dict)
    reachability: np.ndarray | None = None  # OPTICS only, in point order
    ordering: np.ndarray | None = None  # OPTICS only
    verification: dict | None = None  # candidates and verified pairs, when verify_top was on

    @property
    def cluster_count(self) -> int:
        return int(self.labels.max() + 1) if len(self.labels) and self.labels.max() >= 0 else 0

    @property
    def noise_share(self) -> float:
        return float(np.mean(self.labels < 0)) if len(self.labels) else 0.0

    def sizes(self) -> np.ndarray:
        return np.bincount(self.labels[self.labels >= 0], minlength=self.cluster_count)


def reduce_dimensions(vectors: np.ndarray, components: int | None, seed: int = 0) -> np.ndarray:
    """L2-normalised signatures, after PCA to `components` dimensions when asked."""
    unit = normalise(vectors)
    if components is None:
        return unit
    from sklearn.decomposition import PCA

    components = min(components, unit.shape[1], unit.shape[0])
    projected = PCA(n_components=components, random_state=seed).fit_transform(unit)
    return normalise(projected)


def confidences(labels: np.ndarray, strength: np.ndarray) -> dict[int, float]:
    count = int(labels.max() + 1) if len(labels) and labels.max() >= 0 else 0
    if count == 0:
        return {}
    members = labels >= 0
    sums = np.bincount(labels[members], weights=strength[members], minlength=count)
    sizes = np.bincount(labels[members], minlength=count)
    return {cluster: float(sums[cluster] / sizes[cluster]) for cluster in range(count) if sizes[cluster]}


def run_optics(graph: NeighbourGraph, params: ClusteringParams) -> Clustering:
    result = optics(
        graph,
        min_samples=params.min_samples,
        max_eps=params.max_eps,
        xi=params.xi,
        min_cluster_size=params.min_cluster_size,
    )
    labels = result.labels
    distance = result.reachability.copy()
    # A cluster's entry point was reached from outside the cluster (or not at all): its reachability says
    # how far the cluster is from the rest, not how firmly the point belongs; its core distance does.
    position = np.empty_like(result.ordering)
    position[result.ordering] = np.arange(len(result.ordering))
    members = np.flatnonzero(labels >= 0)
    predecessor = result.predecessor[members]
    safe = np.maximum(predecessor, 0)
    entry = (predecessor < 0) | (labels[safe] != labels[members]) | (position[safe] > position[members])
    distance[members[entry]] = result.core_distances[members[entry]]
    strength = np.where(labels >= 0, np.clip(1.0 - distance / params.max_eps, 0.0, 1.0), 0.0)
    strength = np.nan_to_num(strength, nan=0.0, posinf=0.0, neginf=0.0)
    return Clustering(labels, strength, confidences(labels, strength), result.reachability, result.ordering)


def run_dbscan(graph: NeighbourGraph, params: ClusteringParams) -> Clustering:
    from sklearn.cluster import DBSCAN

    local = graph.within(params.max_eps)
    labels = DBSCAN(eps=params.max_eps, min_samples=params.min_samples, metric="precomputed").fit_predict(
        local.to_csr()
    )
    labels = np.asarray(labels, dtype=np.int64)
    nearest = np.full(local.size, np.inf)
    rows = np.repeat(np.arange(local.size), np.diff(local.indptr))
    fellow = (labels[rows] >= 0) & (labels[rows] == labels[local.indices]) & (rows != local.indices)
    np.minimum.at(nearest, rows[fellow], local.distances[fellow])
    strength = np.where(labels >= 0, np.clip(1.0 - nearest / params.max_eps, 0.0, 1.0), 0.0)
    return Clustering(labels, strength, confidences(labels, strength))


def run_hdbscan(unit: np.ndarray, params: ClusteringParams) -> Clustering:
    import hdbscan

    if len(unit) < 2:
        labels = np.full(len(unit), -1, dtype=np.int64)
        return Clustering(labels, np.zeros(len(unit)))
    model = hdbscan.HDBSCAN(
        min_cluster_size=params.min_cluster_size,
        min_samples=min(params.min_samples, len(unit) - 1),
        metric="euclidean",
        core_dist_n_jobs=1,
        cluster_selection_method="leaf",
    )
    labels = np.asarray(model.fit_predict(unit), dtype=np.int64)
    strength = np.where(labels >= 0, np.asarray(model.probabilities_, dtype=np.float64), 0.0)
    return Clustering(labels, strength, confidences(labels, strength))


def neighbour_graph(
    vectors: np.ndarray,
    params: ClusteringParams,
    graph: NeighbourGraph | None = None,
    progress: Progress = no_progress,
) -> NeighbourGraph:
    """`graph` when it covers `params.max_eps` for these vectors, else a new one (after PCA, if asked)."""
    if graph is not None and graph.radius >= params.max_eps and graph.size == len(vectors):
        return graph
    unit = reduce_dimensions(vectors, params.pca)
    return radius_graph(unit, params.max_eps, unit=unit, progress=progress)


def cluster(
    vectors: np.ndarray,
    params: ClusteringParams,
    *,
    graph: NeighbourGraph | None = None,
    progress: Progress = no_progress,
    verifier: Verifier | None = None,
) -> tuple[Clustering, NeighbourGraph | None]:
    """Cluster `vectors` (rows = signatures) and return the clustering and the neighbour graph of the
    signatures (without verified edges: the one worth caching).

    Pass the cached `graph` of the same vectors (and PCA setting) to skip the neighbour search; it is
    rebuilt when missing or when its radius is smaller than max_eps. With verify_top above 0 (the default
    for OPTICS and DBSCAN), `verifier` is required: it finds and counts the verified pairs.
    """
    params = params.resolved()
    params.check_size(len(vectors))
    if params.needs_graph:
        if params.verify_top and verifier is None:
            raise ValueError("verify_top needs the images to verify pairs: pass a verifier, or verify_top=0")
        if params.verify_top and verifier is not None and len(verifier.candidates) != len(vectors):
            raise ValueError(
                f"the verifier has {len(verifier.candidates)} candidate vectors for {len(vectors)} signatures"
            )
        share = 0.5 if params.verify_top else 0.8
        graph = neighbour_graph(vectors, params, graph, progress=lambda f, m: progress(share * f, m))
        local, verification = graph, None
        if params.verify_top:
            assert verifier is not None and params.max_eps is not None
            edges = verify(verifier, params.verify_top, lambda f, m: progress(0.5 + 0.35 * f, m))
            local = with_verified_edges(graph, edges, params.max_eps)
            verification = edges.summary()
        progress(0.85, f"{params.algorithm}: ordering {graph.size:,} points")
        result = run_optics(local, params) if params.algorithm == "optics" else run_dbscan(local, params)
        result.verification = verification
    else:
        progress(0.1, "hdbscan: building the hierarchy")
        result = run_hdbscan(reduce_dimensions(vectors, params.pca), params)
    progress(1.0, f"{result.cluster_count} clusters, {result.noise_share:.0%} noise")
    return result, graph


def size_histogram(sizes: np.ndarray) -> dict[str, int]:
    """Cluster sizes in bins a reviewer can read: 2, 3, 4, 5, 6-10, 11-20, 21-50, >50."""
    bins = [(2, 2), (3, 3), (4, 4), (5, 5), (6, 10), (11, 20), (21, 50)]
    histogram = {}
    for low, high in bins:
        histogram[str(low) if low == high else f"{low}-{high}"] = int(
            np.sum((sizes >= low) & (sizes <= high))
        )
    histogram[">50"] = int(np.sum(sizes > 50))
    return histogram


@dataclass
class Preview:
    cluster_count: int
    noise_share: float
    size_histogram: dict[str, int]
    largest: int
    seconds: float
    verification: dict | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def preview(
    vectors: np.ndarray,
    params: ClusteringParams,
    graph: NeighbourGraph | None = None,
    verifier: Verifier | None = None,
) -> Preview:
    """How many clusters and how much noise `params` would give, without storing anything."""
    import time

    started = time.perf_counter()
    result, _ = cluster(vectors, params, graph=graph, verifier=verifier)
    sizes = result.sizes()
    return Preview(
        cluster_count=result.cluster_count,
        noise_share=result.noise_share,
        size_histogram=size_histogram(sizes),
        largest=int(sizes.max()) if len(sizes) else 0,
        seconds=time.perf_counter() - started,
        verification=result.verification,
    )
