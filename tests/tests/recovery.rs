//! A replaced store PC: the store's data directory is wiped mid-day and the
//! node starts again under the same identity. Until it has recovered what
//! the hub holds for the store it says so and records nothing; then the
//! catalog is back, ticket numbers continue after the last one, and no
//! sale is lost.

#![allow(clippy::unwrap_used)] // test code: a failed setup step should panic

use std::collections::BTreeSet;
use std::time::Duration;

use linli_tests::{Cluster, LinkMode, wait_for};
use serde_json::{Value, json};

const CONVERGE: Duration = Duration::from_secs(30);

fn health(c: &Cluster, id: &str) -> Option<Value> {
    c.store_get(id, "/health").ok()
}

fn seq(ticket: &str) -> u32 {
    ticket.rsplit('-').next().unwrap().parse().unwrap()
}

#[test]
fn a_replaced_store_pc_recovers_before_it_sells() {
    let mut c = Cluster::new(31).unwrap();
    c.add_store("S001").unwrap();
    wait_for(CONVERGE, "the store to link", || {
        (health(&c, "S001")?["sync"]["state"] == "connected").then_some(())
    })
    .unwrap();
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
    wait_for(CONVERGE, "the hub's catalog at the store", || {
        let p = c.store_get("S001", "/api/v1/products/N00001").ok()?;
        (p["price_fen"] == 1500).then_some(())
    })
    .unwrap();

    // a morning of sales, all at the hub
    let mut sales = Vec::new();
    let mut tickets = Vec::new();
    let mut day = String::new();
    for i in 0..3 {
        let r = c
            .sell(
                "S001",
                &format!("am-{i}"),
                json!([{"sku": "P00001", "qty": 1}]),
            )
            .unwrap();
        day = r["business_day"].as_str().unwrap().to_owned();
        sales.push(r["sale_id"].as_str().unwrap().to_owned());
        tickets.push(r["ticket_no"].as_str().unwrap().to_owned());
    }
    c.wait_hub_has("S001", &day, &sales, CONVERGE).unwrap();
    let stock_before = c.store_get("S001", "/api/v1/stock/P00001").unwrap();
    let on_hand_before = stock_before["on_hand"].as_i64().unwrap();
    wait_for(CONVERGE, "the hub's stock to match the store's", || {
        let hub = c.hub_get("/api/v1/stores/S001/stock/P00001").ok()?;
        (hub["on_hand"] == on_hand_before).then_some(())
    })
    .unwrap();

    // the PC is replaced: same identity, empty data directory, and the hub
    // out of reach at first
    c.kill_store("S001").unwrap();
    let dir = c.store("S001").unwrap().data_dir.clone();
    std::fs::remove_dir_all(&dir).unwrap();
    c.link("S001", LinkMode::Cut).unwrap();
    c.restart_store("S001").unwrap();
    let h = health(&c, "S001").unwrap();
    assert_eq!(h["sync"]["recovery"], "in_progress", "{h}");
    let (status, body) = c
        .store_post(
            "S001",
            "/api/v1/sales",
            Some("during-recovery"),
            json!({"lines": [{"sku": "P00001", "qty": 1}], "payments": [{"method": "cash", "amount_fen": 10_000_000}]}),
        )
        .unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "recovering", "{body}");

    // the hub comes back: the node recovers, then sells
    c.link("S001", LinkMode::Up).unwrap();
    wait_for(CONVERGE, "the recovery to finish", || {
        let h = health(&c, "S001")?;
        (h["sync"]["state"] == "connected" && h["sync"].get("recovery").is_none()).then_some(())
    })
    .unwrap();
    let tea = c.store_get("S001", "/api/v1/products/N00001").unwrap();
    assert_eq!(tea["price_fen"], 1500, "the catalog is back: {tea}");
    let stock = c.store_get("S001", "/api/v1/stock/P00001").unwrap();
    assert_eq!(stock["on_hand"], on_hand_before, "the levels are back");

    for i in 0..2 {
        let r = c
            .sell(
                "S001",
                &format!("pm-{i}"),
                json!([{"sku": "P00001", "qty": 1}]),
            )
            .unwrap();
        assert_eq!(r["business_day"], day.as_str());
        sales.push(r["sale_id"].as_str().unwrap().to_owned());
        tickets.push(r["ticket_no"].as_str().unwrap().to_owned());
    }
    let seqs: Vec<u32> = tickets.iter().map(|t| seq(t)).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5], "tickets continue: {tickets:?}");

    // no sale lost, none twice, no ticket reused at the hub
    c.wait_hub_has("S001", &day, &sales, CONVERGE).unwrap();
    let at_hub = c
        .hub_get(&format!("/api/v1/stores/S001/sales?day={day}"))
        .unwrap();
    let hub_tickets: BTreeSet<String> = at_hub["sales"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["ticket_no"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(hub_tickets.len(), 5, "{at_hub}");
    wait_for(CONVERGE, "the hub's stock to follow the new node", || {
        let hub = c.hub_get("/api/v1/stores/S001/stock/P00001").ok()?;
        (hub["on_hand"] == on_hand_before - 2).then_some(())
    })
    .unwrap();
}
