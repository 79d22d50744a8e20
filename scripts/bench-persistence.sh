#!/usr/bin/env bash
# Persistence benchmark: what storing every update before broadcasting it costs, with group
# commit versus one insert per update, on SQLite and PostgreSQL, against an in-memory SQLite
# store (no durability) as the baseline. Not a test: figures go into BENCHMARKS.md by hand.
#
#   scripts/bench-persistence.sh            # 50 rooms x 4 clients x 5 edits/s for 10 s
#   ROOMS=10 CLIENTS=4 RATE=20 DURATION=10 scripts/bench-persistence.sh
#   RAMP=1 ROOMS=50 CLIENTS=4 RATE=5 scripts/bench-persistence.sh   # capacity: raise the rate
#       (x1.5 per RAMP_STEP_SECS step) until p99 passes 50 ms; the last passing step's edits/s
#       is the most updates per second the configuration stores (every edit is stored once)
#   ONLY="sqlite-group-commit postgres-group-commit" scripts/bench-persistence.sh   # some rows
#
# Needs release builds (built here) and, for the PostgreSQL rows, a server that
# DOJO_BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres) can create a
# database on. Prints one line per configuration: name, then the load generator's JSON plus the
# server's persisted updates and batches.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOMS=${ROOMS:-50}
CLIENTS=${CLIENTS:-4}
RATE=${RATE:-5}
DURATION=${DURATION:-10}
RAMP=${RAMP:-}
RAMP_STEP_SECS=${RAMP_STEP_SECS:-8}
ONLY=${ONLY:-}
ADMIN=${DOJO_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB="dojo_bench_$$"
PG_URL="${ADMIN%/*}/$DB"

cargo build --release --locked -p dojo-server -p dojo-loadtest >&2
work=$(mktemp -d)
cleanup() {
  [ -n "${server:-}" ] && kill "$server" 2>/dev/null || true
  psql "$ADMIN" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

metric() { curl -sf "http://$addr/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }

run() {
  local name=$1 url=$2; shift 2
  if [ -n "$ONLY" ] && [[ " $ONLY " != *" $name "* ]]; then return; fi
  local mode=(--duration "$DURATION")
  [ -n "$RAMP" ] && mode=(--ramp --ramp-step-secs "$RAMP_STEP_SECS")
  target/release/dojo-server --addr 127.0.0.1:0 --database-url "$url" --log warn "$@" \
    >"$work/out" 2>"$work/err" &
  server=$!
  for _ in $(seq 100); do
    addr=$(sed -n 's/^dojo-server listening on //p' "$work/out")
    [ -n "$addr" ] && break
    sleep 0.1
  done
  [ -n "$addr" ] || { cat "$work/err" >&2; exit 1; }
  local result
  result=$(target/release/dojo-loadtest --url "ws://$addr/rooms" --rooms "$ROOMS" --clients "$CLIENTS" \
    --rate "$RATE" "${mode[@]}" --server-pid "$server" --json || true)
  local updates batches
  updates=$(metric dojo_persisted_updates_total)
  batches=$(metric dojo_persisted_batches_total)
  kill -TERM "$server"; wait "$server" || true
  server=
  echo "$name $(jq -c --arg u "$updates" --arg b "$batches" '. + {persisted_updates: ($u|tonumber), persisted_batches: ($b|tonumber)}' <<<"$result")"
}

psql "$ADMIN" -qc "CREATE DATABASE $DB" >/dev/null
run "memory-sqlite"            "sqlite::memory:"
run "sqlite-group-commit"      "sqlite:$work/group.db"
run "sqlite-one-per-update"    "sqlite:$work/single.db" --max-batch-updates 1
run "postgres-group-commit"    "$PG_URL"
psql "$ADMIN" -qc "DROP DATABASE $DB WITH (FORCE)" >/dev/null && psql "$ADMIN" -qc "CREATE DATABASE $DB" >/dev/null
run "postgres-one-per-update"  "$PG_URL" --max-batch-updates 1
