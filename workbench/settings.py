"""Settings, all from environment variables (see README, "Configuration").

The embedded default needs no service: SQLite in the data directory and a filesystem message
broker, so that `bin/start` runs a real Celery worker process on a bare machine. Production sets
DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL (Redis); see docker-compose.yml.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

from . import paths
from .env import ConfigError, env_bool, env_int, env_list

BASE_DIR = Path(__file__).resolve().parent.parent

DATA_DIR = Path(os.environ.get("WORKBENCH_DATA_DIR", BASE_DIR / "data")).resolve()

DEBUG = env_bool("DEBUG", False)

_DEV_SECRET = "insecure-development-key-only-for-debug-mode"
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ConfigError("SECRET_KEY must be set when DEBUG is off (see README, Configuration)")
    SECRET_KEY = _DEV_SECRET

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "workbench",
    "jobs",
    "annotations",
    "training",
    "clustering",
    "review",
]

MIDDLEWARE = [
    "workbench.middleware.ServerTimingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "workbench.params.NulBytesMiddleware",
]

if not DEBUG:
    # Production serves its static files itself (gunicorn, no separate web server needed).
    MIDDLEWARE.insert(2, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "workbench.urls"
WSGI_APPLICATION = "workbench.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "workbench.roles.roles",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DEFAULT_SQLITE_URL = f"sqlite:///{DATA_DIR / paths.DATABASE_FILE}"
_DATABASE_URL = os.environ.get("DATABASE_URL", DEFAULT_SQLITE_URL)
DATABASES = {
    "default": dj_database_url.parse(
        _DATABASE_URL,
        # A server keeps its PostgreSQL connection between requests: opening one per request added 11 ms
        # to the review page's 18 ms median server time and cost a third of the throughput under 20
        # clients (bench/review_latency.py, CONN_MAX_AGE=0 against 60). Health checks drop a closed one.
        conn_max_age=env_int("DB_CONN_MAX_AGE", 0 if _DATABASE_URL.startswith("sqlite") else 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the worker process write to the same SQLite file: WAL lets readers
    # proceed during a write, IMMEDIATE transactions take the write lock up front (no
    # "database is locked" on lock upgrade), and the timeout waits out the other writer.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # A file, not :memory:, so that a worker process started by a test sees the test database.
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get("WORKBENCH_TEST_SQLITE", str(DATA_DIR / "test-workbench.sqlite3"))
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "workbench" / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
MEDIA_ROOT = DATA_DIR
MEDIA_URL = "media/"

# --- Security (production passes `manage.py check --deploy`) ----------------------------------
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# W021 asks for HSTS preload, which commits a domain and all its subdomains to HTTPS in browsers
# for good: an operator's decision (SECURE_HSTS_PRELOAD=1), not a default.
SILENCED_SYSTEM_CHECKS = env_list("SILENCED_SYSTEM_CHECKS", ["security.W021"])

# --- Celery ---------------------------------------------------------------------------------
BROKER_DIR = Path(os.environ.get("WORKBENCH_BROKER_DIR", DATA_DIR / paths.BROKER_FOLDER)).resolve()
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # Embedded broker: messages are files in the data directory, so a real worker process runs
    # jobs with no Redis installed. Both folders are the same queue seen from both sides.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.2,
    }
# Job state lives in the `Job` table, not in a Celery result backend.
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# One queue name per deployment (tests use their own, so stale messages never reach them).
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("WORKBENCH_QUEUE", "workbench")
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- Workbench ------------------------------------------------------------------------------
# The workbench's address as others reach it: the prefix of the ids in files exported from the command line
# (Web Annotations, IIIF); pages use the address they were requested at.
PUBLIC_URL = os.environ.get("WORKBENCH_PUBLIC_URL", "http://localhost:8000").rstrip("/")
# A IIIF image server reading the pyramids folder (IIPImage, docker/iipsrv/): its IIIF prefix as browsers
# reach it, e.g. http://localhost:8182/iiif/. Empty: manifests use the workbench's own level-0 service.
IIIF_IMAGE_SERVER = os.environ.get("WORKBENCH_IIIF_IMAGE_SERVER", "").strip()
# Images above this many pixels are refused at import (decompression bombs, scanner TIFFs).
MAX_IMAGE_PIXELS = env_int("WORKBENCH_MAX_IMAGE_PIXELS", 80_000_000)
MAX_IMAGE_BYTES = env_int("WORKBENCH_MAX_IMAGE_BYTES", 200 * 1024 * 1024)
# Search and the artwork page's neighbours re-rank this many of the global top hits by spatial
# verification (training/verification.py; bench/signature_quality.py --ablation reranking); 0 turns it off.
SEARCH_VERIFY_TOP = env_int("WORKBENCH_SEARCH_VERIFY_TOP", 20)
THUMBNAIL_SIZES = {
    "grid": env_int("WORKBENCH_THUMB_GRID", 256),
    "viewer": env_int("WORKBENCH_THUMB_VIEWER", 1600),
}
# Threads that decode and thumbnail images during an import (0: one per CPU core, at most 8).
IMPORT_THREADS = env_int("WORKBENCH_IMPORT_THREADS", 0)
# A running job whose worker has not written a heartbeat for this long is marked failed.
JOB_HEARTBEAT_TIMEOUT = env_int("WORKBENCH_JOB_HEARTBEAT_TIMEOUT", 60)
JOB_HEARTBEAT_INTERVAL = env_int("WORKBENCH_JOB_HEARTBEAT_INTERVAL", 5)
# Seed of the deterministic train/val/test assignment of connected components.
SPLIT_SEED = os.environ.get("WORKBENCH_SPLIT_SEED", "workbench-split-v1")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
}
