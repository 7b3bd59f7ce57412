"""Worker start: jobs left "running" by a dead process on this host are failed at once."""

from celery.signals import worker_ready


@worker_ready.connect
def fail_jobs_of_dead_processes(**kwargs) -> None:
    from .models import Job

    Job.objects.reap_dead()
