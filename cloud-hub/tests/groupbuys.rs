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

async fn cancel(h: &TestHub, token: &str, id: &str, cid: &str) -> (StatusCode, Value) {
    h.post(
        &format!("/api/v1/group-buys/{id}/commitments/{cid}/cancel"),
        token,
        json!({}),
    )
    .await
}

fn cid(v: &Value) -> String {
    v["commitment"]["commitment_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The campaign's counts: participants, units, per store.
async fn counts(h: &TestHub, id: &str) -> (u64, i64, Value) {
    let (_, g) = h.get(&format!("/api/v1/group-buys/{id}"), None).await;
    (
        g["participants"].as_u64().unwrap(),
        g["qty"].as_i64().unwrap(),
        g["progress"]["per_store"].clone(),
    )
}

#[tokio::test]
async fn a_customer_cancels_their_commitment_which_frees_the_limit_and_the_count() {
    let h = hub().await;
    let id = open(
        &h,
        campaign(
            json!({"kind": "communities", "count": 2, "min_per_community": 1}),
            Duration::hours(1),
            &["S001", "S002"],
        ),
    )
    .await;
    let (a, b) = (
        h.customer("13800138301").await,
        h.customer("13800138302").await,
    );
    let (_, k1) = commit(&h, &a, &id, "a-1", "S001", 1).await;
    let (_, k2) = commit(&h, &a, &id, "a-2", "S001", 1).await;
    let (s, e) = commit(&h, &a, &id, "a-3", "S001", 1).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("per_customer_limit"))
    );
    let (s, _) = commit(&h, &b, &id, "b-1", "S001", 1).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(counts(&h, &id).await.0, 2);

    // another customer's commitment is not theirs to see: 404, nothing done
    for (token, gid, k) in [
        (&b, id.as_str(), cid(&k1)),
        (&a, "GNOSUCH", cid(&k1)),
        (&a, id.as_str(), "KNOSUCH".to_owned()),
    ] {
        let (s, e) = cancel(&h, token, gid, &k).await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("commitment_not_found")),
            "{e}"
        );
    }
    // customers only
    let (s, _) = cancel(&h, &h.admin, &id, &cid(&k1)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(counts(&h, &id).await.1, 3);

    // one of A's two at S001: A still takes part there, one unit less
    let (s, v) = cancel(&h, &a, &id, &cid(&k1)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let k = &v["commitment"];
    assert_eq!(
        (
            k["status"].as_str(),
            k["cancel_reason"].as_str(),
            k["source"].as_str()
        ),
        (
            Some("cancelled"),
            Some("customer_cancelled"),
            Some("online")
        )
    );
    assert!(
        k["failure_reason"]
            .as_str()
            .unwrap()
            .starts_with("顾客取消"),
        "{k}"
    );
    assert!(k["cancelled_at"].is_string());
    assert!(k.get("refund").is_none(), "nothing was paid: {k}");
    assert_eq!(
        (
            v["group_buy"]["participants"].as_u64(),
            v["group_buy"]["qty"].as_i64()
        ),
        (Some(2), Some(2))
    );
    assert!(h.hub.group_buy_totals_agree(&id).await.unwrap());
    // the same cancel again is the same cancelled commitment
    let (s, again) = cancel(&h, &a, &id, &cid(&k1)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(again["commitment"], v["commitment"]);
    assert_eq!(counts(&h, &id).await.1, 2, "counted out once");

    // A's other one: A is no longer a participant at S001
    let (s, _) = cancel(&h, &a, &id, &cid(&k2)).await;
    assert_eq!(s, StatusCode::OK);
    let (participants, qty, per_store) = counts(&h, &id).await;
    assert_eq!((participants, qty), (1, 1));
    assert_eq!(per_store, json!({"S001": {"participants": 1, "qty": 1}}));
    assert!(h.hub.group_buy_totals_agree(&id).await.unwrap());

    // the limit is free again: A commits 2 at S002, which reaches the
    // two communities
    let (s, v) = commit(&h, &a, &id, "a-4", "S002", 2).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["group_buy"]["state"], json!("reached"));
    assert_eq!(
        (
            v["group_buy"]["participants"].as_u64(),
            v["group_buy"]["qty"].as_i64()
        ),
        (Some(2), Some(3))
    );
    assert!(h.hub.group_buy_totals_agree(&id).await.unwrap());
    // a cancelled one stays cancelled (and answers so) after the reach
    let (s, again) = cancel(&h, &a, &id, &cid(&k1)).await;
    assert_eq!(
        (s, &again["commitment"]),
        (StatusCode::OK, &v_of(&h, &a, &cid(&k1)).await)
    );

    let (_, mine) = h.get("/api/v1/customer/group-buys", Some(&a)).await;
    let cancelled: Vec<_> = mine
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["commitment"]["status"] == "cancelled")
        .collect();
    assert_eq!(cancelled.len(), 2, "{mine}");
    for m in cancelled {
        assert!(
            m["commitment"]["failure_reason"]
                .as_str()
                .unwrap()
                .starts_with("顾客取消"),
            "{m}"
        );
    }
}

/// The customer's commitment `cid` as `GET /api/v1/customer/group-buys`
/// shows it.
async fn v_of(h: &TestHub, token: &str, cid: &str) -> Value {
    let (_, mine) = h.get("/api/v1/customer/group-buys", Some(token)).await;
    mine.as_array()
        .unwrap()
        .iter()
        .find(|m| m["commitment"]["commitment_id"] == cid)
        .unwrap()["commitment"]
        .clone()
}

#[tokio::test]
async fn a_reached_group_buy_keeps_its_commitments_and_a_cancel_writes_nothing() {
    let h = hub().await;
    let id = open(
        &h,
        campaign(
            json!({"kind": "participants", "count": 2}),
            Duration::hours(1),
            &["S001"],
        ),
    )
    .await;
    let (a, b) = (
        h.customer("13800138311").await,
        h.customer("13800138312").await,
    );
    let (_, k) = commit(&h, &a, &id, "a-1", "S001", 2).await;
    let (_, v) = commit(&h, &b, &id, "b-1", "S001", 1).await;
    assert_eq!(v["group_buy"]["state"], json!("reached"));
    let before = (counts(&h, &id).await, v_of(&h, &a, &cid(&k)).await);

    let (s, e) = cancel(&h, &a, &id, &cid(&k)).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("group_buy_reached")),
        "{e}"
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("团购已成团，不能取消"),
        "{e}"
    );
    let after = (counts(&h, &id).await, v_of(&h, &a, &cid(&k)).await);
    assert_eq!(before, after, "nothing was written");
    assert_eq!(after.1["status"], json!("active"));
    assert!(h.hub.group_buy_totals_agree(&id).await.unwrap());
    let (_, g) = h.get(&format!("/api/v1/group-buys/{id}"), None).await;
    assert_eq!(g["state"], json!("reached"), "reached stays reached");
}

#[tokio::test]
async fn a_cancel_after_the_deadline_is_refused() {
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
    let a = h.customer("13800138321").await;
    let (_, k) = commit(&h, &a, &id, "a-1", "S001", 1).await;
    let caller = h.hub.authenticate_customer(&a).await.unwrap();
    // eleven minutes on: past the deadline, still open (the grace runs)
    let later = Utc::now() + Duration::minutes(11);
    assert_eq!(h.hub.settle_group_buys(later).await.unwrap(), 0);
    let e = h
        .hub
        .cancel_commitment_at(&caller, &id, &cid(&k), later)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            linli_hub::error::HubError::CancelCommitment(
                linli_shared::groupbuy::CancelError::Closed(_)
            )
        ),
        "{e:?}"
    );
    assert!(e.to_string().starts_with("团购已于"), "{e}");
    assert_eq!(v_of(&h, &a, &cid(&k)).await["status"], json!("active"));
    assert_eq!(counts(&h, &id).await.0, 1, "nothing was written");
    // before the deadline the same cancel goes through
    let v = h
        .hub
        .cancel_commitment_at(&caller, &id, &cid(&k), Utc::now())
        .await
        .unwrap();
    assert_eq!(v.commitment.status, "cancelled");
}

#[tokio::test]
async fn a_store_manager_opens_a_group_buy_for_their_own_store_only() {
    let h = hub().await;
    let (m1, m2) = (h.manager("m1").await, h.manager("m2").await);
    let ours = campaign(
        json!({"kind": "participants", "count": 1}),
        Duration::hours(1),
        &["S001"],
    );
    let with_stores = |stores: Value| {
        let mut b = ours.clone();
        b["store_ids"] = stores;
        b
    };
    for stores in [json!(["S002"]), json!(["S001", "S002"]), json!(["S999"])] {
        let (s, e) = h
            .post("/api/v1/group-buys", &m1, with_stores(stores.clone()))
            .await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("not_your_store")),
            "{stores}: {e}"
        );
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("店长只能管理本店"),
            "{e}"
        );
    }
    let (s, e) = h
        .post("/api/v1/group-buys", &m1, with_stores(json!([])))
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_field"))
    );
    let (s, _) = h
        .post(
            "/api/v1/group-buys",
            &h.regional("west").await,
            ours.clone(),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, all) = h.get("/api/v1/group-buys?state=all", None).await;
    assert_eq!(all, json!([]), "nothing was written");

    let (s, v) = h.post("/api/v1/group-buys", &m1, ours.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["store_ids"], json!(["S001"]));
    let id = v["group_buy_id"].as_str().unwrap().to_owned();
    let a = h.customer("13800138331").await;
    let (_, v) = commit(&h, &a, &id, "a-1", "S001", 2).await;
    assert_eq!(v["group_buy"]["state"], json!("reached"));

    // the supplier order: the admin and S001's manager, not S002's
    let order = format!("/api/v1/group-buys/{id}/supplier-order");
    for token in [&h.admin, &m1] {
        let (s, so) = h.get(&order, Some(token)).await;
        assert_eq!(s, StatusCode::OK, "{so}");
        assert_eq!(so["total_qty"], json!(2));
        assert_eq!(so["stores"][0]["store_id"], json!("S001"));
    }
    let (s, e) = h.get(&order, Some(&m2)).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_your_store"))
    );

    // an admin's campaign at two stores: each manager sees their own line
    let id = open(
        &h,
        campaign(
            json!({"kind": "participants", "count": 2}),
            Duration::hours(1),
            &["S001", "S002"],
        ),
    )
    .await;
    commit(&h, &a, &id, "a-2", "S001", 1).await;
    let (_, v) = commit(&h, &h.customer("13800138332").await, &id, "b-1", "S002", 2).await;
    assert_eq!(v["group_buy"]["state"], json!("reached"));
    let (_, so) = h
        .get(
            &format!("/api/v1/group-buys/{id}/supplier-order"),
            Some(&m2),
        )
        .await;
    assert_eq!(
        (
            so["total_qty"].as_i64(),
            so["stores"].as_array().unwrap().len()
        ),
        (Some(2), 1),
        "{so}"
    );
    assert_eq!(so["stores"][0]["store_id"], json!("S002"));
}

/// A store's counter cancels counter commitments (its ledger, section
/// `commitment_cancels`): each stops counting exactly once, however often
/// its ledger syncs and whichever arrives first (a later day's ledger with
/// the cancel before the one with the commitment); a cancel made at or
/// after the deadline does not count; a reached campaign stays reached.
#[tokio::test]
async fn a_counter_cancel_takes_its_commitment_out_once_in_any_order() {
    use linli_shared::docs::json::put_record;
    use linli_shared::docs::{DocId, Owner, new_doc};

    let h = hub().await;
    let id = open(
        &h,
        campaign(
            json!({"kind": "participants", "count": 10}),
            Duration::hours(1),
            &["S001"],
        ),
    )
    .await;
    let key = h.member_key();
    let now = Utc::now();
    let at = |m: i64| (now + Duration::minutes(m)).to_rfc3339();
    let commitment = |k: &str, phone: &str, gid: &str| {
        json!({"commitment_id": k, "group_buy_id": gid,
               "member_hash": linli_shared::member::member_hash(&key, phone),
               "masked_phone": linli_shared::member::mask_phone(phone),
               "qty": 1, "at": at(-5), "staff": "ana"})
    };
    let cancel = |k: &str, gid: &str, m: i64| {
        json!({"commitment_id": k, "group_buy_id": gid, "refund_id": format!("GBC-{k}"),
               "refund_fen": 3990, "at": at(m), "staff": "ana"})
    };
    let day = now.date_naive();
    let (id1, id2) = (
        DocId::store_ledger("S001", day),
        DocId::store_ledger("S001", day + Duration::days(1)),
    );
    let mut d1: automerge::AutoCommit =
        new_doc(&id1, Owner::Store("S001".into()).actor([9; 8])).unwrap();
    let mut d2: automerge::AutoCommit =
        new_doc(&id2, Owner::Store("S001".into()).actor([9; 8])).unwrap();
    let participants = |(p, q, _): (u64, i64, Value)| (p, q);

    // the cancel of K2 comes first, on the next day's ledger
    put_record(&mut d2, "commitment_cancels", "K2", &cancel("K2", &id, -1)).unwrap();
    d2.commit();
    common::sync_in(&h.hub, "S001", &id2, &mut d2).await;
    assert_eq!(participants(counts(&h, &id).await), (0, 0));
    // then the commitments: K2 arrives cancelled and never counts
    for (k, phone) in [
        ("K1", "13800138301"),
        ("K2", "13800138302"),
        ("K3", "13800138303"),
    ] {
        put_record(&mut d1, "commitments", k, &commitment(k, phone, &id)).unwrap();
    }
    d1.commit();
    common::sync_in(&h.hub, "S001", &id1, &mut d1).await;
    assert_eq!(participants(counts(&h, &id).await), (2, 2));
    // K1 cancelled at the counter, in the same ledger; synced twice
    put_record(&mut d1, "commitment_cancels", "K1", &cancel("K1", &id, -1)).unwrap();
    d1.commit();
    common::sync_in(&h.hub, "S001", &id1, &mut d1).await;
    common::sync_in(&h.hub, "S001", &id1, &mut d1).await;
    assert_eq!(participants(counts(&h, &id).await), (1, 1));
    // a cancel dated after the deadline does not count: K3 still counts
    put_record(&mut d2, "commitment_cancels", "K3", &cancel("K3", &id, 61)).unwrap();
    d2.commit();
    common::sync_in(&h.hub, "S001", &id2, &mut d2).await;
    assert_eq!(participants(counts(&h, &id).await), (1, 1));
    assert!(h.hub.group_buy_totals_agree(&id).await.unwrap());
    // the customer sees why
    let b = h.customer("13800138302").await;
    let (_, mine) = h.get("/api/v1/customer/group-buys", Some(&b)).await;
    assert_eq!(
        (
            mine[0]["commitment"]["status"].as_str(),
            mine[0]["commitment"]["cancel_reason"].as_str()
        ),
        (Some("cancelled"), Some("counter_cancelled")),
        "{mine}"
    );

    // reached stays reached when a counter's cancel arrives afterwards
    let id_r = open(
        &h,
        campaign(
            json!({"kind": "participants", "count": 1}),
            Duration::hours(1),
            &["S001"],
        ),
    )
    .await;
    put_record(
        &mut d1,
        "commitments",
        "K9",
        &commitment("K9", "13800138309", &id_r),
    )
    .unwrap();
    d1.commit();
    common::sync_in(&h.hub, "S001", &id1, &mut d1).await;
    let (_, g) = h.get(&format!("/api/v1/group-buys/{id_r}"), None).await;
    assert_eq!(g["state"], json!("reached"), "{g}");
    put_record(
        &mut d1,
        "commitment_cancels",
        "K9",
        &cancel("K9", &id_r, -1),
    )
    .unwrap();
    d1.commit();
    common::sync_in(&h.hub, "S001", &id1, &mut d1).await;
    let (_, g) = h.get(&format!("/api/v1/group-buys/{id_r}"), None).await;
    assert_eq!(
        (g["state"].as_str(), g["participants"].as_u64()),
        (Some("reached"), Some(0)),
        "{g}"
    );
    assert!(h.hub.group_buy_totals_agree(&id_r).await.unwrap());
}

/// A failed campaign's counter commitments are refunded at their store's
/// counter (issue 11): the hub tells each store the campaign failed (its
/// orders document, section `group_buy_failed`), shows per store the
/// counter refunds done and still owed, and counts each refund (the
/// store's cancel fact with reason `group_buy_failed`) once, however often
/// it arrives: synced twice, again in another day's ledger, and after the
/// hub restarted. A refund never counts a commitment out or in.
#[tokio::test]
async fn a_failed_campaigns_counter_refunds_count_once_and_the_rest_show_owed() {
    use linli_shared::docs::json::{get_record, put_record};
    use linli_shared::docs::{DocId, Owner, new_doc};

    let h = hub().await;
    let id = open(
        &h,
        campaign(
            json!({"kind": "participants", "count": 5}),
            Duration::minutes(10),
            &["S001", "S002"],
        ),
    )
    .await;
    let key = h.member_key();
    let now = Utc::now();
    let at = |m: i64| (now + Duration::minutes(m)).to_rfc3339();
    let commitment = |k: &str, phone: &str| {
        json!({"commitment_id": k, "group_buy_id": id,
               "member_hash": linli_shared::member::member_hash(&key, phone),
               "masked_phone": linli_shared::member::mask_phone(phone),
               "qty": 1, "at": at(-5), "staff": "ana"})
    };
    let refund = |k: &str| {
        json!({"commitment_id": k, "group_buy_id": id, "refund_id": format!("GBF-{k}"),
               "refund_fen": 3990, "at": at(80), "staff": "ana", "reason": "group_buy_failed"})
    };
    let day = now.date_naive();
    let ledger = |store: &str, day| {
        let id = DocId::store_ledger(store, day);
        let d: automerge::AutoCommit =
            new_doc(&id, Owner::Store(store.into()).actor([9; 8])).unwrap();
        (id, d)
    };
    let (id1, mut d1) = ledger("S001", day);
    let (id2, mut d2) = ledger("S001", day + Duration::days(1));
    let (ide, mut e1) = ledger("S002", day);
    for (k, phone) in [("K1", "13800138401"), ("K2", "13800138402")] {
        put_record(&mut d1, "commitments", k, &commitment(k, phone)).unwrap();
    }
    d1.commit();
    common::sync_in(&h.hub, "S001", &id1, &mut d1).await;
    put_record(
        &mut e1,
        "commitments",
        "K5",
        &commitment("K5", "13800138405"),
    )
    .unwrap();
    e1.commit();
    common::sync_in(&h.hub, "S002", &ide, &mut e1).await;
    assert_eq!(counts(&h, &id).await.0, 3);

    // failed after the grace: every store is told, and all three are owed
    let decided = Utc::now() + Duration::minutes(71);
    assert_eq!(h.hub.settle_group_buys(decided).await.unwrap(), 1);
    for store in ["S001", "S002"] {
        let (s, gid) = (store.to_owned(), id.clone());
        let told = h
            .hub
            .with_docs(move |c, docs| {
                let mut found = None;
                for d in -1..=1 {
                    let doc = DocId::hub_orders(&s, decided.date_naive() + Duration::days(d));
                    let got = docs.read(c, &doc, |doc| {
                        get_record::<linli_shared::groupbuy::CounterFailure>(
                            doc,
                            "group_buy_failed",
                            &gid,
                        )
                    })?;
                    found = found.or(got.flatten());
                }
                Ok(found)
            })
            .await
            .unwrap()
            .expect("the store is told the campaign failed");
        assert!(
            told.reason.starts_with("截止时参团人数未达到 5 人"),
            "{told:?}"
        );
    }
    let refunds = |g: &Value| {
        let r = &g["counter_refunds"];
        let per: Vec<(String, i64, i64)> = r["stores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["store_id"].as_str().unwrap().to_owned(),
                    s["done"].as_i64().unwrap(),
                    s["owed"].as_i64().unwrap(),
                )
            })
            .collect();
        (
            r["done"].as_i64().unwrap(),
            r["owed"].as_i64().unwrap(),
            r["owed_fen"].as_i64().unwrap(),
            per,
        )
    };
    async fn view(h: &TestHub, id: &str) -> Value {
        h.get(&format!("/api/v1/group-buys/{id}"), None).await.1
    }
    let g = view(&h, &id).await;
    assert_eq!(
        refunds(&g),
        (
            0,
            3,
            3 * 3990,
            vec![("S001".into(), 0, 2), ("S002".into(), 0, 1)]
        ),
        "{g}"
    );

    // S001's counter refunds K1; its ledger syncs twice
    put_record(&mut d1, "commitment_cancels", "K1", &refund("K1")).unwrap();
    d1.commit();
    common::sync_in(&h.hub, "S001", &id1, &mut d1).await;
    common::sync_in(&h.hub, "S001", &id1, &mut d1).await;
    let after_k1 = (
        1,
        2,
        2 * 3990,
        vec![("S001".into(), 1, 1), ("S002".into(), 0, 1)],
    );
    assert_eq!(refunds(&view(&h, &id).await), after_k1);
    // the same fact again, on the next day's ledger
    put_record(&mut d2, "commitment_cancels", "K1", &refund("K1")).unwrap();
    d2.commit();
    common::sync_in(&h.hub, "S001", &id2, &mut d2).await;
    assert_eq!(refunds(&view(&h, &id).await), after_k1);

    // the hub restarts; both ledgers sync again from the start, and K2's
    // refund comes
    let h = h.reopen().await;
    assert_eq!(refunds(&view(&h, &id).await), after_k1);
    put_record(&mut d2, "commitment_cancels", "K2", &refund("K2")).unwrap();
    d2.commit();
    common::sync_in(&h.hub, "S001", &id1, &mut d1).await;
    common::sync_in(&h.hub, "S001", &id2, &mut d2).await;
    let g = view(&h, &id).await;
    assert_eq!(
        refunds(&g),
        (
            2,
            1,
            3990,
            vec![("S001".into(), 2, 0), ("S002".into(), 0, 1)]
        ),
        "{g}"
    );
    assert_eq!(g["counter_refunds"]["done_fen"].as_i64(), Some(2 * 3990));
    // the customers see why, and where their money is
    for (phone, said) in [
        ("13800138401", "拼团未成团，已在门店柜台退款"),
        ("13800138405", "拼团未成团，请到参团的门店柜台退款"),
    ] {
        let token = h.customer(phone).await;
        let (_, mine) = h.get("/api/v1/customer/group-buys", Some(&token)).await;
        let why = mine[0]["commitment"]["failure_reason"].as_str().unwrap();
        assert!(why.starts_with(said), "{mine}");
    }
    assert_eq!(
        (g["state"].as_str(), g["participants"].as_u64()),
        (Some("failed"), Some(0))
    );
    assert!(h.hub.group_buy_totals_agree(&id).await.unwrap());
}

/// A campaign that failed before the hub told stores of failures (a
/// database written by the version before: failed, its counter
/// commitments cancelled, no word in any store's orders document) is told
/// by the next sweep, once: without it its counter commitments stay owed
/// for ever, since a counter refunds only on the hub's word.
#[tokio::test]
async fn a_campaign_failed_before_stores_were_told_is_told_by_the_next_sweep() {
    use linli_shared::docs::json::{get_record, put_record};
    use linli_shared::docs::{DocId, Owner, new_doc};

    let h = hub().await;
    let id = open(
        &h,
        campaign(
            json!({"kind": "participants", "count": 5}),
            Duration::minutes(10),
            &["S001", "S002"],
        ),
    )
    .await;
    let key = h.member_key();
    let now = Utc::now();
    let ledger_id = DocId::store_ledger("S001", now.date_naive());
    let mut ledger: automerge::AutoCommit =
        new_doc(&ledger_id, Owner::Store("S001".into()).actor([9; 8])).unwrap();
    put_record(
        &mut ledger,
        "commitments",
        "K1",
        &json!({"commitment_id": "K1", "group_buy_id": id,
                "member_hash": linli_shared::member::member_hash(&key, "13800138501"),
                "masked_phone": linli_shared::member::mask_phone("13800138501"),
                "qty": 1, "at": (now - Duration::minutes(5)).to_rfc3339(), "staff": "ana"}),
    )
    .unwrap();
    ledger.commit();
    common::sync_in(&h.hub, "S001", &ledger_id, &mut ledger).await;
    assert_eq!(counts(&h, &id).await.0, 1);

    // what the version before left: failed, cancelled, nobody told
    let decided = now + Duration::minutes(71);
    let gid = id.clone();
    h.hub
        .with_docs(move |c, _| {
            c.execute(
                "UPDATE group_buys SET state = 'failed', decided_at = ?2, participants = 0, qty = 0
                 WHERE group_buy_id = ?1",
                rusqlite::params![gid, decided.to_rfc3339()],
            )?;
            c.execute(
                "UPDATE group_buy_commitments SET status = 'cancelled', cancel_reason = 'group_buy_failed'
                 WHERE group_buy_id = ?1",
                [&gid],
            )?;
            Ok(())
        })
        .await
        .unwrap();
    // each store's notice, from its orders documents around that day (the
    // hub's day is in the chain's time zone), and their heads
    type Told = (
        Option<linli_shared::groupbuy::CounterFailure>,
        Vec<Vec<automerge::ChangeHash>>,
    );
    let told = |at: chrono::DateTime<Utc>| {
        let (hub, gid) = (h.hub.clone(), id.clone());
        async move {
            hub.with_docs(move |c, docs| {
                let mut out: Vec<Told> = Vec::new();
                for s in ["S001", "S002"] {
                    let mut t: Told = (None, Vec::new());
                    for k in -1..=1 {
                        let doc = DocId::hub_orders(s, at.date_naive() + Duration::days(k));
                        let got = docs.read(c, &doc, |d| {
                            (
                                get_record::<linli_shared::groupbuy::CounterFailure>(
                                    d,
                                    "group_buy_failed",
                                    &gid,
                                ),
                                d.clone().get_heads(),
                            )
                        })?;
                        if let Some((notice, heads)) = got {
                            t.0 = t.0.or(notice);
                            t.1.push(heads);
                        }
                    }
                    out.push(t);
                }
                Ok(out)
            })
            .await
            .unwrap()
        }
    };
    assert!(
        told(decided).await.iter().all(|(n, _)| n.is_none()),
        "nobody was told"
    );

    // the next sweep tells both stores, in its day's orders documents
    assert_eq!(h.hub.settle_group_buys(decided).await.unwrap(), 0);
    let first = told(decided).await;
    for (notice, _) in &first {
        let notice = notice.as_ref().expect("the store is told");
        assert!(
            notice.reason.starts_with("截止时参团人数未达到 5 人"),
            "{notice:?}"
        );
    }
    // and only once
    assert_eq!(h.hub.settle_group_buys(decided).await.unwrap(), 0);
    let again = told(decided).await;
    let heads = |v: &Vec<Told>| v.iter().map(|t| t.1.clone()).collect::<Vec<_>>();
    assert_eq!(
        heads(&first),
        heads(&again),
        "the second sweep wrote nothing"
    );
}
