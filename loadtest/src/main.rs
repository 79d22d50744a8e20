//! `dojo-loadtest`: opens rooms full of real y-websocket clients against a Dojo server, edits at a
//! steady rate and reports propagation latency, throughput, convergence and server resources.
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

    let report = dojo_loadtest::run::run(&config).await?;
    if !config.json {
        print!("{}", report.table());
    }
    println!("{}", report.json_line().context("encoding the report as JSON")?);
    for failure in report.failures() {
        eprintln!("dojo-loadtest: {failure}");
    }
    Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
