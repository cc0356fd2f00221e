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

/// Waits for S001 to link, then imports a two-product catalog at the hub
/// and waits until the store has it.
fn link_with_catalog(c: &Cluster) {
    wait_for(CONVERGE, "the store to link", || {
        (health(c, "S001")?["sync"]["state"] == "connected").then_some(())
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
}

#[test]
fn a_replaced_store_pc_recovers_before_it_sells() {
    let mut c = Cluster::new(31).unwrap();
    c.add_store("S001").unwrap();
    link_with_catalog(&c);

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

/// POST on the hub as a customer.
fn hub_post(c: &Cluster, token: &str, path: &str, key: &str, body: Value) -> (u16, Value) {
    let h = c.hub().unwrap();
    let r = c
        .http
        .post(format!("{}{path}", h.http))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// The store's PC is restored from a backup taken mid-morning. The restored
/// database has documents, so nothing at start says it is old; the hub
/// shows it (it holds changes this database made and lost) and the node
/// recovers before it sells again: what happened after the backup is back
/// in its own tables, so a refunded sale cannot be refunded twice, a
/// handed-over order (taken at the counter or online) cannot be handed over
/// twice, a later sale can be refunded, and tickets continue.
#[test]
fn a_store_restored_from_an_old_backup_recovers_what_it_lost() {
    let mut c = Cluster::new(32).unwrap();
    c.hub_import("/api/v1/catalog/import", "products.csv")
        .unwrap();
    c.hub_import("/api/v1/stores/import", "stores.csv").unwrap();
    c.add_store("S001").unwrap();
    wait_for(CONVERGE, "rights to reach the hub", || {
        let v = c.hub_get("/api/v1/stock?sku=P00001").ok()?;
        let s = v.as_array()?.iter().find(|s| s["store_id"] == "S001")?;
        (s["sellable"].as_i64()? > 0).then_some(())
    })
    .unwrap();
    let bun = json!([{"sku": "P00001", "qty": 1}]);

    // the morning up to the backup
    let mut sales = Vec::new();
    let mut tickets = Vec::new();
    let mut day = String::new();
    for i in 0..3 {
        let r = c.sell("S001", &format!("am-{i}"), bun.clone()).unwrap();
        day = r["business_day"].as_str().unwrap().to_owned();
        sales.push(r["sale_id"].as_str().unwrap().to_owned());
        tickets.push(r["ticket_no"].as_str().unwrap().to_owned());
    }
    let (status, order) = c
        .store_post(
            "S001",
            "/api/v1/orders",
            Some("counter-order"),
            json!({"channel": "community", "fulfilment": "pickup",
                   "customer": {"phone": "13900000002"}, "lines": bun}),
        )
        .unwrap();
    assert_eq!(status, 201, "{order}");
    let counter_code = order["pickup_code"].as_str().unwrap().to_owned();
    c.wait_hub_has("S001", &day, &sales, CONVERGE).unwrap();

    // the backup: a copy of the data directory as a crash leaves it
    c.kill_store("S001").unwrap();
    let dir = c.store("S001").unwrap().data_dir.clone();
    let backup = dir.with_extension("backup");
    copy_dir(&dir, &backup);
    c.restart_store("S001").unwrap();

    // after the backup: two sales (one refunded), both pickups handed over
    for i in 0..2 {
        let r = c.sell("S001", &format!("noon-{i}"), bun.clone()).unwrap();
        sales.push(r["sale_id"].as_str().unwrap().to_owned());
        tickets.push(r["ticket_no"].as_str().unwrap().to_owned());
    }
    let (status, v) = c
        .store_post(
            "S001",
            &format!("/api/v1/sales/{}/refunds", sales[3]),
            Some("refund-noon-0"),
            json!({}),
        )
        .unwrap();
    assert_eq!(status, 201, "{v}");
    let redeem = |c: &Cluster, code: &str| {
        c.store_post(
            "S001",
            "/api/v1/pickups/redeem",
            None,
            json!({"code": code}),
        )
        .unwrap()
    };
    let (status, v) = redeem(&c, &counter_code);
    assert_eq!(status, 200, "{v}");
    let hub_url = c.hub().unwrap().http.clone();
    let me: Value = c
        .http
        .post(format!("{hub_url}/api/v1/customer/session"))
        .json(&json!({"phone": "13800000001"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let me = me["token"].as_str().unwrap().to_owned();
    let (status, online) = hub_post(
        &c,
        &me,
        "/api/v1/orders",
        "online-1",
        json!({"channel": "miniapp", "customer": {"phone": "13800000001"}, "fulfilment": "pickup",
               "store_id": "S001", "lines": bun}),
    );
    assert_eq!(status, 201, "{online}");
    let online_id = online["order_id"].as_str().unwrap().to_owned();
    let online_code = online["pickup_code"].as_str().unwrap().to_owned();
    wait_for(CONVERGE, "the online order at the store", || {
        let (s, v) = redeem(&c, &online_code);
        (s == 200).then_some(v)
    })
    .unwrap();
    c.wait_hub_has("S001", &day, &sales, CONVERGE).unwrap();
    wait_for(CONVERGE, "the hand-over at the hub", || {
        let v = c
            .hub_get(&format!("/api/v1/stores/S001/sales?day={day}"))
            .ok()?;
        let refunded = v["refunded_fen"].as_i64()? > 0;
        let on_hand = c.store_get("S001", "/api/v1/stock/P00001").ok()?["on_hand"].clone();
        let hub = c.hub_get("/api/v1/stores/S001/stock/P00001").ok()?["on_hand"].clone();
        let order = c
            .http
            .get(format!("{hub_url}/api/v1/orders/{online_id}"))
            .bearer_auth(&me)
            .send()
            .ok()?
            .json::<Value>()
            .ok()?;
        (refunded && on_hand == hub && order["status"] == "handed_over").then_some(on_hand)
    })
    .unwrap();
    let on_hand = c.store_get("S001", "/api/v1/stock/P00001").unwrap()["on_hand"].clone();

    // the PC's disk is restored from the backup
    c.kill_store("S001").unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    copy_dir(&backup, &dir);
    c.restart_store("S001").unwrap();

    // what the backup lacked is back in the store's own tables
    wait_for(
        CONVERGE,
        "the sale made after the backup at the store",
        || {
            let v = c
                .store_get("S001", &format!("/api/v1/sales/{}", sales[4]))
                .ok()?;
            let h = health(&c, "S001")?;
            (v["sale_id"] == sales[4].as_str() && h["sync"].get("recovery").is_none()).then_some(())
        },
    )
    .unwrap();
    let again = |key: &str, sale: &str| {
        c.store_post(
            "S001",
            &format!("/api/v1/sales/{sale}/refunds"),
            Some(key),
            json!({}),
        )
        .unwrap()
    };
    let (status, v) = again("refund-noon-0-again", &sales[3]);
    assert_eq!(status, 409, "refunded twice: {v}");
    assert_eq!(v["error"]["code"], "refund_exceeds_sale", "{v}");
    let (status, v) = again("refund-noon-1", &sales[4]);
    assert_eq!(
        status, 201,
        "a sale made after the backup is refundable: {v}"
    );
    for code in [&counter_code, &online_code] {
        let (status, v) = redeem(&c, code);
        assert_eq!(status, 409, "handed over twice: {v}");
        assert_eq!(v["error"]["code"], "pickup_already_handed_over", "{v}");
    }
    let stock = c.store_get("S001", "/api/v1/stock/P00001").unwrap();
    // the refund of sales[4] just put one bun back
    assert_eq!(
        stock["on_hand"].as_i64().unwrap(),
        on_hand.as_i64().unwrap() + 1,
        "levels: {stock}"
    );

    // tickets continue after the last one the hub holds; none reused
    let r = c.sell("S001", "pm-0", bun).unwrap();
    sales.push(r["sale_id"].as_str().unwrap().to_owned());
    tickets.push(r["ticket_no"].as_str().unwrap().to_owned());
    let seqs: Vec<u32> = tickets.iter().map(|t| seq(t)).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6], "{tickets:?}");
    c.wait_hub_has("S001", &day, &sales, CONVERGE).unwrap();
    let at_hub = c
        .hub_get(&format!("/api/v1/stores/S001/sales?day={day}"))
        .unwrap();
    let hub_tickets: BTreeSet<&str> = at_hub["sales"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["ticket_no"].as_str().unwrap())
        .collect();
    assert_eq!(hub_tickets.len(), 6, "{at_hub}");
}

/// `linli-edge recover` after a restore: the next start records nothing
/// until the node has what the hub holds, even before it reaches the hub.
#[test]
fn recover_marks_a_restored_database_to_recover_before_it_sells() {
    let mut c = Cluster::new(33).unwrap();
    c.add_store("S001").unwrap();
    let r = c
        .sell("S001", "before", json!([{"sku": "P00001", "qty": 1}]))
        .ok();
    // (a fresh store may have no catalog yet: the sale is not the point)
    drop(r);
    c.kill_store("S001").unwrap();
    let dir = c.store("S001").unwrap().data_dir.clone();
    let out = std::process::Command::new(linli_tests::workspace_bin("linli-edge"))
        .args(["recover", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.link("S001", LinkMode::Cut).unwrap();
    c.restart_store("S001").unwrap();
    let h = health(&c, "S001").unwrap();
    assert_eq!(h["sync"]["recovery"], "in_progress", "{h}");
    let (status, body) = c
        .store_post(
            "S001",
            "/api/v1/stock/receipts",
            Some("during-recovery"),
            json!({"sku": "P00001", "qty": 5}),
        )
        .unwrap();
    assert_eq!(status, 503, "{body}");
    c.link("S001", LinkMode::Up).unwrap();
    wait_for(CONVERGE, "the recovery to finish", || {
        let h = health(&c, "S001")?;
        (h["sync"]["state"] == "connected" && h["sync"].get("recovery").is_none()).then_some(())
    })
    .unwrap();

    // a missing database is refused with a sentence, not created
    let out = std::process::Command::new(linli_tests::workspace_bin("linli-edge"))
        .args(["recover", "--data-dir"])
        .arg(dir.with_extension("nowhere"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no database"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Parts (issue 9): a day's ledger and stock roll on to a new part every
/// `part_changes` changes (5 here, 400 in a real store). A busy day spans
/// several parts; the hub holds every sale and the latest levels, and a
/// replaced PC gets every part back, asking for each next part as the one
/// before arrives.
#[test]
fn a_day_in_many_parts_reaches_the_hub_and_comes_back_to_a_replaced_pc() {
    let mut c = Cluster::new(37).unwrap();
    let config = c.dir.path().join("small-parts.toml");
    std::fs::write(&config, "part_changes = 5\n").unwrap();
    c.add_store_with("S001", &["--config", config.to_str().unwrap()])
        .unwrap();
    link_with_catalog(&c);

    // 23 sales: at least 5 parts of ledger, the stock's opening part 0
    // and at least 5 parts of what moved
    let (mut sales, mut tickets, mut day) = (Vec::new(), Vec::new(), String::new());
    for i in 0..23 {
        let sku = if i % 3 == 0 { "N00001" } else { "P00001" };
        let r = c
            .sell(
                "S001",
                &format!("busy-{i}"),
                json!([{"sku": sku, "qty": 1}]),
            )
            .unwrap();
        day = r["business_day"].as_str().unwrap().to_owned();
        sales.push(r["sale_id"].as_str().unwrap().to_owned());
        tickets.push(r["ticket_no"].as_str().unwrap().to_owned());
    }
    c.wait_hub_has("S001", &day, &sales, CONVERGE).unwrap();
    let level = |c: &Cluster, sku: &str| {
        c.store_get("S001", &format!("/api/v1/stock/{sku}"))
            .unwrap()["on_hand"]
            .as_i64()
            .unwrap()
    };
    let (p_before, n_before) = (level(&c, "P00001"), level(&c, "N00001"));
    wait_for(CONVERGE, "the hub's levels to be the latest part's", || {
        let p = c.hub_get("/api/v1/stores/S001/stock/P00001").ok()?;
        let n = c.hub_get("/api/v1/stores/S001/stock/N00001").ok()?;
        (p["on_hand"] == p_before && n["on_hand"] == n_before).then_some(())
    })
    .unwrap();
    let hub_db = rusqlite::Connection::open(c.hub_dir().join("hub.db")).unwrap();
    let parts = |kind: &str| -> i64 {
        hub_db
            .query_row(
                "SELECT count(*) FROM docs WHERE doc_id LIKE ?1",
                [format!("store/S001/{kind}/{day}%")],
                |r| r.get(0),
            )
            .unwrap()
    };
    // (the demo's opening stock movements come first in part 0)
    assert!(parts("ledger") >= 5, "23 sales in parts of 5");
    assert!(parts("stock") >= 5, "the opening part and what moved");

    // the PC is replaced: every part comes back
    c.kill_store("S001").unwrap();
    let dir = c.store("S001").unwrap().data_dir.clone();
    std::fs::remove_dir_all(&dir).unwrap();
    c.restart_store("S001").unwrap();
    wait_for(CONVERGE, "the recovery to finish", || {
        let h = health(&c, "S001")?;
        (h["sync"]["state"] == "connected" && h["sync"].get("recovery").is_none()).then_some(())
    })
    .unwrap();
    for s in &sales {
        let v = c.store_get("S001", &format!("/api/v1/sales/{s}")).unwrap();
        assert_eq!(v["sale_id"], s.as_str(), "{v}");
    }
    assert_eq!(
        (level(&c, "P00001"), level(&c, "N00001")),
        (p_before, n_before),
        "the levels are the latest part's"
    );
    let r = c
        .sell("S001", "after", json!([{"sku": "P00001", "qty": 1}]))
        .unwrap();
    assert_eq!(
        seq(r["ticket_no"].as_str().unwrap()),
        24,
        "tickets continue: {r}"
    );
    sales.push(r["sale_id"].as_str().unwrap().to_owned());
    c.wait_hub_has("S001", &day, &sales, CONVERGE).unwrap();
}
