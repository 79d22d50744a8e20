//! The shipped Grafana dashboard and Prometheus alert rules (`deploy/`) name only metrics the
//! server exports, with the suffixes their types give them, and the dashboard has what Grafana
//! needs to import it. A renamed or removed metric fails here rather than as an empty panel or
//! an alert that can never fire. (`promtool check rules` in CI checks the rules' syntax.)

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::TestServer;
use serde_json::Value;

fn deploy_file(path: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every `dojo_…` token in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(found) = text[at..].find("dojo_") {
        let start = at + found;
        let word_start = start == 0 || !is_name_byte(bytes[start - 1]);
        let end = start + text[start..].bytes().take_while(|b| is_name_byte(*b)).count();
        if word_start {
            names.insert(text[start..end].to_owned());
        }
        at = end.max(start + 1);
    }
    names
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'
}

/// The series names `/metrics` can produce, from its `# TYPE` lines: counters end in `_total`,
/// histograms have `_bucket`, `_sum` and `_count`.
fn exported_series(exposition: &str) -> BTreeSet<String> {
    let mut series = BTreeSet::new();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else { continue };
        let Some((name, kind)) = rest.split_once(' ') else { continue };
        match kind.trim() {
            "counter" => {
                series.insert(format!("{name}_total"));
            }
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    series.insert(format!("{name}{suffix}"));
                }
            }
            _ => {
                series.insert(name.to_owned());
            }
        }
    }
    series
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_alert_rules_name_only_exported_metrics() {
    let server = TestServer::start().await;
    // Some activity: a labelled family has no series, not even its TYPE line, until a label
    // value is used (or pre-created, as `Metrics::new` does for some).
    let client = server.client("observability").await;
    client
        .edit(|txn| dojo_sync_protocol::canvas::write_node(txn, &common::node("n1", 0.0)).expect("a node"))
        .await
        .expect("edit");
    server.wait_metric("dojo_persisted_updates_total", "", |n| n >= 1.0).await;
    client.close().await;
    server.wait_metric("dojo_disconnects_total", "client_closed", |n| n >= 1.0).await;
    let refused = dojo_room_client::SyncClient::connect(&server.url("not%0Aa%0Aroom")).await;
    assert!(refused.is_err(), "a bad room name is refused before the upgrade");
    server.wait_metric("dojo_rejected_upgrades_total", "bad_room_name", |n| n >= 1.0).await;
    let exposition =
        reqwest::get(server.http("/metrics")).await.expect("GET /metrics").text().await.expect("body");
    let exported = exported_series(&exposition);
    for expected in
        ["dojo_connections_open", "dojo_store_commit_seconds_bucket", "dojo_persist_failures_total"]
    {
        assert!(exported.contains(expected), "{expected} is not exported: {exported:?}");
    }
    // The commit latency histogram has observed the edit's commit.
    assert!(server.metric("dojo_store_commit_seconds_count", "").await >= 1.0, "no commit observed");
    assert!(exposition.contains("dojo_runs_active{state=\"queued\"}"), "the run gauges are read at scrape");

    let dashboard = deploy_file("grafana/dojo-dashboard.json");
    let rules = deploy_file("prometheus/alerts.yaml");
    for (file, text) in
        [("deploy/grafana/dojo-dashboard.json", &dashboard), ("deploy/prometheus/alerts.yaml", &rules)]
    {
        let used = metric_names(text);
        assert!(used.len() >= 5, "{file} names hardly any metric: {used:?}");
        let unknown: Vec<_> = used.difference(&exported).collect();
        assert!(unknown.is_empty(), "{file} names metrics the server does not export: {unknown:?}");
    }
    server.stop().await;
}

#[test]
fn the_dashboard_is_a_grafana_dashboard() {
    let dashboard: Value =
        serde_json::from_str(&deploy_file("grafana/dojo-dashboard.json")).expect("valid JSON");
    for field in ["title", "uid"] {
        assert!(dashboard[field].as_str().is_some_and(|s| !s.is_empty()), "no {field}");
    }
    assert!(dashboard["schemaVersion"].as_u64().is_some(), "no schemaVersion");
    let variables = dashboard["templating"]["list"].as_array().expect("templating.list");
    assert!(
        variables.iter().any(|v| v["type"] == "datasource" && v["query"] == "prometheus"),
        "no Prometheus data source variable"
    );
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut queries = 0;
    for panel in panels {
        let title = panel["title"].as_str().expect("every panel has a title");
        assert!(ids.insert(panel["id"].as_u64().expect("a numeric id")), "duplicate panel id in {title}");
        let grid = &panel["gridPos"];
        for key in ["h", "w", "x", "y"] {
            assert!(grid[key].as_u64().is_some(), "{title}: gridPos.{key}");
        }
        assert!(
            grid["x"].as_u64().unwrap_or(0) + grid["w"].as_u64().unwrap_or(0) <= 24,
            "{title}: wider than the grid"
        );
        if panel["type"] == "row" {
            continue;
        }
        assert!(panel["type"].as_str().is_some(), "{title}: no type");
        let targets = panel["targets"].as_array().unwrap_or_else(|| panic!("{title}: no targets"));
        assert!(!targets.is_empty(), "{title}: no queries");
        for target in targets {
            let expr = target["expr"].as_str().unwrap_or_else(|| panic!("{title}: a target without expr"));
            assert!(expr.contains("dojo_"), "{title}: {expr} queries no Dojo metric");
            assert!(target["refId"].as_str().is_some(), "{title}: a target without refId");
            queries += 1;
        }
    }
    assert!(queries >= 20, "only {queries} queries");
}

#[test]
fn metric_names_are_found_as_whole_words() {
    let names = metric_names("rate(dojo_a_total[5m]) + x_dojo_b + {dojo_c_bucket}");
    assert_eq!(names, BTreeSet::from(["dojo_a_total".to_owned(), "dojo_c_bucket".to_owned()]));
}
