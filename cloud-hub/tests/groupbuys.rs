//! Group-buy presales at the hub (issue 11): campaigns are checked; a
//! customer's commitment is idempotent, limited per customer and refused
//! at a store not taking part or after the deadline; "reached" is decided
//! at the commitment that reaches the threshold and never undone; "failed"
//! only after the deadline once the stores have reported or the grace has
//! passed, cancelling every commitment with the reason the customer sees;
//! the supplier order lists units per store.

#![allow(clippy::unwrap_used)] // test code

mod common;

use axum::http::StatusCode;
use chrono::{Duration, Utc};
use common::{TestHub, hub};
use serde_json::{Value, json};

fn campaign(threshold: Value, deadline_in: Duration, stores: &[&str]) -> Value {
    let deadline = Utc::now() + deadline_in;
    json!({
        "sku": "P00009",
        "price_fen": 3990,
        "threshold": threshold,
        "deadline": deadline.to_rfc3339(),
        "pickup_date": (deadline + Duration::days(2)).date_naive().to_string(),
        "per_customer_limit": 2,
        "store_ids": stores,
    })
}

async fn open(h: &TestHub, body: Value) -> String {
    let (s, v) = h.post("/api/v1/group-buys", &h.admin, body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["state"], json!("open"));
    v["group_buy_id"].as_str().unwrap().to_owned()
}

async fn commit(
    h: &TestHub,
    token: &str,
    id: &str,
    key: &str,
    store: &str,
    qty: i64,
) -> (StatusCode, Value) {
    h.post_keyed(
        &format!("/api/v1/group-buys/{id}/commitments"),
        token,
        key,
        json!({"store_id": store, "qty": qty}),
    )
    .await
}

#[tokio::test]
async fn bad_campaigns_are_refused() {
    let h = hub().await;
    let ok = campaign(
        json!({"kind": "participants", "count": 3}),
        Duration::hours(1),
        &["S001"],
    );
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    for (body, code) in [
        (with("sku", json!("P00002")), "invalid_field"), // sold by weight
        (with("sku", json!("X00000")), "unknown_sku"),
        (with("price_fen", json!(0)), "invalid_field"),
        (with("price_fen", json!(5311)), "invalid_field"), // above the chain price
        (
            with("threshold", json!({"kind": "participants", "count": 0})),
            "invalid_field",
        ),
        (
            with("deadline", json!("2020-01-01T00:00:00Z")),
            "invalid_field",
        ),
        (with("pickup_date", json!("2020-01-01")), "invalid_field"),
        (with("per_customer_limit", json!(0)), "invalid_field"),
        (with("store_ids", json!([])), "invalid_field"),
        (with("store_ids", json!(["S001", "S001"])), "invalid_field"),
        (with("store_ids", json!(["S999"])), "unknown_store"),
    ] {
        let (s, e) = h.post("/api/v1/group-buys", &h.admin, body.clone()).await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(code)),
            "{body}: {e}"
        );
    }
    let me = h.customer("13800138100").await;
    let (s, _) = h.post("/api/v1/group-buys", &me, ok.clone()).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, all) = h.get("/api/v1/group-buys?state=all", None).await;
    assert_eq!(all, json!([]), "nothing was written");
}

#[tokio::test]
async fn commitments_reach_the_threshold_once_and_make_the_supplier_order() {
    let h = hub().await;
    let id = open(
        &h,
        campaign(
            json!({"kind": "participants", "count": 3}),
            Duration::hours(1),
            &["S001", "S002"],
        ),
    )
    .await;
    let (a, b, c) = (
        h.customer("13800138101").await,
        h.customer("13800138102").await,
        h.customer("13800138103").await,
    );
    let (s, first) = commit(&h, &a, &id, "a-1", "S001", 2).await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    assert_eq!(first["commitment"]["amount_fen"], json!(7980));
    // the retry is the same commitment
    let (s, again) = commit(&h, &a, &id, "a-1", "S001", 2).await;
    assert_eq!(
        (s, &again["commitment"]["commitment_id"]),
        (StatusCode::OK, &first["commitment"]["commitment_id"])
    );
    let (s, e) = commit(&h, &a, &id, "a-1", "S001", 1).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("idempotency_key_reused"))
    );
    // the limit counts across stores
    let (s, e) = commit(&h, &a, &id, "a-2", "S002", 1).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("per_customer_limit")),
        "{e}"
    );
    let (s, e) = commit(&h, &b, &id, "b-0", "S003", 1).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("store_not_in_group_buy")
        ),
        "{e}"
    );
    let (s, e) = commit(&h, &b, &id, "b-0", "S002", 0).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_field")),
        "{e}"
    );
    let (s, e) = h
        .post(
            &format!("/api/v1/group-buys/{id}/commitments"),
            &b,
            json!({"store_id": "S002", "qty": 1}),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("idempotency_key_required"))
    );
    let (s, e) = h
        .get(
            &format!("/api/v1/group-buys/{id}/supplier-order"),
            Some(&h.admin),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("group_buy_not_reached"))
    );

    let (s, v) = commit(&h, &b, &id, "b-1", "S002", 1).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        (
            v["group_buy"]["state"].as_str(),
            v["group_buy"]["participants"].as_u64()
        ),
        (Some("open"), Some(2))
    );
    let (s, v) = commit(&h, &c, &id, "c-1", "S002", 2).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        v["group_buy"]["state"],
        json!("reached"),
        "decided at the commitment that reaches it"
    );
    assert!(v["group_buy"]["reached_at"].is_string());

    // reached is never undone: deciding later changes nothing
    assert_eq!(
        h.hub
            .settle_group_buys(Utc::now() + Duration::days(1))
            .await
            .unwrap(),
        0
    );
    let (_, g) = h.get(&format!("/api/v1/group-buys/{id}"), None).await;
    assert_eq!(
        (
            g["state"].as_str(),
            g["qty"].as_i64(),
            g["communities"].as_u64()
        ),
        (Some("reached"), Some(5), Some(2))
    );

    assert!(h.hub.group_buy_totals_agree(&id).await.unwrap());
    let (s, so) = h
        .get(
            &format!("/api/v1/group-buys/{id}/supplier-order"),
            Some(&h.admin),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{so}");
    assert_eq!(so["total_qty"], json!(5));
    assert_eq!(
        so["stores"],
        json!([
            {"store_id": "S001", "store_name": "绿源生活·文三路店", "qty": 2, "participants": 1},
            {"store_id": "S002", "store_name": "绿源生活·莫干山路店", "qty": 3, "participants": 2},
        ])
    );
    let (s, _) = h
        .get(&format!("/api/v1/group-buys/{id}/supplier-order"), Some(&a))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, mine) = h.get("/api/v1/customer/group-buys", Some(&c)).await;
    assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(mine[0]["group_buy"]["state"], json!("reached"));
}

#[tokio::test]
async fn a_group_buy_fails_after_the_grace_and_every_commitment_is_cancelled_with_the_reason() {
    let h = hub().await;
    let id = open(
        &h,
        campaign(
            json!({"kind": "participants", "count": 5}),
            Duration::minutes(10),
            &["S001"],
        ),
    )
    .await;
    let a = h.customer("13800138111").await;
    let (s, _) = commit(&h, &a, &id, "a-1", "S001", 1).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = commit(&h, &h.customer("13800138112").await, &id, "b-1", "S001", 2).await;
    assert_eq!(s, StatusCode::CREATED);

    // before the deadline nothing is decided
    assert_eq!(h.hub.settle_group_buys(Utc::now()).await.unwrap(), 0);
    // after it, S001 has not reported since (no link): the hub waits for
    // the grace, since a cut-off counter may hold commitments
    assert_eq!(
        h.hub
            .settle_group_buys(Utc::now() + Duration::minutes(11))
            .await
            .unwrap(),
        0
    );
    let (_, g) = h.get(&format!("/api/v1/group-buys/{id}"), None).await;
    assert_eq!(g["state"], json!("open"));
    // once the grace (60 min) has passed: failed, once
    assert_eq!(
        h.hub
            .settle_group_buys(Utc::now() + Duration::minutes(71))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        h.hub
            .settle_group_buys(Utc::now() + Duration::minutes(90))
            .await
            .unwrap(),
        0
    );
    let (_, g) = h.get(&format!("/api/v1/group-buys/{id}"), None).await;
    assert_eq!(
        (g["state"].as_str(), g["participants"].as_u64()),
        (Some("failed"), Some(0))
    );
    assert!(h.hub.group_buy_totals_agree(&id).await.unwrap());
    let why = g["failure_reason"].as_str().unwrap();
    assert!(why.starts_with("截止时参团人数未达到 5 人"), "{why}");

    let (_, mine) = h.get("/api/v1/customer/group-buys", Some(&a)).await;
    assert_eq!(mine[0]["commitment"]["status"], json!("cancelled"));
    assert_eq!(
        mine[0]["commitment"]["cancel_reason"],
        json!("group_buy_failed")
    );
    assert_eq!(mine[0]["group_buy"]["failure_reason"], json!(why));
    let (s, e) = commit(&h, &a, &id, "a-2", "S001", 1).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("group_buy_closed")),
        "{e}"
    );
    let (_, open_list) = h.get("/api/v1/group-buys", None).await;
    assert_eq!(open_list, json!([]), "the shop lists open campaigns only");
}

#[tokio::test]
async fn a_communities_threshold_needs_enough_participants_in_each() {
    let h = hub().await;
    let id = open(
        &h,
        campaign(
            json!({"kind": "communities", "count": 2, "min_per_community": 2}),
            Duration::hours(1),
            &["S001", "S002", "S003"],
        ),
    )
    .await;
    let mut last = Value::Null;
    for (i, store) in ["S001", "S001", "S002", "S003"].iter().enumerate() {
        let t = h.customer(&format!("1380013820{i}")).await;
        let (s, v) = commit(&h, &t, &id, "k", store, 1).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_eq!(
            v["group_buy"]["state"],
            json!("open"),
            "one community has 2: {v}"
        );
        last = v;
    }
    assert_eq!(last["group_buy"]["communities"], json!(1));
    let t = h.customer("13800138299").await;
    let (_, v) = commit(&h, &t, &id, "k", "S002", 1).await;
    assert_eq!(
        (
            v["group_buy"]["state"].as_str(),
            v["group_buy"]["communities"].as_u64()
        ),
        (Some("reached"), Some(2))
    );
}
