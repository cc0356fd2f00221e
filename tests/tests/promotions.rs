//! Promotions end to end, with real processes, real QUIC and real HTTP:
//! the hub sends a store its markdowns and a coupon campaign with the
//! store's allotment; cut off from the hub, the counter prices with the
//! markdown exactly as the hub prices an online basket, takes coupons
//! claimed at the hub after the link was cut (signed codes), once each
//! (a retried sale redeems once), never beyond its allotment, refuses a
//! forged code and a basket under the minimum spend; a full refund gives
//! the coupon back once. When the link heals the hub counts the counter's
//! redemptions (the voided one not at all) and lends the store more.

#![allow(clippy::unwrap_used)] // test code: a failed setup step should panic

use std::time::Duration;

use chrono::Utc;
use linli_tests::{Cluster, LinkMode, wait_for};
use serde_json::{Value, json};

const CONVERGE: Duration = Duration::from_secs(30);

fn sale(c: &Cluster, key: &str, qty: i64, coupon: Option<&str>) -> (u16, Value) {
    let mut body = json!({"lines": [{"sku": "P00001", "qty": qty}],
        "payments": [{"method": "cash", "amount_fen": 100_000}]});
    if let Some(code) = coupon {
        body["coupon"] = json!(code);
    }
    c.store_post("S001", "/api/v1/sales", Some(key), body)
        .unwrap()
}

fn counter_coupon(c: &Cluster, id: &str) -> Value {
    let v = c.store_get("S001", "/api/v1/promotions").unwrap();
    v["coupons"]
        .as_array()
        .and_then(|l| l.iter().find(|x| x["coupon_id"] == id).cloned())
        .unwrap_or(Value::Null)
}

/// The hub with the catalog and the store directory, and S001 linked.
fn chain_with_s001() -> Cluster {
    let mut c = Cluster::new(31).unwrap();
    c.hub_import("/api/v1/catalog/import", "products.csv")
        .unwrap();
    c.hub_import("/api/v1/stores/import", "stores.csv").unwrap();
    c.add_store("S001").unwrap();
    c
}

/// S001's manager's bread markdown (15.00), all day, once S001 has it
/// (the store's first markdowns: version 1).
fn bread_markdown(c: &Cluster) {
    let (s, v) = c
        .hub_call("PUT", "/api/v1/stores/S001/markdowns", None, None,
            json!({"markdowns": [{"name": "面包特价", "skus": ["P00001"], "price_fen": 1500, "from": "00:00", "to": "24:00"}]}))
        .unwrap();
    assert_eq!(s, 200, "{v}");
    wait_for(CONVERGE, "S001 to know the markdown", || {
        let v = c.store_get("S001", "/api/v1/promotions").ok()?;
        (v["rules_version"] == 1).then_some(())
    })
    .unwrap();
}

/// A 满30减5 campaign of `budget_fen` at S001's counter, which may give
/// away 12 yuan before asking; returns its id once S001 knows it.
fn counter_campaign(c: &Cluster, budget_fen: i64) -> String {
    let (s, cp) = c
        .hub_call(
            "POST",
            "/api/v1/coupons",
            None,
            None,
            json!({"name": "满30减5", "off": {"amount_fen": 500}, "min_spend_fen": 3000,
                "budget_fen": budget_fen, "per_customer_limit": 3,
                "valid_until": (Utc::now() + chrono::Duration::days(3)).to_rfc3339(),
                "store_ids": ["S001"], "counter_allotment_fen": 1200}),
        )
        .unwrap();
    assert_eq!(s, 201, "{cp}");
    let cid = cp["coupon_id"].as_str().unwrap().to_owned();
    wait_for(CONVERGE, "S001 to know the coupon", || {
        (counter_coupon(c, &cid)["allotment_fen"] == 1200).then_some(())
    })
    .unwrap();
    cid
}

/// `n` counter coupons of campaign `cid` claimed at the hub by the
/// customer with `phone`: the customer's token and the codes.
fn counter_codes(c: &Cluster, cid: &str, phone: &str, n: usize) -> (String, Vec<String>) {
    let a = c.customer(phone).unwrap();
    let codes = (1..=n)
        .map(|i| {
            let (s, v) = c
                .hub_call(
                    "POST",
                    &format!("/api/v1/coupons/{cid}/claims"),
                    Some(&a),
                    Some(&format!("claim-{i}")),
                    json!({"use": "counter", "store_id": "S001"}),
                )
                .unwrap();
            assert_eq!(s, 201, "{v}");
            v["code"].as_str().unwrap().to_owned()
        })
        .collect();
    (a, codes)
}

#[test]
fn a_counter_cut_off_takes_coupons_within_its_allotment_and_a_refund_gives_one_back() {
    let c = chain_with_s001();

    // the manager's evening markdown, here all day: bread at 15.00
    bread_markdown(&c);
    // 满30减5, the counter may give away 12 yuan before asking
    let cid = counter_campaign(&c, 100_000);

    c.link("S001", LinkMode::Cut).unwrap();
    // coupons claimed at the hub while the store cannot hear of them
    let (a, codes) = counter_codes(&c, &cid, "13800138501", 3);

    // the same basket costs the same at the counter and online
    let (s, q) = c
        .hub_call("POST", "/api/v1/quote", Some(&a), None,
            json!({"fulfilment": "pickup", "store_id": "S001", "lines": [{"sku": "P00001", "qty": 2}]}))
        .unwrap();
    assert_eq!((s, q["subtotal_fen"].as_i64()), (200, Some(3000)), "{q}");
    // the till's quote is what the sale will take, and redeems nothing
    let (s, tq) = c
        .store_post(
            "S001",
            "/api/v1/sales/quote",
            None,
            json!({"lines": [{"sku": "P00001", "qty": 2}], "coupon": codes[0]}),
        )
        .unwrap();
    assert_eq!(s, 200, "{tq}");
    assert_eq!(
        (
            tq["total_fen"].as_i64(),
            tq["coupon_fen"].as_i64(),
            tq["lines"][0]["unit_price_fen"].as_i64()
        ),
        (Some(2500), Some(500), Some(1500)),
        "{tq}"
    );
    assert_eq!(counter_coupon(&c, &cid)["used_fen"], json!(0));
    let (s, first) = sale(&c, "s-1", 2, Some(&codes[0]));
    assert_eq!(s, 201, "{first}");
    assert_eq!(first["total_fen"], json!(2500), "{first}");
    assert_eq!(first["lines"][0]["unit_price_fen"], json!(1500));
    assert_eq!(first["lines"][0]["coupon_fen"], json!(500));
    let rules: Vec<Value> = first["pricing"]["applied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"]["kind"].clone())
        .collect();
    assert_eq!(rules, vec![json!("markdown"), json!("coupon")], "{first}");
    assert_eq!(first["pricing"]["rules_version"], json!(1));
    let (s, again) = sale(&c, "s-1", 2, Some(&codes[0]));
    assert_eq!(
        (s, &again["sale_id"]),
        (201, &first["sale_id"]),
        "a retry is the same sale"
    );
    assert_eq!(
        counter_coupon(&c, &cid)["used_fen"],
        json!(500),
        "and redeems once"
    );

    let (s, e) = sale(&c, "s-2", 2, Some(&codes[0]));
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("coupon_used")),
        "{e}"
    );
    let (s, e) = sale(&c, "s-3", 1, Some(&codes[1]));
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (422, Some("coupon_min_spend")),
        "{e}"
    );
    let mut forged = codes[1].clone();
    forged.pop();
    forged.push(if codes[1].ends_with('A') { 'B' } else { 'A' });
    let (s, e) = sale(&c, "s-4", 2, Some(&forged));
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (422, Some("coupon_invalid")),
        "{e}"
    );
    let (s, second) = sale(&c, "s-5", 3, Some(&codes[1]));
    assert_eq!(
        (s, second["total_fen"].as_i64()),
        (201, Some(4000)),
        "{second}"
    );
    // 12.00 lent, 10.00 given: the third does not fit
    let (s, e) = sale(&c, "s-6", 2, Some(&codes[2]));
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("coupon_budget_exhausted")),
        "{e}"
    );

    // the first sale is refunded whole: its coupon comes back, once
    let sid = first["sale_id"].as_str().unwrap();
    let (s, r) = c
        .store_post(
            "S001",
            &format!("/api/v1/sales/{sid}/refunds"),
            Some("r-1"),
            json!({}),
        )
        .unwrap();
    assert_eq!(
        (s, r["amount_fen"].as_i64(), r["coupon_restored"].as_bool()),
        (201, Some(2500), Some(true)),
        "{r}"
    );
    let (s, _) = c
        .store_post(
            "S001",
            &format!("/api/v1/sales/{sid}/refunds"),
            Some("r-2"),
            json!({}),
        )
        .unwrap();
    assert_ne!(s, 201, "nothing is left to refund");
    assert_eq!(counter_coupon(&c, &cid)["used_fen"], json!(500));
    let (s, third) = sale(&c, "s-7", 2, Some(&codes[0]));
    assert_eq!(s, 201, "the given-back coupon works again: {third}");

    // healed: the hub counts what the counter gave (the voided one not at
    // all) and lends another step, which reaches the counter
    c.link("S001", LinkMode::Up).unwrap();
    wait_for(CONVERGE, "the hub to count the counter's coupons", || {
        let (_, v) = c
            .hub_call(
                "GET",
                &format!("/api/v1/coupons/{cid}"),
                None,
                None,
                Value::Null,
            )
            .ok()?;
        (v["counter_used_fen"] == 1000 && v["redemptions"] == 2).then_some(v)
    })
    .unwrap();
    wait_for(CONVERGE, "S001 to be lent more", || {
        (counter_coupon(&c, &cid)["allotment_fen"] == 2400).then_some(())
    })
    .unwrap();
    let (s, v) = sale(&c, "s-8", 2, Some(&codes[2]));
    assert_eq!(s, 201, "{v}");
    let (_, mine) = c
        .hub_call(
            "GET",
            "/api/v1/customer/coupons",
            Some(&a),
            None,
            Value::Null,
        )
        .unwrap();
    wait_for(CONVERGE, "the customer to see all three used", || {
        let (_, mine) = c
            .hub_call(
                "GET",
                "/api/v1/customer/coupons",
                Some(&a),
                None,
                Value::Null,
            )
            .ok()?;
        mine.as_array()?
            .iter()
            .all(|x| x["state"] == "used")
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {mine}"));
}

/// A store PC that loses its database recovers its promotions from the
/// documents: the coupons its counter took (a coupon used before the crash
/// is refused as used, a given-back one works), what is left of its
/// allotment, and the markdowns it prices with.
#[test]
fn a_replaced_store_pc_keeps_its_coupons_allotment_and_markdowns() {
    let mut c = chain_with_s001();
    bread_markdown(&c);
    let cid = counter_campaign(&c, 100_000);
    let (_, codes) = counter_codes(&c, &cid, "13800138502", 2);

    // one coupon used, one used and given back by a full refund
    let (s, used) = sale(&c, "s-1", 2, Some(&codes[0]));
    assert_eq!((s, used["total_fen"].as_i64()), (201, Some(2500)), "{used}");
    let (s, back) = sale(&c, "s-2", 2, Some(&codes[1]));
    assert_eq!(s, 201, "{back}");
    let sid = back["sale_id"].as_str().unwrap();
    let (s, r) = c
        .store_post(
            "S001",
            &format!("/api/v1/sales/{sid}/refunds"),
            Some("r-1"),
            json!({}),
        )
        .unwrap();
    assert_eq!(
        (s, r["coupon_restored"].as_bool()),
        (201, Some(true)),
        "{r}"
    );
    assert_eq!(counter_coupon(&c, &cid)["used_fen"], json!(500));
    wait_for(CONVERGE, "the hub to count the counter's coupons", || {
        let v = hub_coupon(&c, &cid)?;
        (v["counter_used_fen"] == 500 && v["redemptions"] == 1).then_some(v)
    })
    .unwrap();
    // the hub may have lent another step (it may have seen both
    // redemptions before the void): the counter has all it lent
    wait_for(CONVERGE, "S001 to have what the hub lent it", || {
        let lent = hub_coupon(&c, &cid)?["allotted_fen"].clone();
        (counter_coupon(&c, &cid)["allotment_fen"] == lent).then_some(())
    })
    .unwrap();
    let before = counter_coupon(&c, &cid);

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

    let v = c.store_get("S001", "/api/v1/promotions").unwrap();
    assert_eq!(v["rules_version"], 1, "the markdowns are back: {v}");
    let after = counter_coupon(&c, &cid);
    assert_eq!(
        (
            &after["allotment_fen"],
            &after["used_fen"],
            &after["left_fen"]
        ),
        (
            &before["allotment_fen"],
            &before["used_fen"],
            &before["left_fen"]
        ),
        "the allotment and what it spent are back: {after}"
    );
    let (s, e) = sale(&c, "s-3", 2, Some(&codes[0]));
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("coupon_used")),
        "a coupon used before the crash is not used twice: {e}"
    );
    // the markdown still prices the counter, and the given-back coupon works
    let (s, again) = sale(&c, "s-4", 2, Some(&codes[1]));
    assert_eq!(
        (
            s,
            again["total_fen"].as_i64(),
            again["lines"][0]["unit_price_fen"].as_i64()
        ),
        (201, Some(2500), Some(1500)),
        "{again}"
    );
    // and a refund of a sale recorded before the crash gives its coupon back
    let uid = used["sale_id"].as_str().unwrap();
    let (s, r) = c
        .store_post(
            "S001",
            &format!("/api/v1/sales/{uid}/refunds"),
            Some("r-2"),
            json!({}),
        )
        .unwrap();
    assert_eq!(
        (s, r["amount_fen"].as_i64(), r["coupon_restored"].as_bool()),
        (201, Some(2500), Some(true)),
        "{r}"
    );
    wait_for(
        CONVERGE,
        "the hub to count the recovered counter's coupons",
        || {
            let (_, v) = c
                .hub_call(
                    "GET",
                    &format!("/api/v1/coupons/{cid}"),
                    None,
                    None,
                    Value::Null,
                )
                .ok()?;
            (v["counter_used_fen"] == 500 && v["redemptions"] == 1).then_some(v)
        },
    )
    .unwrap();
}

fn hub_coupon(c: &Cluster, id: &str) -> Option<Value> {
    let (s, v) = c
        .hub_call(
            "GET",
            &format!("/api/v1/coupons/{id}"),
            None,
            None,
            Value::Null,
        )
        .ok()?;
    (s == 200).then_some(v)
}

/// An admin recalls a counter's coupon allotment while the store is cut
/// off: the counter keeps redeeming within its allotment until the recall
/// reaches it; then it takes no more of the campaign and gives back only
/// what is left, which the hub counts when it arrives (online orders may
/// spend it then); a refund after the recall gives its coupon's money back
/// the same way.
#[test]
fn a_recalled_counter_gives_back_only_what_it_has_left() {
    let c = chain_with_s001();
    let cid = counter_campaign(&c, 10_000);
    let (_, codes) = counter_codes(&c, &cid, "13800138503", 2);

    // recalled while the store is cut off: asked, nothing counted back yet
    c.link("S001", LinkMode::Cut).unwrap();
    let (s, v) = c
        .hub_call(
            "POST",
            &format!("/api/v1/coupons/{cid}/recall"),
            None,
            None,
            json!({}),
        )
        .unwrap();
    assert_eq!(
        (s, &v["returned_fen"], &v["online_left_fen"]),
        (200, &json!(0), &json!(8800)),
        "{v}"
    );
    // the counter does not know yet: it redeems within its allotment
    let (s, first) = sale(&c, "s-1", 2, Some(&codes[0]));
    assert_eq!(s, 201, "{first}");

    c.link("S001", LinkMode::Up).unwrap();
    wait_for(
        CONVERGE,
        "the counter to close and give back the rest",
        || {
            let v = counter_coupon(&c, &cid);
            (v["recalled"] == true && v["returned_fen"] == 700).then_some(())
        },
    )
    .unwrap();
    let v = wait_for(CONVERGE, "the hub to count the return", || {
        let v = hub_coupon(&c, &cid)?;
        (v["returned_fen"] == 700 && v["counter_used_fen"] == 500).then_some(v)
    })
    .unwrap();
    assert_eq!(
        (&v["allotted_fen"], &v["online_left_fen"]),
        (&json!(1200), &json!(9500)),
        "{v}"
    );
    let (s, e) = sale(&c, "s-2", 2, Some(&codes[1]));
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("coupon_recalled")),
        "{e}"
    );
    assert_eq!(counter_coupon(&c, &cid)["left_fen"], json!(0));
    let (s, e) = c
        .store_post(
            "S001",
            "/api/v1/sales/quote",
            None,
            json!({"lines": [{"sku": "P00001", "qty": 2}], "coupon": codes[1]}),
        )
        .unwrap();
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("coupon_recalled")),
        "a quote shows no discount the sale would refuse: {e}"
    );

    // the sale is refunded: its coupon's money goes back to the hub too
    let sid = first["sale_id"].as_str().unwrap();
    let (s, r) = c
        .store_post(
            "S001",
            &format!("/api/v1/sales/{sid}/refunds"),
            Some("r-1"),
            json!({}),
        )
        .unwrap();
    assert_eq!(
        (s, r["coupon_restored"].as_bool()),
        (201, Some(true)),
        "{r}"
    );
    assert_eq!(counter_coupon(&c, &cid)["returned_fen"], json!(1200));
    wait_for(
        CONVERGE,
        "the hub to count the whole allotment back",
        || {
            let v = hub_coupon(&c, &cid)?;
            (v["returned_fen"] == 1200
                && v["counter_used_fen"] == 0
                && v["online_left_fen"] == 10_000)
                .then_some(())
        },
    )
    .unwrap();
}
