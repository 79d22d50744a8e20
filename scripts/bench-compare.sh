#!/usr/bin/env bash
# Two builds of dojo-server side by side: BEFORE (a git ref, built in a worktree of its own) and
# the working tree, measured in alternating rounds in one run with the same generator, each
# server pinned to one CPU and the generator to the other (see scripts/bench.sh). Alternating
# rounds spread slow drifts of the machine (other work, thermal state) over both builds.
#
#   scripts/bench-compare.sh bf63e35
#   ROUNDS=3 SERVERS="dojo-sqlite" SCENARIOS="small-rooms" scripts/bench-compare.sh main~5
#
# Environment: ROUNDS (default 2), SERVERS (default "dojo-sqlite dojo-memory"), SCENARIOS
# (default "small-rooms crowded idle-memory"), OUT (default bench/compare), and everything
# scripts/bench.sh reads; SKIP_BUILD=1 measures the binaries already built. Writes $OUT/RESULTS.md; BENCHMARKS.md is not touched.
set -euo pipefail
cd "$(dirname "$0")/.."
BEFORE=${1:?usage: scripts/bench-compare.sh GIT-REF}
before_commit=$(git rev-parse --short "$BEFORE")
after_commit=$(git rev-parse --short HEAD)
ROUNDS=${ROUNDS:-2}
OUT=${OUT:-bench/compare}
export SERVERS=${SERVERS:-dojo-sqlite dojo-memory}
export SCENARIOS=${SCENARIOS:-small-rooms crowded idle-memory}
tree=${BENCH_BEFORE_TREE:-$PWD/target/bench-before}

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  echo "==> building $before_commit in $tree" >&2
  if [ ! -d "$tree" ]; then git worktree add --detach "$tree" "$BEFORE" >&2; fi
  git -C "$tree" checkout --quiet --detach "$BEFORE"
  (cd "$tree" && cargo build --release --locked -p dojo-server >&2)
  echo "==> building the working tree ($after_commit) and the generator" >&2
  cargo build --release --locked -p dojo-server -p dojo-loadtest >&2
  (cd bench/peers && npm ci --no-audit --no-fund --loglevel=error >&2)
fi

mkdir -p "$OUT"
: >"$OUT/results.jsonl"
for round in $(seq "$ROUNDS"); do
  for build in before after; do
    if [ "$build" = before ]; then bin="$tree/target/release/dojo-server"; commit=$before_commit
    else bin="target/release/dojo-server"; commit=$after_commit; fi
    echo "==> round $round: $build ($commit)" >&2
    SKIP_BUILD=1 APPEND=1 UPDATE_BENCHMARKS=0 OUT="$OUT" DOJO_SERVER_BIN="$bin" \
      LABEL=" $build $commit #$round" scripts/bench.sh
  done
done
echo "==> wrote $OUT/RESULTS.md" >&2
