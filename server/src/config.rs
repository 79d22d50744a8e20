//! One typed configuration, read from flags and the environment at start-up.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

pub use crate::auth_settings::AuthSettings;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "dojo-server",
    version,
    about = "Dojo: a real-time Yjs room server for node-based AI canvases"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "DOJO_ADDR", default_value = "127.0.0.1:8787")]
    pub addr: SocketAddr,

    /// Log filter, in `RUST_LOG` syntax (e.g. `info`, `dojo_server=debug,info`).
    #[arg(long, env = "DOJO_LOG", default_value = "info")]
    pub log: String,

    /// Log output format.
    #[arg(long, env = "DOJO_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Where documents are stored: `postgres://…`, or `sqlite:PATH`. Unset: an SQLite file
    /// under `./data/`, so a first run persists with nothing else installed.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,

    /// Redis for scale-out (`redis://host:6379`): several instances then serve the same rooms.
    /// Needs PostgreSQL. Unset: one instance.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    #[command(flatten)]
    pub limits: Limits,

    #[command(flatten)]
    pub rooms: RoomPolicy,

    #[command(flatten)]
    pub auth: AuthSettings,

    #[command(flatten)]
    pub http: HttpSettings,

    #[command(flatten)]
    pub executor: ExecutorSettings,

    #[command(flatten)]
    pub webhooks: crate::webhook_settings::WebhookSettings,

    #[command(flatten)]
    pub teams: crate::team_settings::TeamSettings,

    #[command(flatten)]
    pub keys: crate::key_settings::KeySettings,

    #[command(flatten)]
    pub agents: crate::agent_settings::AgentSettings,

    #[command(flatten)]
    pub plans: crate::plan_settings::PlanSettings,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// Serve rooms (the default).
    Serve,
    /// Apply database migrations and exit (serving applies them too).
    Migrate,
    /// Print the HTTP API's OpenAPI 3.1 document (as served at /api/openapi.json) and exit.
    /// Opens no database and binds no port.
    Openapi,
    /// Administer accounts; back up and restore the database.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum AdminCommand {
    /// Add credits to a user (negative to remove), or with `--team` to a team, recorded in the
    /// ledger.
    GrantCredits {
        /// The user's id, email or token subject; with `--team`, the team's id.
        user: String,
        /// The first argument is a team id: the team's balance is granted.
        #[arg(long)]
        team: bool,
        #[arg(allow_negative_numbers = true)]
        amount: i64,
        /// Makes the grant idempotent: a second run with the same key changes nothing.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// List users with their balances.
    ListUsers {
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Write a consistent copy of the SQLite database (documents, accounts, ledger, runs) to
    /// FILE while the server runs. PostgreSQL: use pg_dump (see docs/operations.md).
    Backup {
        /// Where to write the backup (a new file, unless --force).
        #[arg(long, value_name = "FILE")]
        to: std::path::PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Replace the SQLite database with a backup, after checking it. The server must be
    /// stopped. PostgreSQL: use pg_restore (see docs/operations.md).
    Restore {
        /// The backup to restore.
        #[arg(long, value_name = "FILE")]
        from: std::path::PathBuf,
        /// Replace an existing database (kept beside it as `*.before-restore-<time>`).
        #[arg(long)]
        force: bool,
    },
    /// Put a user or a team on a plan (`DOJO_PLANS`); `--plan default` returns them to the
    /// default plan. Applies to runs submitted from then on.
    SetPlan {
        /// The user's id, email or token subject.
        #[arg(long, conflicts_with = "team", required_unless_present = "team")]
        user: Option<String>,
        /// The team's id.
        #[arg(long)]
        team: Option<String>,
        /// The plan's name.
        #[arg(long)]
        plan: String,
    },
    /// Print an HS256 token signed with DOJO_JWT_SECRET (for services, workers and testing).
    MintToken {
        /// The token's subject (user).
        subject: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl_secs: u64,
        /// Explicit grants, `ROOM_OR_PREFIX*=read|write|admin`, repeatable.
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// Let `admin` grants also manage workflows other users own in the granted rooms
        /// (rename, publish, share, delete). Without it they administer documents only.
        #[arg(long)]
        manage_workflows: bool,
    },
    /// Re-seal every team provider key under the current (first) key-encryption key of
    /// DOJO_KEY_ENCRYPTION_KEYS; the old keys must still be listed. Safe while servers run
    /// (each row is replaced only if unchanged since read); prints the counts.
    RotateProviderKeys,
    /// Make a user staff (may use the agents' job queue) or admin (also its schedules), or take
    /// the role away with `--role none`. Only here: the API grants no staff roles.
    GrantStaff {
        /// The user's id, email or token subject.
        #[arg(long)]
        user: String,
        /// `staff`, `admin` or `none`.
        #[arg(long)]
        role: String,
    },
}

/// The HTTP edge: who may call from a browser, how much, how often.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpSettings {
    /// Origins allowed to call the HTTP API from a browser, comma-separated. Unset: none in
    /// production; in dev mode only local ones (`http://localhost:*`, `127.0.0.1`, `[::1]`),
    /// and dev mode refuses (403) requests and WebSockets from other origins. `*` allows any
    /// (refused unless in dev mode).
    #[arg(long, env = "DOJO_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Load balancers and reverse proxies (addresses or CIDR ranges, comma-separated) whose
    /// `X-Forwarded-For` names the client. Per-address limits and `/metrics`' loopback rule then
    /// apply to the client, not the proxy. Unset: the header is ignored (a client could forge it).
    #[arg(long, env = "DOJO_TRUSTED_PROXIES", value_delimiter = ',', value_parser = crate::client_addr::parse_proxy)]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Largest HTTP request body, in bytes (document updates included).
    #[arg(long, env = "DOJO_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Most operations one `POST /api/rooms/{room}/edits` batch may hold; a longer one is
    /// refused whole (422) before any of it is read.
    #[arg(long, env = "DOJO_MAX_EDIT_OPS", default_value_t = 500)]
    pub max_edit_ops: usize,

    /// HTTP requests per second allowed per user (token bucket); beyond: 429 with Retry-After.
    #[arg(long, env = "DOJO_HTTP_RATE", default_value_t = 20)]
    pub http_rate_per_sec: u32,

    /// Burst of HTTP requests per user above the steady rate.
    #[arg(long, env = "DOJO_HTTP_BURST", default_value_t = 100)]
    pub http_burst: u32,

    /// Seconds between two exports of one user's data (`GET /api/me/export`); sooner: 429.
    #[arg(long, env = "DOJO_EXPORT_INTERVAL_SECS", default_value_t = 60)]
    pub export_interval_secs: u64,

    /// Largest export archive, in bytes; a user with more data is refused (413,
    /// `export_too_large`) before it is sent.
    #[arg(long, env = "DOJO_EXPORT_MAX_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub export_max_bytes: u64,

    /// WebSocket frames per second allowed per signed-in user across their connections;
    /// beyond, their frames are read more slowly (back-pressure), not dropped.
    #[arg(long, env = "DOJO_WS_RATE", default_value_t = 200)]
    pub ws_rate_per_sec: u32,

    /// Burst of WebSocket frames per user above the steady rate.
    #[arg(long, env = "DOJO_WS_BURST", default_value_t = 2000)]
    pub ws_burst: u32,

    /// Seconds a client has to send a request's headers; also how long a keep-alive
    /// connection may sit idle between requests (hyper runs the same timer for both). Past
    /// it the connection is closed.
    #[arg(long, env = "DOJO_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,

    /// Seconds a request body may go without a byte arriving; past it the request fails
    /// (400) and the connection closes, so a trickled body cannot hold a connection for good.
    #[arg(long, env = "DOJO_HTTP_IDLE_SECS", default_value_t = 30)]
    pub http_idle_secs: u64,

    /// Most accepted TCP connections at once, upgraded to WebSockets or not; beyond it a new
    /// connection gets a bare 503 and is closed at once. 0: DOJO_MAX_CONNECTIONS plus
    /// DOJO_MAX_UNAUTHENTICATED plus 1024 for plain HTTP. Keep it below the open-file limit.
    #[arg(long, env = "DOJO_MAX_TCP_CONNECTIONS", default_value_t = 0)]
    pub max_tcp_connections: usize,

    /// Requests per second per client IP (IPv6: per /64) on the routes that need no token
    /// (catalog, OpenAPI, webhooks, dev tokens, readiness); beyond: 429 with Retry-After.
    /// `/healthz` is exempt. Behind a proxy every client shares the proxy's address.
    #[arg(long, env = "DOJO_PUBLIC_RATE", default_value_t = 10)]
    pub public_rate_per_sec: u32,

    /// Burst of such requests per client IP above the steady rate.
    #[arg(long, env = "DOJO_PUBLIC_BURST", default_value_t = 100)]
    pub public_burst: u32,

    /// Bearer token that `/metrics` requires. Unset: `/metrics` answers loopback peers only.
    #[arg(long, env = "DOJO_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<MetricsToken>,

    /// The built web editor, served at `/` when the directory exists (`scripts/run.sh` builds
    /// it). A relative path is taken from the working directory.
    #[arg(long, env = "DOJO_WEB_DIR", default_value = "web/dist")]
    pub web_dir: std::path::PathBuf,
}

/// The `/metrics` bearer token; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct MetricsToken(pub String);

impl std::str::FromStr for MetricsToken {
    type Err = std::convert::Infallible;
    fn from_str(token: &str) -> Result<Self, Self::Err> {
        Ok(Self(token.to_owned()))
    }
}

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

pub use crate::executor_settings::ExecutorSettings;

pub const DEFAULT_DATABASE_URL: &str = "sqlite:data/dojo.db";

/// How rooms live in memory and in the store.
#[derive(Debug, Clone, clap::Args)]
pub struct RoomPolicy {
    /// Seconds a room stays loaded after its last client left.
    #[arg(long, env = "DOJO_ROOM_UNLOAD_SECS", default_value_t = 30)]
    pub unload_after_secs: u64,

    /// Seconds without a document change after which a room with clients hibernates: its
    /// document is dropped (the store has all of it) and loaded again by the next change or
    /// join; presence keeps working meanwhile. 0: never.
    #[arg(long, env = "DOJO_HIBERNATE_AFTER_SECS", default_value_t = 30)]
    pub hibernate_after_secs: u64,

    /// Compact a room's update log once it holds this many rows since the last snapshot…
    #[arg(long, env = "DOJO_COMPACT_AFTER_UPDATES", default_value_t = 500)]
    pub compact_after_updates: usize,

    /// …or this many bytes.
    #[arg(long, env = "DOJO_COMPACT_AFTER_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub compact_after_bytes: usize,

    /// How many rooms compact at the same time. Compactions that fall due together wait their
    /// turn, so that rooms' appends never queue behind a crowd of snapshot writes.
    #[arg(long, env = "DOJO_COMPACTIONS_AT_ONCE", default_value_t = 1)]
    pub compactions_at_once: usize,

    /// Most updates stored in one transaction (group commit). 1 stores each update on its own,
    /// which only benchmarks want.
    #[arg(long, env = "DOJO_MAX_BATCH_UPDATES", default_value_t = 1024)]
    pub max_batch_updates: usize,

    /// Snapshots kept per room as restorable versions.
    #[arg(long, env = "DOJO_KEEP_VERSIONS", default_value_t = 10)]
    pub keep_versions: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Every bound the server enforces. Defaults are safe for a public deployment.
#[derive(Debug, Clone, clap::Args)]
pub struct Limits {
    /// Largest WebSocket message accepted from a client, in bytes. Bigger ones close the
    /// connection with code 1009. It also caps the sync step 2 a new client can receive.
    #[arg(long, env = "DOJO_MAX_FRAME_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_frame_bytes: usize,

    /// Most simultaneous WebSocket connections; further upgrades get HTTP 503.
    #[arg(long, env = "DOJO_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Most rooms held in memory; joining a new room beyond it gets HTTP 503.
    #[arg(long, env = "DOJO_MAX_ROOMS", default_value_t = 10_000)]
    pub max_rooms: usize,

    // Per-user quotas: one account cannot take what the server-wide limits share out.
    /// Rooms one signed-in user may have caused to be opened on this instance at once (a room
    /// counts against the user whose connection or request opened it, until it unloads;
    /// joining a room already open costs nothing). Beyond: HTTP 429 `quota_exceeded`. 0: no limit.
    #[arg(long, env = "DOJO_MAX_ROOMS_PER_USER", default_value_t = 100)]
    pub max_rooms_per_user: usize,

    /// Workflows one user may own (deleted ones excluded). Beyond: HTTP 429 `quota_exceeded`.
    /// 0: no limit.
    #[arg(long, env = "DOJO_MAX_WORKFLOWS_PER_USER", default_value_t = 1_000)]
    pub max_workflows_per_user: u64,

    /// Runs one user may have queued or running at once, across every instance. Beyond:
    /// HTTP 429 `quota_exceeded`. 0: no limit.
    #[arg(long, env = "DOJO_MAX_QUEUED_RUNS_PER_USER", default_value_t = 20)]
    pub max_queued_runs_per_user: u64,

    /// Frames that may wait to be written to one client. A client that falls this far behind
    /// is disconnected (it resyncs when it reconnects), never silently skipped.
    #[arg(long, env = "DOJO_OUTBOUND_QUEUE_FRAMES", default_value_t = 1024)]
    pub outbound_queue_frames: usize,

    /// Bytes that may wait to be written to one client (one frame is always let through, so a
    /// large sync step 2 is never refused on this account).
    #[arg(long, env = "DOJO_OUTBOUND_QUEUE_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub outbound_queue_bytes: usize,

    /// Commands that may wait for one room's actor; senders wait when it is full.
    #[arg(long, env = "DOJO_ROOM_QUEUE", default_value_t = 512)]
    pub room_queue: usize,

    /// Bytes of client frames that may wait for one room's actor (frames may be as large as
    /// DOJO_MAX_FRAME_BYTES, so the command count alone does not bound memory); readers wait
    /// when it is full. One frame bigger than this still goes, alone.
    #[arg(long, env = "DOJO_ROOM_QUEUE_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub room_queue_bytes: usize,

    /// Seconds between WebSocket pings to each client.
    #[arg(long, env = "DOJO_PING_INTERVAL_SECS", default_value_t = 20)]
    pub ping_interval_secs: u64,

    /// Seconds without any frame from a client (pongs included) before it counts as dead
    /// (at least twice the ping interval).
    #[arg(long, env = "DOJO_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub idle_timeout_secs: u64,

    /// Awareness client ids one connection may control (a browser tab uses one).
    #[arg(long, env = "DOJO_MAX_AWARENESS_CLIENTS", default_value_t = 8)]
    pub max_awareness_clients_per_connection: usize,

    /// Seconds a `/collab` socket may stay without an authenticated document (pings and pongs
    /// do not extend it); then it is closed with 4408.
    #[arg(long, env = "DOJO_AUTH_TIMEOUT_SECS", default_value_t = 10)]
    pub auth_timeout_secs: u64,

    /// `/collab` sockets not yet authenticated, in a pool of their own: they never take the
    /// DOJO_MAX_CONNECTIONS slots, and move there when they authenticate. Beyond: HTTP 503.
    #[arg(long, env = "DOJO_MAX_UNAUTHENTICATED", default_value_t = 1000)]
    pub max_unauthenticated: usize,

    /// Of those, how many one client address (IPv6: one /64) may hold. Behind a proxy every
    /// client shares the proxy's address; raise it there.
    #[arg(long, env = "DOJO_MAX_UNAUTHENTICATED_PER_IP", default_value_t = 64)]
    pub max_unauthenticated_per_ip: usize,

    /// Bytes of frames one `/collab` socket may queue for documents not yet authenticated;
    /// past it the socket is closed with 4205.
    #[arg(long, env = "DOJO_PREAUTH_SOCKET_BYTES", default_value_t = 64 * 1024)]
    pub preauth_socket_bytes: usize,

    /// Bytes of such frames all sockets together may queue; past it the socket that needs
    /// more is closed with 1013 (try again later).
    #[arg(long, env = "DOJO_PREAUTH_TOTAL_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub preauth_total_bytes: usize,
    /// Largest presence (awareness) state of one client, in bytes of JSON. A connection that
    /// publishes a bigger one is closed with 1008 and the reason.
    #[arg(long, env = "DOJO_MAX_AWARENESS_BYTES", default_value_t = 16 * 1024)]
    pub max_awareness_state_bytes: usize,

    /// Largest total of the presence states one connection publishes (all its awareness client
    /// ids together), in bytes. Over it, the connection is closed with 1008 and the reason.
    #[arg(long, env = "DOJO_MAX_AWARENESS_BYTES_PER_CONNECTION", default_value_t = 64 * 1024)]
    pub max_awareness_connection_bytes: usize,

    /// WebSocket connections one signed-in user may hold at once, `/rooms` connections and
    /// `/collab` documents together (0: no limit). Beyond: HTTP 429 on `/rooms`, the document
    /// refused on `/collab`. Anonymous (dev mode) connections are not counted.
    #[arg(long, env = "DOJO_MAX_CONNECTIONS_PER_USER", default_value_t = 64)]
    pub max_connections_per_user: usize,

    /// Bytes waiting to be sent to all clients together (each broadcast frame counted once).
    /// Over it, the connections holding the most are closed with 1013 until it fits (0: no
    /// server-wide budget; each connection is still bounded on its own).
    #[arg(long, env = "DOJO_OUTBOUND_GLOBAL_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub outbound_global_bytes: usize,

    /// Seconds to wait, on shutdown, for connections to close before exiting anyway.
    #[arg(long, env = "DOJO_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,

    /// Largest a room's document may grow, in bytes (encoded as one Yjs update, what a joining
    /// client receives in one frame: keep it well below DOJO_MAX_FRAME_BYTES). An update that
    /// would pass it is refused before it is applied: HTTP 413, or the WebSocket sender closed
    /// with 1008. 0: no limit.
    #[arg(long, env = "DOJO_MAX_DOCUMENT_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_document_bytes: usize,
}

impl Limits {
    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.ping_interval_secs.max(1))
    }

    /// At least two ping intervals: a peer gets two chances to answer before it counts as dead.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs.max(1)).max(self.ping_interval() * 2)
    }

    pub fn auth_timeout(&self) -> Duration {
        Duration::from_secs(self.auth_timeout_secs.max(1))
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Config::parse_from(["dojo-server"]).limits
    }
}

impl Config {
    /// The command line and environment, with optional text settings given as an empty string
    /// (`DOJO_JWT_SECRET=` in an env or compose file) taken as unset, as most tools do, rather
    /// than as an empty value that fails validation or, worse, is used. (Empty paths and
    /// addresses are refused by the parser, naming the option.)
    pub fn from_env_and_args() -> Self {
        let mut config = Config::parse();
        config.unset_empty_values();
        config
    }

    fn unset_empty_values(&mut self) {
        fn blank(value: &str) -> bool {
            value.trim().is_empty()
        }
        fn clear<T>(value: &mut Option<T>, is_blank: impl Fn(&T) -> bool) {
            if value.as_ref().is_some_and(is_blank) {
                *value = None;
            }
        }
        clear(&mut self.redis_url, |url| blank(url));
        clear(&mut self.auth.jwt_secret, |secret| blank(secret));
        clear(&mut self.auth.stripe_webhook_secret, |secret| blank(secret));
        clear(&mut self.http.metrics_token, |token| blank(&token.0));
        clear(&mut self.executor.assets_url, |url| blank(url));
        self.auth.jwt_issuer.retain(|issuer| !blank(issuer));
        self.auth.jwt_audience.retain(|audience| !blank(audience));
        self.http.cors_origins.retain(|origin| !blank(origin));
        self.plans.queue_admins.retain(|admin| !blank(admin));
    }

    /// The plans in force (`DOJO_PLANS`, or the built-in ones from the older per-user settings).
    pub fn plan_table(&self) -> crate::plan_settings::PlanTable {
        self.plans.table(self.executor.runs_per_user, self.limits.max_queued_runs_per_user)
    }

    /// The defaults, listening on an ephemeral local port and storing in `database_url`: what
    /// tests and embedders start from.
    pub fn for_tests(database_url: &str) -> Self {
        let mut config = Config::parse_from(["dojo-server"]);
        config.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        config.database_url = database_url.to_owned();
        // Content-addressed: tests can share one directory without seeing each other's files
        // change, and none of them writes into the source tree.
        config.executor.assets_dir = std::env::temp_dir().join("dojo-test-assets");
        config
    }

    /// `DOJO_MAX_TCP_CONNECTIONS`, or when it is 0, room for every WebSocket of both pools
    /// plus plain HTTP requests.
    pub fn tcp_connection_limit(&self) -> usize {
        match self.http.max_tcp_connections {
            0 => self
                .limits
                .max_connections
                .saturating_add(self.limits.max_unauthenticated)
                .saturating_add(1024),
            limit => limit,
        }
    }

    /// Like [`for_tests`](Self::for_tests), with tokens required (HS256 with `secret`).
    pub fn for_tests_with_auth(database_url: &str, secret: &str) -> Self {
        let mut config = Self::for_tests(database_url);
        config.auth.jwt_secret = Some(secret.to_owned());
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_documented_values() {
        let config = Config::try_parse_from(["dojo-server"]).expect("defaults parse");
        assert_eq!(config.addr, "127.0.0.1:8787".parse().unwrap());
        assert_eq!(config.limits.max_frame_bytes, 16 * 1024 * 1024);
        assert_eq!(config.limits.outbound_queue_frames, 1024);
        assert_eq!(config.executor.compose_model, "gpt-4o-mini");
        assert_eq!(config.executor.compose_timeout_secs, 20);
        assert_eq!(config.tcp_connection_limit(), 10_000 + 1000 + 1024);
    }

    #[test]
    fn flags_override_defaults_and_bad_values_fail_fast() {
        let config =
            Config::try_parse_from(["dojo-server", "--max-rooms", "3", "--addr", "0.0.0.0:9000"]).unwrap();
        assert_eq!(config.limits.max_rooms, 3);
        assert_eq!(config.addr.port(), 9000);
        assert!(Config::try_parse_from(["dojo-server", "--max-rooms", "lots"]).is_err());
        assert!(Config::try_parse_from(["dojo-server", "--addr", "nowhere"]).is_err());
    }

    /// What `DOJO_JWT_SECRET=` (an empty value in an env file) arrives as: unset, not "".
    #[test]
    fn empty_optional_settings_are_unset() {
        let mut config = Config::try_parse_from([
            "dojo-server",
            "--jwt-secret",
            "",
            "--redis-url",
            " ",
            "--stripe-webhook-secret",
            "",
            "--metrics-token",
            "",
            "--assets-url",
            "",
            "--cors-origins",
            "",
        ])
        .unwrap();
        config.unset_empty_values();
        assert_eq!(config.auth.jwt_secret, None);
        assert!(config.auth.dev_mode(), "no key configured: dev mode");
        assert_eq!(config.redis_url, None);
        assert_eq!(config.auth.stripe_webhook_secret, None);
        assert!(config.http.metrics_token.is_none());
        assert_eq!(config.executor.assets_url, None);
        assert!(config.http.cors_origins.is_empty());
        // Paths are refused empty by clap itself, with the option's name.
        assert!(Config::try_parse_from(["dojo-server", "--jwt-public-key-file", ""]).is_err());

        let mut config =
            Config::try_parse_from(["dojo-server", "--redis-url", "redis://cache:6379"]).unwrap();
        config.unset_empty_values();
        assert_eq!(config.redis_url.as_deref(), Some("redis://cache:6379"), "a real value stays");
    }
}
