"""Job handlers of the training app (run by `jobs.runner`, in a Celery worker or inline)."""

from __future__ import annotations

from annotations.collections import existing_collections
from jobs.progress import JobCancelled, JobRefused
from jobs.registry import job_handler

from .models import ModelVersion, resolve_version

# `rounds` pulls in torch; imported inside the handlers so that the web server and every
# management command do not pay for torch at start-up (tasks modules load with the apps).


@job_handler("train_round")
def train_round_job(job, progress, log) -> dict:
    params = dict(job.params)
    params.pop("then", None)  # the chain's next steps, for the job runner
    # Checked first, before torch loads: a misspelt name would select no artworks and the round would fail
    # much later with a misleading message.
    collections = existing_collections(params.pop("collections", None)) or None

    from .rounds import train_round

    return train_round(collections, user=job.created_by, job=job, progress=progress, log=log, **params)


@job_handler("extract_signatures")
def extract_signatures_job(job, progress, log) -> dict:
    collections = existing_collections(job.params.get("collections")) or None

    from .rounds import extract_for_version

    name = job.params.get("model", "active")
    try:
        version = resolve_version(name)
    except ModelVersion.DoesNotExist:
        if name != "active":
            raise
        version = None  # no model yet: the first extraction creates round 0
    return extract_for_version(
        version,
        collections,
        user=job.created_by,
        job=job,
        progress=progress,
        log=log,
    )


@job_handler("train_model")
def train_model_job(job, progress, log) -> dict:
    """A label-supervised model (`style-classifier`, `multitask-knn`); connection models: `train_round`."""
    params = dict(job.params)
    params.pop("then", None)
    collections = existing_collections(params.pop("collections", None)) or None
    method = params.pop("method")
    from .methods import get

    if get(method).train_job != "train_model":
        raise JobRefused(f"{method} models are trained by {get(method).train_job}, not train_model")

    from .label_rounds import train_label_model

    return train_label_model(
        method, collections, user=job.created_by, job=job, progress=progress, log=log, **params
    )


@job_handler("train_student")
def train_student_job(job, progress, log) -> dict:
    """The distilled student of a backward-search version's conditional search (methods.md §4)."""
    from .conditional_search import train_student_for_version

    version = resolve_version(str(job.params.get("model", "")))
    return train_student_for_version(
        version,
        pairs_per_query=int(job.params.get("pairs_per_query", 8)),
        epochs=int(job.params.get("epochs", 50)),
        job=job,
        progress=progress,
        log=log,
    )


@job_handler("register_frozen")
def register_frozen_job(job, progress, log) -> dict:
    """A frozen extractor as a model version, with its signatures (methods.md §5)."""
    from .frozen import register_frozen

    params = dict(job.params)
    params.pop("then", None)
    backbone = params.pop("backbone")
    return register_frozen(backbone, user=job.created_by, job=job, progress=progress, log=log, **params)


@job_handler("detect_faces")
def detect_faces_job(job, progress, log) -> dict:
    """MTCNN over the collection's images, every face stored (methods.md §5); unchanged images skipped."""
    params = dict(job.params)
    params.pop("then", None)
    collections = existing_collections(params.pop("collections", None)) or None

    from .face_detection import detect_faces

    return detect_faces(collections, job=job, progress=progress, log=log, **params)


@job_handler("embed_faces")
def embed_faces_job(job, progress, log) -> dict:
    """The chosen faces' crops embedded into a version's face index ("all": every version with signatures)."""
    from .face_detection import embed_faces
    from .signatures import ids_file

    params = dict(job.params)
    params.pop("then", None)
    params.pop("collections", None)  # a face index covers every artwork with a signature
    name = str(params.pop("model", "active"))
    if name == "all":
        versions = [v for v in ModelVersion.objects.order_by("number") if ids_file(v).exists()]
    else:
        versions = [resolve_version(name)]
    results, failures = [], []
    for position, version in enumerate(versions):
        try:
            results.append(
                embed_faces(
                    version,
                    job=job,
                    progress=lambda f, m, p=position: progress((p + f) / len(versions), m),
                    log=log,
                    **params,
                )
            )
        except (JobCancelled, JobRefused):
            raise
        except Exception as exc:  # one version's damaged model file must not cost the others their index
            if len(versions) == 1:
                raise
            log(f"{version.label}: face index failed: {exc!r}")
            failures.append(f"{version.label}: failed ({exc})")
    if failures and not results:
        raise RuntimeError("; ".join(failures))
    return {
        "summary": "; ".join([r["summary"] for r in results] + failures) or "no version with signatures",
        "versions": [r["version"] for r in results],
        "failed": failures,
    }
