mod admin;
mod backup;

use anyhow::Context;
use dojo_server::Config;
use dojo_server::config::{AdminCommand, Command, LogFormat};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env_and_args();
    init_logging(&config)?;

    // The API description is compiled in: printing it needs no store (CI and the web client's
    // generator run it on a machine without a database).
    if let Some(Command::Openapi) = &config.command {
        println!("{}", dojo_server::openapi_document());
        return Ok(());
    }
    // Backups and restores work on the database file itself, without opening it as a store
    // (which would create, migrate and lock it).
    if let Some(Command::Admin(command @ (AdminCommand::Backup { .. } | AdminCommand::Restore { .. }))) =
        &config.command
    {
        return backup::run(&config.database_url, command).await;
    }
    // Opening the store applies migrations; a store that cannot be reached stops start-up here
    // with the reason, rather than serving rooms that cannot load.
    let storage = dojo_server::Storage::open(&config.database_url)
        .await
        .with_context(|| format!("opening the store at {}", redact(&config.database_url)))?;
    match &config.command {
        Some(Command::Migrate) => {
            tracing::info!("migrations applied");
            return Ok(());
        }
        Some(Command::Admin(command)) => return admin::run(&config, &storage, command).await,
        // Printed above, before any store is opened.
        Some(Command::Openapi) => return Ok(()),
        Some(Command::Serve) | None => {}
    }

    let listener =
        TcpListener::bind(config.addr).await.with_context(|| format!("binding {}", config.addr))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    // One plain line on stdout, so scripts (and the interop tests) can find the port when
    // started with port 0; logs go to stderr.
    println!("dojo-server listening on {addr}");
    tracing::info!(%addr, store = %redact(&config.database_url), "listening");

    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    dojo_server::serve(config, storage, listener, shutdown).await.context("serving")?;
    tracing::info!("shut down cleanly");
    Ok(())
}

fn init_logging(config: &Config) -> anyhow::Result<()> {
    let filter =
        EnvFilter::try_new(&config.log).with_context(|| format!("invalid log filter {:?}", config.log))?;
    // Colour only for a person at a terminal: escape codes in a log file or a collector are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match config.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    // Panics are caught per room and per update; log them where operators look.
    std::panic::set_hook(Box::new(|info| tracing::error!(panic = %info, "panic")));
    Ok(())
}

async fn stop_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown requested: closing connections");
    shutdown.cancel();
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
