"""Job handlers of the annotations app (run by `jobs.runner`, in a worker or inline)."""

from __future__ import annotations

from pathlib import Path

from jobs.registry import job_handler

from .importer import import_collection


@job_handler("import_collection")
def import_collection_job(job, progress, log) -> dict:
    params = job.params
    report = import_collection(
        Path(params["images"]),
        Path(params["metadata"]),
        Path(params["connections"]) if params.get("connections") else None,
        params.get("collection") or None,
        user=job.created_by,
        job=job,
        progress=progress,
        log=log,
    )
    return report.as_dict()
