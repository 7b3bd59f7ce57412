# Sourced by bin/start and bin/test: a virtual environment with the pinned dependencies.
# Re-installs only when pyproject.toml changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PYTHON="$candidate"; break
    fi
  done
fi
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || {
  echo "The workbench needs Python 3.11 (torch 2.14.1 wheels); found $("$PYTHON" --version)." >&2; exit 1; }
EXTRAS="${1:-}"
STAMP=".venv/.installed${EXTRAS:+-$EXTRAS}"
if [ ! -x .venv/bin/python ]; then
  echo "Creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
  echo "Installing pinned dependencies into .venv (first time: a few minutes; torch is large)"
  mkdir -p .venv/log
  if ! .venv/bin/python -m pip install --disable-pip-version-check -e ".${EXTRAS:+[$EXTRAS]}" \
      > .venv/log/pip-install.log 2>&1; then
    grep -v '^WARNING: Location' .venv/log/pip-install.log | tail -40 >&2
    echo "Installing the dependencies failed; the full log is .venv/log/pip-install.log" >&2
    exit 1
  fi
  # iiif-prezi3 (IIIF's Presentation 3.0 library, used by the tests only) caps Pillow at 12.0.0, a cap from
  # its own release tooling, while the workbench pins 13.0.0; pip would refuse the pair. Its model and
  # builders, which the tests use, never touch Pillow (only its helper that measures a local image file
  # does), so it goes in without its dependencies; pydantic and requests come from the dev extras.
  if [ "$EXTRAS" = dev ] && ! .venv/bin/python -m pip install --disable-pip-version-check --no-deps \
      iiif-prezi3==3.1.1 >> .venv/log/pip-install.log 2>&1; then
    tail -20 .venv/log/pip-install.log >&2
    echo "Installing iiif-prezi3 failed; the full log is .venv/log/pip-install.log" >&2
    exit 1
  fi
  .venv/bin/python -c 'import django, celery, torch' # fail here, clearly, if the install did not work
  touch "$STAMP"
fi
export PATH="$ROOT/.venv/bin:$PATH"
# The MTCNN face detector's weights (training/face_weights.py): three small files out of the facenet-pytorch
# wheel, downloaded from the package registry once and checked by SHA-256. Not fatal: without them only face
# detection is refused, with the command to fetch them.
if ! .venv/bin/python -m training.face_weights > .venv/log/face-weights.log 2>&1; then
  echo "warning: the face detector's weights could not be fetched ($(tail -1 .venv/log/face-weights.log));" \
       "face detection is off until 'python -m training.face_weights' succeeds" >&2
fi
# The Mirador viewer, from the npm registry into the static files (bin/fetch_mirador.sh). Not fatal: without
# it the viewer page says how to install it.
if ! bin/fetch_mirador.sh > .venv/log/mirador.log 2>&1; then
  echo "warning: the Mirador viewer could not be installed ($(tail -1 .venv/log/mirador.log));" \
       "run bin/fetch_mirador.sh" >&2
fi
