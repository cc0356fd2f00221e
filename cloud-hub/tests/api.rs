//! The hub's order API over its router (no socket): every documented route
//! is served, and every kind of bad order is refused with its status and
//! stable code and leaves no order and no idempotency record behind; a
//! pickup order nobody collects expires and gives its rights back.

#![allow(clippy::unwrap_used)] // test code

mod common;

use common::sync_in;

use automerge::AutoCommit;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use linli_hub::app::orders::PlaceOrder;
use linli_hub::auth::Caller;
use linli_hub::auth::{Role, User};
use linli_hub::hub::{Hub, HubPaths, add_user, open_conn};
use linli_shared::docs::stock::set_rights;
use linli_shared::docs::{DocId, Owner, new_doc};
use linli_shared::order::OrderStatus;
use linli_shared::rights::StoreRights;
use serde_json::{Value, json};
use tower::ServiceExt;

/// What is wrong, token, headers, body, expected status and code.
type Case<'a> = (
    &'a str,
    Option<&'a str>,
    Vec<(&'a str, &'a str)>,
    String,
    StatusCode,
    &'a str,
);

struct TestHub {
    _dir: tempfile::TempDir,
    hub: Hub,
    admin: String,
}

async fn hub() -> TestHub {
    let dir = tempfile::tempdir().unwrap();
    let paths = HubPaths {
        data_dir: dir.path().to_owned(),
    };
    add_user(
        &open_conn(&paths.db()).unwrap(),
        "admin",
        Role::Admin,
        "admin-password",
    )
    .unwrap();
    let hub = Hub::open(&paths).unwrap();
    let admin = hub.login("admin", "admin-password").await.unwrap();
    TestHub {
        _dir: dir,
        hub,
        admin,
    }
}

impl TestHub {
    async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Body,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = linli_hub::http::router(self.hub.clone())
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn csv(&self, uri: &str, file: &str) {
        let body = std::fs::read(format!("{}/../data/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let admin = self.admin.clone();
        let (s, v) = self
            .call(
                "POST",
                uri,
                Some(&admin),
                &[("content-type", "text/csv")],
                Body::from(body),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{uri}: {v}");
    }

    async fn count(&self, table: &'static str) -> i64 {
        self.hub
            .store
            .read(move |c| {
                c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                    .map_err(linli_sync::db::StoreError::from)
            })
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn openapi_documents_what_is_served() {
    let h = hub().await;
    let (s, doc) = h
        .call("GET", "/api/v1/openapi.json", None, &[], Body::empty())
        .await;
    assert_eq!(s, StatusCode::OK);
    let mut documented = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented += 1;
            let uri = path
                .replace("{order_id}", "01NOPE")
                .replace("{store_id}", "S001")
                .replace("{sku}", "P00001")
                .replace("{doc_id}", "catalog/1")
                .replace("{customer_id}", "CNOSUCH")
                .replace("{session_id}", "LNOSUCH");
            let uri = if uri.ends_with("/stock") {
                format!("{uri}?sku=P00001")
            } else {
                uri
            };
            let admin = h.admin.clone();
            let (s, v) = h
                .call(
                    &method.to_uppercase(),
                    &uri,
                    Some(&admin),
                    &[("content-type", "application/json")],
                    Body::from("{}"),
                )
                .await;
            assert_ne!(
                v["error"]["code"], "not_found",
                "{method} {path} is documented but not served"
            );
            assert_ne!(s, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        }
    }
    assert_eq!(documented, 68);
}

#[tokio::test]
async fn bad_orders_are_refused_with_stable_codes_and_write_nothing() {
    let h = hub().await;
    h.csv("/api/v1/catalog/import", "products.csv").await;
    h.csv("/api/v1/stores/import", "stores.csv").await;
    let (s, v) = h
        .call(
            "POST",
            "/api/v1/customer/session",
            None,
            &[("content-type", "application/json")],
            Body::from(r#"{"phone":"12345"}"#),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("invalid_field"))
    );
    let (_, v) = h
        .call(
            "POST",
            "/api/v1/customer/session",
            None,
            &[("content-type", "application/json")],
            Body::from(r#"{"phone":"13800000001"}"#),
        )
        .await;
    let me = v["token"].as_str().unwrap().to_owned();

    let good = json!({"channel": "miniapp", "customer": {"phone": "13800000001"}, "fulfilment": "pickup",
                      "store_id": "S001", "lines": [{"sku": "P00001", "qty": 1}]});
    let with = |f: &dyn Fn(&mut Value)| {
        let mut b = good.clone();
        f(&mut b);
        b.to_string()
    };
    let json_ct = ("content-type", "application/json");
    let key = ("idempotency-key", "k-1");
    let cases: Vec<Case<'_>> = vec![
        (
            "no token",
            None,
            vec![json_ct, key],
            good.to_string(),
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        ),
        (
            "no key",
            Some(&me),
            vec![json_ct],
            good.to_string(),
            StatusCode::BAD_REQUEST,
            "idempotency_key_required",
        ),
        (
            "malformed",
            Some(&me),
            vec![json_ct, key],
            "{\"channel\":".into(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "unknown field",
            Some(&me),
            vec![json_ct, key],
            with(&|b| b["voucher"] = json!("FREE")),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "unknown sku",
            Some(&me),
            vec![json_ct, key],
            with(&|b| b["lines"][0]["sku"] = json!("P99999")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_sku",
        ),
        (
            "zero qty",
            Some(&me),
            vec![json_ct, key],
            with(&|b| b["lines"][0]["qty"] = json!(0)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            "no lines",
            Some(&me),
            vec![json_ct, key],
            with(&|b| b["lines"] = json!([])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            "live without session",
            Some(&me),
            vec![json_ct, key],
            with(&|b| b["channel"] = json!("live")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            "delivery without location",
            Some(&me),
            vec![json_ct, key],
            with(&|b| {
                b["fulfilment"] = json!("delivery");
                b.as_object_mut().unwrap().remove("store_id");
            }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            "bad location",
            Some(&me),
            vec![json_ct, key],
            with(&|b| b["location"] = json!({"lat": 123.0, "lon": 120.0})),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "unknown store",
            Some(&me),
            vec![json_ct, key],
            with(&|b| b["store_id"] = json!("S999")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_store",
        ),
        (
            "someone else's phone",
            Some(&me),
            vec![json_ct, key],
            with(&|b| b["customer"]["phone"] = json!("13900000002")),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        // no store has lent the hub anything yet
        (
            "no rights",
            Some(&me),
            vec![json_ct, key],
            good.to_string(),
            StatusCode::CONFLICT,
            "no_store_can_serve",
        ),
    ];
    for (what, token, headers, body, status, code) in cases {
        let (s, v) = h
            .call("POST", "/api/v1/orders", token, &headers, Body::from(body))
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str().unwrap_or("")),
            (status, code),
            "{what}: {v}"
        );
        assert!(
            !v["error"]["message"].as_str().unwrap_or("").is_empty(),
            "{what}: no message"
        );
    }
    assert_eq!(h.count("online_orders").await, 0);
    assert_eq!(h.count("idempotency").await, 0);
    // a refused order leaves its demand for the store to answer, and nothing else
    assert!(h.count("hub_rights").await > 0);
    // unknown orders are 404 for anyone, with a code
    let (s, v) = h
        .call(
            "GET",
            "/api/v1/orders/01NOPE",
            Some(&me),
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, json!("order_not_found"))
    );
    // customers do not see the exceptions list
    let (s, _) = h
        .call("GET", "/api/v1/exceptions", Some(&me), &[], Body::empty())
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn uncollected_pickup_orders_expire_and_give_their_rights_back() {
    let h = hub().await;
    h.csv("/api/v1/catalog/import", "products.csv").await;
    h.csv("/api/v1/stores/import", "stores.csv").await;
    // S001 lends the hub 10 units, through its stock document
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
    let id = DocId::store_stock("S001", day);
    let mut doc = new_doc(&id, Owner::Store("S001".into()).actor([7; 8])).unwrap();
    set_rights(
        &mut doc,
        "P00001",
        &StoreRights {
            lent: 10,
            ..Default::default()
        },
    )
    .unwrap();
    doc.commit();
    sync_in(&h.hub, "S001", &id, &mut doc).await;
    let sellable = |v: Vec<linli_hub::app::online::SellableView>| {
        v.into_iter()
            .find(|s| s.store_id == "S001")
            .map(|s| s.sellable)
    };
    assert_eq!(sellable(h.hub.sellable("P00001").await.unwrap()), Some(10));

    let admin = Caller::Staff(User {
        name: "admin".into(),
        role: Role::Admin,
        store_id: None,
        region: None,
    });
    let req: PlaceOrder = serde_json::from_value(
        json!({"channel": "community", "customer": {"phone": "13800000001"},
        "fulfilment": "pickup", "store_id": "S001", "lines": [{"sku": "P00001", "qty": 3}]}),
    )
    .unwrap();
    let (order, _) = h
        .hub
        .place_order(&admin, "exp-1".into(), req)
        .await
        .unwrap();
    assert_eq!(sellable(h.hub.sellable("P00001").await.unwrap()), Some(7));

    let now = chrono::Utc::now();
    assert_eq!(
        h.hub
            .expire_orders(now + chrono::Duration::hours(1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        h.hub
            .expire_orders(now + chrono::Duration::hours(49))
            .await
            .unwrap(),
        1
    );
    let v = h.hub.order(&admin, &order.order_id).await.unwrap();
    assert_eq!(v.status, OrderStatus::Cancelled);
    assert_eq!(v.cancel_reason.as_deref(), Some("expired"));
    assert_eq!(sellable(h.hub.sellable("P00001").await.unwrap()), Some(10));
    // a second sweep finds nothing more
    assert_eq!(
        h.hub
            .expire_orders(now + chrono::Duration::hours(50))
            .await
            .unwrap(),
        0
    );
}

/// Method, path, headers, body, expected status and code.
type ErrorCase<'a> = (
    &'a str,
    &'a str,
    Vec<(&'a str, &'a str)>,
    Body,
    StatusCode,
    &'a str,
);

/// Issue 8 item 14: every error is the JSON error shape with a stable code,
/// including what axum itself refuses before a handler runs (a bad query
/// string, bad UTF-8 in a path, a method the route does not take, a body over
/// the limit); an oversized order is 413 `body_too_large`, and a store the
/// hub has never heard of is 404 `store_not_found`, not an empty 200.
#[tokio::test]
async fn every_error_is_the_json_error_shape() {
    let h = hub().await;
    h.csv("/api/v1/stores/import", "stores.csv").await;
    let a = h.admin.clone();
    let json_ct = ("content-type", "application/json");
    let big = format!("{{\"lines\":[{}]}}", " ".repeat(3 * 1024 * 1024));
    let cases: Vec<ErrorCase<'_>> = vec![
        (
            "GET",
            "/api/v1/stores/S001/sales",
            vec![],
            Body::empty(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "GET",
            "/api/v1/stores/S001/sales?day=2026-11-25&day=x",
            vec![],
            Body::empty(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "GET",
            "/api/v1/stock",
            vec![],
            Body::empty(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "GET",
            "/api/v1/orders/%FF%FE",
            vec![],
            Body::empty(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "GET",
            "/api/v1/stores/%C3%28/sales?day=2026-11-25",
            vec![],
            Body::empty(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "GET",
            "/api/v1/login",
            vec![],
            Body::empty(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "DELETE",
            "/api/v1/orders",
            vec![],
            Body::empty(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "POST",
            "/health",
            vec![],
            Body::empty(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "GET",
            "/api/v1/nope",
            vec![],
            Body::empty(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "POST",
            "/api/v1/orders",
            vec![json_ct, ("idempotency-key", "k-1")],
            Body::from(big.clone()),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (
            "POST",
            "/api/v1/login",
            vec![json_ct],
            Body::from(big),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (
            "POST",
            "/api/v1/catalog/import",
            vec![("content-type", "text/csv")],
            Body::from(vec![b'x'; 9 * 1024 * 1024]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (
            "POST",
            "/api/v1/login",
            vec![],
            Body::from("{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "GET",
            "/api/v1/stores/S999/sales?day=2026-11-25",
            vec![],
            Body::empty(),
            StatusCode::NOT_FOUND,
            "store_not_found",
        ),
        (
            "GET",
            "/api/v1/stores/S999/stock/P00001",
            vec![],
            Body::empty(),
            StatusCode::NOT_FOUND,
            "store_not_found",
        ),
    ];
    for (method, uri, headers, body, status, want) in cases {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {a}"));
        for (k, v) in &headers {
            req = req.header(*k, *v);
        }
        let resp = linli_hub::http::router(h.hub.clone())
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let what = format!("{method} {uri}");
        let s = resp.status();
        let resp_headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        assert_eq!(
            (s, v["error"]["code"].as_str().unwrap_or("<none>")),
            (status, want),
            "{what}: {v}"
        );
        assert!(
            resp_headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{what}"
        );
        assert!(
            !v["error"]["message"].as_str().unwrap_or("").is_empty(),
            "{what}: {v}"
        );
        if s == StatusCode::METHOD_NOT_ALLOWED {
            assert!(
                resp_headers.contains_key("allow"),
                "{what}: no Allow header"
            );
        }
    }
    // a store in the directory with nothing synced yet is an empty day, not 404
    let (s, v) = h
        .call(
            "GET",
            "/api/v1/stores/S001/sales?day=2026-11-25",
            Some(&a),
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["count"], 0);
    assert_eq!(v["net_fen"], 0);
}

/// Issue 8 item 12: the hub's per-store sales carry refunds. A refund
/// recorded on a later day's ledger, and arriving before the sale it refunds
/// (a store offline for days syncs documents in any order), still nets that
/// sale's day; a refund synced twice counts once.
#[tokio::test]
async fn refunds_net_the_day_of_their_sale_in_any_arrival_order() {
    use linli_shared::docs::ledger::{
        PaymentFact, RefundFact, SaleFact, SaleLineFact, record_refund, record_sale,
    };
    let h = hub().await;
    let owner = Owner::Store("S001".into());
    let d1 = chrono::NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
    let d2 = d1.succ_opt().unwrap();
    let sale = |id: &str, total: i64| SaleFact {
        sale_id: id.into(),
        ticket_no: format!("S001-20261125-{}", &id[id.len() - 4..]),
        created_at: "2026-11-25T02:00:00.000Z".into(),
        cashier: "ana".into(),
        total_fen: total,
        lines: vec![SaleLineFact {
            sku: "P00001".into(),
            qty: 1,
            total_fen: total,
            unit_price_fen: 0,
        }],
        payments: vec![PaymentFact {
            method: "cash".into(),
            amount_fen: total,
        }],
        member: false,
        ..Default::default()
    };
    let refund = |id: &str, sale_id: &str, amount: i64| RefundFact {
        refund_id: id.into(),
        sale_id: sale_id.into(),
        amount_fen: amount,
        staff: "mei".into(),
        at: "2026-11-26T03:00:00.000Z".into(),
        ..Default::default()
    };
    // the next day's ledger, with refunds of day 1's sales, arrives first
    let id2 = DocId::store_ledger("S001", d2);
    let mut doc2 = new_doc(&id2, owner.actor([2; 8])).unwrap();
    record_refund(&mut doc2, &refund("01REF0001", "01SALE0001", 1950)).unwrap();
    record_refund(&mut doc2, &refund("01REF0002", "01SALE0002", 500)).unwrap();
    doc2.commit();
    sync_in(&h.hub, "S001", &id2, &mut doc2).await;
    let hr = &h;
    let day1 = move || async move {
        let (s, v) = hr
            .call(
                "GET",
                "/api/v1/stores/S001/sales?day=2026-11-25",
                Some(&hr.admin),
                &[],
                Body::empty(),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        (
            v["total_fen"].as_i64().unwrap(),
            v["refunded_fen"].as_i64().unwrap(),
            v["net_fen"].as_i64().unwrap(),
        )
    };
    assert_eq!(day1().await, (0, 0, 0));
    // then day 1's ledger with the sales, and one refund made that day
    let id1 = DocId::store_ledger("S001", d1);
    let mut doc1 = new_doc(&id1, owner.actor([1; 8])).unwrap();
    record_sale(&mut doc1, &sale("01SALE0001", 1950)).unwrap();
    record_sale(&mut doc1, &sale("01SALE0002", 3000)).unwrap();
    record_sale(&mut doc1, &sale("01SALE0003", 1000)).unwrap();
    record_refund(&mut doc1, &refund("01REF0003", "01SALE0002", 250)).unwrap();
    doc1.commit();
    sync_in(&h.hub, "S001", &id1, &mut doc1).await;
    assert_eq!(day1().await, (5950, 2700, 3250));
    // a refund arriving again (another session, a replayed message) counts once
    let mut again = AutoCommit::load(&doc2.save()).unwrap();
    sync_in(&h.hub, "S001", &id2, &mut again).await;
    assert_eq!(day1().await, (5950, 2700, 3250));
    // per sale, too; the next day has no sales of its own to net
    let sales = h.hub.sales("S001", d1).await.unwrap();
    let refunded: Vec<i64> = sales.iter().map(|s| s.refunded_fen).collect();
    assert_eq!(refunded, vec![1950, 750, 0]);
    assert!(h.hub.sales("S001", d2).await.unwrap().is_empty());
}

/// Issue 10, the shop: a store's availability before checkout, a refusal
/// that names the product and what is left and offers a store that has it
/// (with its distance from the customer), a delivery to a compound with
/// building and room, and "my orders" for the session's customer only.
#[tokio::test]
async fn the_shop_sees_availability_named_shortages_my_orders_and_compounds() {
    let h = hub().await;
    h.csv("/api/v1/catalog/import", "products.csv").await;
    h.csv("/api/v1/stores/import", "stores.csv").await;
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
    for (store, lent, actor) in [("S001", 10, 7u8), ("S002", 50, 8u8)] {
        let id = DocId::store_stock(store, day);
        let mut doc = new_doc(&id, Owner::Store(store.into()).actor([actor; 8])).unwrap();
        set_rights(
            &mut doc,
            "P00001",
            &StoreRights {
                lent,
                ..Default::default()
            },
        )
        .unwrap();
        doc.commit();
        sync_in(&h.hub, store, &id, &mut doc).await;
    }
    let session = |phone: &'static str| {
        let h = &h;
        async move {
            let (s, v) = h
                .call(
                    "POST",
                    "/api/v1/customer/session",
                    None,
                    &[("content-type", "application/json")],
                    Body::from(json!({"phone": phone}).to_string()),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v["token"].as_str().unwrap().to_owned()
        }
    };
    let me = session("13800138123").await;
    let other = session("13900139000").await;

    let (s, avail) = h
        .call(
            "GET",
            "/api/v1/stores/S001/availability",
            None,
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{avail}");
    let of = |sku: &str| {
        avail
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["sku"] == sku)
            .unwrap()["available"]
            .clone()
    };
    assert_eq!((of("P00001"), of("P00007")), (json!(10), json!(0)));
    let (s, e) = h
        .call(
            "GET",
            "/api/v1/stores/S999/availability",
            None,
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("store_not_found"))
    );

    let order = |key: &'static str, body: Value| {
        let (h, me) = (&h, me.clone());
        async move {
            h.call(
                "POST",
                "/api/v1/orders",
                Some(&me),
                &[
                    ("content-type", "application/json"),
                    ("idempotency-key", key),
                ],
                Body::from(body.to_string()),
            )
            .await
        }
    };
    // S001 holds 10 buns: 12 are refused, naming the bun and the 10, and S002 has them
    let here = json!({"lat": 30.377087, "lon": 120.166389}); // 文三路花园, next to S001
    let (s, e) = order(
        "k1",
        json!({"channel": "miniapp", "customer": {"phone": "13800138123"}, "fulfilment": "pickup",
        "store_id": "S001", "location": here, "lines": [{"sku": "P00001", "qty": 12}]}),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("no_store_can_serve")),
        "{e}"
    );
    let short = &e["error"]["details"]["shortages"][0];
    assert_eq!(
        (
            short["store_id"].as_str(),
            short["sku"].as_str(),
            short["name"].as_str(),
            short["requested"].as_i64(),
            short["available"].as_i64()
        ),
        (
            Some("S001"),
            Some("P00001"),
            Some("本地全麦面包（浙江）"),
            Some(12),
            Some(10)
        ),
        "{e}"
    );
    let alts = e["error"]["details"]["alternatives"].as_array().unwrap();
    let s2 = alts
        .iter()
        .find(|a| a["store_id"] == "S002")
        .expect("S002 has the buns");
    assert_eq!(s2["covered_skus"], json!(["P00001"]));
    // from the customer's compound, not from S001: about 5.7 km
    let d = s2["distance_m"].as_u64().unwrap();
    assert!((5000..6500).contains(&d), "distance {d}");

    let (s, pickup) = order(
        "k2",
        json!({"channel": "miniapp", "customer": {"phone": "13800138123"}, "fulfilment": "pickup",
        "store_id": "S001", "lines": [{"sku": "P00001", "qty": 3}]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{pickup}");
    let start = chrono::Utc::now() + chrono::Duration::hours(1);
    let slot = json!({"start": start.to_rfc3339(), "end": (start + chrono::Duration::hours(1)).to_rfc3339()});
    let (s, e) = order("k3", json!({"channel": "miniapp", "customer": {"phone": "13800138123"}, "fulfilment": "delivery",
        "location": here, "delivery_slot": slot, "address": "x".repeat(201), "lines": [{"sku": "P00001", "qty": 1}]})).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_field")),
        "{e}"
    );
    let (s, e) = order("k4", json!({"channel": "miniapp", "customer": {"phone": "13800138123"}, "fulfilment": "pickup",
        "store_id": "S001", "address": "文三路花园 3 幢 201", "lines": [{"sku": "P00001", "qty": 1}]})).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_field")),
        "{e}"
    );
    let (s, delivery) = order("k5", json!({"channel": "miniapp", "customer": {"phone": "13800138123"}, "fulfilment": "delivery",
        "location": here, "delivery_slot": slot, "address": "文三路花园 3 幢 201", "lines": [{"sku": "P00001", "qty": 1}]})).await;
    assert_eq!(s, StatusCode::CREATED, "{delivery}");
    assert_eq!(delivery["store_id"], "S001");
    let addr = h
        .hub
        .store
        .read({
            let id = delivery["order_id"].as_str().unwrap().to_owned();
            move |c| {
                Ok::<_, linli_hub::error::HubError>(linli_hub::store::orders::OrderRecords::order(
                    c, &id,
                )?)
            }
        })
        .await
        .unwrap()
        .unwrap()
        .0
        .delivery
        .unwrap()
        .address;
    assert_eq!(addr.as_deref(), Some("文三路花园 3 幢 201"));

    let (s, mine) = h
        .call(
            "GET",
            "/api/v1/customer/orders",
            Some(&me),
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{mine}");
    let ids: Vec<&str> = mine
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![
            delivery["order_id"].as_str().unwrap(),
            pickup["order_id"].as_str().unwrap()
        ]
    );
    assert_eq!(mine[1]["pickup_code"], pickup["pickup_code"]);
    let (s, theirs) = h
        .call(
            "GET",
            "/api/v1/customer/orders",
            Some(&other),
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!((s, theirs), (StatusCode::OK, json!([])));
    let admin = h.admin.clone();
    let (s, e) = h
        .call(
            "GET",
            "/api/v1/customer/orders",
            Some(&admin),
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (s, _) = h
        .call("GET", "/api/v1/customer/orders", None, &[], Body::empty())
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // the amount to pay before checkout, priced as the order will be
    let quote = |body: Value| {
        let h = &h;
        async move {
            h.call(
                "POST",
                "/api/v1/quote",
                None,
                &[("content-type", "application/json")],
                Body::from(body.to_string()),
            )
            .await
        }
    };
    let (s, q) = quote(
        json!({"fulfilment": "pickup", "store_id": "S001", "lines": [{"sku": "P00001", "qty": 2}]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{q}");
    assert_eq!(
        q,
        json!({"subtotal_fen": 3900, "discount_fen": 195, "fee_fen": 0, "total_fen": 3705, "coupon_fen": 0})
    );
    let (s, q) = quote(
        json!({"fulfilment": "delivery", "location": here, "lines": [{"sku": "P00001", "qty": 2}]}),
    )
    .await;
    assert_eq!(
        (s, q["fee_fen"].as_i64(), q["total_fen"].as_i64()),
        (StatusCode::OK, Some(600), Some(4500)),
        "{q}"
    );
    let (s, e) = quote(
        json!({"fulfilment": "pickup", "store_id": "S001", "lines": [{"sku": "NOPE", "qty": 2}]}),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_sku")),
        "{e}"
    );

    let (s, cats) = h
        .call("GET", "/api/v1/categories", None, &[], Body::empty())
        .await;
    assert_eq!(s, StatusCode::OK);
    let veg = cats
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["category"] == "vegetable")
        .unwrap();
    assert_eq!(veg["products"], 203);
    let (_, veg) = h
        .call(
            "GET",
            "/api/v1/products?category=vegetable&q=%E5%9C%9F%E8%B1%86",
            None,
            &[],
            Body::empty(),
        )
        .await;
    assert!(
        veg.as_array()
            .unwrap()
            .iter()
            .all(|p| p["category"] == "vegetable" && p["name"].as_str().unwrap().contains("土豆")),
        "{veg}"
    );
    assert!(!veg.as_array().unwrap().is_empty());

    let (s, compounds) = h
        .call("GET", "/api/v1/addresses", None, &[], Body::empty())
        .await;
    assert_eq!(s, StatusCode::OK);
    let c1 = compounds
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["compound_id"] == "S001-1")
        .unwrap();
    assert_eq!(
        (c1["name"].as_str(), c1["nearest_store_id"].as_str()),
        (Some("文三路花园"), Some("S001"))
    );
    assert!(c1["nearest_store_m"].as_u64().unwrap() < 1000);
}
