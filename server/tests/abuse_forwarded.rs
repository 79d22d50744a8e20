//! Abuse stories about client addresses: `X-Forwarded-For` is believed only from the proxies
//! `--trusted-proxies` names, so a client cannot pick its own address to escape per-address
//! limits or to look local to `/metrics`.

mod common;

use common::TestServer;

async fn get(server: &TestServer, path: &str, forwarded_for: Option<&str>) -> u16 {
    let mut request = reqwest::Client::new().get(server.http(path));
    if let Some(forwarded_for) = forwarded_for {
        request = request.header("x-forwarded-for", forwarded_for);
    }
    request.send().await.expect("the server answers").status().as_u16()
}

/// Statuses of `count` GETs of an anonymous route, each claiming the address `forwarded_for`.
async fn catalog_statuses(server: &TestServer, forwarded_for: Option<&str>, count: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..count {
        statuses.push(get(server, "/api/catalog", forwarded_for).await);
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_naming_a_new_address_in_every_request_is_still_one_address() {
    let server = TestServer::start_with(|config| {
        config.http.public_rate_per_sec = 1;
        config.http.public_burst = 3;
    })
    .await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        statuses.push(get(&server, "/api/catalog", Some(&format!("198.51.100.{i}"))).await);
    }
    assert_eq!(&statuses[..3], [200; 3], "the burst is served");
    // (`contains`: the bucket refills one request a second, should the machine stall.)
    assert!(statuses[3..].contains(&429), "forged addresses share the peer's budget: {statuses:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_each_client_has_its_own_budget_and_is_not_local() {
    // The test's own connections come from 127.0.0.1, which plays the proxy.
    let server = TestServer::start_with(|config| {
        config.http.public_rate_per_sec = 1;
        config.http.public_burst = 3;
        config.http.trusted_proxies = vec!["127.0.0.1/32".parse().expect("a range")];
    })
    .await;

    let first = catalog_statuses(&server, Some("198.51.100.1"), 6).await;
    assert_eq!(first[..3], [200; 3], "one client's burst");
    assert!(first[3..].contains(&429), "then its budget is spent: {first:?}");
    // What a client wrote before the proxy appended its address is not believed: this is
    // client 1 again, whatever it claims to the left.
    let again = catalog_statuses(&server, Some("198.51.100.2, 198.51.100.1"), 2).await;
    assert!(again.contains(&429), "{again:?}");
    let second = catalog_statuses(&server, Some("198.51.100.2"), 3).await;
    assert_eq!(second, [200; 3], "another client behind the same proxy has its own budget");
    // The proxy's own requests (health checks carry no header) have the proxy's budget.
    assert_eq!(catalog_statuses(&server, None, 3).await, [200; 3]);

    // /metrics answers loopback peers without a token: a client behind a local proxy is not one,
    // even when it claims to be.
    assert_eq!(get(&server, "/metrics", None).await, 200, "the proxy's own scrape");
    assert_eq!(get(&server, "/metrics", Some("203.0.113.9")).await, 403);
    assert_eq!(get(&server, "/metrics", Some("127.0.0.1, 203.0.113.9")).await, 403);
    server.stop().await;
}
