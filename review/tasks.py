"""Job handlers of the review app (run by `jobs.runner`, in a Celery worker or inline)."""

from __future__ import annotations

from jobs.progress import JobCancelled, JobRefused
from jobs.registry import job_handler

from .models import Simulation, SimulationState


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
        simulate.finish(simulation, SimulationState.CANCELLED, "Cancelled; the rounds recorded so far stay")
        raise
    except BaseException as exc:
        simulate.finish(simulation, SimulationState.FAILED, f"Failed: {exc}")
        raise
    simulate.finish(simulation, SimulationState.FINISHED, result["summary"])
    return result
