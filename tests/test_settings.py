"""Settings come from the environment; production settings pass Django's deploy check."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    unset = ("DEBUG", "SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_ALLOW_ASYNC_UNSAFE")
    clean = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_the_deploy_check(tmp_path):
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="workbench.example.org",
        WORKBENCH_DATA_DIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_missing_secret_key_in_production_is_a_clear_error(tmp_path):
    result = manage("check", DEBUG="0", WORKBENCH_DATA_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_bad_boolean_is_refused(tmp_path):
    result = manage("check", DEBUG="maybe", WORKBENCH_DATA_DIR=str(tmp_path))
    assert result.returncode != 0 and "DEBUG='maybe'" in result.stderr


def test_embedded_defaults(tmp_path):
    code = (
        "from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE'], s.DATABASES['default']['NAME'], s.CELERY_BROKER_URL)"
    )
    result = manage("shell", "--no-imports", "-c", code, DEBUG="1", WORKBENCH_DATA_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    engine, name, broker = result.stdout.split()
    assert engine == "django.db.backends.sqlite3"
    assert name == str(tmp_path / "workbench.sqlite3")
    assert broker == "filesystem://"


def test_database_url_selects_postgresql(tmp_path):
    code = (
        "from django.conf import settings as s; d = s.DATABASES['default'];"
        "print(d['ENGINE'], d['HOST'], d['NAME'])"
    )
    result = manage(
        "shell",
        "--no-imports",
        "-c",
        code,
        DEBUG="1",
        WORKBENCH_DATA_DIR=str(tmp_path),
        DATABASE_URL="postgres://someone@db.example:5432/workbench",
    )
    assert result.stdout.split() == ["django.db.backends.postgresql", "db.example", "workbench"]
