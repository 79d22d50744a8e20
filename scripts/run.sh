#!/usr/bin/env bash
# Runs Dojo: the server and the web editor it serves at /.
#
# Builds the editor bundle (web/dist) first when it is missing or older than the editor's
# sources (npm ci + npm run build; skipped with a message when npm is not installed: the
# server then runs without the editor), then replaces itself with the release server.
# Arguments go to dojo-server, e.g. `scripts/run.sh --addr 0.0.0.0:8787`.
set -euo pipefail
cd "$(dirname "$0")/.."

web_stale() {
  [ -f web/dist/index.html ] || return 0
  local newer
  newer=$(find web/src web/index.html web/package.json web/package-lock.json web/vite.config.ts web/tsconfig.json \
    -newer web/dist/index.html -print -quit 2>/dev/null)
  [ -n "$newer" ]
}

if web_stale; then
  if command -v npm >/dev/null 2>&1; then
    echo "==> building the web editor (web/dist)"
    (cd web && npm ci --no-audit --no-fund --loglevel=error && npm run build)
  else
    echo "!! npm is not installed: the web editor is not built; the server runs without it." >&2
    echo "!! Install Node.js >= 20.19 with npm and run scripts/run.sh again to get the editor." >&2
  fi
fi

export DOJO_WEB_DIR="${DOJO_WEB_DIR:-$PWD/web/dist}"
echo "==> starting dojo-server: open the address it prints (http://127.0.0.1:8787/ by default) in a browser"
exec cargo run --release -p dojo-server -- "$@"
