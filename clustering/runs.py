"""Clustering runs, parameter previews, exports and map layouts against the database (the Django side).

The algorithms live in plain modules (`neighbours`, `optics`, `algorithms`, `metrics`, `proposals`,
`layouts`); this module feeds them the active signatures and what historians know, and stores the outcome.

Files (under the data folder, written atomically):
    clusters/run-<id>.npz               artwork ids, labels (-1 noise) and strengths of one run
    signatures/v<N>/graph-<key>.npz     cached cosine neighbour graph (key: the artworks and the PCA setting)
    signatures/v<N>/layout.npz          2-D maps of the version (ids, similarity, time)
"""

from __future__ import annotations

import csv
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction

from annotations.connection_types import LINKING_TYPES
from annotations.models import Artwork, Connection
from annotations.splits import connected_components
from annotations.storage import atomic_write
from jobs.progress import ProgressCallback, no_progress
from training import signature_store
from training.models import ModelVersion

from .algorithms import Clustering, ClusteringParams, Preview, cluster, neighbour_graph, size_histogram
from .layouts import Layout, compute_layout
from .metrics import component_scores
from .models import Algorithm, ClusteringRun, Proposal, ProposalMember
from .neighbours import NeighbourGraph
from .proposals import KINDS, Knowledge, draft, review_order


class MissingSignatures(Exception):
    pass


@dataclass
class SignatureRows:
    ids: list[int]  # artwork primary keys, row order
    vectors: np.ndarray

    def key(self, pca: int | None) -> str:
        digest = hashlib.sha256(np.asarray(self.ids, dtype=np.int64).tobytes())
        digest.update(f"pca={pca}".encode())
        return digest.hexdigest()[:16]


def signatures_of(version: ModelVersion, collections: Sequence[str] | None = None) -> SignatureRows:
    stored = signature_store.load(settings.DATA_DIR, version.number)
    if stored is None:
        raise MissingSignatures(f"{version.label} has no signatures yet: run extract_signatures first")
    artworks = Artwork.objects.order_by("pk")
    if collections:
        artworks = artworks.filter(collection__name__in=collections)
    wanted = list(artworks.values_list("pk", flat=True))
    subset = stored.subset(wanted)
    missing = len(wanted) - len(subset.ids)
    if missing:
        raise MissingSignatures(
            f"{missing} of {len(wanted)} artworks have no signature under {version.label}: "
            "run extract_signatures first"
        )
    if not subset.ids:
        raise MissingSignatures("no artworks to cluster")
    return SignatureRows(subset.ids, np.asarray(subset.vectors))


def graph_path(version: ModelVersion, rows: SignatureRows, pca: int | None) -> Path:
    return signature_store.folder_for(settings.DATA_DIR, version.number) / f"graph-{rows.key(pca)}.npz"


def cached_graph(
    version: ModelVersion, rows: SignatureRows, params: ClusteringParams
) -> NeighbourGraph | None:
    path = graph_path(version, rows, params.pca)
    if not params.needs_graph or not path.exists():
        return None
    return NeighbourGraph.load(path)


def graph_for(
    version: ModelVersion, rows: SignatureRows, params: ClusteringParams, progress=lambda f, m: None
) -> NeighbourGraph:
    """The cached neighbour graph of these artworks when it covers max_eps; otherwise a new one, cached."""
    cached = cached_graph(version, rows, params)
    graph = neighbour_graph(rows.vectors, params, cached, progress=progress)
    if graph is not cached:
        graph.save(graph_path(version, rows, params.pca))
    return graph


def clustered(
    version: ModelVersion,
    rows: SignatureRows,
    params: ClusteringParams,
    progress: ProgressCallback = no_progress,
) -> Clustering:
    """Cluster, reusing the cached neighbour graph of these artworks and caching a new one."""
    graph = (
        graph_for(version, rows, params, lambda f, m: progress(0.8 * f, m)) if params.needs_graph else None
    )
    result, _ = cluster(rows.vectors, params, graph=graph, progress=progress)
    return result


def knowledge() -> Knowledge:
    links, decided, rejected = [], set(), set()
    for a, b, type_code in Connection.objects.values_list("artwork_a_id", "artwork_b_id", "type").iterator():
        pair = (a, b) if a < b else (b, a)
        decided.add(pair)
        if type_code in LINKING_TYPES:
            links.append(pair)
        elif type_code == "NEGATIVE":
            rejected.add(pair)
    component_of = {}
    for component_id, members in enumerate(connected_components(links)):
        for artwork_id in members:
            component_of[artwork_id] = component_id
    return Knowledge(component_of=component_of, decided=decided, rejected=rejected)


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


def run_clustering(
    version: ModelVersion,
    params: ClusteringParams,
    collections: Sequence[str] | None = None,
    *,
    user=None,
    job=None,
    progress: ProgressCallback = no_progress,
    log: Callable[[str], None] = lambda line: None,
) -> ClusteringRun:
    params = params.resolved()
    started = time.perf_counter()
    rows = signatures_of(version, collections)
    log(
        f"clustering {len(rows.ids):,} signatures of {version.label} "
        f"with {params.algorithm} {params.as_dict()}"
    )
    result = clustered(version, rows, params, progress=lambda f, m: progress(0.85 * f, m))
    progress(0.88, "comparing clusters with the known connections")
    known = knowledge()
    scores = run_scores(result, rows.ids, known)
    drafts, already_known = [], 0
    members_of: dict[int, list[int]] = {}
    for row_index in np.flatnonzero(result.labels >= 0):
        members_of.setdefault(int(result.labels[row_index]), []).append(int(row_index))
    for label, member_rows in sorted(members_of.items()):
        proposal = draft(
            label,
            [rows.ids[r] for r in member_rows],
            [float(result.strength[r]) for r in member_rows],
            result.confidence.get(label, 0.0),
            known,
        )
        if proposal is None:
            already_known += 1
        else:
            drafts.append(proposal)
    ordered = review_order(drafts)
    scores["already_known"] = already_known
    scores["proposals"] = {kind: sum(1 for d in ordered if d.kind == kind) for kind in KINDS}
    progress(0.93, f"storing {len(ordered)} proposals")
    component_sizes = known.component_sizes()
    path: Path | None = None
    try:
        with transaction.atomic():
            run = ClusteringRun.objects.create(
                model_version=version,
                algorithm=params.algorithm,
                params=params.as_dict(),
                collections=list(collections or []),
                artwork_count=len(rows.ids),
                cluster_count=result.cluster_count,
                noise_share=result.noise_share,
                metrics=scores,
                created_by=user,
                job=job,
            )
            path = settings.DATA_DIR / "clusters" / f"run-{run.pk}.npz"
            atomic_write(
                path,
                lambda handle: np.savez(
                    handle,
                    ids=np.asarray(rows.ids, dtype=np.int64),
                    labels=result.labels,
                    strength=result.strength,
                ),
            )
            proposals = Proposal.objects.bulk_create(
                [
                    Proposal(
                        run=run,
                        label=d.label,
                        kind=d.kind,
                        size=len(d.members),
                        confidence=d.confidence,
                        new_links=d.new_links,
                        new_pairs=d.new_pairs,
                        rejected_pairs=[list(pair) for pair in d.rejected_pairs],
                        components=[component_sizes[c] for c in d.components],
                        review_value=d.discounted_value,
                        rank=d.rank,
                    )
                    for d in ordered
                ],
                batch_size=1000,
            )
            ProposalMember.objects.bulk_create(
                [
                    ProposalMember(proposal=p, artwork_id=artwork_id, strength=strength, position=position)
                    for p, d in zip(proposals, ordered, strict=True)
                    for position, (artwork_id, strength) in enumerate(zip(d.members, d.strength, strict=True))
                ],
                batch_size=5000,
            )
            run.assignments_file = str(path.relative_to(settings.DATA_DIR))
            run.duration_seconds = time.perf_counter() - started
            run.save(update_fields=["assignments_file", "duration_seconds"])
    except BaseException:
        # No run row, no file: a run that did not commit must not leave its assignments behind.
        if path is not None:
            path.unlink(missing_ok=True)
        raise
    log(summary(run))
    return run


def proposal_from_selection(version: ModelVersion, artwork_ids: Sequence[int], user) -> Proposal:
    """A proposal from artworks a historian selected (a lasso on the map), in a one-proposal "manual" run.

    Classified like any cluster; refused when it says nothing new (every pair already decided or linked).
    """
    ids = sorted(set(artwork_ids))
    if not 2 <= len(ids) <= 200:
        raise ValueError("select between 2 and 200 artworks")
    found = set(Artwork.objects.filter(pk__in=ids).values_list("pk", flat=True))
    if len(found) != len(ids):
        raise ValueError(f"unknown artworks: {sorted(set(ids) - found)[:10]}")
    known = knowledge()
    proposal = draft(0, ids, [1.0] * len(ids), 1.0, known)
    if proposal is None:
        raise ValueError("every pair of these artworks is already decided: nothing to review")
    sizes = known.component_sizes()
    with transaction.atomic():
        run = ClusteringRun.objects.create(
            model_version=version,
            algorithm=Algorithm.MANUAL,
            params={"selected": len(ids)},
            artwork_count=len(ids),
            cluster_count=1,
            created_by=user,
        )
        made = Proposal.objects.create(
            run=run,
            label=0,
            kind=proposal.kind,
            size=len(ids),
            confidence=1.0,
            new_links=proposal.new_links,
            new_pairs=proposal.new_pairs,
            rejected_pairs=[list(pair) for pair in proposal.rejected_pairs],
            components=[sizes[c] for c in proposal.components],
            review_value=proposal.value,
            rank=1,
        )
        ProposalMember.objects.bulk_create(
            [ProposalMember(proposal=made, artwork_id=a, strength=1.0, position=i) for i, a in enumerate(ids)]
        )
    return made


def summary(run: ClusteringRun) -> str:
    heldout = run.heldout_scores()

    def fmt(value) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    return (
        f"{run.label} ({run.algorithm} on {run.model_version.label}): {run.cluster_count} clusters, "
        f"{run.noise_share:.0%} noise, {run.proposals.count()} proposals; held-out components "
        f"precision {fmt(heldout.get('precision'))}, recall {fmt(heldout.get('recall'))}, "
        f"ARI {fmt(heldout.get('ari'))}"
    )


def metrics_table(run: ClusteringRun) -> str:
    lines = [summary(run), "", f"{'':24}{'held-out (val+test)':>22}{'all components':>18}"]
    heldout, everything = run.metrics.get("heldout", {}), run.metrics.get("all", {})
    for key in ("components", "precision", "recall", "ari", "components_missed", "perfect"):
        values = []
        for scores in (heldout, everything):
            value = scores.get(key)
            values.append(
                "n/a" if value is None else (f"{value:.4f}" if isinstance(value, float) else str(value))
            )
        lines.append(f"{key:<24}{values[0]:>22}{values[1]:>18}")
    lines.append("")
    lines.append(
        f"clusters {run.cluster_count}, noise {run.noise_share:.1%}, "
        f"largest {run.metrics.get('largest_cluster')}, already known {run.metrics.get('already_known')}"
    )
    lines.append("sizes " + ", ".join(f"{k}: {v}" for k, v in run.metrics.get("size_histogram", {}).items()))
    lines.append("proposals " + ", ".join(f"{k}: {v}" for k, v in run.metrics.get("proposals", {}).items()))
    return "\n".join(lines)


def preview_clustering(
    version: ModelVersion, params: ClusteringParams, collections: Sequence[str] | None = None
) -> Preview:
    """Cluster count, noise share and size histogram for `params`, storing nothing but the graph cache."""
    from .algorithms import preview

    params = params.resolved()
    rows = signatures_of(version, collections)
    graph = graph_for(version, rows, params) if params.needs_graph else None
    return preview(rows.vectors, params, graph=graph)


def load_assignments(run: ClusteringRun) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.load(settings.DATA_DIR / run.assignments_file) as data:
        return data["ids"], data["labels"], data["strength"]


def export_clusters(run: ClusteringRun, out: Path) -> int:
    """One row per clustered artwork: id (external id), cluster (-1 noise), strength; returns the count."""
    ids, labels, strength = load_assignments(run)
    external = dict(Artwork.objects.filter(pk__in=ids.tolist()).values_list("pk", "external_id"))

    def write(handle) -> None:
        import io

        text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
        writer = csv.writer(text)
        writer.writerow(["id", "cluster", "strength"])
        for artwork_id, label, value in zip(ids.tolist(), labels.tolist(), strength.tolist(), strict=True):
            writer.writerow([external[artwork_id], label, f"{value:.6f}"])
        text.flush()
        text.detach()

    atomic_write(out, write)
    return len(ids)


def resolve_run(name: str) -> ClusteringRun:
    if name == "latest":
        run = ClusteringRun.objects.automatic().order_by("-pk").first()
        if run is None:
            raise ClusteringRun.DoesNotExist("no clustering run yet")
        return run
    try:
        return ClusteringRun.objects.get(pk=int(name))
    except ValueError:
        raise ClusteringRun.DoesNotExist(f"{name!r} is not a run number or 'latest'") from None


def follow_up_params() -> ClusteringParams:
    """After a new round: the latest run's algorithm and parameters (a curator's choice), else defaults."""
    last = ClusteringRun.objects.automatic().order_by("-pk").first()
    if last is None:
        return ClusteringParams()
    known = ClusteringParams.__dataclass_fields__
    return ClusteringParams(
        **{k: v for k, v in {"algorithm": last.algorithm, **last.params}.items() if k in known}
    )


# --- maps -------------------------------------------------------------------------------------------------


def layout_path(version: ModelVersion) -> Path:
    return signature_store.folder_for(settings.DATA_DIR, version.number) / "layout.npz"


def load_layout(version: ModelVersion) -> Layout | None:
    path = layout_path(version)
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
    stored = signature_store.load(settings.DATA_DIR, version.number)
    if stored is None:
        raise MissingSignatures(f"{version.label} has no signatures yet: run extract_signatures first")
    rows = SignatureRows(list(stored.ids), np.asarray(stored.vectors))
    previous = None
    for earlier in ModelVersion.objects.filter(number__lt=version.number).order_by("-number"):
        previous = load_layout(earlier)
        if previous is not None:
            log(f"aligning to the map of {earlier.label}")
            break
    years = dict(Artwork.objects.filter(pk__in=rows.ids).values_list("pk", "date_begin"))
    layout = compute_layout(
        rows.ids, rows.vectors, [years.get(a) for a in rows.ids], previous, progress=progress
    )
    atomic_write(
        layout_path(version),
        lambda handle: np.savez(
            handle, ids=np.asarray(layout.ids, dtype=np.int64), similarity=layout.similarity, time=layout.time
        ),
    )
    return layout
