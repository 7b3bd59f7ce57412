#!/usr/bin/env bash
# Container entrypoint. First argument, the role:
#   web     wait for the database, migrate, run gunicorn on 0.0.0.0:8000
#   worker  wait for the database, run the Celery worker
#   other   wait for the database, exec the arguments as given (e.g. `python manage.py shell`)
# WAIT_FOR_DB=0 skips the wait; DB_WAIT_SECONDS (default 60) bounds it.
set -euo pipefail
cd /app
mkdir -p "${WORKBENCH_DATA_DIR:-/data}"

wait_for_db() {
  [ "${WAIT_FOR_DB:-1}" = "0" ] && return 0
  local deadline=$(( SECONDS + ${DB_WAIT_SECONDS:-60} ))
  until python manage.py shell -v0 -c 'from django.db import connection; connection.ensure_connection()' \
      >/dev/null 2>&1; do
    if (( SECONDS >= deadline )); then
      echo "entrypoint: database not reachable after ${DB_WAIT_SECONDS:-60}s; last error:" >&2
      python manage.py shell -v0 -c 'from django.db import connection; connection.ensure_connection()' || true
      exit 1
    fi
    echo "entrypoint: waiting for the database..." >&2
    sleep 2
  done
}

role="${1:-web}"
[ "$#" -gt 0 ] && shift

case "$role" in
  web)
    wait_for_db
    python manage.py migrate --noinput
    exec gunicorn workbench.wsgi:application \
      --bind 0.0.0.0:8000 \
      --workers "${GUNICORN_WORKERS:-3}" \
      --timeout "${GUNICORN_TIMEOUT:-120}" \
      --graceful-timeout 30 \
      --access-logfile - \
      "$@"
    ;;
  worker)
    wait_for_db
    exec celery -A workbench worker --loglevel=INFO \
      --concurrency="${WORKER_CONCURRENCY:-1}" -n "worker@%h" "$@"
    ;;
  *)
    wait_for_db
    exec "$role" "$@"
    ;;
esac
