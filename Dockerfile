# syntax=docker/dockerfile:1
#
# Dojo's image: `dojo-server` and `dojo-worker` (release builds) and the web editor, on a small
# Debian runtime as a non-root user. Build it from the repository root:
#
#   docker build -t dojo:local .
#
# The same image runs both processes: `dojo-server` by default, `dojo-worker` as the command
# (deploy/compose.yaml does both). Configuration is the environment, as documented in README.md
# (DATABASE_URL, REDIS_URL, DOJO_JWT_SECRET, ...); docs/deployment.md describes the cluster.

ARG RUST_VERSION=1.95
ARG NODE_VERSION=22

# --- Rust: the two binaries --------------------------------------------------------------
# The toolchain CI builds with (the workspace needs at least 1.88).
FROM rust:${RUST_VERSION}-bookworm AS rust-build
# aws-lc-sys (rustls' crypto provider, pulled in by the provider adapters' HTTP client) builds
# C code; cmake and clang cover every version of its build script.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake clang \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The target directory and the registry live in cache mounts, so the binaries are copied out
# of the mount within the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p dojo-server -p dojo-executor --bin dojo-server --bin dojo-worker \
 && mkdir -p /out \
 && cp target/release/dojo-server target/release/dojo-worker /out/

# --- the web editor -----------------------------------------------------------------------
FROM node:${NODE_VERSION}-bookworm-slim AS web-build
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY web/ ./
RUN npm run build

# --- runtime --------------------------------------------------------------------------------
FROM debian:bookworm-slim
# ca-certificates: the provider adapters and S3 verify TLS against the system's roots.
# curl: the HEALTHCHECK below (the image has no other HTTP client).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 dojo \
 && useradd --system --uid 10001 --gid dojo --home-dir /var/lib/dojo --shell /usr/sbin/nologin dojo \
 && mkdir -p /var/lib/dojo/assets \
 && chown -R dojo:dojo /var/lib/dojo

COPY --from=rust-build /out/dojo-server /out/dojo-worker /usr/local/bin/
COPY --from=web-build /web/dist /usr/share/dojo/web

# Listen on every interface inside the container (the binary's default is loopback only); the
# editor from the image; SQLite and assets under the data volume unless DATABASE_URL and
# DOJO_ASSETS_URL say otherwise. Logs as JSON lines on stderr.
ENV DOJO_ADDR=0.0.0.0:8787 \
    DOJO_WEB_DIR=/usr/share/dojo/web \
    DATABASE_URL=sqlite:/var/lib/dojo/dojo.db \
    DOJO_ASSETS_DIR=/var/lib/dojo/assets \
    DOJO_LOG_FORMAT=json

USER 10001:10001
WORKDIR /var/lib/dojo
VOLUME ["/var/lib/dojo"]
EXPOSE 8787

# /readyz answers 503 once a drain has begun or when the store does not answer. It assumes the
# port of DOJO_ADDR above; a worker container (no HTTP port) should disable it
# (`healthcheck: disable: true` in compose, as deploy/compose.yaml does).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["curl", "--fail", "--silent", "--show-error", "--max-time", "2", "http://127.0.0.1:8787/readyz"]

# SIGTERM starts the graceful drain (docs/deployment.md); give it more than
# DOJO_SHUTDOWN_GRACE_SECS before a SIGKILL (compose: stop_grace_period).
STOPSIGNAL SIGTERM
CMD ["dojo-server"]
