//! A live session across a store's outage, with real processes, real QUIC
//! and real HTTP: scheduling pulls rights for the featured products to the
//! hub, so when S001 is cut off during its stream the hub keeps taking
//! viewers' orders at the live price from what it holds; the session's
//! figures count them; once the link heals the orders reach S001 with their
//! live prices and are handed over by their codes.

#![allow(clippy::unwrap_used)] // test code: a failed setup step should panic

use std::time::Duration;

use chrono::Utc;
use linli_tests::{Cluster, LinkMode, wait_for};
use serde_json::{Value, json};

const CONVERGE: Duration = Duration::from_secs(30);

#[test]
fn a_store_cut_off_during_its_live_session_keeps_selling_at_the_live_price() {
    let mut c = Cluster::new(41).unwrap();
    c.hub_import("/api/v1/catalog/import", "products.csv")
        .unwrap();
    c.hub_import("/api/v1/stores/import", "stores.csv").unwrap();
    c.add_store("S001").unwrap();

    let now = Utc::now();
    let (s, l) = c
        .hub_call("POST", "/api/v1/live-sessions", None, None,
            json!({"store_id": "S001", "title": "店长晚间直播：芝士片",
                "starts_at": now + chrono::Duration::minutes(1), "ends_at": now + chrono::Duration::minutes(60),
                "featured": [{"sku": "P00007", "live_price_fen": 890}]}))
        .unwrap();
    assert_eq!(s, 201, "{l}");
    let id = l["session_id"].as_str().unwrap().to_owned();
    // the store lends the hub what the session asked for
    wait_for(
        CONVERGE,
        "S001 to lend the featured product to the hub",
        || {
            let v = c.hub_get("/api/v1/stock?sku=P00007").ok()?;
            let held =
                v.as_array()?.iter().find(|x| x["store_id"] == "S001")?["sellable"].as_i64()?;
            (held >= 3).then_some(())
        },
    )
    .unwrap();

    c.link("S001", LinkMode::Cut).unwrap();
    let (s, v) = c
        .hub_call(
            "POST",
            &format!("/api/v1/live-sessions/{id}/start"),
            None,
            None,
            json!({}),
        )
        .unwrap();
    assert_eq!(s, 200, "{v}");
    let mut orders = Vec::new();
    for i in 1..=3 {
        let phone = format!("1380013860{i}");
        let t = c.customer(&phone).unwrap();
        let (s, o) = c
            .hub_call("POST", "/api/v1/orders", Some(&t), Some(&format!("live-{i}")),
                json!({"channel": "live", "live_session_id": id, "customer": {"phone": phone},
                    "fulfilment": "pickup", "store_id": "S001", "lines": [{"sku": "P00007", "qty": 1}]}))
            .unwrap();
        assert_eq!(s, 201, "the hub sells from the rights it holds: {o}");
        assert_eq!(o["lines"][0]["unit_price_fen"], json!(890), "{o}");
        assert_eq!(o["total_fen"], json!(846), "{o}");
        orders.push(o);
    }
    let (s, v) = c
        .hub_call(
            "POST",
            &format!("/api/v1/live-sessions/{id}/end"),
            None,
            None,
            json!({}),
        )
        .unwrap();
    assert_eq!(s, 200, "{v}");
    let f = c.hub_get(&format!("/api/v1/live-sessions/{id}")).unwrap();
    assert_eq!(
        (f["orders"].as_i64(), f["buyers"].as_i64()),
        (Some(3), Some(3)),
        "{f}"
    );
    // after the end, the normal price again
    let t = c.customer("13800138609").unwrap();
    let (s, late) = c
        .hub_call("POST", "/api/v1/orders", Some(&t), Some("live-late"),
            json!({"channel": "live", "live_session_id": id, "customer": {"phone": "13800138609"},
                "fulfilment": "pickup", "store_id": "S001", "lines": [{"sku": "P00007", "qty": 1}]}))
        .unwrap();
    assert_eq!(
        (s, late["lines"][0]["unit_price_fen"].as_i64()),
        (201, Some(1070)),
        "{late}"
    );

    // healed: the store gets the session's orders with their live prices
    c.link("S001", LinkMode::Up).unwrap();
    for o in &orders {
        let oid = o["order_id"].as_str().unwrap();
        let v: Value = wait_for(CONVERGE, "S001 to have the live order", || {
            let v = c
                .store_get("S001", &format!("/api/v1/online-orders/{oid}"))
                .ok()?;
            (v["order_id"] == oid).then_some(v)
        })
        .unwrap();
        assert_eq!(
            v["total_fen"], o["total_fen"],
            "the live price, less the pickup discount: {v}"
        );
    }
    let code = orders[0]["pickup_code"].as_str().unwrap();
    let (s, v) = c
        .store_post(
            "S001",
            "/api/v1/pickups/redeem",
            None,
            json!({"code": code}),
        )
        .unwrap();
    assert_eq!(s, 200, "{v}");
}
