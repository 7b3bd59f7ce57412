"""Clustering runs and their proposals against the database.

A run clusters a version's signatures (`graphs`), scores the clusters against what historians know
(`scoring`), turns them into proposals (`proposals`, a plain module) and stores run, proposals and the
per-artwork assignments (`assignments`) in one transaction. A lasso on the map makes a one-proposal run
through the same proposal construction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from django.db import transaction

from annotations import knowledge as knowledge_store
from annotations.knowledge import Knowledge
from annotations.models import Artwork
from jobs.progress import ProgressCallback, no_progress
from training import signatures
from training.models import ModelVersion
from workbench import paths

from .algorithms import ClusteringParams, Preview
from .assignments import save_assignments
from .graphs import clustered, graph_for, verifier_for
from .models import Algorithm, ClusteringRun, Proposal, ProposalMember
from .proposals import KINDS, Draft, draft, drafts_from_clusters, review_order
from .reports import summary
from .scoring import run_scores


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
    rows = signatures.of_artworks(version, collections, for_clustering=True)
    params.check_size(len(rows.ids))  # before the neighbour search, which takes minutes at 100,000
    log(
        f"clustering {len(rows.ids):,} signatures of {version.label} "
        f"with {params.algorithm} {params.as_dict()}"
    )
    result = clustered(version, rows, params, progress=lambda f, m: progress(0.85 * f, m))
    progress(0.88, "comparing clusters with the known connections")
    known = knowledge_store.load()
    scores = run_scores(result, rows.ids, known)
    if result.verification is not None:
        scores["verification"] = result.verification
    ordered, already_known = drafts_from_clusters(
        rows.ids, result.labels, result.strength, result.confidence, known
    )
    scores["already_known"] = already_known
    scores["proposals"] = {kind: sum(1 for d in ordered if d.kind == kind) for kind in KINDS}
    progress(0.93, f"storing {len(ordered)} proposals")
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
            path = save_assignments(run.pk, rows.ids, result)
            store_proposals(run, ordered, known)
            run.assignments_file = paths.relative(path)
            run.duration_seconds = time.perf_counter() - started
            run.save(update_fields=["assignments_file", "duration_seconds"])
    except BaseException:
        # No run row, no file: a run that did not commit must not leave its assignments behind.
        if path is not None:
            path.unlink(missing_ok=True)
        raise
    log(summary(run))
    return run


def store_proposals(run: ClusteringRun, ordered: Sequence[Draft], known: Knowledge) -> list[Proposal]:
    """The proposal rows of `ordered` drafts (in review order) and their members; inside a transaction."""
    component_sizes = known.component_sizes()
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
    return proposals


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
    known = knowledge_store.load()
    proposal = draft(0, ids, [1.0] * len(ids), 1.0, known)
    if proposal is None:
        raise ValueError("every pair of these artworks is already decided: nothing to review")
    with transaction.atomic():
        run = ClusteringRun.objects.create(
            model_version=version,
            algorithm=Algorithm.MANUAL,
            params={"selected": len(ids)},
            artwork_count=len(ids),
            cluster_count=1,
            created_by=user,
        )
        (made,) = store_proposals(run, review_order([proposal]), known)
    return made


def preview_clustering(
    version: ModelVersion, params: ClusteringParams, collections: Sequence[str] | None = None
) -> Preview:
    """Cluster count, noise share and size histogram for `params`, storing nothing but the graph cache."""
    from .algorithms import preview

    params = params.resolved()
    rows = signatures.of_artworks(version, collections, for_clustering=True)
    params.check_size(len(rows.ids))  # before the neighbour search, which takes minutes at 100,000
    graph = graph_for(version, rows, params) if params.needs_graph else None
    return preview(rows.vectors, params, graph=graph, verifier=verifier_for(version, rows, params))


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
    return ClusteringParams.from_values({"algorithm": last.algorithm, **last.params})
