#!/usr/bin/env bash
# The whole test suite: Rust unit, property and integration tests (real server, real sockets),
# then the interop suite with the stock JavaScript clients (yjs, y-websocket, ws), then the same
# clients against the local cluster of scripts/cluster.sh (needs haproxy, redis-server, psql),
# then the web editor: unit tests (Vitest) and end-to-end tests in Chromium (playwright-core
# driving /usr/bin/chromium) against the same binary serving the freshly built bundle. The
# OpenAPI document is checked with a standard validator, and the web editor's generated client
# against it.
# Needs: a Rust toolchain, Node.js >= 20.19 with npm, Debian's chromium and haproxy, python3 with venv,
# curl and jq (the docs/api.md tour runs in the interop suite). cargo-nextest is used
# when installed.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> test tools: moto's S3-compatible server (asset-store tests)"
scripts/install-moto.sh

echo "==> the previous release's dojo-server, for the rolling-upgrade tests (deploy/previous-release.env)"
# Before this tree's build: building it leaves the release's binaries out of target/debug.
scripts/build-previous-release.sh

echo "==> building"
cargo build --workspace --all-targets --locked

echo "==> OpenAPI document: openapi-spec-validator on \`dojo-server openapi\` (writes target/openapi.json)"
scripts/check-openapi.sh

echo "==> Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi

echo "==> interop tests (stock yjs + y-websocket clients against target/debug/dojo-server)"
(
  cd tests/interop
  npm ci --no-audit --no-fund --loglevel=error
  DOJO_SERVER_BIN="$PWD/../../target/debug/dojo-server" npm test
)

echo "==> cluster tests (scripts/cluster.sh: HAProxy, two instances, two workers; stock clients through the load balancer)"
(
  cd tests/interop
  BIN_DIR="$PWD/../../target/debug" npm run test:cluster
)

echo "==> web editor: build, unit tests, end-to-end tests in Chromium against target/debug/dojo-server"
(
  cd web
  npm ci --no-audit --no-fund --loglevel=error
  # The typed client must match the server's document: regenerating it must change nothing.
  DOJO_OPENAPI="$PWD/../target/openapi.json" npm run api:check
  npm run build
  npm test
  DOJO_SERVER_BIN="$PWD/../target/debug/dojo-server" DOJO_WEB_DIR="$PWD/dist" npm run test:e2e
)
