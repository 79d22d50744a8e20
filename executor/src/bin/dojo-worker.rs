//! `dojo-worker`: executes runs from the Redis Stream that `dojo-server` instances fill, on
//! any machine, any number of them. It shares the servers' PostgreSQL (runs, leases, credits,
//! the node cache) and their assets directory, and joins each run's room over the WebSocket
//! protocol with a service token, so every node state reaches the room like a collaborator's
//! edit: stored before anyone sees it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use dojo_executor::worker::room_client::RemoteSettings;
use dojo_executor::worker::{
    DriverSettings, RemoteRooms, RoomReaders, RunDriver, StoreCache, StreamQueue, StreamSettings,
    TeamKeySource, TokenSource, UnclaimedRooms, worker_name,
};
use dojo_executor::{Engine, EngineConfig, LoadedCatalog, ObjectAssetStore, ProviderConfig};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Parser)]
#[command(name = "dojo-worker", version, about = "Executes Dojo canvas runs from the shared Redis queue")]
struct Config {
    /// The servers' PostgreSQL database (runs, leases, credits, the node cache).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,

    /// The Redis the servers relay accepted runs to.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    redis_url: String,

    /// Where rooms are joined: a `dojo-server` (or the load balancer in front of several).
    #[arg(long, env = "DOJO_SERVER_URL", default_value = "http://127.0.0.1:8787")]
    server_url: String,

    /// The servers' HS256 secret: the worker mints itself a short token per room it writes to.
    #[arg(long, env = "DOJO_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,

    /// Or a long-lived service token (`dojo-server admin mint-token dojo-worker --grant '*=write'`).
    #[arg(long, env = "DOJO_WORKER_TOKEN", hide_env_values = true, conflicts_with = "jwt_secret")]
    token: Option<String>,

    /// The subject of minted tokens (the worker's user in the servers' records).
    #[arg(long, env = "DOJO_WORKER_SUBJECT", default_value = "dojo-worker")]
    subject: String,

    /// The assets directory the servers serve (a shared volume when on other machines);
    /// unused with `DOJO_ASSETS_URL`.
    #[arg(long, env = "DOJO_ASSETS_DIR", default_value = "data/assets")]
    assets_dir: std::path::PathBuf,

    /// The object store the servers use for assets (`s3://bucket/prefix`, credentials and
    /// endpoint from the `AWS_*` variables), instead of a shared directory.
    #[arg(long, env = "DOJO_ASSETS_URL")]
    assets_url: Option<String>,

    /// The servers' key-encryption keys (`id:BASE64,…`, the same list): runs of a team's
    /// workflow use the team's provider keys, opened with these. Unset: every run uses this
    /// worker's own provider keys.
    #[arg(long, env = "DOJO_KEY_ENCRYPTION_KEYS", hide_env_values = true)]
    key_encryption_keys: Option<String>,

    /// Runs this worker executes at once.
    #[arg(long, env = "DOJO_WORKER_CONCURRENCY", default_value_t = 4)]
    concurrency: usize,

    /// Nodes of one run executing at once.
    #[arg(long, env = "DOJO_NODE_CONCURRENCY", default_value_t = 4)]
    node_concurrency: usize,

    /// Runs of one user executing at once across every worker (0: no limit).
    #[arg(long, env = "DOJO_RUNS_PER_USER", default_value_t = 2)]
    runs_per_user: u32,

    /// Seconds a claim on a run lasts without renewal (the servers' setting).
    #[arg(long, env = "DOJO_RUN_LEASE_SECS", default_value_t = 30)]
    lease_secs: u64,

    /// Seconds a queue entry may sit idle with a worker before another takes it over.
    #[arg(long, env = "DOJO_RUN_VISIBILITY_SECS", default_value_t = 40)]
    visibility_secs: u64,

    /// On SIGTERM / ctrl-c, how long runs in flight may take to finish; then they stop and
    /// another worker resumes them.
    #[arg(long, env = "DOJO_SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    shutdown_grace_secs: u64,

    /// Log filter, in `RUST_LOG` syntax.
    #[arg(long, env = "DOJO_LOG", default_value = "info")]
    log: String,

    /// Log output format (logs go to stderr).
    #[arg(long, env = "DOJO_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut config = Config::parse();
    // `DOJO_JWT_SECRET=` in an env or compose file means unset, as for dojo-server.
    for value in [&mut config.jwt_secret, &mut config.token, &mut config.assets_url] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            *value = None;
        }
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log).context("DOJO_LOG")?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match config.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }

    if !(config.database_url.starts_with("postgres://") || config.database_url.starts_with("postgresql://")) {
        bail!(
            "dojo-worker needs the servers' PostgreSQL database (DATABASE_URL=postgres://…); an SQLite file belongs to one process"
        );
    }
    let database = dojo_store::open_database(&config.database_url).await.context("opening the database")?;
    let runs = dojo_records::runs(&database);

    let tokens = match (&config.jwt_secret, &config.token) {
        (Some(secret), _) => {
            if secret.len() < 32 {
                bail!("DOJO_JWT_SECRET must be at least 32 bytes (the servers refuse shorter ones)");
            }
            TokenSource::Mint {
                minter: Arc::new(dojo_auth::Minter::hs256(secret.as_bytes())),
                subject: config.subject.clone(),
                ttl: Duration::from_secs(3600),
            }
        }
        (None, Some(token)) => TokenSource::Static(token.clone()),
        (None, None) => {
            tracing::warn!(
                "no DOJO_JWT_SECRET or DOJO_WORKER_TOKEN: joining rooms without a token (servers in dev mode only)"
            );
            TokenSource::None
        }
    };
    // Without a token the servers must be in dev mode, where rooms no workflow claims are open
    // to anyone; with one, only the workflow records (and a run's own room) decide.
    let unclaimed = match tokens {
        TokenSource::None => UnclaimedRooms::Open,
        _ => UnclaimedRooms::Closed,
    };
    let readers = RoomReaders { accounts: dojo_records::accounts(&database), unclaimed };
    let rooms =
        RemoteRooms::new(&config.server_url, tokens, RemoteSettings::default()).context("DOJO_SERVER_URL")?;

    let assets = Arc::new(
        ObjectAssetStore::open(&config.assets_dir, config.assets_url.as_deref())
            .context("the asset store")?,
    );
    let catalog = Arc::new(LoadedCatalog::builtin().context("the node catalog")?.clone());
    let providers = ProviderConfig::from_env().context("provider configuration")?;
    let engine =
        Engine::new(catalog, assets, Arc::new(StoreCache::new(runs.clone()))).with_config(EngineConfig {
            max_concurrency: config.node_concurrency.max(1),
            ..EngineConfig::default()
        });
    let engine = dojo_executor::register_providers(engine, &providers);

    let name = worker_name("dojo-worker");
    let visibility = Duration::from_secs(config.visibility_secs.max(1));
    let queue = StreamQueue::connect(&config.redis_url, StreamSettings::new(name.clone(), visibility))
        .await
        .context("connecting to the run queue")?;
    let mut driver = RunDriver::new(
        engine,
        runs,
        readers,
        Arc::new(rooms),
        name.clone(),
        DriverSettings {
            lease: Duration::from_secs(config.lease_secs.max(1)),
            runs_per_user: config.runs_per_user,
            ..DriverSettings::default()
        },
    );
    if let Some(keys) = config.key_encryption_keys.as_deref().filter(|keys| !keys.trim().is_empty()) {
        // A bad list stops the worker at once, naming the entry (never a key).
        let keyring = dojo_records::key_crypto::Keyring::parse(keys).context("DOJO_KEY_ENCRYPTION_KEYS")?;
        driver = driver.with_team_keys(TeamKeySource {
            store: dojo_records::provider_keys(&database),
            keyring: Arc::new(keyring),
        });
    }
    let driver = Arc::new(driver);

    let stop = CancellationToken::new();
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(
        stop.clone(),
        shutdown.clone(),
        Duration::from_secs(config.shutdown_grace_secs),
    ));
    tracing::info!(worker = %name, providers = ?providers.configured(), concurrency = config.concurrency, "worker started");
    // Tests and scripts wait for this line.
    println!("dojo-worker ready as {name}");
    dojo_executor::worker::pool::work(Arc::new(queue), driver, config.concurrency, stop, shutdown).await;
    tracing::info!("worker stopped");
    Ok(())
}

/// The first signal stops taking runs; runs in flight get the grace period (a second signal
/// ends it), then they stop and are resumed elsewhere.
async fn stop_on_signal(stop: CancellationToken, shutdown: CancellationToken, grace: Duration) {
    signal().await;
    tracing::info!(grace_secs = grace.as_secs(), "stopping: no new runs; runs in flight may finish");
    stop.cancel();
    tokio::select! {
        () = tokio::time::sleep(grace) => {}
        () = signal() => {}
    }
    shutdown.cancel();
}

async fn signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use dojo_test_support::config_reference::{check_generated_section, markdown_table};

    /// `docs/configuration.md` lists every worker setting as `--help` defines it.
    #[test]
    fn config_reference_lists_every_worker_setting() {
        let table = markdown_table(&super::Config::command());
        assert!(table.contains("| `DOJO_SERVER_URL` | `--server-url` |"), "{table}");
        let doc = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
        if let Err(message) = check_generated_section(&doc, "dojo-worker settings (generated)", &table) {
            panic!("{message}");
        }
    }
}
