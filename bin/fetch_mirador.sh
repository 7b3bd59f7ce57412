#!/usr/bin/env bash
# The Mirador viewer (https://projectmirador.org) into the static files, from the npm registry: its
# self-contained browser build (dist/mirador.min.js: React and OpenSeadragon included), pinned by version
# and by the package's SHA-256, so the pages never load a viewer from a CDN. Sourced by bin/_venv.sh;
# does nothing when the file is already there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION=4.0.0
SHA256=ac2423944bd52ffb5a0fc02ff280c117fe39433fac56e50c0b79f0d1ca7c57e6
TARGET="$ROOT/workbench/static/vendor/mirador-$VERSION/mirador.min.js"
[ -f "$TARGET" ] && exit 0
command -v npm >/dev/null || { echo "npm not found: the Mirador viewer is not installed" >&2; exit 1; }
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT
(cd "$SCRATCH" && npm pack "mirador@$VERSION" --silent >/dev/null)
echo "$SHA256  $SCRATCH/mirador-$VERSION.tgz" | sha256sum --check --quiet
tar -xzf "$SCRATCH/mirador-$VERSION.tgz" -C "$SCRATCH" package/dist/mirador.min.js package/LICENSE 2>/dev/null \
  || tar -xzf "$SCRATCH/mirador-$VERSION.tgz" -C "$SCRATCH" package/dist/mirador.min.js
mkdir -p "$(dirname "$TARGET")"
[ -f "$SCRATCH/package/LICENSE" ] && cp "$SCRATCH/package/LICENSE" "$(dirname "$TARGET")/LICENSE"
cp "$SCRATCH/package/dist/mirador.min.js" "$TARGET.tmp" && mv "$TARGET.tmp" "$TARGET"
echo "Mirador $VERSION installed in $(dirname "$TARGET")"
