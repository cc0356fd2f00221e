//! Group-buys end to end, with real processes, real QUIC and real HTTP:
//! a store cut off from the hub across the deadline keeps committing
//! customers at its counter within its allotment (a retry commits once, a
//! commitment after the deadline by the store's clock is refused); the
//! hub does not fail the campaign while that store has not reported, and
//! once the link heals the counter's commitments, made before the
//! deadline, count: the campaign is reached and the supplier order has
//! both stores' units. Then the goods arrive: each store's manager books
//! them in and the store makes every participant there a pickup order with
//! a code (once, however often receipts run), the customer sees the code,
//! it is handed over at the counter, and the campaign is fulfilled.

#![allow(clippy::unwrap_used)] // test code: a failed setup step should panic

use std::time::Duration;

use chrono::Utc;
use linli_tests::{Cluster, LinkMode, wait_for};
use serde_json::{Value, json};

const CONVERGE: Duration = Duration::from_secs(30);

fn customer(c: &Cluster, phone: &str) -> String {
    let h = c.hub().unwrap();
    let v: Value = c
        .http
        .post(format!("{}/api/v1/customer/session", h.http))
        .json(&json!({ "phone": phone }))
        .send()
        .unwrap()
        .json()
        .unwrap();
    v["token"].as_str().unwrap().to_owned()
}

fn counter_commit(
    c: &Cluster,
    store: &str,
    id: &str,
    key: &str,
    phone: &str,
    qty: i64,
) -> (u16, Value) {
    c.store_post(
        store,
        &format!("/api/v1/group-buys/{id}/commitments"),
        Some(key),
        json!({"customer": {"phone": phone}, "qty": qty}),
    )
    .unwrap()
}

#[test]
fn a_store_cut_off_across_the_deadline_still_makes_the_group_buy() {
    let mut c = Cluster::new(21).unwrap();
    c.hub_import("/api/v1/catalog/import", "products.csv")
        .unwrap();
    c.hub_import("/api/v1/stores/import", "stores.csv").unwrap();
    c.add_store("S001").unwrap();
    c.add_store("S002").unwrap();
    let h = c.hub().unwrap();
    let deadline = Utc::now() + chrono::Duration::seconds(20);
    let id = c
        .open_group_buy(
            &["S001", "S002"],
            3,
            deadline,
            json!({"grace_minutes": 30, "counter_allotment": 4}),
        )
        .unwrap();
    wait_for(CONVERGE, "S002's counter to know the group-buy", || {
        let v = c.store_get("S002", "/api/v1/group-buys").ok()?;
        (v[0]["group_buy_id"] == id.as_str() && v[0]["allotment"] == 4).then_some(())
    })
    .unwrap();

    c.link("S002", LinkMode::Cut).unwrap();
    // online at S001
    let a = customer(&c, "13800138401");
    let r: Value = c
        .http
        .post(format!("{}/api/v1/group-buys/{id}/commitments", h.http))
        .bearer_auth(&a)
        .header("Idempotency-Key", "a-1")
        .json(&json!({"store_id": "S001", "qty": 1}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(r["group_buy"]["participants"], json!(1), "{r}");
    // at S002's counter, cut off
    let (s, first) = counter_commit(&c, "S002", &id, "b-1", "13800138402", 1);
    assert_eq!(s, 201, "{first}");
    let (s, again) = counter_commit(&c, "S002", &id, "b-1", "13800138402", 1);
    assert_eq!((s, &again["commitment_id"]), (201, &first["commitment_id"]));
    let (s, v) = counter_commit(&c, "S002", &id, "c-1", "13800138403", 2);
    assert_eq!((s, v["allotment_left"].as_i64()), (201, Some(1)), "{v}");
    let (s, e) = counter_commit(&c, "S002", &id, "c-2", "13800138403", 1);
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("per_customer_limit")),
        "{e}"
    );
    let (s, e) = counter_commit(&c, "S002", &id, "d-1", "13800138404", 2);
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("allotment_exhausted")),
        "{e}"
    );
    let (s, e) = counter_commit(&c, "S002", "GNOSUCH", "x-1", "13800138404", 1);
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (404, Some("group_buy_not_found")),
        "{e}"
    );

    // the deadline passes with S002 still cut off
    wait_for(CONVERGE, "the deadline to pass", || {
        (Utc::now() > deadline).then_some(())
    })
    .unwrap();
    let (s, e) = counter_commit(&c, "S002", &id, "e-1", "13800138405", 1);
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("group_buy_closed")),
        "{e}"
    );
    let g = c.hub_get(&format!("/api/v1/group-buys/{id}")).unwrap();
    assert_eq!(
        (g["state"].as_str(), g["participants"].as_u64()),
        (Some("open"), Some(1)),
        "not failed while S002 has not reported: {g}"
    );

    c.link("S002", LinkMode::Up).unwrap();
    wait_for(
        CONVERGE,
        "the counter's commitments to reach the group-buy",
        || {
            let g = c.hub_get(&format!("/api/v1/group-buys/{id}")).ok()?;
            (g["state"] == "reached").then_some(g)
        },
    )
    .unwrap();
    let g = c.hub_get(&format!("/api/v1/group-buys/{id}")).unwrap();
    assert_eq!(
        (g["participants"].as_u64(), g["qty"].as_i64()),
        (Some(3), Some(4)),
        "{g}"
    );
    let so = c
        .hub_get(&format!("/api/v1/group-buys/{id}/supplier-order"))
        .unwrap();
    let per: Vec<(String, i64)> = so["stores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["store_id"].as_str().unwrap().to_owned(),
                s["qty"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        per,
        vec![("S001".to_owned(), 1), ("S002".to_owned(), 3)],
        "{so}"
    );

    // the goods arrive: S002's participants (from the hub) get pickup orders
    wait_for(CONVERGE, "S002 to know its participants", || {
        let v = c.store_get("S002", "/api/v1/group-buys").ok()?;
        (v[0]["participants"] == 2).then_some(())
    })
    .unwrap();
    let receipts = format!("/api/v1/group-buys/{id}/receipts");
    let (s, r) = c
        .store_post("S002", &receipts, Some("r-1"), json!({"qty": 2}))
        .unwrap();
    assert_eq!(s, 201, "{r}");
    // 2 units cover the first participant (1), not the second (2)
    assert_eq!(
        (r["orders"].as_array().unwrap().len(), r["waiting"].as_i64()),
        (1, Some(1)),
        "{r}"
    );
    let (s, r) = c
        .store_post("S002", &receipts, Some("r-2"), json!({"qty": 1}))
        .unwrap();
    assert_eq!(
        (
            s,
            r["orders"].as_array().unwrap().len(),
            r["waiting"].as_i64()
        ),
        (201, 1, Some(0)),
        "{r}"
    );
    let (s, r) = c
        .store_post("S002", &receipts, Some("r-3"), json!({"qty": 0}))
        .unwrap();
    assert_eq!(
        (s, r["orders"].as_array().unwrap().len()),
        (201, 0),
        "once each: {r}"
    );
    let on_hand = c.store_get("S002", "/api/v1/stock/P00009").unwrap();
    assert_eq!(on_hand["reserved"], 3, "{on_hand}");

    wait_for(CONVERGE, "S001 to know its participant", || {
        let v = c.store_get("S001", "/api/v1/group-buys").ok()?;
        (v[0]["participants"] == 1).then_some(())
    })
    .unwrap();
    let (s, r) = c
        .store_post("S001", &receipts, Some("r-1"), json!({"qty": 5}))
        .unwrap();
    assert_eq!(s, 201, "{r}");
    let code = r["orders"][0]["pickup_code"].as_str().unwrap().to_owned();
    wait_for(CONVERGE, "the group-buy to be fulfilled at the hub", || {
        let g = c.hub_get(&format!("/api/v1/group-buys/{id}")).ok()?;
        (g["state"] == "fulfilled").then_some(())
    })
    .unwrap();
    // the customer sees the code and collects with it
    let mine: Value = c
        .http
        .get(format!("{}/api/v1/customer/group-buys", h.http))
        .bearer_auth(&a)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(mine[0]["commitment"]["pickup_code"], json!(code), "{mine}");
    let (s, v) = c
        .store_post(
            "S001",
            "/api/v1/pickups/redeem",
            None,
            json!({"code": code}),
        )
        .unwrap();
    assert_eq!((s, v["status"].as_str()), (200, Some("handed_over")), "{v}");
}

/// A counter commitment cancelled at the counter while the store is cut
/// off: the store gives the money back (its day report), the units go back
/// to its allotment, and once the link heals the hub's participants drop by
/// exactly one, and stay so across a restart of the store and its resync;
/// the freed allotment takes another neighbour's commitment.
#[test]
fn a_counter_commitment_cancelled_offline_stops_counting_once_at_the_hub() {
    let mut c = Cluster::new(22).unwrap();
    c.hub_import("/api/v1/catalog/import", "products.csv")
        .unwrap();
    c.hub_import("/api/v1/stores/import", "stores.csv").unwrap();
    c.add_store("S001").unwrap();
    let deadline = Utc::now() + chrono::Duration::minutes(30);
    let id = c
        .open_group_buy(&["S001"], 5, deadline, json!({"counter_allotment": 2}))
        .unwrap();
    wait_for(CONVERGE, "S001's counter to know the group-buy", || {
        let v = c.store_get("S001", "/api/v1/group-buys").ok()?;
        (v[0]["group_buy_id"] == id.as_str()).then_some(())
    })
    .unwrap();
    let (s, a) = counter_commit(&c, "S001", &id, "a-1", "13800138501", 1);
    assert_eq!(s, 201, "{a}");
    let (s, b) = counter_commit(&c, "S001", &id, "b-1", "13800138502", 1);
    assert_eq!((s, b["allotment_left"].as_i64()), (201, Some(0)), "{b}");
    let hub_count = |c: &Cluster| -> Option<(u64, i64)> {
        let g = c.hub_get(&format!("/api/v1/group-buys/{id}")).ok()?;
        Some((g["participants"].as_u64()?, g["qty"].as_i64()?))
    };
    wait_for(CONVERGE, "the hub to count both", || {
        (hub_count(&c)? == (2, 2)).then_some(())
    })
    .unwrap();

    c.link("S001", LinkMode::Cut).unwrap();
    let (s, e) = counter_commit(&c, "S001", &id, "c-1", "13800138503", 1);
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("allotment_exhausted")),
        "{e}"
    );
    let cancel = format!(
        "/api/v1/group-buys/{id}/commitments/{}/cancel",
        a["commitment_id"].as_str().unwrap()
    );
    let (s, v) = c.store_post("S001", &cancel, None, json!({})).unwrap();
    assert_eq!(
        (s, v["status"].as_str(), v["refund"]["amount_fen"].as_i64()),
        (200, Some("cancelled"), Some(3990)),
        "{v}"
    );
    let (s, again) = c.store_post("S001", &cancel, None, json!({})).unwrap();
    assert_eq!((s, &again), (200, &v), "the same cancel");
    let (s, e) = c
        .store_post(
            "S001",
            &format!("/api/v1/group-buys/{id}/commitments/NOSUCH/cancel"),
            None,
            json!({}),
        )
        .unwrap();
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (404, Some("commitment_not_found")),
        "{e}"
    );
    assert_eq!(hub_count(&c), Some((2, 2)), "the hub has not heard yet");

    c.link("S001", LinkMode::Up).unwrap();
    wait_for(CONVERGE, "the hub to take the cancelled one out", || {
        (hub_count(&c)? == (1, 1)).then_some(())
    })
    .unwrap();
    wait_for(CONVERGE, "S001 to report nothing pending", || {
        let h = c.store_get("S001", "/health").ok()?;
        (h["sync"]["state"] == "connected" && h["sync"]["pending_docs"] == 0).then_some(())
    })
    .unwrap();
    assert_eq!(hub_count(&c), Some((1, 1)));

    // a restart resyncs the store's ledger: nothing counts out twice
    c.restart_store("S001").unwrap();
    wait_for(CONVERGE, "S001 to resync after its restart", || {
        let h = c.store_get("S001", "/health").ok()?;
        (h["sync"]["state"] == "connected" && h["sync"]["pending_docs"] == 0).then_some(())
    })
    .unwrap();
    let (s, still) = c.store_post("S001", &cancel, None, json!({})).unwrap();
    assert_eq!((s, still["refund"].clone()), (200, v["refund"].clone()));
    // the freed unit takes another neighbour, offline-checked as ever
    let (s, n) = counter_commit(&c, "S001", &id, "c-2", "13800138503", 1);
    assert_eq!((s, n["allotment_left"].as_i64()), (201, Some(0)), "{n}");
    wait_for(CONVERGE, "the hub to count the new one", || {
        (hub_count(&c)? == (2, 2)).then_some(())
    })
    .unwrap();
    let g = c.hub_get(&format!("/api/v1/group-buys/{id}")).unwrap();
    assert_eq!(g["state"], "open", "{g}");
    let listed = c
        .store_get("S001", &format!("/api/v1/group-buys/{id}/commitments"))
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 3, "{listed}");

    // the till: one refund given back at the counter, apart from sales
    let report = c.store_get("S001", "/api/v1/reports/day").unwrap();
    assert_eq!(
        (
            report["group_buy_refunds_count"].as_i64(),
            report["group_buy_refunds_fen"].as_i64()
        ),
        (Some(1), Some(3990)),
        "{report}"
    );
    // the counter's group-buy money (three taken, one given back) is the
    // same in the day report, the store's KPIs and the hub's
    let till: i64 = report["payments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["group_buys_fen"].as_i64().unwrap())
        .sum();
    assert_eq!(till, 2 * 3990, "{report}");
    let today = report["business_day"].as_str().unwrap().to_owned();
    let own = c
        .store_get(
            "S001",
            &format!("/api/v1/reports/kpis?from={today}&to={today}"),
        )
        .unwrap();
    assert_eq!(own["groupbuy_counter_fen"].as_i64(), Some(till), "{own}");
    wait_for(
        CONVERGE,
        "the hub's KPIs to count the counter's group-buy money",
        || {
            let v = c
                .hub_get(&format!(
                    "/api/v1/kpis?store_id=S001&from={today}&to={today}"
                ))
                .ok()?;
            (v["stores"][0]["groupbuy_counter_fen"].as_i64()? == till
                && v["totals"]["groupbuy_counter_fen"].as_i64()? == till)
                .then_some(())
        },
    )
    .unwrap();
}

/// A failed campaign's counter commitments are refunded at the counter
/// (issue 11): the hub decides the failure after the deadline and tells
/// the store with its orders document; the store's counter refunds each
/// commitment once (a second press answers the same refund), and the
/// hub's campaign view shows the refunds done and still owed as the
/// store's ledger arrives.
#[test]
fn a_failed_group_buys_counter_commitments_are_refunded_at_the_counter() {
    let mut c = Cluster::new(23).unwrap();
    c.hub_import("/api/v1/catalog/import", "products.csv")
        .unwrap();
    c.hub_import("/api/v1/stores/import", "stores.csv").unwrap();
    c.add_store("S001").unwrap();
    let deadline = Utc::now() + chrono::Duration::seconds(20);
    let id = c
        .open_group_buy(&["S001"], 5, deadline, json!({"grace_minutes": 0}))
        .unwrap();
    wait_for(CONVERGE, "S001's counter to know the group-buy", || {
        let v = c.store_get("S001", "/api/v1/group-buys").ok()?;
        (v[0]["group_buy_id"] == id.as_str()).then_some(())
    })
    .unwrap();
    let (s, a) = counter_commit(&c, "S001", &id, "a-1", "13800138601", 2);
    assert_eq!(s, 201, "{a}");
    let (s, b) = counter_commit(&c, "S001", &id, "b-1", "13800138602", 1);
    assert_eq!(s, 201, "{b}");
    let refund = |k: &Value| {
        format!(
            "/api/v1/group-buys/{id}/commitments/{}/refund",
            k["commitment_id"].as_str().unwrap()
        )
    };
    let (s, e) = c.store_post("S001", &refund(&a), None, json!({})).unwrap();
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("group_buy_not_failed")),
        "{e}"
    );

    // past the deadline (grace 0): the hub fails it and tells the store
    wait_for(Duration::from_secs(60), "S001 to hear it failed", || {
        let v = c.store_get("S001", "/api/v1/group-buys").ok()?;
        (v[0]["failed"] == true && v[0]["refunds_owed"] == 2).then_some(())
    })
    .unwrap();
    let (s, v) = c.store_post("S001", &refund(&a), None, json!({})).unwrap();
    assert_eq!(
        (
            s,
            v["status"].as_str(),
            v["refund"]["amount_fen"].as_i64(),
            v["refund"]["reason"].as_str()
        ),
        (200, Some("refunded"), Some(7980), Some("group_buy_failed")),
        "{v}"
    );
    let (s, again) = c.store_post("S001", &refund(&a), None, json!({})).unwrap();
    assert_eq!((s, &again), (200, &v), "the same refund");
    let hub_refunds = |c: &Cluster| -> Option<(i64, i64)> {
        let g = c.hub_get(&format!("/api/v1/group-buys/{id}")).ok()?;
        let r = &g["counter_refunds"];
        Some((r["done"].as_i64()?, r["owed"].as_i64()?))
    };
    wait_for(CONVERGE, "the hub to see one refund done, one owed", || {
        (hub_refunds(&c)? == (1, 1)).then_some(())
    })
    .unwrap();
    let (s, _) = c.store_post("S001", &refund(&b), None, json!({})).unwrap();
    assert_eq!(s, 200);
    wait_for(CONVERGE, "the hub to see both refunds done", || {
        (hub_refunds(&c)? == (2, 0)).then_some(())
    })
    .unwrap();
    let report = c.store_get("S001", "/api/v1/reports/day").unwrap();
    assert_eq!(
        (
            report["group_buy_failed_refunds_count"].as_i64(),
            report["group_buy_failed_refunds_fen"].as_i64()
        ),
        (Some(2), Some(3 * 3990)),
        "{report}"
    );
}

/// A store PC replaced (empty data directory, same identity) rebuilds its
/// counter's group-buys from what the hub holds: the campaign, the
/// commitments it took (with how each was paid) and the one it cancelled.
/// So the allotment stays what it was (the new PC takes exactly the units
/// left, then refuses), the cancelled one still cannot be refunded twice,
/// and the drawer counts each method as the old PC did.
#[test]
fn a_replaced_store_pc_rebuilds_its_counters_group_buys() {
    let mut c = Cluster::new(24).unwrap();
    c.hub_import("/api/v1/catalog/import", "products.csv")
        .unwrap();
    c.hub_import("/api/v1/stores/import", "stores.csv").unwrap();
    c.add_store("S001").unwrap();
    let deadline = Utc::now() + chrono::Duration::minutes(30);
    let id = c
        .open_group_buy(&["S001"], 9, deadline, json!({"counter_allotment": 3}))
        .unwrap();
    wait_for(CONVERGE, "S001's counter to know the group-buy", || {
        let v = c.store_get("S001", "/api/v1/group-buys").ok()?;
        (v[0]["group_buy_id"] == id.as_str()).then_some(())
    })
    .unwrap();
    let commit = |c: &Cluster, key: &str, phone: &str, method: &str| {
        c.store_post(
            "S001",
            &format!("/api/v1/group-buys/{id}/commitments"),
            Some(key),
            json!({"customer": {"phone": phone}, "qty": 1, "payment_method": method}),
        )
        .unwrap()
    };
    let (s, a) = commit(&c, "a-1", "13800138701", "cash");
    assert_eq!(s, 201, "{a}");
    let (s, b) = commit(&c, "b-1", "13800138702", "wechat_pay");
    assert_eq!(s, 201, "{b}");
    let cancel = format!(
        "/api/v1/group-buys/{id}/commitments/{}/cancel",
        a["commitment_id"].as_str().unwrap()
    );
    let (s, cancelled) = c.store_post("S001", &cancel, None, json!({})).unwrap();
    assert_eq!(s, 200, "{cancelled}");
    let report_of = |c: &Cluster| {
        let r = c.store_get("S001", "/api/v1/reports/day").unwrap();
        let by: std::collections::BTreeMap<String, i64> = r["payments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["method"].as_str().unwrap().to_owned(),
                    m["group_buys_fen"].as_i64().unwrap(),
                )
            })
            .collect();
        (by, r["group_buy_refunds_count"].as_i64().unwrap())
    };
    let before = report_of(&c);
    wait_for(CONVERGE, "the hub to hold both and the cancel", || {
        let g = c.hub_get(&format!("/api/v1/group-buys/{id}")).ok()?;
        (g["participants"].as_u64()? == 1).then_some(())
    })
    .unwrap();
    wait_for(CONVERGE, "S001 to report nothing pending", || {
        let h = c.store_get("S001", "/health").ok()?;
        (h["sync"]["state"] == "connected" && h["sync"]["pending_docs"] == 0).then_some(())
    })
    .unwrap();

    // the PC is replaced: same identity, empty data directory
    c.kill_store("S001").unwrap();
    let dir = c.store("S001").unwrap().data_dir.clone();
    std::fs::remove_dir_all(&dir).unwrap();
    c.restart_store("S001").unwrap();
    wait_for(CONVERGE, "the recovery to finish", || {
        let h = c.store_get("S001", "/health").ok()?;
        (h["sync"]["state"] == "connected" && h["sync"].get("recovery").is_none()).then_some(())
    })
    .unwrap();

    let listed = c
        .store_get("S001", &format!("/api/v1/group-buys/{id}/commitments"))
        .unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    assert_eq!(report_of(&c), before, "the drawer counts as before");
    let (s, again) = c.store_post("S001", &cancel, None, json!({})).unwrap();
    assert_eq!(
        (s, &again["refund"]),
        (200, &cancelled["refund"]),
        "the same cancel, not a second refund: {again}"
    );
    // one unit of three is taken: the new PC takes two more, then refuses
    let (s, v) = commit(&c, "c-1", "13800138703", "cash");
    assert_eq!((s, v["allotment_left"].as_i64()), (201, Some(1)), "{v}");
    let (s, v) = commit(&c, "d-1", "13800138704", "cash");
    assert_eq!((s, v["allotment_left"].as_i64()), (201, Some(0)), "{v}");
    let (s, e) = commit(&c, "e-1", "13800138705", "cash");
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("allotment_exhausted")),
        "{e}"
    );
    wait_for(CONVERGE, "the hub to count three", || {
        let g = c.hub_get(&format!("/api/v1/group-buys/{id}")).ok()?;
        (g["participants"].as_u64()? == 3).then_some(())
    })
    .unwrap();
}
