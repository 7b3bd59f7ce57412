from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Background jobs"

    def ready(self) -> None:
        from django.utils.module_loading import autodiscover_modules

        from . import signals  # noqa: F401  (connects the Celery worker signals)

        # Handlers register themselves in each app's tasks.py.
        autodiscover_modules("tasks")
