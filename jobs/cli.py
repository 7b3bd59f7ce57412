"""Shared command-line plumbing: run a job inline or queue it, and show its progress."""

from __future__ import annotations

from django.core.management.base import CommandError

from .models import Job, JobState
from .progress import TerminalBar
from .runner import enqueue, execute, wait_for


def add_job_arguments(parser, *, default_background: bool = False) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--background",
        action="store_true",
        default=default_background,
        help="queue the job for a worker and return at once (see the jobs page)",
    )
    group.add_argument(
        "--wait", action="store_true", help="queue the job for a worker and follow its progress"
    )


def add_worker_arguments(parser) -> None:
    """For jobs that belong on a worker: queued by default, --wait follows, --inline runs here."""
    parser.add_argument("--wait", action="store_true", help="follow the job's progress until it ends")
    parser.add_argument("--inline", action="store_true", help="run in this process instead of a worker")


def run_worker_job(command, kind: str, params: dict, options: dict) -> Job:
    if options["inline"]:
        return run_job_from_command(command, kind, params, {})
    return run_job_from_command(
        command, kind, params, {"wait": options["wait"], "background": not options["wait"]}, inline_ok=False
    )


def run_job_from_command(command, kind: str, params: dict, options: dict, *, inline_ok: bool = True) -> Job:
    """Inline by default (Ctrl-C cancels); --background/--wait hand it to a Celery worker."""
    stream = command.stderr._out if hasattr(command.stderr, "_out") else command.stderr
    bar = TerminalBar(stream)
    queued = bool(options.get("background") or options.get("wait") or not inline_ok)
    if queued:
        job = enqueue(kind, params)
        command.stdout.write(f"Queued job #{job.pk} ({kind}); follow it on the jobs page.")
        if not options.get("wait"):
            return job
        job = _follow(job, bar)
    else:
        job = Job.objects.create(kind=kind, params=params)
        try:
            execute(job, extra_sinks=[bar], follow_ups="inline")
        except KeyboardInterrupt:
            job.refresh_from_db()
            while (job.result or {}).get("next_job"):  # the step of the chain that was running
                job = Job.objects.get(pk=job.result["next_job"])
            job.request_cancel()
            job.finish(JobState.CANCELLED, message="Interrupted on the terminal; nothing was changed")
            bar.close()
            raise CommandError(
                f"Interrupted; job #{job.pk} ({job.kind}) was cancelled and changed nothing."
            ) from None
        job.refresh_from_db()
    # A chained job (train → cluster → map) reports each step; the command ends with the last one.
    while job.state == JobState.SUCCEEDED and (job.result or {}).get("next_job"):
        bar.close()
        command.stdout.write(job.message)
        job = Job.objects.get(pk=job.result["next_job"])
        command.stdout.write(f"Then job #{job.pk} ({job.kind})")
        bar = TerminalBar(stream)
        job = _follow(job, bar) if queued else job
    bar.close()
    if job.state == JobState.FAILED:
        raise CommandError(f"Job #{job.pk} failed:\n{job_failure_text(job)}")
    if job.state == JobState.CANCELLED:
        raise CommandError(f"Job #{job.pk} was cancelled; nothing was changed.")
    command.stdout.write(job.message)
    return job


def _follow(job: Job, bar: TerminalBar) -> Job:
    try:
        return wait_for(job, [bar])
    except KeyboardInterrupt:
        job.request_cancel()
        bar.close()
        raise CommandError(f"Interrupted; asked job #{job.pk} to cancel.") from None


def job_failure_text(job: Job) -> str:
    """The problems the job listed (an import's), else the error without its traceback."""
    problems = (job.result or {}).get("problems") or []
    head = job.error.split("\n\n", 1)[0]
    return "\n".join([*problems, head]) if problems else head
