//! Turns the JSON lines of a benchmark run (one per server and scenario, as `dojo-loadtest`
//! prints them, labelled with `--server-name`) into Markdown tables: one per scenario with every
//! server's figures, Dojo's ratio to each peer, and the targets of two issues checked.
//!
//! Servers whose name starts with `dojo` are Dojo; `bare-relay` is the ceiling; the others are
//! peers. The first Dojo server in the input is the one the targets are checked for; the Node
//! servers are `y-websocket` and `hocuspocus`.

use std::fmt::Write as _;

use serde_json::Value;

mod performance_targets;
mod targets;

pub use performance_targets::check_performance;
use performance_targets::render_performance_targets;
use targets::render_targets;
pub use targets::{Check, check_idle, check_targets};

/// Servers whose figures the targets compare against (the two Node servers).
pub const NODE_SERVERS: [&str; 2] = ["y-websocket", "hocuspocus"];
pub const RELAY: &str = "bare-relay";

/// One JSON line.
#[derive(Debug, Clone)]
pub struct Row {
    pub server: String,
    pub value: Value,
}

impl Row {
    fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or("")
    }

    fn scenario(&self) -> &str {
        self.value["scenario"].as_str().unwrap_or("")
    }

    /// A number at a `/`-separated path (`latency_ms/p99`).
    fn num(&self, path: &str) -> Option<f64> {
        path.split('/').try_fold(&self.value, |value, key| value.get(key))?.as_f64()
    }
}

/// Parses the JSON lines; lines that are not JSON objects with a `kind` are skipped. A later
/// line for the same server, kind and scenario replaces the earlier one where it stood (a re-run
/// appended to the file), so the order of servers stays that of the first run.
pub fn parse_lines(text: &str) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    let parsed = text
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line.trim()).ok())
        .filter(|value| value.get("kind").and_then(Value::as_str).is_some());
    for value in parsed {
        let server = value["server_name"].as_str().unwrap_or("unnamed").to_owned();
        let row = Row { server, value };
        let same = |earlier: &Row| {
            earlier.server == row.server
                && earlier.kind() == row.kind()
                && earlier.scenario() == row.scenario()
        };
        match rows.iter_mut().find(|earlier| same(earlier)) {
            Some(earlier) => *earlier = row,
            None => rows.push(row),
        }
    }
    rows
}

pub fn is_dojo(server: &str) -> bool {
    server.starts_with("dojo")
}

/// A figure as it goes into a table: `-` when missing, fewer decimals as it grows.
pub fn fmt(value: Option<f64>) -> String {
    match value {
        None => "–".into(),
        Some(v) if !v.is_finite() => "–".into(),
        Some(v) if v.abs() >= 1000.0 => group_thousands(v.round()),
        Some(v) if v.fract() == 0.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

fn group_thousands(v: f64) -> String {
    let digits = format!("{}", v.abs() as u64);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 { format!("-{out}") } else { out }
}

/// `a ÷ b` as `×1.23`, or `–` when either is missing or `b` is zero.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 && a.is_finite() && b.is_finite() => format!("{:.2}", a / b),
        _ => "–".into(),
    }
}

/// A column: header, how to read it from a row, and whether lower is better (for the ratio).
struct Column {
    header: &'static str,
    path: &'static str,
    /// Part of the Dojo ÷ peer table.
    compare: bool,
}

const fn col(header: &'static str, path: &'static str, compare: bool) -> Column {
    Column { header, path, compare }
}

/// What a scenario's table shows.
struct Layout {
    kind: &'static str,
    scenario: Option<&'static str>,
    title: &'static str,
    columns: Vec<Column>,
}

fn layouts() -> Vec<Layout> {
    let edit = |scenario, title| Layout {
        kind: "edit",
        scenario: Some(scenario),
        title,
        columns: vec![
            col("edits/s", "edits_per_s", false),
            col("deliveries/s", "deliveries_per_s", false),
            col("p50 ms", "latency_ms/p50", true),
            col("p95 ms", "latency_ms/p95", false),
            col("p99 ms", "latency_ms/p99", true),
            col("max ms", "latency_ms/max", false),
            col("server CPU %", "server/cpu_percent", true),
            col("deliveries per server CPU-s", "deliveries_per_cpu_s", true),
            col("server RSS MiB", "server/rss_mib", true),
            col("generator CPU %", "loadgen_cpu_percent", false),
            col("errors", "connection_errors", false),
            col("rooms not converged", "rooms_not_converged", false),
        ],
    };
    let ramp = |scenario, title| Layout {
        kind: "ramp",
        scenario: Some(scenario),
        title,
        columns: vec![
            col("capacity edits/s", "capacity/edits_per_s", true),
            col("capacity deliveries/s", "capacity/deliveries_per_s", true),
            col("rate per client", "capacity/rate", false),
            col("p99 ms at capacity", "capacity/p99_ms", false),
            col("server CPU % at capacity", "capacity_cpu_percent", false),
            col("deliveries per server CPU-s at capacity", "capacity_deliveries_per_cpu_s", true),
            col("steps run", "steps_run", false),
        ],
    };
    vec![
        edit("small-rooms", "Many small rooms"),
        edit("crowded", "One crowded room"),
        edit("edit", "Busy rooms"),
        ramp("small-rooms", "Capacity, many small rooms (ramp)"),
        ramp("crowded", "Capacity, one crowded room (ramp)"),
        Layout {
            kind: "cold-load",
            scenario: None,
            title: "Cold load",
            columns: vec![
                col("rooms", "rooms", false),
                col("updates per room", "history", false),
                col("open all s", "open_all_s", true),
                col("first sync p50 ms", "first_sync_ms/p50", false),
                col("first sync p99 ms", "first_sync_ms/p99", true),
                col("full history p50 ms", "content_ms/p50", false),
                col("full history p99 ms", "content_ms/p99", true),
                col("server RSS MiB after", "server/rss_mib", true),
                col("server CPU s", "server/cpu_s", false),
                col("rooms incomplete", "rooms_incomplete", false),
            ],
        },
        Layout {
            kind: "reconnect-storm",
            scenario: None,
            title: "Reconnect storm",
            columns: vec![
                col("clients", "dropped", false),
                col("all resynced s", "all_resynced_s", true),
                col("resync p50 ms", "resync_ms/p50", false),
                col("resync p99 ms", "resync_ms/p99", true),
                col("resync max ms", "resync_ms/max", false),
                col("failures", "resync_failures", false),
                col("rooms not converged", "rooms_not_converged", false),
                col("server CPU s", "server/cpu_s", true),
            ],
        },
        Layout {
            kind: "idle-memory",
            scenario: None,
            title: "Idle memory",
            columns: vec![
                col("rooms", "rooms", false),
                col("connections", "connections", false),
                col("RSS before MiB", "rss_before_mib", false),
                col("RSS open MiB", "rss_open_mib", false),
                col("KiB per room (with its client)", "per_room_kib", true),
                col("KiB per extra connection", "per_extra_connection_kib", true),
                col("KiB per room alone", "per_room_alone_kib", false),
            ],
        },
    ]
}

fn value_of(row: &Row, path: &str) -> Option<f64> {
    match path {
        "steps_run" => row.value["steps"].as_array().map(|steps| steps.len() as f64),
        // How much traffic one core of the server carries: the figure that does not depend on
        // how many cores the server could use here, nor on the generator's share of them.
        "deliveries_per_cpu_s" => per_cpu_second(row.num("deliveries"), row.num("server/cpu_s")),
        "capacity_cpu_percent" => capacity_step(row).and_then(|step| step["server_cpu_percent"].as_f64()),
        "capacity_deliveries_per_cpu_s" => capacity_step(row).and_then(|step| {
            let cpu_share = step["server_cpu_percent"].as_f64()? / 100.0;
            per_cpu_second(step["deliveries_per_s"].as_f64(), Some(cpu_share))
        }),
        _ => row.num(path),
    }
}

fn per_cpu_second(deliveries: Option<f64>, cpu_s: Option<f64>) -> Option<f64> {
    match (deliveries, cpu_s) {
        (Some(deliveries), Some(cpu_s)) if cpu_s > 0.0 => Some(deliveries / cpu_s),
        _ => None,
    }
}

/// The ramp step its capacity comes from (the last passing one).
fn capacity_step(row: &Row) -> Option<&Value> {
    let rate = row.num("capacity/rate")?;
    row.value["steps"]
        .as_array()?
        .iter()
        .find(|step| step["rate"].as_f64() == Some(rate) && step["passed"] == true)
}

/// The Markdown of every scenario present in `rows`, then the targets.
pub fn render(rows: &[Row]) -> String {
    let mut out = String::new();
    for layout in layouts() {
        let matching: Vec<&Row> = rows
            .iter()
            .filter(|r| r.kind() == layout.kind && layout.scenario.is_none_or(|s| r.scenario() == s))
            .collect();
        if matching.is_empty() {
            continue;
        }
        render_layout(&mut out, &layout, &matching);
    }
    render_ramp_steps(&mut out, rows);
    render_performance_targets(&mut out, rows);
    render_targets(&mut out, rows);
    out
}

fn render_layout(out: &mut String, layout: &Layout, rows: &[&Row]) {
    let first = rows[0];
    let size = match layout.kind {
        "cold-load" => format!(
            "{} rooms × {} client, {} updates of history each",
            fmt(first.num("rooms")),
            fmt(first.num("clients_per_room")),
            fmt(first.num("history"))
        ),
        "idle-memory" => format!(
            "{} rooms × {} client, then {} more connections",
            fmt(first.num("rooms")),
            fmt(first.num("clients_per_room")),
            fmt(first.num("extra_connections"))
        ),
        "reconnect-storm" => {
            format!("{} rooms × {} clients", fmt(first.num("rooms")), fmt(first.num("clients_per_room")))
        }
        "ramp" => format!(
            "{} rooms × {} clients, steps of {} s, rate ×{} per step, p99 bound {} ms",
            fmt(first.num("rooms")),
            fmt(first.num("clients_per_room")),
            fmt(first.num("step_s")),
            fmt(first.num("factor")),
            fmt(first.num("p99_bound_ms"))
        ),
        _ => format!(
            "{} rooms × {} clients × {} edits/s for {} s",
            fmt(first.num("rooms")),
            fmt(first.num("clients_per_room")),
            fmt(first.num("rate")),
            fmt(first.num("duration_s"))
        ),
    };
    let _ = writeln!(out, "### {} ({size})\n", layout.title);
    let _ = write!(out, "| server |");
    for column in &layout.columns {
        let _ = write!(out, " {} |", column.header);
    }
    let _ = write!(out, " load avg |  ok |\n|---|");
    for _ in &layout.columns {
        let _ = write!(out, "---|");
    }
    let _ = writeln!(out, "---|---|");
    for row in rows {
        let _ = write!(out, "| {} |", row.server);
        for column in &layout.columns {
            let _ = write!(out, " {} |", fmt(value_of(row, column.path)));
        }
        let ok = if row.value["ok"].as_bool() == Some(true) { "yes" } else { "**no**" };
        let _ = writeln!(out, " {} | {ok} |", fmt(row.num("loadavg")));
    }
    let _ = writeln!(out);

    // Dojo ÷ each other server, on the compared columns.
    let compared: Vec<&Column> = layout.columns.iter().filter(|c| c.compare).collect();
    let dojos: Vec<&&Row> = rows.iter().filter(|r| is_dojo(&r.server)).collect();
    let peers: Vec<&&Row> = rows.iter().filter(|r| !is_dojo(&r.server)).collect();
    if compared.is_empty() || dojos.is_empty() || peers.is_empty() {
        return;
    }
    let _ = write!(out, "Dojo ÷ peer (below 1: Dojo's figure is lower):\n\n| Dojo | peer |");
    for column in &compared {
        let _ = write!(out, " {} |", column.header);
    }
    let _ = write!(out, "\n|---|---|");
    for _ in &compared {
        let _ = write!(out, "---|");
    }
    let _ = writeln!(out);
    for dojo in &dojos {
        for peer in &peers {
            let _ = write!(out, "| {} | {} |", dojo.server, peer.server);
            for column in &compared {
                let _ = write!(out, " {} |", ratio(value_of(dojo, column.path), value_of(peer, column.path)));
            }
            let _ = writeln!(out);
        }
    }
    let _ = writeln!(out);
}

/// A `### heading` (with what follows it, up to the table) and one row per check.
fn render_checks(out: &mut String, heading: &str, checks: Vec<Check>) {
    let _ = writeln!(out, "### {heading}\n\n| target | measured | met |\n|---|---|---|");
    for check in checks {
        let met = match check.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "–",
        };
        let _ = writeln!(out, "| {} | {} | {met} |", check.target, check.measured);
    }
    let _ = writeln!(out);
}

/// Every ramp's steps: p99 per rate, per server, so that figures at the same load line up.
fn render_ramp_steps(out: &mut String, rows: &[Row]) {
    for scenario in ["small-rooms", "crowded"] {
        let ramps: Vec<&Row> =
            rows.iter().filter(|r| r.kind() == "ramp" && r.scenario() == scenario).collect();
        if ramps.is_empty() {
            continue;
        }
        let mut rates: Vec<f64> = ramps.iter().flat_map(|r| steps(r).into_iter().map(|s| s.rate)).collect();
        rates.sort_by(f64::total_cmp);
        rates.dedup();
        let _ = writeln!(
            out,
            "#### Ramp steps, {scenario}: p99 ms (deliveries/s) per rate; ✗ marks the failing step, ↻ a step run twice (its first attempt failed)\n"
        );
        let _ = write!(out, "| edits/s per client |");
        for ramp in &ramps {
            let _ = write!(out, " {} |", ramp.server);
        }
        let _ = write!(out, "\n|---|");
        for _ in &ramps {
            let _ = write!(out, "---|");
        }
        let _ = writeln!(out);
        for rate in rates {
            let _ = write!(out, "| {} |", fmt(Some(rate)));
            for ramp in &ramps {
                let cell = steps(ramp).into_iter().find(|s| s.rate == rate).map_or_else(
                    || " ".to_owned(),
                    |s| {
                        format!(
                            "{}{}{} ({})",
                            if s.passed { "" } else { "✗ " },
                            if s.retried { "↻ " } else { "" },
                            fmt(s.p99_ms),
                            fmt(Some(s.deliveries_per_s))
                        )
                    },
                );
                let _ = write!(out, " {cell} |");
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(out);
        for ramp in &ramps {
            if let Some(stopped) = ramp.value["stopped"].as_str() {
                let _ = writeln!(out, "- {}: {stopped}", ramp.server);
            }
        }
        let _ = writeln!(out);
    }
}

/// The parts of a ramp step the targets need.
#[derive(Debug, Clone, PartialEq)]
pub struct StepView {
    pub rate: f64,
    pub p99_ms: Option<f64>,
    pub deliveries_per_s: f64,
    pub passed: bool,
    /// The step was run again after a failed first attempt.
    pub retried: bool,
}

fn steps(row: &Row) -> Vec<StepView> {
    row.value["steps"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .filter_map(|s| {
                    Some(StepView {
                        rate: s["rate"].as_f64()?,
                        p99_ms: s["latency_ms"]["p99"].as_f64(),
                        deliveries_per_s: s["deliveries_per_s"].as_f64().unwrap_or(0.0),
                        passed: s["passed"].as_bool().unwrap_or(false),
                        retried: s["retried_after"].is_string(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

impl std::ops::Index<&str> for Row {
    type Output = Value;

    fn index(&self, key: &str) -> &Value {
        &self.value[key]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ramp(server: &str, steps: &[(f64, f64, f64, bool)]) -> String {
        let steps: Vec<Value> = steps
            .iter()
            .map(|&(rate, p99, deliveries, passed)| {
                json!({"rate": rate, "latency_ms": {"p99": p99}, "deliveries_per_s": deliveries, "passed": passed})
            })
            .collect();
        let capacity = steps.iter().take_while(|s| s["passed"] == true).last().map(|s| {
            json!({"rate": s["rate"], "deliveries_per_s": s["deliveries_per_s"], "edits_per_s": 1.0, "p99_ms": s["latency_ms"]["p99"]})
        });
        json!({"kind": "ramp", "scenario": "small-rooms", "server_name": server, "rooms": 10, "clients_per_room": 4,
               "steps": steps, "capacity": capacity, "stopped": "x", "ok": capacity.is_some()})
        .to_string()
    }

    fn rows() -> Vec<Row> {
        let lines = [
            ramp("dojo-sqlite", &[(1.0, 2.0, 1_000.0, true), (2.0, 4.0, 2_000.0, true), (4.0, 60.0, 4_000.0, false)]),
            ramp("y-websocket", &[(1.0, 9.0, 1_000.0, true), (2.0, 80.0, 1_500.0, false)]),
            ramp("hocuspocus", &[(1.0, 70.0, 900.0, false)]),
            ramp("bare-relay", &[(1.0, 1.0, 1_000.0, true), (2.0, 1.0, 2_000.0, true), (4.0, 2.0, 3_000.0, true)]),
            json!({"kind": "idle-memory", "scenario": "idle-memory", "server_name": "dojo-sqlite", "per_room_kib": 10.0, "ok": true}).to_string(),
            json!({"kind": "idle-memory", "scenario": "idle-memory", "server_name": "y-websocket", "per_room_kib": 50.0, "ok": true}).to_string(),
            json!({"kind": "idle-memory", "scenario": "idle-memory", "server_name": "hocuspocus", "per_room_kib": 40.0, "ok": true}).to_string(),
            "not json".into(),
            "{\"no\": \"kind\"}".into(),
        ];
        parse_lines(&lines.join("\n"))
    }

    #[test]
    fn lines_without_a_kind_are_skipped() {
        let rows = rows();
        assert_eq!(rows.len(), 7);
        assert_eq!(rows[0].server, "dojo-sqlite");
    }

    #[test]
    fn a_re_run_replaces_the_earlier_line_in_its_place() {
        let line = |server: &str, p99: f64| {
            json!({"kind": "edit", "scenario": "crowded", "server_name": server, "latency_ms": {"p99": p99}})
                .to_string()
        };
        let rows = parse_lines(
            &[line("dojo-sqlite", 9.0), line("y-websocket", 7.0), line("dojo-sqlite", 5.0)].join("\n"),
        );
        let seen: Vec<(&str, Option<f64>)> =
            rows.iter().map(|row| (row.server.as_str(), row.num("latency_ms/p99"))).collect();
        assert_eq!(seen, [("dojo-sqlite", Some(5.0)), ("y-websocket", Some(7.0))]);
    }

    #[test]
    fn targets_compare_with_the_better_node_server_and_the_relay() {
        let checks = check_targets(&rows(), "small-rooms");
        assert_eq!(checks.len(), 3, "{checks:?}");
        // Dojo 2,000 vs y-websocket 1,000 deliveries/s: ×2, short of ×5.
        assert!(checks[0].target.contains("y-websocket"), "{checks:?}");
        assert!(checks[0].measured.ends_with("×2.00"), "{checks:?}");
        assert_eq!(checks[0].met, Some(false));
        // At y-websocket's capacity (1/s per client): p99 2 ms vs 9 ms = 0.22 ≤ ⅓.
        assert!(checks[1].measured.contains("×0.22"), "{checks:?}");
        assert_eq!(checks[1].met, Some(true));
        // 2,000 of the relay's 3,000: 67 %.
        assert!(checks[2].measured.ends_with("67 %"), "{checks:?}");
        assert_eq!(checks[2].met, Some(true));
        assert!(check_targets(&rows(), "crowded").is_empty());
    }

    #[test]
    fn idle_memory_is_checked_against_the_leaner_node_server() {
        let checks = check_idle(&rows());
        assert_eq!(checks.len(), 1);
        let check = &checks[0];
        assert!(check.target.contains("hocuspocus"), "{check:?}");
        assert!(check.measured.ends_with("×0.25"), "{check:?}");
        assert_eq!(check.met, Some(false));
    }

    #[test]
    fn cpu_efficiency_is_deliveries_per_cpu_second_of_the_server() {
        let one = |value: Value| parse_lines(&value.to_string()).pop().expect("a row");
        let edit = one(json!({"kind": "edit", "scenario": "small-rooms", "server_name": "dojo-sqlite",
                              "deliveries": 60_000, "server": {"cpu_s": 3.0}}));
        assert_eq!(value_of(&edit, "deliveries_per_cpu_s"), Some(20_000.0));
        let ramp = json!({"kind": "ramp", "scenario": "small-rooms", "server_name": "y-websocket",
            "capacity": {"rate": 2.0, "deliveries_per_s": 2_000.0},
            "steps": [
                {"rate": 1.0, "deliveries_per_s": 1_000.0, "server_cpu_percent": 10.0, "passed": true},
                {"rate": 2.0, "deliveries_per_s": 2_000.0, "server_cpu_percent": 25.0, "passed": true,
                 "retried_after": "p99 60 ms over 50 ms"},
                {"rate": 4.0, "deliveries_per_s": 3_000.0, "server_cpu_percent": 90.0, "passed": false}]});
        let ramp = one(ramp);
        assert_eq!(value_of(&ramp, "capacity_cpu_percent"), Some(25.0));
        assert_eq!(value_of(&ramp, "capacity_deliveries_per_cpu_s"), Some(8_000.0));
        assert!(steps(&ramp)[1].retried && !steps(&ramp)[0].retried);
        // No CPU figure, no ratio.
        let bare = one(json!({"kind": "edit", "server_name": "x", "deliveries": 5}));
        assert_eq!(value_of(&bare, "deliveries_per_cpu_s"), None);
    }

    #[test]
    fn figures_and_ratios_format_compactly() {
        assert_eq!(fmt(None), "–");
        assert_eq!(fmt(Some(1234567.4)), "1,234,567");
        assert_eq!(fmt(Some(123.4)), "123");
        assert_eq!(fmt(Some(12.34)), "12.3");
        assert_eq!(fmt(Some(1.234)), "1.23");
        assert_eq!(fmt(Some(4.0)), "4");
        assert_eq!(fmt(Some(0.0)), "0");
        assert_eq!(ratio(Some(1.0), Some(4.0)), "0.25");
        assert_eq!(ratio(Some(1.0), Some(0.0)), "–");
        assert_eq!(ratio(None, Some(1.0)), "–");
    }

    #[test]
    fn rendering_has_a_table_per_scenario_and_the_targets() {
        let markdown = render(&rows());
        assert!(markdown.contains("### Capacity, many small rooms (ramp)"), "{markdown}");
        assert!(markdown.contains("### Idle memory"), "{markdown}");
        assert!(markdown.contains("| dojo-sqlite | y-websocket |"), "{markdown}");
        assert!(markdown.contains("#### Ramp steps, small-rooms"), "{markdown}");
        assert!(markdown.contains("✗ 80 (1,500)"), "{markdown}");
        assert!(markdown.contains("### Targets"), "{markdown}");
        assert!(!markdown.contains("### One crowded room"), "{markdown}");
    }
}
