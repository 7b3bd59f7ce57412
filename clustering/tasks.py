"""Job handlers of the clustering app (run by `jobs.runner`, in a Celery worker or inline)."""

from __future__ import annotations

from annotations.collections import existing_collections
from jobs.registry import job_handler
from training.models import resolve_version

from .algorithms import ClusteringParams


def params_from(job_params: dict) -> ClusteringParams:
    from .runs import follow_up_params

    if not job_params.get("algorithm"):
        return follow_up_params()  # chained after a round: the curator's last choice, else the defaults
    return ClusteringParams.from_values(job_params)


@job_handler("cluster")
def cluster_job(job, progress, log) -> dict:
    from .reports import summary
    from .runs import run_clustering

    # Checked before anything else, so that a job queued with a bad value fails at once with its range.
    collections = existing_collections(job.params.get("collections")) or None
    params = params_from(job.params).resolved()
    version = resolve_version(job.params.get("model", "active"))
    run = run_clustering(
        version,
        params,
        collections,
        user=job.created_by,
        job=job,
        progress=progress,
        log=log,
    )
    return {"summary": summary(run), "run": run.pk, "version": version.number, "metrics": run.metrics}


@job_handler("compute_layout")
def compute_layout_job(job, progress, log) -> dict:
    from .maps import compute_layout_for

    version = resolve_version(job.params.get("model", "active"))
    layout = compute_layout_for(version, progress=progress, log=log)
    return {
        "summary": f"Map of {len(layout.ids):,} artworks under {version.label}",
        "version": version.number,
    }
