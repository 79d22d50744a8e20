//! The performance issue's targets (#19), checked against one run's figures, so that the one
//! command that rewrites BENCHMARKS.md also says which are met and by how much the others miss:
//!
//! 2. deliveries per server CPU-second ≥ 2 × y-websocket's in small rooms, ≥ the bare relay's
//!    in the crowded room;
//! 3. capacity on the pinned core ≥ 2 × y-websocket's (small rooms and crowded), and p99 at
//!    y-websocket's capacity ≤ ½ of its p99 there;
//! 4. an idle room with its client ≤ ½ of y-websocket's, an extra idle connection ≤ 4 KiB;
//! 5. p99 with compaction at its defaults within 10 % of p99 with it off (busy rooms, crowded);
//! 6. cold load and reconnect storm p99 no worse than any Node server's.
//!
//! Target 1 (the method: pinned cores) is the script's, stated in the run's header.

use std::fmt::Write as _;

use super::{Check, NODE_SERVERS, RELAY, Row, fmt, render_checks, steps, value_of};

/// The Node server every ratio of this issue is taken against.
const Y_WEBSOCKET: &str = "y-websocket";
/// The Dojo stores the targets are checked for: the durable SQLite file (the target's store) and,
/// beside it, PostgreSQL and in-memory SQLite.
const STORES: [&str; 3] = ["dojo-sqlite", "dojo-postgres", "dojo-memory"];
/// The SQLite file store with compaction off, against which target 5 is measured.
const NO_COMPACTION: &str = "dojo-sqlite-no-compaction";
/// A ramp step whose generator used this share of its core or more measured the generator.
const GENERATOR_SATURATED_PERCENT: f64 = 90.0;

fn find<'a>(rows: &'a [Row], server: &str, kind: &str, scenario: &str) -> Option<&'a Row> {
    rows.iter().find(|r| r.server == server && r.kind() == kind && r.scenario() == scenario)
}

fn times(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a.is_finite() => Some(a / b),
        _ => None,
    }
}

fn show_times(t: Option<f64>) -> String {
    t.map_or_else(|| "–".into(), |t| format!("×{t:.2}"))
}

/// Every target of the issue that the rows can answer, SQLite first.
pub fn check_performance(rows: &[Row]) -> Vec<Check> {
    let mut checks = Vec::new();
    for store in STORES {
        cpu_efficiency(rows, store, &mut checks);
    }
    for scenario in ["small-rooms", "crowded"] {
        for store in STORES {
            capacity(rows, store, scenario, &mut checks);
        }
    }
    for store in STORES {
        idle_memory(rows, store, &mut checks);
    }
    for (kind, scenario) in [("edit", "edit"), ("edit", "crowded")] {
        compaction(rows, kind, scenario, &mut checks);
    }
    for store in STORES {
        ahead_of_node(rows, store, "cold-load", "content_ms/p99", "full history p99", &mut checks);
        ahead_of_node(rows, store, "reconnect-storm", "resync_ms/p99", "resync p99", &mut checks);
    }
    checks
}

/// Target 2: deliveries per server CPU-second at the fixed load of the small-rooms and crowded
/// tables.
fn cpu_efficiency(rows: &[Row], store: &str, checks: &mut Vec<Check>) {
    for (scenario, peer, factor, wanted) in [
        ("small-rooms", Y_WEBSOCKET, 2.0, "≥ 2 × y-websocket's"),
        ("crowded", RELAY, 1.0, "≥ the bare relay's"),
    ] {
        let (Some(dojo), Some(other)) =
            (find(rows, store, "edit", scenario), find(rows, peer, "edit", scenario))
        else {
            continue;
        };
        let per_cpu = |row: &Row| value_of(row, "deliveries_per_cpu_s");
        let t = times(per_cpu(dojo), per_cpu(other));
        checks.push(Check {
            target: format!("2. {scenario}, {store}: deliveries per server CPU-second {wanted}"),
            measured: format!("{} vs {peer} {}: {}", fmt(per_cpu(dojo)), fmt(per_cpu(other)), show_times(t)),
            met: t.map(|t| t >= factor),
        });
    }
}

/// Target 3: capacity at p99 < bound on the pinned core, and p99 at y-websocket's capacity.
fn capacity(rows: &[Row], store: &str, scenario: &str, checks: &mut Vec<Check>) {
    let (Some(dojo), Some(node)) =
        (find(rows, store, "ramp", scenario), find(rows, Y_WEBSOCKET, "ramp", scenario))
    else {
        return;
    };
    let deliveries = |row: &Row| row.num("capacity/deliveries_per_s");
    let t = times(deliveries(dojo), deliveries(node));
    checks.push(Check {
        target: format!("3. {scenario}, {store}: capacity (deliveries/s at p99 < bound) ≥ 2 × y-websocket's"),
        measured: format!(
            "{} vs {} deliveries/s: {}{}",
            fmt(deliveries(dojo)),
            fmt(deliveries(node)),
            show_times(t),
            ceiling_note(dojo)
        ),
        met: t.map(|t| t >= 2.0),
    });

    let node_rate = node.num("capacity/rate");
    let at = |row: &Row| node_rate.and_then(|rate| steps(row).into_iter().find(|s| s.rate == rate));
    let (measured, met) = match (at(node), at(dojo)) {
        (Some(n), Some(d)) => {
            let t = times(d.p99_ms, n.p99_ms);
            (
                format!(
                    "at {} edits/s per client: p99 {} ms vs {} ms: {}",
                    fmt(Some(n.rate)),
                    fmt(d.p99_ms),
                    fmt(n.p99_ms),
                    show_times(t)
                ),
                t.map(|t| t <= 0.5),
            )
        }
        (Some(n), None) => (
            format!(
                "{store} stopped below y-websocket's capacity ({} edits/s per client)",
                fmt(Some(n.rate))
            ),
            Some(false),
        ),
        _ => ("y-websocket has no passing step".into(), None),
    };
    checks.push(Check {
        target: format!("3. {scenario}, {store}: p99 at y-websocket's capacity ≤ ½ of its p99"),
        measured,
        met,
    });
}

/// Why a ramp's capacity may not be the server's: it passed every step (the ramp's ceiling), or
/// the generator's core was full at the step that failed.
fn ceiling_note(ramp: &Row) -> String {
    let Some(all) = ramp.value["steps"].as_array() else {
        return String::new();
    };
    match all.iter().find(|s| s["passed"] != true) {
        None if !all.is_empty() => "; passed every step: the ramp's ceiling, not the server's".into(),
        Some(failed) => match failed["loadgen_cpu_percent"].as_f64() {
            Some(cpu) if cpu >= GENERATOR_SATURATED_PERCENT => {
                format!(
                    "; the generator's core was {cpu:.0} % busy at the failing step: its limit, perhaps not the server's"
                )
            }
            _ => String::new(),
        },
        None => String::new(),
    }
}

/// Target 4: idle memory per room with its client (≤ ½ y-websocket's) and per extra connection.
fn idle_memory(rows: &[Row], store: &str, checks: &mut Vec<Check>) {
    let Some(dojo) = find(rows, store, "idle-memory", "idle-memory") else {
        return;
    };
    if let Some(node) = find(rows, Y_WEBSOCKET, "idle-memory", "idle-memory") {
        let t = times(dojo.num("per_room_kib"), node.num("per_room_kib"));
        checks.push(Check {
            target: format!("4. idle, {store}: a room with its client ≤ ½ of y-websocket's"),
            measured: format!(
                "{} KiB vs {} KiB: {}",
                fmt(dojo.num("per_room_kib")),
                fmt(node.num("per_room_kib")),
                show_times(t)
            ),
            met: t.map(|t| t <= 0.5),
        });
    }
    let extra = dojo.num("per_extra_connection_kib");
    checks.push(Check {
        target: format!("4. idle, {store}: an extra idle connection ≤ 4 KiB"),
        measured: format!("{} KiB", fmt(extra)),
        met: extra.map(|kib| kib <= 4.0),
    });
}

/// Target 5: p99 with compaction at its defaults within 10 % of p99 with it off.
fn compaction(rows: &[Row], kind: &str, scenario: &str, checks: &mut Vec<Check>) {
    let (Some(on), Some(off)) =
        (find(rows, "dojo-sqlite", kind, scenario), find(rows, NO_COMPACTION, kind, scenario))
    else {
        return;
    };
    let p99 = |row: &Row| row.num("latency_ms/p99");
    let t = times(p99(on), p99(off));
    let name = if scenario == "edit" { "busy rooms" } else { scenario };
    checks.push(Check {
        target: format!("5. {name}, dojo-sqlite: p99 with compaction within 10 % of p99 without"),
        measured: format!("{} ms vs {} ms without: {}", fmt(p99(on)), fmt(p99(off)), show_times(t)),
        met: t.map(|t| t <= 1.1),
    });
}

/// Target 6: a p99 no worse than every Node server's that ran the scenario.
fn ahead_of_node(rows: &[Row], store: &str, kind: &str, path: &str, what: &str, checks: &mut Vec<Check>) {
    let Some(dojo) = find(rows, store, kind, kind) else {
        return;
    };
    let peers: Vec<&Row> = NODE_SERVERS.iter().filter_map(|name| find(rows, name, kind, kind)).collect();
    if peers.is_empty() {
        return;
    }
    let mine = dojo.num(path);
    let mut measured = format!("{} ms", fmt(mine));
    let mut met = mine.map(|_| true);
    for peer in peers {
        let t = times(mine, peer.num(path));
        let _ = write!(measured, "; {} {} ms: {}", peer.server, fmt(peer.num(path)), show_times(t));
        met = match (met, t) {
            (Some(all), Some(t)) => Some(all && t <= 1.0),
            _ => None,
        };
    }
    checks
        .push(Check { target: format!("6. {kind}, {store}: {what} ≤ every Node server's"), measured, met });
}

pub(super) fn render_performance_targets(out: &mut String, rows: &[Row]) {
    let checks = check_performance(rows);
    if checks.is_empty() {
        return;
    }
    render_checks(
        out,
        "Targets of the performance issue (#19)\n\nEach figure is from this run, the server on one pinned core. Target 1 (pinning) is the method above.",
        checks,
    );
}

#[cfg(test)]
mod tests {
    use super::super::parse_lines;
    use super::*;
    use serde_json::{Value, json};

    fn edit(server: &str, scenario: &str, deliveries: f64, cpu_s: f64, p99: f64) -> Value {
        json!({"kind": "edit", "scenario": scenario, "server_name": server, "deliveries": deliveries,
               "server": {"cpu_s": cpu_s}, "latency_ms": {"p99": p99}})
    }

    fn ramp(server: &str, scenario: &str, steps: &[(f64, f64, f64, bool, f64)]) -> Value {
        let steps: Vec<Value> = steps
            .iter()
            .map(|&(rate, p99, deliveries, passed, loadgen)| {
                json!({"rate": rate, "latency_ms": {"p99": p99}, "deliveries_per_s": deliveries,
                       "passed": passed, "loadgen_cpu_percent": loadgen})
            })
            .collect();
        let capacity = steps
            .iter()
            .take_while(|s| s["passed"] == true)
            .last()
            .map(|s| json!({"rate": s["rate"], "deliveries_per_s": s["deliveries_per_s"]}));
        json!({"kind": "ramp", "scenario": scenario, "server_name": server, "steps": steps, "capacity": capacity})
    }

    fn single(kind: &str, server: &str, fields: Value) -> Value {
        let mut row = json!({"kind": kind, "scenario": kind, "server_name": server});
        if let (Some(row), Some(fields)) = (row.as_object_mut(), fields.as_object()) {
            row.extend(fields.clone());
        }
        row
    }

    fn rows() -> Vec<Row> {
        let lines = [
            edit("dojo-sqlite", "small-rooms", 60_000.0, 2.0, 5.0),
            edit("y-websocket", "small-rooms", 60_000.0, 4.0, 3.0),
            edit("dojo-sqlite", "crowded", 400_000.0, 2.0, 20.0),
            edit("bare-relay", "crowded", 400_000.0, 1.0, 4.0),
            edit("dojo-sqlite-no-compaction", "crowded", 400_000.0, 2.0, 19.0),
            edit("dojo-sqlite", "edit", 1.0, 1.0, 30.0),
            edit("dojo-sqlite-no-compaction", "edit", 1.0, 1.0, 20.0),
            ramp(
                "dojo-sqlite",
                "small-rooms",
                &[
                    (1.0, 2.0, 1_000.0, true, 20.0),
                    (2.0, 4.0, 2_000.0, true, 40.0),
                    (4.0, 90.0, 3_000.0, false, 97.0),
                ],
            ),
            ramp(
                "y-websocket",
                "small-rooms",
                &[(1.0, 9.0, 1_000.0, true, 20.0), (2.0, 80.0, 1_500.0, false, 40.0)],
            ),
            ramp("dojo-sqlite", "crowded", &[(1.0, 2.0, 1_000.0, true, 20.0)]),
            ramp(
                "y-websocket",
                "crowded",
                &[(1.0, 9.0, 1_000.0, true, 20.0), (2.0, 80.0, 1_500.0, false, 40.0)],
            ),
            single(
                "idle-memory",
                "dojo-sqlite",
                json!({"per_room_kib": 6.0, "per_extra_connection_kib": 4.5}),
            ),
            single("idle-memory", "y-websocket", json!({"per_room_kib": 13.0})),
            single("cold-load", "dojo-sqlite", json!({"content_ms": {"p99": 50.0}})),
            single("cold-load", "y-websocket", json!({"content_ms": {"p99": 200.0}})),
            single("reconnect-storm", "dojo-sqlite", json!({"resync_ms": {"p99": 900.0}})),
            single("reconnect-storm", "y-websocket", json!({"resync_ms": {"p99": 1_000.0}})),
            single("reconnect-storm", "hocuspocus", json!({"resync_ms": {"p99": 800.0}})),
        ];
        parse_lines(&lines.iter().map(Value::to_string).collect::<Vec<_>>().join("\n"))
    }

    fn check<'a>(checks: &'a [Check], starts: &str) -> &'a Check {
        match checks.iter().find(|c| c.target.starts_with(starts)) {
            Some(check) => check,
            None => panic!("no check starting {starts:?} in {checks:?}"),
        }
    }

    #[test]
    fn cpu_efficiency_is_against_y_websocket_in_small_rooms_and_the_relay_when_crowded() {
        let checks = check_performance(&rows());
        // 30,000 against 15,000 deliveries per CPU-second: ×2, met.
        let small = check(&checks, "2. small-rooms, dojo-sqlite");
        assert!(small.measured.ends_with("×2.00"), "{small:?}");
        assert_eq!(small.met, Some(true));
        // 200,000 against the relay's 400,000: ×0.5, missed.
        let crowded = check(&checks, "2. crowded, dojo-sqlite");
        assert!(crowded.measured.ends_with("×0.50"), "{crowded:?}");
        assert_eq!(crowded.met, Some(false));
        // No PostgreSQL rows, no PostgreSQL checks.
        assert!(!checks.iter().any(|c| c.target.contains("dojo-postgres")), "{checks:?}");
    }

    #[test]
    fn capacity_says_when_the_generator_or_the_ramp_was_the_limit() {
        let checks = check_performance(&rows());
        let small = check(&checks, "3. small-rooms, dojo-sqlite: capacity");
        assert!(small.measured.contains("×2.00"), "{small:?}");
        assert!(small.measured.contains("97 % busy"), "{small:?}");
        assert_eq!(small.met, Some(true));
        // At y-websocket's capacity (1/s per client): 2 ms against 9 ms.
        let p99 = check(&checks, "3. small-rooms, dojo-sqlite: p99");
        assert!(p99.measured.ends_with("×0.22"), "{p99:?}");
        assert_eq!(p99.met, Some(true));
        // The crowded ramp passed its only step: capacity equal, and flagged as the ramp's.
        let crowded = check(&checks, "3. crowded, dojo-sqlite: capacity");
        assert!(crowded.measured.contains("ramp's ceiling"), "{crowded:?}");
        assert_eq!(crowded.met, Some(false));
    }

    #[test]
    fn idle_memory_has_a_room_target_and_a_connection_target() {
        let checks = check_performance(&rows());
        let room = check(&checks, "4. idle, dojo-sqlite: a room");
        assert!(room.measured.ends_with("×0.46"), "{room:?}");
        assert_eq!(room.met, Some(true));
        let connection = check(&checks, "4. idle, dojo-sqlite: an extra");
        assert_eq!(connection.measured, "4.50 KiB");
        assert_eq!(connection.met, Some(false));
    }

    #[test]
    fn compaction_is_compared_with_the_same_store_without_it() {
        let checks = check_performance(&rows());
        let busy = check(&checks, "5. busy rooms");
        assert!(busy.measured.ends_with("×1.50"), "{busy:?}");
        assert_eq!(busy.met, Some(false));
        let crowded = check(&checks, "5. crowded");
        assert_eq!(crowded.met, Some(true), "{crowded:?}");
    }

    #[test]
    fn cold_load_and_storm_must_beat_every_node_server() {
        let checks = check_performance(&rows());
        assert_eq!(check(&checks, "6. cold-load, dojo-sqlite").met, Some(true));
        // Ahead of y-websocket, behind Hocuspocus.
        let storm = check(&checks, "6. reconnect-storm, dojo-sqlite");
        assert!(storm.measured.contains("hocuspocus 800 ms: ×1.12"), "{storm:?}");
        assert_eq!(storm.met, Some(false));
    }

    #[test]
    fn the_table_is_rendered_only_when_something_can_be_checked() {
        let mut out = String::new();
        render_performance_targets(&mut out, &rows());
        assert!(out.contains("### Targets of the performance issue (#19)"), "{out}");
        assert!(out.contains("| **no** |"), "{out}");
        let mut empty = String::new();
        render_performance_targets(&mut empty, &[]);
        assert!(empty.is_empty());
    }
}
