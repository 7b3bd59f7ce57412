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


@job_handler("import_iiif")
def import_iiif_job(job, progress, log) -> dict:
    """A IIIF manifest or collection imported as artworks (`iiif_import`): images fetched, then one import."""
    from .iiif_import import import_iiif

    params = job.params
    report = import_iiif(
        params["manifest"],
        params.get("collection") or None,
        int(params.get("size", 1600)),
        bool(params.get("per_manifest", False)),
        user=job.created_by,
        job=job,
        progress=progress,
        log=log,
    )
    return report.as_dict()


@job_handler("build_pyramids")
def build_pyramids_job(job, progress, log) -> dict:
    """Tiled pyramids of the images that have none, for the IIIF image server (`image_server`)."""
    from .image_server import build_pyramids

    params = job.params
    return build_pyramids(params.get("collection") or None, bool(params.get("force")), progress, log)
