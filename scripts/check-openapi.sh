#!/usr/bin/env bash
# Checks the HTTP API's OpenAPI document with a standard validator: python-openapi's
# openapi-spec-validator (pinned; it implements OpenAPI 3.0, 3.1 and 3.2 against the official
# schemas plus the checks a schema cannot express, such as unique operationIds and path
# parameters that match their templates), installed into target/tools/openapi-spec-validator.
# The document comes from `dojo-server openapi` (DOJO_SERVER_BIN, default target/debug/
# dojo-server): no database, no port. Also writes it to target/openapi.json, where the web
# editor's `npm run api:check` reads it. Needs python3 with venv and the Python package index.
set -euo pipefail
cd "$(dirname "$0")/.."
VALIDATOR_VERSION=0.9.0
venv=target/tools/openapi-spec-validator
bin="${DOJO_SERVER_BIN:-target/debug/dojo-server}"

if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('openapi-spec-validator') != '$VALIDATOR_VERSION')" 2>/dev/null; then
  rm -rf "$venv"
  mkdir -p target/tools
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "openapi-spec-validator==$VALIDATOR_VERSION"
  echo "openapi-spec-validator $VALIDATOR_VERSION installed in $venv"
fi

"$bin" openapi > target/openapi.json
# --schema 3.1: the document says 3.1.0; refuse it rather than validate it as something else.
"$venv/bin/openapi-spec-validator" --schema 3.1 --validation-errors all target/openapi.json
