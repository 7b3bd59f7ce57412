"""Job handlers of the clustering app (run by `jobs.runner`, in a Celery worker or inline)."""

from __future__ import annotations

from jobs.registry import job_handler
from training.models import resolve_version

from .algorithms import ClusteringParams

PARAM_NAMES = ("max_eps", "min_samples", "xi", "min_cluster_size", "pca")


def params_from(job_params: dict) -> ClusteringParams:
    from .runs import follow_up_params

    if not job_params.get("algorithm"):
        return follow_up_params()  # chained after a round: the curator's last choice, else the defaults
    return ClusteringParams(
        algorithm=job_params["algorithm"],
        **{name: job_params[name] for name in PARAM_NAMES if job_params.get(name) is not None},
    )


@job_handler("cluster")
def cluster_job(job, progress, log) -> dict:
    from .runs import run_clustering, summary

    version = resolve_version(job.params.get("model", "active"))
    run = run_clustering(
        version,
        params_from(job.params),
        job.params.get("collections") or None,
        user=job.created_by,
        job=job,
        progress=progress,
        log=log,
    )
    return {"summary": summary(run), "run": run.pk, "version": version.number, "metrics": run.metrics}


@job_handler("compute_layout")
def compute_layout_job(job, progress, log) -> dict:
    from .runs import compute_layout_for

    version = resolve_version(job.params.get("model", "active"))
    layout = compute_layout_for(version, progress=progress, log=log)
    return {
        "summary": f"Map of {len(layout.ids):,} artworks under {version.label}",
        "version": version.number,
    }
