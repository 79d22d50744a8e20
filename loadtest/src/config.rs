//! What one load-generator run does: the command line (every flag also an environment variable).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use dojo_ids::RoomName;
use dojo_room_client::{Applying, Framing};

/// Longest room prefix: room names (`{prefix}-{i}`) must stay within the server's 128 characters.
const MAX_PREFIX_LEN: usize = 100;
/// Fastest edit or presence rate per client: one every millisecond.
const MAX_RATE: f64 = 1000.0;

/// The wire protocol a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// y-websocket: one room per WebSocket URL, `type • payload` frames (Dojo, `@y/websocket-server`).
    #[default]
    YWebsocket,
    /// Hocuspocus: every frame prefixed with the document name, an auth message first.
    Hocuspocus,
}

impl Protocol {
    /// How a client of `document` frames its messages in this protocol.
    pub fn framing(self, document: &str) -> Framing {
        match self {
            Self::YWebsocket => Framing::YWebsocket,
            Self::Hocuspocus => Framing::Hocuspocus { document: document.into() },
        }
    }

    /// The name reports give it.
    pub fn name(self) -> &'static str {
        match self {
            Self::YWebsocket => "y-websocket",
            Self::Hocuspocus => "hocuspocus",
        }
    }
}

/// What a run does. `edit` (the default) uses the sizes given by the flags; the others are the
/// benchmark scenarios, whose sizes default to the figures below (flags still override them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// `--rooms` × `--clients` editing at `--rate` (default 10 × 4 at 2/s).
    #[default]
    Edit,
    /// Many small rooms: 500 × 4, 1 edit/s per client.
    SmallRooms,
    /// One crowded room: 1 × 200, 1 edit/s per client.
    Crowded,
    /// Rooms with a long history opened from the store: `--phase seed` writes `--history`
    /// updates into each of 1,000 rooms; after a server restart, `--phase measure` opens them all.
    ColdLoad,
    /// 500 × 4 clients drop their connections at once, each edits offline, and all reconnect.
    ReconnectStorm,
    /// 10,000 rooms with one client each and no traffic: server memory per room and per connection.
    IdleMemory,
}

impl Scenario {
    /// Default rooms, clients per room and edit rate.
    pub fn defaults(self) -> (u32, u32, f64) {
        match self {
            Self::Edit => (10, 4, 2.0),
            Self::SmallRooms | Self::ReconnectStorm => (500, 4, 1.0),
            Self::Crowded => (1, 200, 1.0),
            Self::ColdLoad => (1_000, 1, 1.0),
            Self::IdleMemory => (10_000, 1, 1.0),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Edit => "edit",
            Self::SmallRooms => "small-rooms",
            Self::Crowded => "crowded",
            Self::ColdLoad => "cold-load",
            Self::ReconnectStorm => "reconnect-storm",
            Self::IdleMemory => "idle-memory",
        }
    }

    /// Whether clients edit at a steady rate (and `--ramp` applies).
    pub fn is_editing(self) -> bool {
        matches!(self, Self::Edit | Self::SmallRooms | Self::Crowded)
    }
}

/// The two halves of the cold-load scenario, run with a server restart in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Write `--history` updates into each room, through the server.
    Seed,
    /// Open every room once (after a restart) and time the first sync.
    Measure,
}

/// Opens `--rooms` rooms with `--clients` real y-websocket (or Hocuspocus) clients each and runs
/// a scenario: steady editing (reporting propagation latency, throughput and convergence), a ramp
/// to find capacity, a cold load, a reconnect storm or an idle-memory census. With
/// `--server-pid`, also the server's CPU time and memory.
#[derive(Debug, Clone, Parser)]
#[command(name = "dojo-loadtest", version)]
pub struct Config {
    /// Base URL. y-websocket: the rooms endpoint, room names are appended as `/{prefix}-{i}`.
    /// Hocuspocus: the server's endpoint, used as is (the document is named in every frame).
    #[arg(
        long,
        env = "DOJO_LOADTEST_URL",
        default_value = "ws://127.0.0.1:8787/rooms",
        value_parser = parse_base_url
    )]
    pub url: String,

    /// More servers of the same cluster (repeatable, or comma-separated): each room's clients
    /// are spread over `--url` and these in turn, to measure several instances behind Redis.
    #[arg(long, env = "DOJO_LOADTEST_ALSO_URL", value_delimiter = ',', value_parser = parse_base_url)]
    pub also_url: Vec<String>,

    /// Wire protocol: `y-websocket` (Dojo, @y/websocket-server, the bare relay) or `hocuspocus`.
    #[arg(long, env = "DOJO_LOADTEST_PROTOCOL", value_enum, default_value_t = Protocol::YWebsocket)]
    pub protocol: Protocol,

    /// What to run (see README.md): edit, small-rooms, crowded, cold-load, reconnect-storm,
    /// idle-memory.
    #[arg(long, env = "DOJO_LOADTEST_SCENARIO", value_enum, default_value_t = Scenario::Edit)]
    pub scenario: Scenario,

    /// Rooms to open (default: the scenario's).
    #[arg(long, env = "DOJO_LOADTEST_ROOMS",
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rooms: Option<u32>,

    /// Clients per room (default: the scenario's).
    #[arg(long, env = "DOJO_LOADTEST_CLIENTS",
        value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub clients: Option<u32>,

    /// Edits per second per client (fractions allowed, at most 1000; default: the scenario's).
    #[arg(long, env = "DOJO_LOADTEST_RATE", value_parser = parse_rate)]
    pub rate: Option<f64>,

    /// Seconds of editing.
    #[arg(long, env = "DOJO_LOADTEST_DURATION", default_value_t = 10.0, value_parser = parse_duration)]
    pub duration: f64,

    /// Presence (awareness) updates per second per client; 0 sends none.
    #[arg(long, env = "DOJO_LOADTEST_AWARENESS_HZ", default_value_t = 0.0, value_parser = parse_awareness_hz)]
    pub awareness_hz: f64,

    /// Prefix of the room names; by default a new random one per run, so runs never share rooms.
    /// The two cold-load phases must be given the same one.
    #[arg(long, env = "DOJO_LOADTEST_ROOM_PREFIX", value_parser = parse_prefix)]
    pub room_prefix: Option<String>,

    /// Connections opened at the same time while connecting.
    #[arg(long, env = "DOJO_LOADTEST_CONNECT_CONCURRENCY", default_value_t = 50,
        value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub connect_concurrency: u32,

    /// Cold load: which half to run.
    #[arg(long, env = "DOJO_LOADTEST_PHASE", value_enum, default_value_t = Phase::Measure)]
    pub phase: Phase,

    /// Cold load: updates written into each room while seeding.
    #[arg(long, env = "DOJO_LOADTEST_HISTORY", default_value_t = 500,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub history: u32,

    /// Reconnect storm: reconnections in flight at once (default: every client at once).
    #[arg(long, env = "DOJO_LOADTEST_RECONNECT_CONCURRENCY",
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub reconnect_concurrency: Option<u32>,

    /// Idle memory: seconds to wait, with no traffic, before reading the server's memory.
    #[arg(long, env = "DOJO_LOADTEST_SETTLE", default_value_t = 5.0, value_parser = parse_settle)]
    pub settle: f64,

    /// Idle memory: connections added after the first census (one more client in each of the
    /// first rooms), to price a connection apart from a room (0: skip that second census).
    #[arg(long, env = "DOJO_LOADTEST_EXTRA_CONNECTIONS", default_value_t = 5_000,
        value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub extra_connections: u32,

    /// Raise the edit rate step by step until p99 passes `--ramp-p99-ms` or errors appear; report
    /// the last passing step as the capacity (edit, small-rooms and crowded only).
    #[arg(long, env = "DOJO_LOADTEST_RAMP")]
    pub ramp: bool,

    /// Ramp: the p99 latency bound, in milliseconds.
    #[arg(long, env = "DOJO_LOADTEST_RAMP_P99_MS", default_value_t = 50.0, value_parser = parse_bound)]
    pub ramp_p99_ms: f64,

    /// Ramp: seconds of editing per step.
    #[arg(long, env = "DOJO_LOADTEST_RAMP_STEP_SECS", default_value_t = 10.0, value_parser = parse_duration)]
    pub ramp_step_secs: f64,

    /// Ramp: seconds of editing at the first step's rate before the first step, not judged: rooms
    /// are created, buffers and caches warmed, so that step one measures the same steady state as
    /// the others (0: no warm-up).
    #[arg(long, env = "DOJO_LOADTEST_RAMP_WARMUP_SECS", default_value_t = 4.0, value_parser = parse_warmup)]
    pub ramp_warmup_secs: f64,

    /// Ramp: how many times a failing step is run again before it ends the ramp (not after a
    /// disconnect, which a repeat cannot undo). An 8 s step on shared cores can be decided by a
    /// single stall of the machine; a repeat tells a stall from a limit.
    #[arg(long, env = "DOJO_LOADTEST_RAMP_RETRIES", default_value_t = 1,
        value_parser = clap::value_parser!(u32).range(0..=5))]
    pub ramp_retries: u32,

    /// Ramp: edit rate per client of the first step (default: the scenario's rate).
    #[arg(long, env = "DOJO_LOADTEST_RAMP_START", value_parser = parse_rate)]
    pub ramp_start: Option<f64>,

    /// Ramp: each step's rate is the previous one's times this.
    #[arg(long, env = "DOJO_LOADTEST_RAMP_FACTOR", default_value_t = 1.5, value_parser = parse_factor)]
    pub ramp_factor: f64,

    /// Ramp: most steps (the ramp also stops at 1000 edits/s per client).
    #[arg(long, env = "DOJO_LOADTEST_RAMP_MAX_STEPS", default_value_t = 12,
        value_parser = clap::value_parser!(u32).range(1..=100))]
    pub ramp_max_steps: u32,

    /// Apply every received update to the client's document as it arrives, as an editor does.
    /// By default the generator's clients time each update from its bytes on arrival and apply
    /// what they received after each editing phase (before the convergence check), so the
    /// generator spends its CPU on sending and receiving rather than on CRDT work.
    #[arg(long, env = "DOJO_LOADTEST_APPLY_ON_ARRIVAL")]
    pub apply_on_arrival: bool,

    /// The server's process id, to report its CPU time and memory (Linux /proc, same machine).
    #[arg(long, env = "DOJO_LOADTEST_SERVER_PID")]
    pub server_pid: Option<u32>,

    /// The processes of the `--also-url` servers (repeatable, or comma-separated): their CPU
    /// time and memory are added to `--server-pid`'s, so a cluster is measured as a whole.
    #[arg(long, env = "DOJO_LOADTEST_ALSO_SERVER_PID", value_delimiter = ',', requires = "server_pid")]
    pub also_server_pid: Vec<u32>,

    /// A label for the server, copied into the JSON (scripts use it to tell runs apart).
    #[arg(long, env = "DOJO_LOADTEST_SERVER_NAME")]
    pub server_name: Option<String>,

    /// Print only the JSON line on stdout (no table).
    #[arg(long, env = "DOJO_LOADTEST_JSON")]
    pub json: bool,

    /// Log filter for progress messages on stderr (default: `info`, or `warn` with `--json`).
    #[arg(long, env = "DOJO_LOADTEST_LOG")]
    pub log: Option<String>,
}

impl Config {
    /// When the generator's editing clients apply what they receive.
    pub fn applying(&self) -> Applying {
        if self.apply_on_arrival { Applying::OnArrival } else { Applying::Deferred }
    }

    pub fn rooms(&self) -> u32 {
        self.rooms.unwrap_or(self.scenario.defaults().0)
    }

    pub fn clients(&self) -> u32 {
        self.clients.unwrap_or(self.scenario.defaults().1)
    }

    /// Edits per second per client.
    pub fn rate(&self) -> f64 {
        self.rate.unwrap_or(self.scenario.defaults().2)
    }

    /// The time between two edits of one client.
    pub fn edit_period(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.rate())
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

    /// Flag combinations that make no sense, as a message for the user.
    pub fn check(&self) -> Result<(), String> {
        if self.ramp && !self.scenario.is_editing() {
            return Err(format!(
                "--ramp applies to edit, small-rooms and crowded, not {}",
                self.scenario.name()
            ));
        }
        if self.scenario == Scenario::IdleMemory && self.server_pid.is_none() {
            return Err("idle-memory measures the server's memory: it needs --server-pid".into());
        }
        if self.scenario == Scenario::ColdLoad && self.room_prefix.is_none() {
            return Err(
                "cold-load needs --room-prefix: the measure phase opens the rooms the seed phase wrote"
                    .into(),
            );
        }
        Ok(())
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

fn parse_settle(value: &str) -> Result<f64, String> {
    if value.trim().parse::<f64>() == Ok(0.0) {
        return Ok(0.0);
    }
    parse_positive(value, "the settle time", 3_600.0)
}

fn parse_warmup(value: &str) -> Result<f64, String> {
    if value.trim().parse::<f64>() == Ok(0.0) {
        return Ok(0.0);
    }
    parse_positive(value, "the warm-up", 3_600.0)
}

fn parse_bound(value: &str) -> Result<f64, String> {
    parse_positive(value, "the p99 bound", 3_600_000.0)
}

fn parse_factor(value: &str) -> Result<f64, String> {
    let factor = parse_positive(value, "the ramp factor", 100.0)?;
    if factor <= 1.0 {
        return Err(format!("the ramp factor must be greater than 1, got {value}"));
    }
    Ok(factor)
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
    // The generator puts names in URLs as they are, so it keeps to characters that need no
    // escaping there; the server accepts more.
    if let Some(bad) =
        value.chars().find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
    {
        return Err(format!("the room prefix may only contain A-Z a-z 0-9 - _ . : (found {bad:?})"));
    }
    // The server's rule, applied to the first name made from the prefix: the rest differ only
    // in their digits.
    match RoomName::check(&format!("{value}-0")) {
        Ok(()) => Ok(value.to_owned()),
        Err(other) => Err(format!("the room prefix makes bad room names: {other}")),
    }
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
        assert_eq!((config.scenario, config.protocol), (Scenario::Edit, Protocol::YWebsocket));
        assert_eq!((config.rooms(), config.clients(), config.connect_concurrency), (10, 4, 50));
        assert_eq!((config.rate(), config.duration, config.awareness_hz), (2.0, 10.0, 0.0));
        assert_eq!(config.edit_period(), Duration::from_millis(500));
        assert_eq!(config.awareness_period(), None);
        assert!(!config.json && !config.ramp);
        assert_eq!((config.ramp_p99_ms, config.ramp_factor, config.ramp_max_steps), (50.0, 1.5, 12));
        assert!(config.check().is_ok());
    }

    #[test]
    fn scenarios_bring_their_sizes_and_flags_override_them() {
        let sizes = |args: &[&str]| {
            let config = parse(args).unwrap();
            (config.rooms(), config.clients(), config.rate())
        };
        assert_eq!(sizes(&["--scenario", "small-rooms"]), (500, 4, 1.0));
        assert_eq!(sizes(&["--scenario", "crowded"]), (1, 200, 1.0));
        assert_eq!(sizes(&["--scenario", "idle-memory"]), (10_000, 1, 1.0));
        assert_eq!(sizes(&["--scenario", "reconnect-storm", "--clients", "2"]), (500, 2, 1.0));
        assert_eq!(sizes(&["--scenario", "crowded", "--rooms", "3", "--rate", "4"]), (3, 200, 4.0));
        assert_eq!(parse(&["--protocol", "hocuspocus"]).unwrap().protocol, Protocol::Hocuspocus);
    }

    #[test]
    fn nonsensical_combinations_are_refused() {
        assert!(parse(&["--scenario", "idle-memory", "--ramp"]).unwrap().check().is_err());
        assert!(parse(&["--scenario", "idle-memory"]).unwrap().check().is_err());
        assert!(parse(&["--scenario", "idle-memory", "--server-pid", "1"]).unwrap().check().is_ok());
        assert!(parse(&["--scenario", "crowded", "--ramp"]).unwrap().check().is_ok());
        assert!(parse(&["--scenario", "cold-load"]).unwrap().check().is_err());
        assert!(parse(&["--scenario", "cold-load", "--room-prefix", "c"]).unwrap().check().is_ok());
        for bad in [
            &["--ramp-factor", "1"][..],
            &["--ramp-factor", "0.5"],
            &["--ramp-p99-ms", "0"],
            &["--settle", "-1"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn urls_are_checked_and_normalised() {
        assert_eq!(parse(&["--url", "ws://h:1/rooms/"]).unwrap().url, "ws://h:1/rooms");
        for bad in ["http://h/rooms", "wss://h/rooms", "ws://", "ws://h/rooms?x=1"] {
            assert!(parse(&["--url", bad]).is_err(), "{bad}");
        }
        assert_eq!(room_url("ws://h:1/rooms", "p", 3), "ws://h:1/rooms/p-3");
        let spread =
            parse(&["--url", "ws://a:1/rooms", "--also-url", "ws://b:2/rooms,ws://c:3/rooms"]).unwrap();
        assert_eq!(spread.also_url, vec!["ws://b:2/rooms", "ws://c:3/rooms"]);
        let urls: Vec<String> =
            (0..4).map(|slot| crate::clients::Target::for_slot(&spread, "p", 7, slot).url).collect();
        assert_eq!(
            urls,
            ["ws://a:1/rooms/p-7", "ws://b:2/rooms/p-7", "ws://c:3/rooms/p-7", "ws://a:1/rooms/p-7"]
        );
    }

    #[test]
    fn a_cluster_is_measured_over_all_its_processes() {
        let cluster = parse(&["--server-pid", "10", "--also-server-pid", "11,12"]).unwrap();
        assert_eq!(cluster.server_pid, Some(10));
        assert_eq!(cluster.also_server_pid, vec![11, 12]);
        // Extra processes without the first would measure a cluster without its first member.
        assert!(parse(&["--also-server-pid", "11"]).is_err());
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
        for bad in ["", "a/b", "a b", "caf\u{e9}", &"x".repeat(101)] {
            assert!(parse(&["--room-prefix", bad]).is_err(), "{bad:?}");
        }
        let generated = parse(&[]).unwrap().resolved_prefix();
        assert!(parse_prefix(&generated).is_ok(), "{generated}");
        assert!(generated.starts_with("lt-"));
    }
}
