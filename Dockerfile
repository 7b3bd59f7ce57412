# Production image of the workbench: gunicorn (role `web`) or a Celery worker (role `worker`)
# from the same image; see docker-compose.yml and docker/entrypoint.sh.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN groupadd --system --gid 1000 workbench \
 && useradd --system --uid 1000 --gid workbench --create-home --home-dir /home/workbench \
      --shell /usr/sbin/nologin workbench

WORKDIR /app

# Dependencies in their own layer (torch alone is gigabytes), rebuilt only when pyproject.toml
# changes: empty stand-ins for the project's packages let `pip install .` resolve and install
# the pinned dependencies before the source is copied.
COPY pyproject.toml ./
RUN mkdir -p workbench annotations jobs training clustering \
 && touch workbench/__init__.py annotations/__init__.py jobs/__init__.py \
      training/__init__.py clustering/__init__.py \
 && pip install . \
 && rm -rf build *.egg-info workbench annotations jobs training clustering

COPY . .
RUN pip install --no-deps . && rm -rf build *.egg-info

# The code runs from /app, never from the copy in site-packages: pyproject.toml lists only the
# top-level packages, so that copy lacks migrations, management commands, templates and static
# files, and settings.BASE_DIR must be /app.
ENV PYTHONPATH=/app \
    DJANGO_SETTINGS_MODULE=workbench.settings \
    DEBUG=0 \
    WORKBENCH_DATA_DIR=/data

# Settings refuse to load without SECRET_KEY when DEBUG is off: a throwaway key for this step
# only (it is in no layer's environment). The memory:// broker keeps apps.ready() from making
# the filesystem broker's folders under /data at build time.
RUN SECRET_KEY=build-only-collectstatic-not-a-secret CELERY_BROKER_URL=memory:// \
    python manage.py collectstatic --noinput -v0

# Images, thumbnails and model files. Owned by the runtime user, so that a fresh named volume
# mounted here starts with that owner.
RUN mkdir -p /data && chown workbench:workbench /data && chmod +x /app/docker/entrypoint.sh
VOLUME ["/data"]

USER workbench
EXPOSE 8000
ENTRYPOINT ["/app/docker/entrypoint.sh"]
# `web`: migrate, then gunicorn workbench.wsgi:application on 0.0.0.0:8000, 3 workers, 120 s
# timeout (GUNICORN_WORKERS, GUNICORN_TIMEOUT override). `worker`: the Celery worker.
CMD ["web"]
