"""Job handlers of the review app (run by `jobs.runner`, in a Celery worker or inline)."""

from __future__ import annotations

from jobs.progress import JobCancelled, JobRefused
from jobs.registry import job_handler

from .models import CANCELLED_MESSAGE, Simulation, SimulationState


@job_handler("simulate_review")
def simulate_review_job(job, progress, log) -> dict:
    from . import simulate

    try:
        simulation = Simulation.objects.get(pk=job.params["simulation"])
    except Simulation.DoesNotExist:
        raise JobRefused(f"no simulation {job.params.get('simulation')!r} (deleted?)") from None
    if simulation.job_id != job.pk:
        Simulation.objects.filter(pk=simulation.pk).update(job=job)
    try:
        result = simulate.run(simulation, progress, log)
    except JobCancelled:
        simulation.finish(SimulationState.CANCELLED, CANCELLED_MESSAGE)
        raise
    except BaseException as exc:
        simulation.finish(SimulationState.FAILED, f"Failed: {exc}")
        raise
    simulation.finish(SimulationState.FINISHED, result["summary"])
    return result
