//! Promotions at the hub (issue 11): coupons keep their budget and their
//! per-customer limit, a cancelled order gives its coupon and its money back
//! exactly once, counters' redemptions reach the hub and a store running
//! low is lent more; a store's markdowns price its online orders in their
//! hours, and every order says which rules priced it.

#![allow(clippy::unwrap_used)] // test code

mod common;

use automerge::AutoCommit;
use axum::http::StatusCode;
use chrono::{Duration, Utc};
use common::{TestHub, hub, lend, sync_in};
use linli_shared::docs::json::{get_record, put_record};
use linli_shared::docs::{DocId, Owner, new_doc};
use serde_json::{Value, json};

async fn open_coupon(h: &TestHub, body: Value) -> Value {
    let (s, v) = h.post("/api/v1/coupons", &h.admin, body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v
}

/// The store's business day now: the hub writes a store's documents under
/// its day in the chain's time (UTC+8), not the UTC date.
fn business_day() -> chrono::NaiveDate {
    let cst = chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
    linli_shared::rfm::business_day(Utc::now(), cst)
}

fn until() -> String {
    (Utc::now() + Duration::days(7)).to_rfc3339()
}

async fn claim(
    h: &TestHub,
    token: &str,
    coupon: &str,
    key: &str,
    body: Value,
) -> (StatusCode, Value) {
    h.post_keyed(
        &format!("/api/v1/coupons/{coupon}/claims"),
        token,
        key,
        body,
    )
    .await
}

/// A claim of `coupon` for S001's counter, which the hub grants.
async fn claim_at_s001(h: &TestHub, token: &str, coupon: &str, key: &str) -> Value {
    let (s, v) = claim(
        h,
        token,
        coupon,
        key,
        json!({"use": "counter", "store_id": "S001"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v
}

async fn order(
    h: &TestHub,
    token: &str,
    key: &str,
    qty: i64,
    coupon: Option<&str>,
) -> (StatusCode, Value) {
    let mut body = json!({"channel": "miniapp", "customer": {}, "fulfilment": "pickup",
        "store_id": "S001", "lines": [{"sku": "P00001", "qty": qty}]});
    if let Some(c) = coupon {
        body["coupon"] = json!(c);
    }
    h.post_keyed("/api/v1/orders", token, key, body).await
}

#[tokio::test]
async fn a_coupon_keeps_its_budget_and_limit_and_a_cancel_gives_it_back_once() {
    let h = hub().await;
    lend(&h.hub, "S001", &[("P00001", 100)]).await;
    // 满30减8, 2,000 fen in all: two redemptions fit, a third does not
    let c = open_coupon(&h, json!({"name": "满30减8", "off": {"amount_fen": 800},
        "min_spend_fen": 3000, "budget_fen": 2000, "per_customer_limit": 2, "valid_until": until()})).await;
    let cid = c["coupon_id"].as_str().unwrap();
    assert_eq!(
        (c["online_left_fen"].clone(), c["allotted_fen"].clone()),
        (json!(2000), json!(0))
    );

    let a = h.customer("13800000001").await;
    let (s, a1) = claim(&h, &a, cid, "a-1", json!({})).await;
    assert_eq!(s, StatusCode::CREATED, "{a1}");
    assert_eq!(
        (a1["redeem_at"].clone(), a1["state"].clone()),
        (json!("online"), json!("available"))
    );
    let (s, again) = claim(&h, &a, cid, "a-1", json!({})).await;
    assert_eq!(
        (s, again["claim_id"].clone()),
        (StatusCode::OK, a1["claim_id"].clone()),
        "a retry is the same claim"
    );
    let (s, a2) = claim(&h, &a, cid, "a-2", json!({"use": "online"})).await;
    assert_eq!(s, StatusCode::CREATED, "{a2}");
    let (s, v) = claim(&h, &a, cid, "a-3", json!({})).await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("coupon_limit")),
        "{v}"
    );
    let (s, v) = claim(
        &h,
        &a,
        cid,
        "a-4",
        json!({"use": "counter", "store_id": "S001"}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("coupon_not_here")),
        "online only: {v}"
    );
    let (a1, a2) = (
        a1["claim_id"].as_str().unwrap(),
        a2["claim_id"].as_str().unwrap(),
    );

    // the shop's quote takes the coupon off as the order will, and
    // redeems nothing; it needs the customer's token and the minimum spend
    let basket = |qty: i64, coupon: &str| {
        json!({"fulfilment": "pickup", "store_id": "S001",
            "lines": [{"sku": "P00001", "qty": qty}], "coupon": coupon})
    };
    let (s, q) = h.post("/api/v1/quote", &a, basket(2, a1)).await;
    assert_eq!(s, StatusCode::OK, "{q}");
    assert_eq!(
        (
            q["coupon_fen"].clone(),
            q["discount_fen"].clone(),
            q["total_fen"].clone()
        ),
        (json!(800), json!(955), json!(2945)),
        "{q}"
    );
    let (s, v) = h
        .call(
            "POST",
            "/api/v1/quote",
            None,
            Some(("application/json", basket(2, a1).to_string().into_bytes())),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (StatusCode::UNAUTHORIZED, json!("unauthenticated")),
        "{v}"
    );
    let (s, v) = h.post("/api/v1/quote", &a, basket(1, a1)).await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("coupon_min_spend")),
        "{v}"
    );
    let other = h.customer("13800000009").await;
    let (s, v) = h.post("/api/v1/quote", &other, basket(2, a1)).await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, json!("coupon_not_found")),
        "another's coupon: {v}"
    );

    // 2 x 19.50 = 39.00; coupon 8.00 off, then the pickup 5% of 31.00
    let (s, o1) = order(&h, &a, "o-1", 2, Some(a1)).await;
    assert_eq!(s, StatusCode::CREATED, "{o1}");
    assert_eq!(
        (
            o1["subtotal_fen"].clone(),
            o1["discount_fen"].clone(),
            o1["total_fen"].clone()
        ),
        (json!(3900), json!(955), json!(2945)),
        "{o1}"
    );
    let kinds: Vec<Value> = o1["pricing"]["applied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"]["kind"].clone())
        .collect();
    assert_eq!(
        kinds,
        vec![json!("coupon"), json!("pickup_discount")],
        "{o1}"
    );
    assert_eq!(o1["pricing"]["applied"][0]["amount"], json!(-800));

    let (s, v) = h.post("/api/v1/quote", &a, basket(2, a1)).await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("coupon_used")),
        "{v}"
    );
    let (s, v) = order(&h, &a, "o-2", 2, Some(a1)).await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("coupon_used")),
        "{v}"
    );
    let (s, v) = order(&h, &a, "o-3", 1, Some(a2)).await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("coupon_min_spend")),
        "{v}"
    );
    let (_, mine) = h.get("/api/v1/customer/coupons", Some(&a)).await;
    let state = |id: &str| {
        mine.as_array()
            .unwrap()
            .iter()
            .find(|c| c["claim_id"] == json!(id))
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(
        (state(a1), state(a2)),
        (json!("used"), json!("available")),
        "a refused order used nothing"
    );

    // another customer takes the rest of the budget; a third finds it spent
    let b = h.customer("13800000002").await;
    let (_, b1) = claim(&h, &b, cid, "b-1", json!({})).await;
    let (s, ob) = order(&h, &b, "ob", 2, b1["claim_id"].as_str()).await;
    assert_eq!(s, StatusCode::CREATED, "{ob}");
    let cu = h.customer("13800000003").await;
    let (_, c1) = claim(&h, &cu, cid, "c-1", json!({})).await;
    let (s, v) = order(&h, &cu, "oc", 2, c1["claim_id"].as_str()).await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("coupon_budget_exhausted")),
        "{v}"
    );
    let (_, v) = h.get(&format!("/api/v1/coupons/{cid}"), None).await;
    assert_eq!(
        (
            v["online_used_fen"].clone(),
            v["online_left_fen"].clone(),
            v["redemptions"].clone()
        ),
        (json!(1600), json!(400), json!(2)),
        "{v}"
    );

    // A cancels: the coupon and its 8 yuan come back, once
    let oid = o1["order_id"].as_str().unwrap();
    let (s, v) = h
        .post(&format!("/api/v1/orders/{oid}/cancel"), &a, json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = h
        .post(&format!("/api/v1/orders/{oid}/cancel"), &a, json!({}))
        .await;
    assert_eq!(
        s,
        StatusCode::OK,
        "a second cancel answers as the first: {v}"
    );
    let (_, v) = h.get(&format!("/api/v1/coupons/{cid}"), None).await;
    assert_eq!(
        (v["online_used_fen"].clone(), v["redemptions"].clone()),
        (json!(800), json!(1)),
        "{v}"
    );
    let (_, mine) = h.get("/api/v1/customer/coupons", Some(&a)).await;
    let state = |id: &str| {
        mine.as_array()
            .unwrap()
            .iter()
            .find(|c| c["claim_id"] == json!(id))
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(state(a1), json!("available"));
    // the money that came back serves the next customer
    let (s, v) = order(&h, &cu, "oc-2", 2, c1["claim_id"].as_str()).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, v) = h.get(&format!("/api/v1/coupons/{cid}"), None).await;
    assert_eq!(v["online_used_fen"], json!(1600), "{v}");

    // another customer's claim is not yours; bad terms are refused
    let (s, v) = order(&h, &b, "ob-2", 2, Some(a2)).await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, json!("coupon_not_found")),
        "{v}"
    );
    for bad in [
        json!({"name": "x", "off": {"percent": 95}, "budget_fen": 100, "per_customer_limit": 1, "valid_until": until()}),
        json!({"name": "x", "off": {"amount_fen": 500}, "min_spend_fen": 300, "budget_fen": 100, "per_customer_limit": 1, "valid_until": until()}),
        json!({"name": "x", "off": {"amount_fen": 500}, "budget_fen": 0, "per_customer_limit": 1, "valid_until": until()}),
        json!({"name": "x", "off": {"amount_fen": 500}, "budget_fen": 100, "per_customer_limit": 1, "valid_until": (Utc::now() - Duration::hours(1)).to_rfc3339()}),
        json!({"name": "x", "off": {"amount_fen": 500}, "budget_fen": 1000, "per_customer_limit": 1, "valid_until": until(), "store_ids": ["S001", "S002"], "counter_allotment_fen": 600}),
    ] {
        let (s, v) = h.post("/api/v1/coupons", &h.admin, bad.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {v}");
    }
    let (s, _) = h.post("/api/v1/coupons", &a, json!({"name": "x", "off": {"amount_fen": 1}, "budget_fen": 1, "per_customer_limit": 1, "valid_until": until()})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_counters_redemptions_reach_the_hub_and_a_store_running_low_gets_more() {
    let h = hub().await;
    let c = open_coupon(&h, json!({"name": "九折券", "off": {"percent": 10}, "budget_fen": 5000,
        "per_customer_limit": 3, "valid_until": until(), "store_ids": ["S001"], "counter_allotment_fen": 1000})).await;
    let cid = c["coupon_id"].as_str().unwrap().to_owned();
    assert_eq!(
        (c["allotted_fen"].clone(), c["online_left_fen"].clone()),
        (json!(1000), json!(4000))
    );
    let a = h.customer("13800000011").await;
    let v = claim_at_s001(&h, &a, &cid, "k1").await;
    assert!(v["code"].as_str().unwrap().starts_with("LC1."), "{v}");
    let claim_id = v["claim_id"].as_str().unwrap().to_owned();
    let (s, v) = claim(
        &h,
        &a,
        &cid,
        "k2",
        json!({"use": "counter", "store_id": "S002"}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("coupon_not_here")),
        "{v}"
    );
    let (s, v) = claim(&h, &a, &cid, "k3", json!({"use": "counter"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");

    // the store's counter took 800 fen off a sale, offline; its ledger syncs
    let day = business_day();
    let id = DocId::store_ledger("S001", day);
    let mut doc: AutoCommit = new_doc(&id, Owner::Store("S001".into()).actor([9; 8])).unwrap();
    let r = json!({"redemption_id": "R-1", "claim_id": claim_id, "coupon_id": cid, "sale_id": "SALE-1",
        "discount_fen": 800, "version": 1, "at": Utc::now().to_rfc3339()});
    put_record(&mut doc, "coupon_redemptions", "R-1", &r).unwrap();
    doc.commit();
    sync_in(&h.hub, "S001", &id, &mut doc).await;
    let (_, v) = h.get(&format!("/api/v1/coupons/{cid}"), None).await;
    // 200 left of 1,000 is under a quarter: another 1,000 is lent
    assert_eq!(
        (
            v["counter_used_fen"].clone(),
            v["allotted_fen"].clone(),
            v["online_left_fen"].clone()
        ),
        (json!(800), json!(2000), json!(3000)),
        "{v}"
    );
    let hub_doc = DocId::hub_orders("S001", day);
    let lent: Value = h
        .hub
        .with_docs(move |c, docs| {
            Ok(docs
                .read(c, &hub_doc, |d| get_record::<Value>(d, "coupons", &cid))?
                .flatten())
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lent["allotment"], json!(2000), "{lent}");
    let (_, mine) = h.get("/api/v1/customer/coupons", Some(&a)).await;
    assert_eq!(mine[0]["state"], json!("used"), "{mine}");

    // the sale is refunded: the void comes once, however often it syncs
    put_record(
        &mut doc,
        "coupon_voids",
        "R-1",
        &json!({"redemption_id": "R-1", "at": Utc::now().to_rfc3339()}),
    )
    .unwrap();
    doc.commit();
    sync_in(&h.hub, "S001", &id, &mut doc).await;
    let cid = c["coupon_id"].as_str().unwrap();
    let (_, v) = h.get(&format!("/api/v1/coupons/{cid}"), None).await;
    assert_eq!(
        (v["counter_used_fen"].clone(), v["redemptions"].clone()),
        (json!(0), json!(0)),
        "{v}"
    );
    let (_, mine) = h.get("/api/v1/customer/coupons", Some(&a)).await;
    assert_eq!(mine[0]["state"], json!("available"), "{mine}");

    // used again, refunded, used a third time, all while cut off: the hub
    // gets a redemption, its void and a new one in one message and takes
    // them in the store's order (by key, the new one would find the claim
    // in use and the void would then leave it free)
    let at = |s: i64| (Utc::now() + chrono::Duration::seconds(s)).to_rfc3339();
    let again = |id: &str, t: i64| {
        json!({"redemption_id": id, "claim_id": claim_id, "coupon_id": cid, "sale_id": format!("SALE-{id}"),
            "discount_fen": 300, "version": 1, "at": at(t)})
    };
    put_record(&mut doc, "coupon_redemptions", "R-3", &again("R-3", 1)).unwrap();
    put_record(
        &mut doc,
        "coupon_voids",
        "R-3",
        &json!({"redemption_id": "R-3", "at": at(2)}),
    )
    .unwrap();
    put_record(&mut doc, "coupon_redemptions", "R-4", &again("R-4", 3)).unwrap();
    doc.commit();
    sync_in(&h.hub, "S001", &id, &mut doc).await;
    let (_, v) = h.get(&format!("/api/v1/coupons/{cid}"), None).await;
    assert_eq!(
        (v["counter_used_fen"].clone(), v["redemptions"].clone()),
        (json!(300), json!(1)),
        "{v}"
    );
    let (_, mine) = h.get("/api/v1/customer/coupons", Some(&a)).await;
    assert_eq!(mine[0]["state"], json!("used"), "{mine}");
}

/// A recall asks for the counters' unspent allotments: no more is lent
/// to a recalled store, the hub counts nothing back until the store's
/// return arrives (a counter offline meanwhile may still give its
/// allotment away), then counts the largest return, never more than it
/// lent, and online orders may spend it.
#[tokio::test]
async fn a_recall_counts_a_counters_return_only_when_it_arrives() {
    let h = hub().await;
    let c = open_coupon(
        &h,
        json!({"name": "满减券", "off": {"amount_fen": 500}, "budget_fen": 5000,
        "per_customer_limit": 3, "valid_until": until(), "store_ids": ["S001", "S002"],
        "counter_allotment_fen": 1000}),
    )
    .await;
    let cid = c["coupon_id"].as_str().unwrap().to_owned();
    assert_eq!(c["online_left_fen"], json!(3000), "{c}");

    // not an admin; a store not in the campaign; no such campaign
    let a = h.customer("13800000021").await;
    let (s, _) = h
        .post(&format!("/api/v1/coupons/{cid}/recall"), &a, json!({}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = h
        .post(
            &format!("/api/v1/coupons/{cid}/recall"),
            &h.admin,
            json!({"store_ids": ["S003"]}),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("coupon_not_here")),
        "{v}"
    );
    let (s, _) = h
        .post("/api/v1/coupons/CNOPE/recall", &h.admin, json!({}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let (s, v) = h
        .post(
            &format!("/api/v1/coupons/{cid}/recall"),
            &h.admin,
            json!({"store_ids": ["S001"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // asked, not yet given back: nothing moves
    assert_eq!(
        (
            v["allotted_fen"].clone(),
            v["returned_fen"].clone(),
            v["online_left_fen"].clone()
        ),
        (json!(2000), json!(0), json!(3000)),
        "{v}"
    );
    let s1 = v["allotments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["store_id"] == "S001")
        .unwrap()
        .clone();
    assert!(s1["recalled_at"].is_string(), "{v}");
    let day = business_day();
    let hub_doc = DocId::hub_orders("S001", day);
    let c2 = cid.clone();
    let asked: Value = h
        .hub
        .with_docs(move |c, docs| {
            Ok(docs
                .read(c, &hub_doc, |d| get_record::<Value>(d, "coupons", &c2))?
                .flatten())
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (asked["recalled"].clone(), asked["allotment"].clone()),
        (json!(true), json!(1000)),
        "{asked}"
    );

    // the counter, cut off, had given 900 away; it closes and returns 100,
    // and a later refund makes it 300 (reported twice, out of order too)
    let claim_id = |n: &str| format!("Q-{n}");
    let id = DocId::store_ledger("S001", day);
    let mut doc: AutoCommit = new_doc(&id, Owner::Store("S001".into()).actor([9; 8])).unwrap();
    let at = |s: i64| (Utc::now() + chrono::Duration::seconds(s)).to_rfc3339();
    for (k, d) in [("R-1", 700), ("R-2", 200)] {
        put_record(&mut doc, "coupon_redemptions", k, &json!({"redemption_id": k, "claim_id": claim_id(k),
            "coupon_id": cid, "sale_id": format!("SALE-{k}"), "discount_fen": d, "version": 1, "at": at(0)}))
        .unwrap();
    }
    put_record(
        &mut doc,
        "coupon_returns",
        &cid,
        &json!({"coupon_id": cid, "returned_fen": 100, "at": at(1)}),
    )
    .unwrap();
    doc.commit();
    sync_in(&h.hub, "S001", &id, &mut doc).await;
    let (_, v) = h.get(&format!("/api/v1/coupons/{cid}"), None).await;
    // 100 left is under a quarter of the step, but a recalled store is
    // lent no more
    assert_eq!(
        (
            v["counter_used_fen"].clone(),
            v["allotted_fen"].clone(),
            v["returned_fen"].clone(),
            v["online_left_fen"].clone()
        ),
        (json!(900), json!(2000), json!(100), json!(3100)),
        "{v}"
    );
    put_record(
        &mut doc,
        "coupon_voids",
        "R-2",
        &json!({"redemption_id": "R-2", "at": at(2)}),
    )
    .unwrap();
    put_record(
        &mut doc,
        "coupon_returns",
        &cid,
        &json!({"coupon_id": cid, "returned_fen": 300, "at": at(2)}),
    )
    .unwrap();
    doc.commit();
    sync_in(&h.hub, "S001", &id, &mut doc).await;
    // an older report in another part
    let id2 = DocId::store_ledger("S001", day).part(1);
    let mut doc2: AutoCommit = new_doc(&id2, Owner::Store("S001".into()).actor([9; 8])).unwrap();
    put_record(
        &mut doc2,
        "coupon_returns",
        &cid,
        &json!({"coupon_id": cid, "returned_fen": 100, "at": at(3)}),
    )
    .unwrap();
    doc2.commit();
    sync_in(&h.hub, "S001", &id2, &mut doc2).await;
    let (_, v) = h.get(&format!("/api/v1/coupons/{cid}"), None).await;
    assert_eq!(
        (
            v["counter_used_fen"].clone(),
            v["returned_fen"].clone(),
            v["online_left_fen"].clone()
        ),
        (json!(700), json!(300), json!(3300)),
        "{v}"
    );
    // S002 was not recalled: a return from it is not counted
    let id3 = DocId::store_ledger("S002", day);
    let mut doc3: AutoCommit = new_doc(&id3, Owner::Store("S002".into()).actor([9; 8])).unwrap();
    put_record(
        &mut doc3,
        "coupon_returns",
        &cid,
        &json!({"coupon_id": cid, "returned_fen": 1000, "at": at(5)}),
    )
    .unwrap();
    doc3.commit();
    sync_in(&h.hub, "S002", &id3, &mut doc3).await;
    let (_, v) = h.get(&format!("/api/v1/coupons/{cid}"), None).await;
    assert_eq!(v["returned_fen"], json!(300), "{v}");
    // recalling again changes nothing
    let (s, again) = h
        .post(
            &format!("/api/v1/coupons/{cid}/recall"),
            &h.admin,
            json!({"store_ids": ["S001"]}),
        )
        .await;
    assert_eq!(
        (s, &again["returned_fen"]),
        (StatusCode::OK, &json!(300)),
        "{again}"
    );
}

#[tokio::test]
async fn a_stores_markdowns_price_its_online_orders_in_their_hours() {
    let h = hub().await;
    lend(&h.hub, "S001", &[("P00001", 100)]).await;
    let m1 = h.manager("m1").await;
    let all_day = json!({"markdowns": [{"name": "面包七折", "category": "bakery", "pay_percent": 70, "from": "00:00", "to": "24:00"}]});
    let put = |token: String, store: &'static str, body: Value| {
        let h = &h;
        async move {
            h.call(
                "PUT",
                &format!("/api/v1/stores/{store}/markdowns"),
                Some(&token),
                Some(("application/json", body.to_string().into_bytes())),
            )
            .await
        }
    };
    let (s, v) = put(m1.clone(), "S002", all_day.clone()).await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (StatusCode::FORBIDDEN, json!("not_your_store")),
        "{v}"
    );
    for bad in [
        json!({"markdowns": [{"name": "x", "category": "bakery", "pay_percent": 70, "from": "20:00", "to": "19:00"}]}),
        json!({"markdowns": [{"name": "x", "category": "no-such", "pay_percent": 70, "from": "20:00", "to": "21:00"}]}),
        json!({"markdowns": [{"name": "x", "skus": ["P00001"], "pay_percent": 100, "from": "20:00", "to": "21:00"}]}),
        json!({"markdowns": [{"name": "x", "skus": ["P99999"], "price_fen": 100, "from": "20:00", "to": "21:00"}]}),
        json!({"markdowns": [{"name": "x", "skus": ["P00001"], "price_fen": 100, "from": "8pm", "to": "21:00"}]}),
    ] {
        let (s, v) = put(m1.clone(), "S001", bad.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {v}");
    }
    let (s, v) = put(m1.clone(), "S001", all_day).await;
    assert_eq!((s, v["version"].clone()), (StatusCode::OK, json!(1)), "{v}");

    let a = h.customer("13800000021").await;
    let (s, o) = order(&h, &a, "m-1", 2, None).await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    assert_eq!(o["lines"][0]["unit_price_fen"], json!(1365), "{o}");
    assert_eq!(o["pricing"]["rules_version"], json!(1));
    assert_eq!(
        o["pricing"]["applied"][0],
        json!({"sku": "P00001", "rule": {"kind": "markdown", "name": "面包七折"}, "amount": -1170}),
        "{o}"
    );
    let (s, q) = h.post("/api/v1/quote", &a, json!({"fulfilment": "pickup", "store_id": "S001", "lines": [{"sku": "P00001", "qty": 2}]})).await;
    assert_eq!(
        (s, q["subtotal_fen"].clone()),
        (StatusCode::OK, json!(2730)),
        "the quote prices alike: {q}"
    );

    // a markdown outside its hours changes nothing; the version moves on
    let now_local = Utc::now() + Duration::hours(8);
    let later = (now_local + Duration::hours(2)).format("%H:%M").to_string();
    let later_end = (now_local + Duration::hours(3)).format("%H:%M").to_string();
    if later < later_end {
        let (s, v) = put(h.admin.clone(), "S001", json!({"markdowns": [{"name": "晚间鲜食", "skus": ["P00001"], "price_fen": 900, "from": later, "to": later_end}]})).await;
        assert_eq!((s, v["version"].clone()), (StatusCode::OK, json!(2)), "{v}");
        let (_, o) = order(&h, &a, "m-2", 1, None).await;
        assert_eq!(o["lines"][0]["unit_price_fen"], json!(1950), "{o}");
        assert_eq!(o["pricing"]["rules_version"], json!(2));
    }
    let (_, v) = h.get("/api/v1/stores/S001/markdowns", None).await;
    assert!(v["version"].as_u64().unwrap() >= 1, "{v}");
}

/// Syncs counter facts into the hub as store S001 reports them, in ledger
/// part `part` of today.
async fn report(h: &TestHub, part: u32, facts: &[(&str, &str, Value)]) {
    let id = DocId::store_ledger("S001", business_day()).part(part);
    let mut doc: AutoCommit = new_doc(&id, Owner::Store("S001".into()).actor([9; 8])).unwrap();
    for (section, key, value) in facts {
        put_record(&mut doc, section, key, value).unwrap();
    }
    doc.commit();
    sync_in(&h.hub, "S001", &id, &mut doc).await;
}

/// A counter's redemptions and voids count the same whatever order they
/// reach the hub in (found by the simulation: a void that arrived before
/// its redemption, in a later ledger part, left the coupon counted for
/// good; a claim taken again in the same millisecond as its refund was
/// kept voided): the void before its redemption, a new use before the
/// void of the last, a void and a new use sharing one millisecond.
#[tokio::test]
async fn a_counters_redemptions_and_voids_count_the_same_in_any_order() {
    let h = hub().await;
    let c = open_coupon(&h, json!({"name": "满减券", "off": {"amount_fen": 300}, "budget_fen": 5000,
        "per_customer_limit": 3, "valid_until": until(), "store_ids": ["S001"], "counter_allotment_fen": 1000})).await;
    let cid = c["coupon_id"].as_str().unwrap().to_owned();
    let a = h.customer("13800000021").await;
    let claim_id = claim_at_s001(&h, &a, &cid, "k1").await["claim_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let t0 = Utc::now();
    let at = |s: i64| (t0 + Duration::seconds(s)).to_rfc3339();
    let taken = |id: &str, t: i64| {
        json!({"redemption_id": id, "claim_id": claim_id, "coupon_id": cid,
            "sale_id": format!("SALE-{id}"), "discount_fen": 300, "version": 1, "at": at(t)})
    };
    let back = |id: &str, t: i64| json!({"redemption_id": id, "at": at(t)});
    let counted = || async {
        let (_, v) = h.get(&format!("/api/v1/coupons/{cid}"), None).await;
        let (_, mine) = h.get("/api/v1/customer/coupons", Some(&a)).await;
        (
            v["counter_used_fen"].clone(),
            v["redemptions"].clone(),
            mine[0]["state"].clone(),
        )
    };
    let (none, one) = (
        (json!(0), json!(0), json!("available")),
        (json!(300), json!(1), json!("used")),
    );

    // sold at 1 s, refunded at 2 s: the refund's part arrives first
    report(&h, 1, &[("coupon_voids", "R-1", back("R-1", 2))]).await;
    assert_eq!(counted().await, none, "a void of nothing yet");
    report(&h, 0, &[("coupon_redemptions", "R-1", taken("R-1", 1))]).await;
    assert_eq!(counted().await, none, "the void came first");

    // used again at 5 s, refunded at 9 s, used a third time at 10 s: the
    // third use arrives before the second's refund
    report(&h, 2, &[("coupon_redemptions", "R-2", taken("R-2", 5))]).await;
    assert_eq!(counted().await, one);
    report(&h, 3, &[("coupon_redemptions", "R-3", taken("R-3", 10))]).await;
    assert_eq!(counted().await, one, "one use counts at a time");
    report(&h, 4, &[("coupon_voids", "R-2", back("R-2", 9))]).await;
    assert_eq!(counted().await, one, "the third use counts");

    // refunded and used again in the same millisecond, in one message
    report(
        &h,
        5,
        &[
            ("coupon_redemptions", "R-4", taken("R-4", 12)),
            ("coupon_voids", "R-3", back("R-3", 12)),
        ],
    )
    .await;
    assert_eq!(counted().await, one, "the fourth use counts");
    report(&h, 6, &[("coupon_voids", "R-4", back("R-4", 13))]).await;
    assert_eq!(counted().await, none, "every use given back");
    // reported again (a document synced once more): nothing changes
    report(&h, 2, &[("coupon_redemptions", "R-2", taken("R-2", 5))]).await;
    assert_eq!(counted().await, none);
}

/// An order the hub cancelled and its store handed over anyway (offline,
/// by the signed QR) stands at its price: its coupon counts again, as the
/// order's conflict asks a manager to settle the payment (found by the
/// simulation: the coupon stayed given back while the customer had the
/// discount).
#[tokio::test]
async fn an_order_cancelled_here_and_handed_over_there_keeps_its_coupon() {
    let h = hub().await;
    lend(&h.hub, "S001", &[("P00001", 100)]).await;
    let c = open_coupon(&h, json!({"name": "满30减8", "off": {"amount_fen": 800},
        "min_spend_fen": 3000, "budget_fen": 2000, "per_customer_limit": 2, "valid_until": until()})).await;
    let cid = c["coupon_id"].as_str().unwrap().to_owned();
    let a = h.customer("13800000031").await;
    let (s, v) = claim(&h, &a, &cid, "c-1", json!({})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let claim_id = v["claim_id"].as_str().unwrap().to_owned();
    let (s, o) = order(&h, &a, "o-1", 2, Some(&claim_id)).await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let oid = o["order_id"].as_str().unwrap().to_owned();
    let used = || async {
        let (_, v) = h.get(&format!("/api/v1/coupons/{cid}"), None).await;
        v["online_used_fen"].clone()
    };
    assert_eq!(used().await, json!(800));
    let (s, v) = h
        .post(&format!("/api/v1/orders/{oid}/cancel"), &a, json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(used().await, json!(0), "a cancel gives the coupon back");

    // the store, cut off, handed the goods over at the counter
    let placed: chrono::DateTime<Utc> = o["placed_at"].as_str().unwrap().parse().unwrap();
    let id = DocId::store_fulfilment("S001", business_day());
    let mut doc: AutoCommit = new_doc(&id, Owner::Store("S001".into()).actor([4; 8])).unwrap();
    put_record(
        &mut doc,
        "orders",
        &oid,
        &linli_shared::online::FulfilmentFact {
            order_id: oid.clone(),
            handed_over_at: Some((placed + Duration::seconds(1)).to_rfc3339()),
            handed_over_by: Some("alice".into()),
            ..Default::default()
        },
    )
    .unwrap();
    doc.commit();
    sync_in(&h.hub, "S001", &id, &mut doc).await;
    let (_, v) = h.get(&format!("/api/v1/orders/{oid}"), Some(&a)).await;
    assert_eq!(v["status"], json!("handed_over"), "{v}");
    assert!(v["conflict"].is_string(), "{v}");
    assert_eq!(used().await, json!(800), "the discount was given");
    let (_, mine) = h.get("/api/v1/customer/coupons", Some(&a)).await;
    assert_eq!(mine[0]["state"], json!("used"), "{mine}");
}
