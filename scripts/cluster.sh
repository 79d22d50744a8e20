#!/usr/bin/env bash
# The deployment topology of deploy/compose.yaml from local processes: HAProxy (Debian's
# `haproxy`, with deploy/haproxy.cfg) in front of two dojo-server instances sharing a PostgreSQL
# database and a private redis-server, and two dojo-worker processes. No container runtime.
#
#   scripts/cluster.sh start            start everything; prints the load balancer's URL
#   scripts/cluster.sh stop             stop everything (gracefully) and drop the database
#   scripts/cluster.sh status           what runs, and HAProxy's view of the instances
#   scripts/cluster.sh env              the cluster's addresses (KEY=VALUE lines)
#   scripts/cluster.sh kill N           SIGKILL dojo-server N (1 or 2): a crash
#   scripts/cluster.sh drain N          SIGTERM dojo-server N, wait for it to exit, print how long
#   scripts/cluster.sh start-server N   start dojo-server N again on its port, wait until ready
#
# Environment:
#   BIN_DIR                  where dojo-server and dojo-worker are (default target/release;
#                            CI uses target/debug). Build them first: cargo build --release
#   DOJO_CLUSTER_DIR         state, logs and assets (default target/cluster)
#   DOJO_CLUSTER_PORT        the load balancer's port (default: a free one)
#   DOJO_TEST_POSTGRES_URL   a PostgreSQL server and a user that may create databases (default
#                            postgres://postgres@127.0.0.1:5432/postgres, as the tests use); the
#                            cluster gets a database of its own, dropped by `stop`
#                            (DOJO_CLUSTER_KEEP_DB=1 keeps it)
#   DOJO_*                   anything else is passed on to the servers and workers
#                            (e.g. DOJO_JWT_SECRET; without a key they run in dev mode)
# Needs: haproxy, redis-server, psql, curl, python3 (to find free ports).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

BIN_DIR=${BIN_DIR:-target/release}
case "$BIN_DIR" in /*) ;; *) BIN_DIR="$ROOT/$BIN_DIR" ;; esac
DIR=${DOJO_CLUSTER_DIR:-target/cluster}
case "$DIR" in /*) ;; *) DIR="$ROOT/$DIR" ;; esac
STATE="$DIR/cluster.env"
ADMIN_URL=${DOJO_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
# Bounds on every wait, in tenths of a second.
READY_WAIT=${DOJO_CLUSTER_READY_WAIT:-300}
STOP_WAIT=${DOJO_CLUSTER_STOP_WAIT:-450}

die() { echo "cluster.sh: $*" >&2; exit 1; }
log() { echo "cluster.sh: $*" >&2; }

need() { command -v "$1" >/dev/null 2>&1 || die "$1 is missing ($2)"; }

# `url` with its database name replaced by $2.
with_database() {
  local url=$1 name=$2 query='' base
  case "$url" in *\?*) query="?${url#*\?}"; url=${url%%\?*} ;; esac
  base=${url#*://}
  case "$base" in
    */*) echo "${url%%://*}://${base%%/*}/$name$query" ;;
    *) echo "$url/$name$query" ;;
  esac
}

# Free ports below the kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768 and up by
# default). A port the kernel hands out for bind(0) is itself ephemeral: between this check and
# the process that listens on it, an outbound connection (a server's database pool) may take it
# as its local port, and HAProxy, which binds last, then exits on EADDRINUSE.
free_ports() {
  python3 - "$1" <<'EOF'
import random, socket, sys
wanted = int(sys.argv[1])
try:
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except (OSError, ValueError, IndexError):
    low = 32768
low = max(low, 10001)
ports, socks = [], []
for port in random.sample(range(10000, low), k=min(2000, low - 10000)):
    if len(ports) == wanted:
        break
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        continue
    socks.append(s)
    ports.append(port)
if len(ports) < wanted:
    sys.exit("no free ports below the ephemeral range")
print(" ".join(str(p) for p in ports))
EOF
}

pidfile() { echo "$DIR/pids/$1.pid"; }

# Whether process $1 runs: exists and is not a zombie. (A process started by an earlier call of
# this script has been re-parented; until its new parent reaps it, `kill -0` still succeeds.)
running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

# The pid in $1's pid file if that process is alive and still runs the program we started.
live_pid() {
  local file pid
  file=$(pidfile "$1")
  [ -f "$file" ] || return 1
  pid=$(cat "$file")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$2" || return 1
  echo "$pid"
}

# Starts a background process named $1 (log in logs/$1.log), records its pid.
spawn() {
  local name=$1; shift
  mkdir -p "$DIR/logs" "$DIR/pids"
  "$@" </dev/null >>"$DIR/logs/$name.log" 2>&1 &
  echo $! >"$(pidfile "$name")"
}

load_state() {
  [ -f "$STATE" ] || die "no cluster state at $STATE: run '$0 start' first"
  # shellcheck disable=SC1090
  . "$STATE"
}

server_port() {
  case "$1" in
    1) echo "${DOJO_CLUSTER_SERVER_1##*:}" ;;
    2) echo "${DOJO_CLUSTER_SERVER_2##*:}" ;;
    *) die "no dojo-server $1 (1 or 2)" ;;
  esac
}

# Waits until $1 answers 200, or fails naming $2 and its log $3 once the process spawned as $4
# has exited. Whether it runs, not which program it runs: just after `spawn`, the child may not
# have exec'd yet, and its command line is still this script's (a CI run failed that way).
wait_http() {
  local url=$1 what=$2 logfile=$3 pidname=${4:-} i
  for ((i = 0; i < READY_WAIT; i++)); do
    if curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; then return 0; fi
    if [ -n "$pidname" ] && ! running "$(cat "$(pidfile "$pidname")" 2>/dev/null)"; then
      tail -n 30 "$logfile" >&2 || true
      die "$what exited during start-up (log: $logfile)"
    fi
    sleep 0.1
  done
  tail -n 30 "$logfile" >&2 || true
  die "$what did not answer $url within $((READY_WAIT / 10)) s (log: $logfile)"
}

start_server() {
  local n=$1 port
  port=$(server_port "$n")
  if live_pid "dojo-$n" dojo-server >/dev/null; then die "dojo-server $n is already running"; fi
  # --run-workers 0: runs execute in the dojo-worker processes, as in deploy/compose.yaml.
  spawn "dojo-$n" "$BIN_DIR/dojo-server" --addr "127.0.0.1:$port" \
    --database-url "$DOJO_CLUSTER_DATABASE" --redis-url "$DOJO_CLUSTER_REDIS" \
    --assets-dir "$DIR/assets" --run-workers 0 --trusted-proxies 127.0.0.1
  wait_http "http://127.0.0.1:$port/readyz" "dojo-server $n" "$DIR/logs/dojo-$n.log" "dojo-$n"
  log "dojo-server $n ready on 127.0.0.1:$port (pid $(cat "$(pidfile "dojo-$n")"))"
}

start_worker() {
  local n=$1 i
  spawn "worker-$n" env DATABASE_URL="$DOJO_CLUSTER_DATABASE" REDIS_URL="$DOJO_CLUSTER_REDIS" \
    DOJO_SERVER_URL="$DOJO_CLUSTER_LB" DOJO_ASSETS_DIR="$DIR/assets" "$BIN_DIR/dojo-worker"
  for ((i = 0; i < READY_WAIT; i++)); do
    grep -q '^dojo-worker ready as ' "$DIR/logs/worker-$n.log" 2>/dev/null && return 0
    live_pid "worker-$n" dojo-worker >/dev/null || {
      tail -n 30 "$DIR/logs/worker-$n.log" >&2
      die "dojo-worker $n exited during start-up"
    }
    sleep 0.1
  done
  die "dojo-worker $n did not get ready within $((READY_WAIT / 10)) s (log: $DIR/logs/worker-$n.log)"
}

# SIGTERM (or $3) to $1, then wait for it to exit (SIGKILL past the bound). Prints the seconds.
stop_process() {
  local name=$1 program=$2 signal=${3:-TERM} pid started i
  pid=$(live_pid "$name" "$program") || { rm -f "$(pidfile "$name")"; return 0; }
  started=$(date +%s.%N)
  kill "-$signal" "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_WAIT * 4; i++)); do
    running "$pid" || break
    sleep 0.025
  done
  if running "$pid"; then
    log "$name did not exit within $((STOP_WAIT / 10)) s of SIG$signal: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$(pidfile "$name")"
  python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$started" "$(date +%s.%N)"
}

haproxy_status() {
  curl -fsS --max-time 2 "$DOJO_CLUSTER_STATS;csv" 2>/dev/null |
    awk -F, '$1 == "dojo_rooms" && $2 ~ /^dojo[12]$/ { print $2 " " $18 }'
}

cmd_start() {
  need haproxy "apt-get install haproxy"
  need redis-server "apt-get install redis-server"
  need psql "apt-get install postgresql-client"
  need curl "apt-get install curl"
  need python3 "apt-get install python3"
  [ -x "$BIN_DIR/dojo-server" ] && [ -x "$BIN_DIR/dojo-worker" ] ||
    die "no dojo-server / dojo-worker in $BIN_DIR: cargo build --release (or set BIN_DIR)"
  if [ -f "$STATE" ]; then
    die "a cluster already runs from $DIR ('$0 stop' first, or set DOJO_CLUSTER_DIR)"
  fi
  mkdir -p "$DIR/assets" "$DIR/logs" "$DIR/pids"
  rm -f "$DIR"/logs/*.log

  local lb redis s1 s2 stats name
  read -r lb redis s1 s2 stats <<<"$(free_ports 5)"
  lb=${DOJO_CLUSTER_PORT:-$lb}
  name="dojo_cluster_$(date +%s)_$$"
  psql "$ADMIN_URL" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE $name" >/dev/null ||
    die "cannot create a database at $ADMIN_URL (set DOJO_TEST_POSTGRES_URL)"
  cat >"$STATE" <<EOF
DOJO_CLUSTER_LB=http://127.0.0.1:$lb
DOJO_CLUSTER_STATS=http://127.0.0.1:$stats/stats
DOJO_CLUSTER_SERVER_1=127.0.0.1:$s1
DOJO_CLUSTER_SERVER_2=127.0.0.1:$s2
DOJO_CLUSTER_REDIS=redis://127.0.0.1:$redis
DOJO_CLUSTER_DATABASE=$(with_database "$ADMIN_URL" "$name")
DOJO_CLUSTER_DATABASE_NAME=$name
EOF
  load_state
  # From here on, a failure stops what was started (and drops the database).
  CLUSTER_UP=0
  trap 'if [ "$CLUSTER_UP" != 1 ]; then log "start failed: stopping what started"; cmd_stop >/dev/null 2>&1 || true; fi' EXIT

  spawn redis redis-server --bind 127.0.0.1 --port "$redis" --save "" --appendonly no
  local i
  for ((i = 0; i < READY_WAIT; i++)); do
    redis-cli -p "$redis" ping >/dev/null 2>&1 && break
    (exec 3<>"/dev/tcp/127.0.0.1/$redis") 2>/dev/null && break
    sleep 0.1
  done
  live_pid redis redis-server >/dev/null || die "redis-server did not start (log: $DIR/logs/redis.log)"

  # One after the other: the first applies the migrations.
  start_server 1
  start_server 2

  spawn haproxy env DOJO_LB_BIND="127.0.0.1:$lb" DOJO_LB_STATS_BIND="127.0.0.1:$stats" \
    DOJO_SERVER_1="$DOJO_CLUSTER_SERVER_1" DOJO_SERVER_2="$DOJO_CLUSTER_SERVER_2" \
    haproxy -db -f "$ROOT/deploy/haproxy.cfg"
  wait_http "$DOJO_CLUSTER_LB/readyz" "haproxy" "$DIR/logs/haproxy.log" haproxy

  start_worker 1
  start_worker 2
  CLUSTER_UP=1

  echo "cluster up: $DOJO_CLUSTER_LB (editor at /, rooms at ${DOJO_CLUSTER_LB/http/ws}/rooms/{room})"
  echo "  instances $DOJO_CLUSTER_SERVER_1 and $DOJO_CLUSTER_SERVER_2, HAProxy stats $DOJO_CLUSTER_STATS"
  echo "  logs in $DIR/logs; '$0 stop' stops it"
}

cmd_stop() {
  load_state
  local n
  # Workers first (their runs are resumed by the next workers), then the instances (each
  # drains), then what they used.
  for n in 1 2; do stop_process "worker-$n" dojo-worker >/dev/null; done
  for n in 1 2; do stop_process "dojo-$n" dojo-server >/dev/null; done
  stop_process haproxy haproxy >/dev/null
  stop_process redis redis-server >/dev/null
  if [ "${DOJO_CLUSTER_KEEP_DB:-}" = 1 ]; then
    log "kept the database $DOJO_CLUSTER_DATABASE"
  else
    psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DOJO_CLUSTER_DATABASE_NAME WITH (FORCE)" >/dev/null ||
      log "could not drop the database $DOJO_CLUSTER_DATABASE_NAME"
  fi
  rm -f "$STATE"
  log "stopped (logs kept in $DIR/logs)"
}

cmd_status() {
  load_state
  local name program pid
  for name in haproxy redis dojo-1 dojo-2 worker-1 worker-2; do
    case "$name" in
      dojo-*) program=dojo-server ;;
      worker-*) program=dojo-worker ;;
      redis) program=redis-server ;;
      *) program=$name ;;
    esac
    if pid=$(live_pid "$name" "$program"); then echo "$name: running (pid $pid)"; else echo "$name: stopped"; fi
  done
  echo "HAProxy's view:"
  haproxy_status | sed 's/^/  /'
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) load_state; cat "$STATE" ;;
  kill)
    load_state
    [ -n "${2:-}" ] || die "kill N"
    server_port "$2" >/dev/null
    pid=$(live_pid "dojo-$2" dojo-server) || die "dojo-server $2 is not running"
    kill -KILL "$pid"
    for ((i = 0; i < STOP_WAIT; i++)); do running "$pid" || break; sleep 0.05; done
    rm -f "$(pidfile "dojo-$2")"
    log "dojo-server $2 killed (SIGKILL)"
    ;;
  drain)
    load_state
    [ -n "${2:-}" ] || die "drain N"
    server_port "$2" >/dev/null
    live_pid "dojo-$2" dojo-server >/dev/null || die "dojo-server $2 is not running"
    secs=$(stop_process "dojo-$2" dojo-server TERM)
    log "dojo-server $2 drained in $secs s"
    echo "$secs"
    ;;
  start-server)
    load_state
    [ -n "${2:-}" ] || die "start-server N"
    start_server "$2"
    ;;
  *)
    sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'
    [ -n "${1:-}" ] && exit 2
    ;;
esac
