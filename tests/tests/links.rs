//! Store links with real processes: revoking a store cuts its live link at
//! once, and the revoked store says so in its `/health` and retries with
//! backoff instead of reconnecting ten times a second.

#![allow(clippy::unwrap_used)] // test code: a failed setup step should panic

use std::time::{Duration, Instant};

use linli_tests::{Cluster, wait_for, workspace_bin};
use serde_json::{Value, json};

const CONVERGE: Duration = Duration::from_secs(30);

fn hub_metric(c: &Cluster, name: &str) -> Option<u64> {
    let text = c
        .http
        .get(format!("{}/metrics", c.hub().ok()?.http))
        .send()
        .ok()?
        .text()
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

#[test]
fn a_revoked_store_is_cut_at_once_says_revoked_and_backs_off() {
    let mut c = Cluster::new(21).unwrap();
    c.add_store("S001").unwrap();
    wait_for(CONVERGE, "the store to link", || {
        let h = c.store_get("S001", "/health").ok()?;
        (h["sync"]["state"] == "connected").then_some(())
    })
    .unwrap();
    let r = c
        .sell("S001", "before", json!([{"sku": "P00001", "qty": 1}]))
        .unwrap();
    let day = r["business_day"].as_str().unwrap().to_owned();
    let before = vec![r["sale_id"].as_str().unwrap().to_owned()];
    c.wait_hub_has("S001", &day, &before, CONVERGE).unwrap();

    let status = std::process::Command::new(workspace_bin("linli-hub"))
        .args(["revoke", "--data-dir"])
        .arg(c.hub_dir())
        .args(["--store", "S001"])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let revoked_at = Instant::now();

    // the live link is cut, and the store says why
    let health: Value = wait_for(CONVERGE, "the store to report revoked", || {
        let h = c.store_get("S001", "/health").ok()?;
        (h["sync"]["state"] == "revoked").then_some(h)
    })
    .unwrap();
    let cut_after = revoked_at.elapsed();
    assert!(
        health["sync"]["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("吊销"),
        "{health}"
    );
    assert_eq!(hub_metric(&c, "linli_hub_sessions_revoked_total"), Some(1));

    // it keeps selling on its own; nothing reaches the hub
    c.sell("S001", "after", json!([{"sku": "P00001", "qty": 1}]))
        .unwrap();

    // it retries with backoff: six refusals take seconds, not half of one
    wait_for(CONVERGE, "a first refusal", || {
        (hub_metric(&c, "linli_hub_refused_revoked_total")? >= 1).then_some(())
    })
    .unwrap();
    let first = Instant::now();
    wait_for(Duration::from_secs(60), "six refusals", || {
        (hub_metric(&c, "linli_hub_refused_revoked_total")? >= 6).then_some(())
    })
    .unwrap();
    let six = first.elapsed();
    assert!(
        six >= Duration::from_millis(2500),
        "five retries in {six:?}: no backoff"
    );
    let h = c.store_get("S001", "/health").unwrap();
    assert_eq!(h["sync"]["state"], "revoked", "{h}");
    assert_eq!(h["status"], "ok");
    assert_eq!(c.hub_sale_ids("S001", &day).unwrap(), before);
    let stores = c.hub_get("/api/v1/stores").unwrap();
    let s = stores
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["store_id"] == "S001")
        .unwrap();
    assert_eq!(s["sync_state"], "disconnected", "{s}");
    eprintln!("live link cut {cut_after:?} after revoke; six refusals spread over {six:?}");
}
