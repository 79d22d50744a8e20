#!/usr/bin/env bash
# Side-by-side benchmarks: Dojo (SQLite, PostgreSQL, in-memory SQLite, and two instances behind
# Redis) against the y-websocket
# reference server (@y/websocket-server), a plain Hocuspocus server and the bare relay, on the
# same machine, same load, one run. Each (server, scenario) gets a fresh server process; the
# load generator (dojo-loadtest) measures it with --server-pid. Not a test: the figures go to
# bench/results/ and, for a full run, into BENCHMARKS.md between the bench.sh markers.
#
#   scripts/bench.sh                 # full sizes (about 40 minutes on 2 cores)
#   QUICK=1 scripts/bench.sh         # smoke run (about a minute after the build): tiny sizes,
#                                    # four servers; writes only to $OUT
#   SERVERS="dojo-sqlite y-websocket" SCENARIOS="small-rooms idle-memory" scripts/bench.sh
#
# Environment:
#   SERVERS     dojo-sqlite dojo-postgres dojo-memory dojo-cluster y-websocket hocuspocus bare-relay
#               dojo-sqlite-no-compaction (not in the default list: the SQLite file with compaction
#               off, to show what compaction costs in the busy-rooms scenario)
#               (dojo-cluster: two instances sharing one PostgreSQL database and one Redis, every
#               room's clients spread over both; its CPU and memory are the two processes' sums)
#               (QUICK: dojo-sqlite y-websocket hocuspocus bare-relay)
#   SCENARIOS   small-rooms crowded ramp-small-rooms ramp-crowded cold-load reconnect-storm idle-memory
#               busy-rooms (not in the default list: 100 rooms × 10 clients × 5 edits/s for 40 s, long
#               enough for every room to compact several times at the default 500 updates)
#   EXTRA_RUNS  server:scenario pairs run after the main loop (default, for a full run with the
#               default SERVERS and SCENARIOS: the busy-rooms scenario for dojo-sqlite,
#               dojo-sqlite-no-compaction and y-websocket, and the crowded room without compaction:
#               the rows #19's compaction target compares; empty otherwise)
#   OUT         results directory (default bench/results; QUICK: a temporary directory)
#   DOJO_BENCH_POSTGRES_URL  admin URL for the PostgreSQL rows (default
#               postgres://postgres@127.0.0.1:5432/postgres); each server start gets a fresh database
#   DOJO_BENCH_REDIS_URL     Redis for dojo-cluster (default redis://127.0.0.1:6379)
#   UPDATE_BENCHMARKS=0      do not rewrite BENCHMARKS.md (a full run rewrites it by default)
#   APPEND=1    add to the results file instead of starting it afresh (re-run some servers or
#               scenarios; the report keeps the latest line per server and scenario)
#   SERVER_CPUS     CPUs the server under test may use (taskset list; default "1" on a machine with
#                   two or more CPUs). Every server gets the same: the Node servers are
#                   single-threaded, so Dojo gets one core too, its store thread included, and
#                   capacity becomes a property of the server rather than of who wins the CPU.
#   GENERATOR_CPUS  CPUs the load generator may use (default "0"). PIN=0 pins nothing.
#   DOJO_SERVER_BIN the dojo-server binary to measure (default target/release/dojo-server), to
#                   compare two builds side by side (see scripts/bench-compare.sh)
#   LABEL           appended to every server name in the results (e.g. " @bf63e35")
#   SKIP_BUILD=1    use the release binaries and bench/peers/node_modules already there
#
# Needs: a Rust toolchain, Node.js >= 20 with npm, jq, PostgreSQL for dojo-postgres and
# dojo-cluster, and Redis (redis-cli) for dojo-cluster (a row is skipped, and says so, when what
# it needs cannot be reached).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

QUICK=${QUICK:-0}
if [ "$QUICK" = 0 ] && [ -z "${SERVERS:-}" ] && [ -z "${SCENARIOS:-}" ]; then
  EXTRA_RUNS=${EXTRA_RUNS-dojo-sqlite:busy-rooms dojo-sqlite-no-compaction:busy-rooms dojo-sqlite-no-compaction:crowded y-websocket:busy-rooms}
else
  EXTRA_RUNS=${EXTRA_RUNS:-}
fi
if [ "$QUICK" = 1 ]; then
  SERVERS=${SERVERS:-dojo-sqlite y-websocket hocuspocus bare-relay}
else
  SERVERS=${SERVERS:-dojo-sqlite dojo-postgres dojo-memory dojo-cluster y-websocket hocuspocus bare-relay}
fi
SCENARIOS=${SCENARIOS:-small-rooms crowded ramp-small-rooms ramp-crowded cold-load reconnect-storm idle-memory}
ADMIN=${DOJO_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
REDIS=${DOJO_BENCH_REDIS_URL:-redis://127.0.0.1:6379}
APPEND=${APPEND:-0}
DOJO_SERVER_BIN=${DOJO_SERVER_BIN:-target/release/dojo-server}
PIN=${PIN:-1}
if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  SERVER_CPUS=${SERVER_CPUS:-1}
  GENERATOR_CPUS=${GENERATOR_CPUS:-0}
  ON_SERVER_CPUS=(taskset -c "$SERVER_CPUS")
  ON_GENERATOR_CPUS=(taskset -c "$GENERATOR_CPUS")
  pinning="server pinned to CPU $SERVER_CPUS, generator to CPU $GENERATOR_CPUS (taskset); PostgreSQL and Redis are not pinned"
else
  ON_SERVER_CPUS=()
  ON_GENERATOR_CPUS=()
  pinning="nothing pinned: server, generator and databases share every CPU"
fi
if [ "$QUICK" = 1 ]; then
  OUT=${OUT:-$(mktemp -d)}
  UPDATE_BENCHMARKS=${UPDATE_BENCHMARKS:-0}
else
  OUT=${OUT:-bench/results}
  UPDATE_BENCHMARKS=${UPDATE_BENCHMARKS:-1}
fi

# Sizes: full, or QUICK (seconds per scenario). Each is a list of dojo-loadtest flags.
if [ "$QUICK" = 1 ]; then
  SMALL_ROOMS=(--rooms 10 --clients 4 --rate 2 --duration 1)
  CROWDED=(--rooms 1 --clients 20 --rate 2 --duration 1)
  RAMP_SMALL=(--rooms 10 --clients 4 --ramp-start 2 --ramp-factor 2 --ramp-step-secs 0.5 --ramp-max-steps 2 --ramp-warmup-secs 0.5)
  RAMP_CROWDED=(--rooms 1 --clients 20 --ramp-start 1 --ramp-factor 2 --ramp-step-secs 0.5 --ramp-max-steps 2 --ramp-warmup-secs 0.5)
  COLD=(--rooms 10 --history 20)
  STORM=(--rooms 10 --clients 4)
  IDLE=(--rooms 100 --extra-connections 50 --settle 0.5)
  BUSY=(--rooms 10 --clients 4 --rate 5 --duration 1)
else
  SMALL_ROOMS=(--rooms 500 --clients 4 --rate 1 --duration 20)
  CROWDED=(--rooms 1 --clients 200 --rate 0.5 --duration 20)
  RAMP_SMALL=(--rooms 500 --clients 4 --ramp-start 0.5 --ramp-factor 1.5 --ramp-step-secs 8 --ramp-max-steps 10 --ramp-warmup-secs 4 --ramp-retries 1)
  RAMP_CROWDED=(--rooms 1 --clients 200 --ramp-start 0.1 --ramp-factor 1.5 --ramp-step-secs 8 --ramp-max-steps 12 --ramp-warmup-secs 4 --ramp-retries 1)
  COLD=(--rooms 1000 --history 500)
  STORM=(--rooms 500 --clients 4)
  # Settled past Dojo's default hibernation delay (30 s) and its next memory trim (every 10 s),
  # so its idle rooms are measured asleep; the same wait for every server.
  IDLE=(--rooms 10000 --extra-connections 5000 --settle 45)
  BUSY=(--rooms 100 --clients 10 --rate 5 --duration 40)
fi

# 10,000 idle connections need as many descriptors in the generator and in the server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

LABEL=${LABEL:-}
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  echo "==> building release binaries (dojo-server, dojo-loadtest, bare-relay, bench-report)" >&2
  cargo build --release --locked -p dojo-server -p dojo-loadtest >&2
  echo "==> installing the peer servers (npm ci in bench/peers)" >&2
  (cd bench/peers && npm ci --no-audit --no-fund --loglevel=error >&2)
fi

mkdir -p "$OUT/logs"
RESULTS="$OUT/results.jsonl"
[ "$APPEND" = 1 ] || : >"$RESULTS"
work=$(mktemp -d)
server_pid=
second_pid=
cleanup() {
  [ -n "$server_pid" ] && kill -9 "$server_pid" 2>/dev/null || true
  [ -n "$second_pid" ] && kill -9 "$second_pid" 2>/dev/null || true
  if [ -f "$work/pg_dbs" ]; then
    while read -r db; do
      psql "$ADMIN" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    done <"$work/pg_dbs"
  fi
  rm -rf "$work"
}
trap cleanup EXIT

postgres_ok=0
if psql "$ADMIN" -qtAc 'select 1' >/dev/null 2>&1; then postgres_ok=1; fi
redis_ok=0
if redis-cli -u "$REDIS" ping 2>/dev/null | grep -q PONG; then redis_ok=1; fi

# listening_addr OUT PID: waits for the "listening on ADDR" line a server prints, echoes ADDR.
listening_addr() {
  local out=$1 pid=$2 addr=
  for _ in $(seq 200); do
    addr=$(sed -n 's/.*listening on //p' "$out" | head -n1)
    [ -n "$addr" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "$addr"
}

# start_server NAME STORE: starts NAME (STORE: a path or URL the store lives at, reused across a
# restart) and sets server_pid and server_addr (and, for dojo-cluster, second_pid and second_addr).
start_server() {
  local name=$1 store=$2 out="$work/server.out"
  : >"$out"
  second_pid=
  second_addr=
  case $name in
    dojo-cluster)
      local i
      for i in 1 2; do
        "${ON_SERVER_CPUS[@]}" "$DOJO_SERVER_BIN" --addr 127.0.0.1:0 --database-url "$store" --redis-url "$REDIS" \
          --log warn --max-connections 20000 --max-rooms 20000 \
          >"$out.$i" 2>>"$OUT/logs/$name.server.log" &
        if [ "$i" = 1 ]; then server_pid=$!; else second_pid=$!; fi
      done
      server_addr=$(listening_addr "$out.1" "$server_pid")
      second_addr=$(listening_addr "$out.2" "$second_pid")
      if [ -z "$server_addr" ] || [ -z "$second_addr" ]; then
        echo "$name did not start; see $OUT/logs/$name.server.log" >&2
        return 1
      fi
      return 0
      ;;
    dojo-sqlite-no-compaction)
      "${ON_SERVER_CPUS[@]}" "$DOJO_SERVER_BIN" --addr 127.0.0.1:0 --database-url "$store" --log warn \
        --compact-after-updates 1000000000 --compact-after-bytes 1000000000000 \
        --max-connections 20000 --max-rooms 20000 >"$out" 2>>"$OUT/logs/$name.server.log" &
      ;;
    dojo-*)
      "${ON_SERVER_CPUS[@]}" "$DOJO_SERVER_BIN" --addr 127.0.0.1:0 --database-url "$store" --log warn \
        --max-connections 20000 --max-rooms 20000 >"$out" 2>>"$OUT/logs/$name.server.log" &
      ;;
    y-websocket)
      (cd bench/peers && if [ -n "$store" ]; then export YPERSISTENCE=$store; fi &&
        PORT=0 HOST=127.0.0.1 exec "${ON_SERVER_CPUS[@]}" node y-websocket-server.js) >"$out" 2>>"$OUT/logs/$name.server.log" &
      ;;
    hocuspocus)
      (cd bench/peers && PORT=0 HOST=127.0.0.1 exec "${ON_SERVER_CPUS[@]}" node hocuspocus-server.js) >"$out" 2>>"$OUT/logs/$name.server.log" &
      ;;
    bare-relay)
      "${ON_SERVER_CPUS[@]}" target/release/bare-relay --addr 127.0.0.1:0 >"$out" 2>>"$OUT/logs/$name.server.log" &
      ;;
    *) echo "unknown server $name" >&2; exit 2 ;;
  esac
  server_pid=$!
  server_addr=$(listening_addr "$out" "$server_pid")
  if [ -z "$server_addr" ]; then
    echo "$name did not start; see $OUT/logs/$name.server.log" >&2
    return 1
  fi
}

stop_server() {
  local pid
  for pid in $server_pid $second_pid; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in $server_pid $second_pid; do
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  server_pid=
  second_pid=
}

# fresh_store NAME RUN: where a new server of NAME keeps its documents ("" for none).
fresh_store() {
  local name=$1 run=$2
  case $name in
    dojo-sqlite | dojo-sqlite-no-compaction) echo "sqlite:$work/$run.db" ;;
    dojo-memory) echo "sqlite::memory:" ;;
    dojo-postgres | dojo-cluster)
      # Named after the server too: dojo-postgres and dojo-cluster each get their own database
      # for the same scenario (they all live until the script ends).
      local db="dojo_bench_$$_${name//-/_}_${run//-/_}"
      psql "$ADMIN" -qc "CREATE DATABASE $db" >/dev/null
      echo "$db" >>"$work/pg_dbs"
      echo "${ADMIN%/*}/$db"
      ;;
    y-websocket) [ "$run" = cold-load ] && echo "$work/leveldb-$run" || echo "" ;;
    *) echo "" ;;
  esac
}

# loadtest NAME SCENARIO-LOG ARGS...: runs the generator against the running server and appends
# its JSON line to the results.
loadtest() {
  local name=$1 log=$2; shift 2
  local url protocol=y-websocket cluster=()
  if [ "$name" = hocuspocus ]; then url="ws://$server_addr"; protocol=hocuspocus; else url="ws://$server_addr/rooms"; fi
  if [ -n "$second_pid" ]; then cluster=(--also-url "ws://$second_addr/rooms" --also-server-pid "$second_pid"); fi
  local line
  line=$("${ON_GENERATOR_CPUS[@]}" target/release/dojo-loadtest --url "$url" --protocol "$protocol" --server-pid "$server_pid" "${cluster[@]}" \
    --server-name "$name$LABEL" --json --log info "$@" 2>>"$OUT/logs/$log.log" | tail -n1) || true
  if jq -e .kind >/dev/null 2>&1 <<<"$line"; then
    # The machine's 1-minute load average at the end of the run: other work on the box shows.
    jq -c --argjson load "$(cut -d' ' -f1 /proc/loadavg)" '. + {loadavg: $load}' <<<"$line" >>"$RESULTS"
    echo "    $(jq -r '"ok=\(.ok)"' <<<"$line")" >&2
  else
    echo "    no result (see $OUT/logs/$log.log)" >&2
  fi
}

run_scenario() {
  local name=$1 scenario=$2 store
  local log="$name.$scenario"
  echo "==> $name: $scenario" >&2
  if [ "$name" = dojo-cluster ]; then
    case $scenario in cold-load | idle-memory)
      echo "    skipped: a cluster's cold load and idle memory are its instances' (see dojo-postgres)" >&2
      return 0 ;;
    esac
  fi
  case $scenario in
    cold-load)
      case $name in dojo-sqlite | dojo-postgres | y-websocket) ;; *)
        echo "    skipped: $name keeps no documents across a restart" >&2; return 0 ;;
      esac
      store=$(fresh_store "$name" cold-load)
      local prefix="cold-$$"
      start_server "$name" "$store" || return 0
      loadtest "$name" "$log.seed" --scenario cold-load --phase seed --room-prefix "$prefix" "${COLD[@]}"
      # Let stores that write behind (LevelDB in y-websocket) finish, then restart.
      sleep 2
      stop_server
      start_server "$name" "$store" || return 0
      loadtest "$name" "$log" --scenario cold-load --phase measure --room-prefix "$prefix" "${COLD[@]}"
      stop_server
      return 0
      ;;
  esac
  store=$(fresh_store "$name" "$scenario")
  start_server "$name" "$store" || return 0
  case $scenario in
    small-rooms) loadtest "$name" "$log" --scenario small-rooms "${SMALL_ROOMS[@]}" ;;
    crowded) loadtest "$name" "$log" --scenario crowded "${CROWDED[@]}" ;;
    busy-rooms) loadtest "$name" "$log" --scenario edit "${BUSY[@]}" ;;
    ramp-small-rooms) loadtest "$name" "$log" --scenario small-rooms --ramp "${RAMP_SMALL[@]}" ;;
    ramp-crowded) loadtest "$name" "$log" --scenario crowded --ramp "${RAMP_CROWDED[@]}" ;;
    reconnect-storm) loadtest "$name" "$log" --scenario reconnect-storm "${STORM[@]}" ;;
    idle-memory) loadtest "$name" "$log" --scenario idle-memory "${IDLE[@]}" ;;
    *) echo "unknown scenario $scenario" >&2; stop_server; exit 2 ;;
  esac
  stop_server
}

started=$(date -u +%Y-%m-%dT%H:%MZ)
for name in $SERVERS; do
  if { [ "$name" = dojo-postgres ] || [ "$name" = dojo-cluster ]; } && [ "$postgres_ok" = 0 ]; then
    echo "==> $name skipped: $ADMIN cannot be reached" >&2
    continue
  fi
  if [ "$name" = dojo-cluster ] && [ "$redis_ok" = 0 ]; then
    echo "==> dojo-cluster skipped: $REDIS cannot be reached" >&2
    continue
  fi
  for scenario in $SCENARIOS; do
    run_scenario "$name" "$scenario"
  done
done
for pair in $EXTRA_RUNS; do
  run_scenario "${pair%%:*}" "${pair#*:}"
done

# The report: machine, versions, commands, then the tables.
pkg_version() { jq -r .version "bench/peers/node_modules/$1/package.json"; }
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain 2>/dev/null | grep -q . && echo " (with uncommitted changes)" || true)
pg_version=$([ "$postgres_ok" = 1 ] && psql "$ADMIN" -qtAc 'show server_version' || echo "not reached")
{
  echo "Run of $started, commit \`$commit\`$dirty$([ "$QUICK" = 1 ] && echo ', QUICK=1 (smoke sizes: not figures to quote)')$([ "$APPEND" = 1 ] && echo ', APPEND=1: these servers and scenarios were re-run on top of an earlier run, whose rows for the others the tables keep (each line of results.jsonl carries its own figures)')."
  echo
  echo "- Machine: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)), $(free -g | awk '/^Mem:/ {print $2}') GiB, Linux $(uname -r); $pinning."
  echo "- Dojo: release build \`$DOJO_SERVER_BIN\`, $(rustc --version); SQLite store in a file (WAL, synchronous=FULL), PostgreSQL $pg_version (fsync on), and in-memory SQLite (\`sqlite::memory:\`, not durable); dojo-cluster is two instances on PostgreSQL sharing Redis $([ "$redis_ok" = 1 ] && redis-cli -u "$REDIS" info server | sed -n 's/^redis_version://p' | tr -d '\r'), every room's clients alternating between them, its CPU and memory the sum of both; \`--max-connections 20000 --max-rooms 20000\`, other settings default."
  echo "- Node $(node --version): @y/websocket-server $(pkg_version @y/websocket-server) (yjs $(pkg_version yjs), ws $(pkg_version ws); in memory, LevelDB via YPERSISTENCE for the cold load only), @hocuspocus/server $(pkg_version @hocuspocus/server) (default configuration, no extensions, in memory)."
  echo "- bare-relay: \`loadtest/src/bin/bare-relay.rs\` (tokio-tungstenite broadcast, no CRDT work)."
  echo "- Command: \`$([ "$QUICK" = 1 ] && echo 'QUICK=1 ')scripts/bench.sh\` (SERVERS=\"$SERVERS\", SCENARIOS=\"$SCENARIOS\"$([ -n "$EXTRA_RUNS" ] && echo ", EXTRA_RUNS=\"$EXTRA_RUNS\"")). Generator flags per scenario: small-rooms \`${SMALL_ROOMS[*]}\`; crowded \`${CROWDED[*]}\`; ramps \`${RAMP_SMALL[*]}\` and \`${RAMP_CROWDED[*]}\`; cold load \`${COLD[*]}\`; reconnect storm \`${STORM[*]}\`; idle memory \`${IDLE[*]}\`; busy rooms \`${BUSY[*]}\`."
  echo
  target/release/bench-report "$RESULTS"
} >"$OUT/RESULTS.md"
echo "==> wrote $OUT/RESULTS.md and $RESULTS" >&2

if [ "$UPDATE_BENCHMARKS" = 1 ]; then
  begin='<!-- bench.sh:begin -->'
  end='<!-- bench.sh:end -->'
  if grep -qF "$begin" BENCHMARKS.md && grep -qF "$end" BENCHMARKS.md; then
    awk -v begin="$begin" -v end="$end" -v results="$OUT/RESULTS.md" '
      $0 == begin { print; while ((getline line < results) > 0) print line; skipping = 1; next }
      $0 == end { skipping = 0 }
      !skipping { print }
    ' BENCHMARKS.md >"$work/BENCHMARKS.md"
    mv "$work/BENCHMARKS.md" BENCHMARKS.md
    echo "==> updated BENCHMARKS.md between the bench.sh markers" >&2
  else
    echo "==> BENCHMARKS.md has no bench.sh markers; not updated" >&2
  fi
fi
