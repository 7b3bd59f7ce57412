from django.core.management.base import BaseCommand

from jobs.models import Job


class Command(BaseCommand):
    help = "Mark running jobs whose worker is gone (no heartbeat, or a dead process on this host) as failed."

    def handle(self, *args, **options) -> None:
        self.stdout.write(f"Marked {Job.objects.reap_dead()} job(s) failed.")
