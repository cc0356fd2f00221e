//! Store ↔ hub sync with real processes, real QUIC and real certificates:
//! a sale reaches the hub within a second; a store cut off keeps selling
//! and converges on heal with every sale exactly once; a hub restart, a
//! store killed mid-sync and a link that drops, duplicates and reorders
//! packets all end converged with nothing lost.

#![allow(clippy::unwrap_used)] // test code: a failed setup step should panic

use std::time::Duration;

use linli_tests::{Cluster, LinkMode, wait_for};
use serde_json::{Value, json};

const CONVERGE: Duration = Duration::from_secs(30);

fn sale_lines(i: usize) -> Value {
    json!([{"sku": "P00001", "qty": 1 + i % 3}, {"barcode": "6942215277577"}, {"sku": "P00003", "qty": 250 + i}])
}

fn wait_connected(c: &Cluster, id: &str) {
    wait_for(CONVERGE, "the store to connect", || {
        let h = c.store_get(id, "/health").ok()?;
        (h["sync"]["state"] == "connected").then_some(())
    })
    .unwrap();
}

/// Sells `n` times; returns the sale ids and the business day.
fn sell_many(c: &Cluster, id: &str, prefix: &str, n: usize) -> (Vec<String>, String) {
    let mut ids = Vec::new();
    let mut day = String::new();
    for i in 0..n {
        let r = c.sell(id, &format!("{prefix}-{i}"), sale_lines(i)).unwrap();
        day = r["business_day"].as_str().unwrap().to_owned();
        ids.push(r["sale_id"].as_str().unwrap().to_owned());
    }
    (ids, day)
}

fn assert_stock_agrees(c: &Cluster, id: &str, sku: &str) {
    let store = c.store_get(id, &format!("/api/v1/stock/{sku}")).unwrap();
    let level = |v: &Value| Some((v["on_hand"].as_i64()?, v["reserved"].as_i64()?));
    let at_store = level(&store).unwrap_or_else(|| panic!("no stock level at the store: {store}"));
    let mut last = Value::Null;
    wait_for(CONVERGE, "the hub's stock to match the store's", || {
        last = c
            .hub_get(&format!("/api/v1/stores/{id}/stock/{sku}"))
            .ok()?;
        (level(&last)? == at_store).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: store {store}, hub {last}"));
}

/// Every sale reaches the hub while the link is up, one after another (how
/// fast is a figure of `sync_bench`'s live propagation, not a test limit).
#[test]
fn each_sale_reaches_the_hub_live() {
    let mut c = Cluster::new(1).unwrap();
    c.add_store("S001").unwrap();
    wait_connected(&c, "S001");
    let (warm, day) = sell_many(&c, "S001", "warm", 1);
    c.wait_hub_has("S001", &day, &warm, CONVERGE).unwrap();
    let mut all = warm;
    for i in 0..5 {
        let r = c.sell("S001", &format!("live-{i}"), sale_lines(i)).unwrap();
        all.push(r["sale_id"].as_str().unwrap().to_owned());
        c.wait_hub_has("S001", &day, &all, CONVERGE).unwrap();
    }
    assert_stock_agrees(&c, "S001", "P00001");
    let health = c.hub_get("/api/v1/stores").unwrap();
    assert_eq!(health[0]["store_id"], "S001");
    assert_eq!(health[0]["sync_state"], "connected");
}

#[test]
fn a_store_cut_off_keeps_selling_and_converges_exactly_once() {
    let mut c = Cluster::new(2).unwrap();
    c.add_store("S001").unwrap();
    c.add_store("S002").unwrap();
    wait_connected(&c, "S001");
    let (before, day) = sell_many(&c, "S001", "before", 5);
    c.wait_hub_has("S001", &day, &before, CONVERGE).unwrap();

    c.link("S001", LinkMode::Cut).unwrap();
    // keep-alive 1 s / idle 3 s: the store notices the outage in seconds
    wait_for(
        Duration::from_secs(10),
        "the store to see the outage",
        || {
            let h = c.store_get("S001", "/health").ok()?;
            (h["sync"]["state"] != "connected").then_some(())
        },
    )
    .unwrap();
    // a trading day offline: sales, and a community pickup order handed over
    let (during, _) = sell_many(&c, "S001", "during", 150);
    let (s, order) = c
        .store_post(
            "S001",
            "/api/v1/orders",
            Some("order-1"),
            json!({"channel":"community","fulfilment":"pickup","customer":{"phone":"13900001111"},"lines":[{"sku":"P00005","qty":2}]}),
        )
        .unwrap();
    assert_eq!(s, 201, "{order}");
    let (s, handed) = c
        .store_post(
            "S001",
            "/api/v1/pickups/redeem",
            None,
            json!({"code": order["pickup_code"]}),
        )
        .unwrap();
    assert_eq!(s, 200, "{handed}");
    let h = c.store_get("S001", "/health").unwrap();
    assert!(h["sync"]["pending_docs"].as_u64().unwrap() >= 1, "{h}");
    // the other store is unaffected
    let (other, _) = sell_many(&c, "S002", "other", 3);
    c.wait_hub_has("S002", &day, &other, CONVERGE).unwrap();

    c.link("S001", LinkMode::Up).unwrap();
    let all: Vec<String> = before.iter().chain(&during).cloned().collect();
    c.wait_hub_has("S001", &day, &all, CONVERGE).unwrap();
    assert_stock_agrees(&c, "S001", "P00001");
    assert_stock_agrees(&c, "S001", "P00005");
    // the day's totals agree between store and hub
    let store_day = c
        .store_get("S001", &format!("/api/v1/sales?day={day}"))
        .unwrap();
    let store_total: i64 = store_day
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["total_fen"].as_i64().unwrap())
        .sum();
    let hub_day = c
        .hub_get(&format!("/api/v1/stores/S001/sales?day={day}"))
        .unwrap();
    assert_eq!(hub_day["total_fen"].as_i64().unwrap(), store_total);
    assert_eq!(hub_day["count"].as_u64().unwrap() as usize, all.len());
    wait_for(CONVERGE, "the store to report nothing pending", || {
        let h = c.store_get("S001", "/health").ok()?;
        (h["sync"]["state"] == "connected" && h["sync"]["pending_docs"] == 0).then_some(())
    })
    .unwrap();
}

#[test]
fn hub_restart_and_store_kill_9_mid_sync_lose_nothing() {
    let mut c = Cluster::new(3).unwrap();
    c.add_store("S001").unwrap();
    wait_connected(&c, "S001");
    let (mut acked, day) = sell_many(&c, "S001", "a", 20);
    // the hub dies hard and comes back on the same port
    c.restart_hub().unwrap();
    let (more, _) = sell_many(&c, "S001", "b", 20);
    acked.extend(more);
    c.wait_hub_has("S001", &day, &acked, CONVERGE).unwrap();

    // a backlog builds up behind a cut link; the store is killed right as
    // the link returns and its catch-up is in flight
    c.link("S001", LinkMode::Cut).unwrap();
    let (backlog, _) = sell_many(&c, "S001", "c", 100);
    acked.extend(backlog);
    c.link("S001", LinkMode::Up).unwrap();
    wait_for(CONVERGE, "catch-up to start", || {
        let n = c.hub_sale_ids("S001", &day).ok()?.len();
        (n > 40).then_some(())
    })
    .unwrap();
    c.kill_store("S001").unwrap();
    c.restart_store("S001").unwrap();
    let (after, _) = sell_many(&c, "S001", "d", 5);
    acked.extend(after);
    c.wait_hub_has("S001", &day, &acked, CONVERGE).unwrap();
    assert_stock_agrees(&c, "S001", "P00001");
}

#[test]
fn a_link_that_drops_duplicates_and_reorders_converges() {
    let mut c = Cluster::new(4).unwrap();
    c.add_store("S001").unwrap();
    wait_connected(&c, "S001");
    c.link(
        "S001",
        LinkMode::Lossy {
            drop: 0.1,
            duplicate: 0.1,
            reorder: 0.2,
        },
    )
    .unwrap();
    let (ids, day) = sell_many(&c, "S001", "lossy", 60);
    c.wait_hub_has("S001", &day, &ids, CONVERGE).unwrap();
    assert_stock_agrees(&c, "S001", "P00003");
}

#[test]
fn the_hub_catalog_reaches_every_store() {
    let mut c = Cluster::new(5).unwrap();
    c.add_store("S001").unwrap();
    c.add_store("S002").unwrap();
    wait_connected(&c, "S001");
    wait_connected(&c, "S002");
    let h = c.hub().unwrap();
    let csv = "sku,barcode,name,category,unit,price_fen,shelf_life_days\n\
               P00001,6942215277577,Local Whole Wheat Bun (Zhejiang),bakery,each,1800,4\n\
               N00001,6901234567892,Jasmine Tea,drinks,each,1500,365\n";
    let resp = c
        .http
        .post(format!("{}/api/v1/catalog/import", h.http))
        .bearer_auth(&h.token)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().unwrap());
    for id in ["S001", "S002"] {
        wait_for(CONVERGE, "the new catalog at the store", || {
            let p = c.store_get(id, "/api/v1/products/N00001").ok()?;
            let bun = c.store_get(id, "/api/v1/products/P00001").ok()?;
            (p["price_fen"] == 1500 && bun["price_fen"] == 1800).then_some(())
        })
        .unwrap();
    }
    // and it sells at the new price
    let r = c
        .sell("S002", "tea", json!([{"barcode": "6901234567892"}]))
        .unwrap();
    assert_eq!(r["total_fen"], 1500);
}

#[test]
fn a_node_with_another_stores_certificate_does_not_link() {
    let c = Cluster::new(6).unwrap();
    let wrong = c.dir.path().join("s002-identity");
    let status = std::process::Command::new(linli_tests::workspace_bin("linli-hub"))
        .args(["issue-cert", "--data-dir"])
        .arg(c.hub_dir())
        .args(["--store", "S002", "--out"])
        .arg(&wrong)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let quic = c.hub().unwrap().quic.to_string();
    let data = c.dir.path().join("S001");
    let node = linli_tests::spawn_listening(
        &linli_tests::workspace_bin("linli-edge"),
        &[
            "demo",
            "--store-id",
            "S001",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--hub",
            &quic,
            "--identity",
            wrong.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    )
    .unwrap();
    let health: Value = wait_for(CONVERGE, "the uplink to give up", || {
        let h: Value = c
            .http
            .get(format!("{}/health", node.base_url))
            .send()
            .ok()?
            .json()
            .ok()?;
        h["sync"]["last_error"].as_str().is_some().then_some(h)
    })
    .unwrap();
    assert_eq!(health["sync"]["state"], "disconnected");
    assert!(
        health["sync"]["last_error"]
            .as_str()
            .unwrap()
            .contains("S002"),
        "{health}"
    );
    // the store still sells on its own
    assert_eq!(health["status"], "ok");
    let stores = c.hub_get("/api/v1/stores").unwrap();
    assert_eq!(
        stores.as_array().unwrap().len(),
        0,
        "the hub never saw S001: {stores}"
    );
}
