//! `dojo-loadtest`: opens rooms full of real y-websocket (or Hocuspocus) clients against a server
//! and runs a scenario: steady editing (propagation latency, throughput, convergence), a ramp to
//! find capacity, a cold load, a reconnect storm or an idle-memory census, with the server's CPU
//! and memory.
//! See README.md in this crate; `dojo-loadtest --help` lists the flags.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use dojo_loadtest::Config;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    match try_main().await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("dojo-loadtest: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn try_main() -> anyhow::Result<ExitCode> {
    let config = Config::parse();
    let filter = config.log.clone().unwrap_or_else(|| if config.json { "warn" } else { "info" }.into());
    let filter = EnvFilter::try_new(&filter).with_context(|| format!("invalid log filter {filter:?}"))?;
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();

    let outcome = dojo_loadtest::run::run(&config).await?;
    if !config.json {
        print!("{}", outcome.table());
    }
    println!("{}", outcome.json_line().context("encoding the report as JSON")?);
    for failure in outcome.failures() {
        eprintln!("dojo-loadtest: {failure}");
    }
    Ok(if outcome.ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
