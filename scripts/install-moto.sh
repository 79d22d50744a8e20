#!/usr/bin/env bash
# Installs moto's standalone S3-compatible server (pinned) into target/tools/moto, for the
# asset-store tests that talk to an object store over HTTP. Idempotent; needs python3 with the
# venv module (Debian: python3-venv) and the Python package index.
set -euo pipefail
cd "$(dirname "$0")/.."
MOTO_VERSION=5.2.5
venv=target/tools/moto
if [ -x "$venv/bin/moto_server" ] && "$venv/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  exit 0
fi
rm -rf "$venv"
mkdir -p target/tools
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
"$venv/bin/moto_server" --help >/dev/null
echo "moto $MOTO_VERSION installed in $venv"
