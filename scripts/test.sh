#!/usr/bin/env bash
# The whole test suite: Rust unit, property and integration tests (real server, real sockets),
# then the interop suite with the stock JavaScript clients (yjs, y-websocket, ws).
# Needs: a Rust toolchain, Node.js >= 20 with npm. cargo-nextest is used when installed.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> building"
cargo build --workspace --all-targets --locked

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
