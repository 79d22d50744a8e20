//! The load-generator issue's targets checked against the figures: throughput and latency on
//! the ramps, and idle memory per room.

use super::{NODE_SERVERS, RELAY, Row, fmt, is_dojo, render_checks, steps};

/// One target, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub target: String,
    pub measured: String,
    pub met: Option<bool>,
}

/// Checks the throughput and latency targets on the ramp of `scenario`, for every Dojo
/// server that ran it.
pub fn check_targets(rows: &[Row], scenario: &str) -> Vec<Check> {
    rows.iter()
        .filter(|r| r.kind() == "ramp" && r.scenario() == scenario && is_dojo(&r.server))
        .flat_map(|dojo| check_targets_for(rows, scenario, dojo))
        .collect()
}

fn check_targets_for(rows: &[Row], scenario: &str, dojo: &Row) -> Vec<Check> {
    let ramp = |server: &str| {
        rows.iter().find(|r| r.kind() == "ramp" && r.scenario() == scenario && r.server == server)
    };
    let capacity = |row: &Row| row.num("capacity/deliveries_per_s");
    let mut checks = Vec::new();

    // 1. Throughput: ≥ 5 × the better Node server's.
    let best_node = NODE_SERVERS
        .iter()
        .filter_map(|name| ramp(name))
        .max_by(|a, b| capacity(a).unwrap_or(0.0).total_cmp(&capacity(b).unwrap_or(0.0)));
    if let Some(node) = best_node {
        let times =
            capacity(dojo).zip(capacity(node)).map(|(d, n)| if n > 0.0 { d / n } else { f64::INFINITY });
        checks.push(Check {
            target: format!(
                "{scenario}, {}: throughput at p99 < bound ≥ 5 × the better Node server ({})",
                dojo.server, node.server
            ),
            measured: format!(
                "{} ({} deliveries/s) vs {} ({}): ×{}",
                dojo.server,
                fmt(capacity(dojo)),
                node.server,
                fmt(capacity(node)),
                times.map_or_else(|| "–".into(), |t| format!("{t:.2}"))
            ),
            met: times.map(|t| t >= 5.0),
        });

        // 2. p99 at the Node server's capacity ≤ ⅓ of its p99 there.
        let node_at = node["capacity"]["rate"].as_f64();
        let node_step = node_at.and_then(|rate| steps(node).into_iter().find(|s| s.rate == rate));
        let dojo_step = node_at.and_then(|rate| steps(dojo).into_iter().find(|s| s.rate == rate));
        let (measured, met) = match (node_step, dojo_step) {
            (Some(n), Some(d)) => {
                let share = d.p99_ms.zip(n.p99_ms).map(|(d, n)| if n > 0.0 { d / n } else { f64::INFINITY });
                (
                    format!(
                        "at {} edits/s per client: {} p99 {} ms vs {} {} ms: ×{}",
                        fmt(Some(n.rate)),
                        dojo.server,
                        fmt(d.p99_ms),
                        node.server,
                        fmt(n.p99_ms),
                        share.map_or_else(|| "–".into(), |s| format!("{s:.2}"))
                    ),
                    share.map(|s| s <= 1.0 / 3.0),
                )
            }
            (Some(n), None) => (
                format!(
                    "{} failed at a lower rate than {}'s capacity ({} edits/s per client)",
                    dojo.server,
                    node.server,
                    fmt(Some(n.rate))
                ),
                Some(false),
            ),
            _ => (format!("{} has no passing step", node.server), None),
        };
        checks.push(Check {
            target: format!("{scenario}, {}: p99 at {}'s capacity ≤ ⅓ of its p99", dojo.server, node.server),
            measured,
            met,
        });
    }

    // 4. ≥ 60 % of the bare relay's throughput.
    if let Some(relay) = ramp(RELAY) {
        let share = capacity(dojo).zip(capacity(relay)).map(|(d, r)| if r > 0.0 { d / r } else { 0.0 });
        checks.push(Check {
            target: format!("{scenario}, {}: throughput ≥ 60 % of the bare relay's", dojo.server),
            measured: format!(
                "{} {} vs relay {} deliveries/s: {}",
                dojo.server,
                fmt(capacity(dojo)),
                fmt(capacity(relay)),
                share.map_or_else(|| "–".into(), |s| format!("{:.0} %", s * 100.0))
            ),
            met: share.map(|s| s >= 0.6),
        });
    }
    checks
}

/// The idle-memory target: a Dojo room at most 1/10 of the leaner Node server's, for every Dojo.
pub fn check_idle(rows: &[Row]) -> Vec<Check> {
    rows.iter()
        .filter(|r| r.kind() == "idle-memory" && is_dojo(&r.server))
        .filter_map(|dojo| check_idle_for(rows, dojo))
        .collect()
}

fn check_idle_for(rows: &[Row], dojo: &Row) -> Option<Check> {
    let idle = |row: &&Row| row.kind() == "idle-memory";
    let node =
        rows.iter().filter(idle).filter(|r| NODE_SERVERS.contains(&r.server.as_str())).min_by(|a, b| {
            a.num("per_room_kib").unwrap_or(f64::MAX).total_cmp(&b.num("per_room_kib").unwrap_or(f64::MAX))
        })?;
    let share = dojo
        .num("per_room_kib")
        .zip(node.num("per_room_kib"))
        .map(|(d, n)| if n > 0.0 { d / n } else { f64::INFINITY });
    Some(Check {
        target: format!(
            "idle, {}: memory per room ≤ 1/10 of the leaner Node server ({})",
            dojo.server, node.server
        ),
        measured: format!(
            "{} {} KiB vs {} {} KiB per room (with its client): ×{}",
            dojo.server,
            fmt(dojo.num("per_room_kib")),
            node.server,
            fmt(node.num("per_room_kib")),
            share.map_or_else(|| "–".into(), |s| format!("{s:.2}"))
        ),
        met: share.map(|s| s <= 0.1),
    })
}

pub(super) fn render_targets(out: &mut String, rows: &[Row]) {
    let mut checks = check_targets(rows, "small-rooms");
    checks.extend(check_targets(rows, "crowded"));
    checks.extend(check_idle(rows));
    if checks.is_empty() {
        return;
    }
    render_checks(out, "Targets of the load-generator issue", checks);
}
