//! What one load-generator run does: the command line (every flag also an environment variable).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;

/// Longest room prefix: room names (`{prefix}-{i}`) must stay within the server's 128 characters.
const MAX_PREFIX_LEN: usize = 100;
/// Fastest edit or presence rate per client: one every millisecond.
const MAX_RATE: f64 = 1000.0;

/// Opens `--rooms` rooms with `--clients` real y-websocket clients each, has every client edit
/// the canvas `--rate` times a second for `--duration` seconds, and reports propagation latency,
/// throughput, convergence and (with `--server-pid`) the server's CPU time and memory.
#[derive(Debug, Clone, Parser)]
#[command(name = "dojo-loadtest", version)]
pub struct Config {
    /// Base URL of the rooms endpoint; room names are appended as `/{prefix}-{i}`.
    #[arg(
        long,
        env = "DOJO_LOADTEST_URL",
        default_value = "ws://127.0.0.1:8787/rooms",
        value_parser = parse_base_url
    )]
    pub url: String,

    /// Rooms to open.
    #[arg(long, env = "DOJO_LOADTEST_ROOMS", default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rooms: u32,

    /// Clients per room.
    #[arg(long, env = "DOJO_LOADTEST_CLIENTS", default_value_t = 4,
        value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub clients: u32,

    /// Edits per second per client (fractions allowed, at most 1000).
    #[arg(long, env = "DOJO_LOADTEST_RATE", default_value_t = 2.0, value_parser = parse_rate)]
    pub rate: f64,

    /// Seconds of editing.
    #[arg(long, env = "DOJO_LOADTEST_DURATION", default_value_t = 10.0, value_parser = parse_duration)]
    pub duration: f64,

    /// Presence (awareness) updates per second per client; 0 sends none.
    #[arg(long, env = "DOJO_LOADTEST_AWARENESS_HZ", default_value_t = 0.0, value_parser = parse_awareness_hz)]
    pub awareness_hz: f64,

    /// Prefix of the room names; by default a new random one per run, so runs never share rooms.
    #[arg(long, env = "DOJO_LOADTEST_ROOM_PREFIX", value_parser = parse_prefix)]
    pub room_prefix: Option<String>,

    /// Connections opened at the same time while connecting.
    #[arg(long, env = "DOJO_LOADTEST_CONNECT_CONCURRENCY", default_value_t = 50,
        value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub connect_concurrency: u32,

    /// The server's process id, to report its CPU time and memory (Linux /proc, same machine).
    #[arg(long, env = "DOJO_LOADTEST_SERVER_PID")]
    pub server_pid: Option<u32>,

    /// Print only the JSON line on stdout (no table).
    #[arg(long, env = "DOJO_LOADTEST_JSON")]
    pub json: bool,

    /// Log filter for progress messages on stderr (default: `info`, or `warn` with `--json`).
    #[arg(long, env = "DOJO_LOADTEST_LOG")]
    pub log: Option<String>,
}

impl Config {
    /// The time between two edits of one client.
    pub fn edit_period(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.rate)
    }

    /// The time between two presence updates of one client, if presence is sent at all.
    pub fn awareness_period(&self) -> Option<Duration> {
        (self.awareness_hz > 0.0).then(|| Duration::from_secs_f64(1.0 / self.awareness_hz))
    }

    pub fn edit_duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration)
    }

    /// The room prefix: the one given, or a new random-looking one.
    pub fn resolved_prefix(&self) -> String {
        self.room_prefix.clone().unwrap_or_else(random_prefix)
    }
}

/// The URL of room `index` under `base`.
pub fn room_url(base: &str, prefix: &str, index: u32) -> String {
    format!("{base}/{prefix}-{index}")
}

/// `lt-` and 12 hex digits from the clock and the process id: distinct for runs that do not start
/// in the same nanosecond in the same process.
fn random_prefix() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    let mixed = (nanos as u64) ^ (u64::from(std::process::id()).rotate_left(40));
    format!("lt-{:012x}", mixed & 0xffff_ffff_ffff)
}

fn parse_base_url(value: &str) -> Result<String, String> {
    let url = value.trim().trim_end_matches('/');
    if url.starts_with("wss://") {
        return Err("wss:// is not supported: this build has no TLS; use ws://".into());
    }
    let Some(rest) = url.strip_prefix("ws://") else {
        return Err(format!("expected a ws:// URL such as ws://127.0.0.1:8787/rooms, got {value:?}"));
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("the URL {value:?} has no host"));
    }
    if url.contains(['?', '#']) {
        return Err(format!("the URL {value:?} has a query or fragment; room names are appended to it"));
    }
    Ok(url.to_owned())
}

fn parse_positive(value: &str, what: &str, max: f64) -> Result<f64, String> {
    let number: f64 = value.trim().parse().map_err(|_| format!("{what} must be a number, got {value:?}"))?;
    if !number.is_finite() || number <= 0.0 || number > max {
        return Err(format!("{what} must be greater than 0 and at most {max}, got {value}"));
    }
    Ok(number)
}

fn parse_rate(value: &str) -> Result<f64, String> {
    parse_positive(value, "the edit rate", MAX_RATE)
}

fn parse_duration(value: &str) -> Result<f64, String> {
    // A day is far beyond what the in-memory figures were sized for.
    parse_positive(value, "the duration", 86_400.0)
}

fn parse_awareness_hz(value: &str) -> Result<f64, String> {
    if value.trim().parse::<f64>() == Ok(0.0) {
        return Ok(0.0);
    }
    parse_positive(value, "the awareness rate", MAX_RATE)
}

fn parse_prefix(value: &str) -> Result<String, String> {
    if value.is_empty() || value.len() > MAX_PREFIX_LEN {
        return Err(format!("the room prefix must have 1 to {MAX_PREFIX_LEN} characters"));
    }
    if let Some(bad) =
        value.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
    {
        return Err(format!("the room prefix may only contain A-Z a-z 0-9 - _ . : (found {bad:?})"));
    }
    if value.starts_with('.') {
        return Err("the room prefix may not start with '.'".into());
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("dojo-loadtest").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_match_the_documentation() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.url, "ws://127.0.0.1:8787/rooms");
        assert_eq!((config.rooms, config.clients, config.connect_concurrency), (10, 4, 50));
        assert_eq!((config.rate, config.duration, config.awareness_hz), (2.0, 10.0, 0.0));
        assert_eq!(config.edit_period(), Duration::from_millis(500));
        assert_eq!(config.awareness_period(), None);
        assert!(!config.json);
    }

    #[test]
    fn urls_are_checked_and_normalised() {
        assert_eq!(parse(&["--url", "ws://h:1/rooms/"]).unwrap().url, "ws://h:1/rooms");
        for bad in ["http://h/rooms", "wss://h/rooms", "ws://", "ws://h/rooms?x=1"] {
            assert!(parse(&["--url", bad]).is_err(), "{bad}");
        }
        assert_eq!(room_url("ws://h:1/rooms", "p", 3), "ws://h:1/rooms/p-3");
    }

    #[test]
    fn rates_and_counts_must_be_sensible() {
        assert_eq!(parse(&["--rate", "0.5"]).unwrap().edit_period(), Duration::from_secs(2));
        assert_eq!(
            parse(&["--awareness-hz", "4"]).unwrap().awareness_period(),
            Some(Duration::from_millis(250))
        );
        for bad in [
            &["--rate", "0"][..],
            &["--rate", "-1"],
            &["--rate", "NaN"],
            &["--rate", "5000"],
            &["--duration", "0"],
            &["--awareness-hz", "-2"],
            &["--rooms", "0"],
            &["--clients", "0"],
            &["--connect-concurrency", "0"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn prefixes_are_valid_room_names() {
        assert_eq!(parse(&["--room-prefix", "ci:run_1.a"]).unwrap().resolved_prefix(), "ci:run_1.a");
        for bad in ["", "a/b", "a b", ".hidden", &"x".repeat(101)] {
            assert!(parse(&["--room-prefix", bad]).is_err(), "{bad:?}");
        }
        let generated = parse(&[]).unwrap().resolved_prefix();
        assert!(parse_prefix(&generated).is_ok(), "{generated}");
        assert!(generated.starts_with("lt-"));
    }
}
