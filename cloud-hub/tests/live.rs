//! Live sessions over the hub's router (no socket): scheduling is validated
//! with stable codes, only the store's manager (or an admin) runs a session,
//! the state machine moves forward only, an order gets the live price only
//! while the session runs and only then counts toward it, the figures leave
//! cancelled orders out, and scheduling pulls rights for the featured
//! products. The exact boundary instants are unit tests of the pure rule
//! (`linli_shared::live`); here the same rule runs through the API.

#![allow(clippy::unwrap_used)] // test code

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use linli_hub::auth::Role;
use linli_hub::hub::{Hub, HubPaths, add_regional_manager, add_store_manager, add_user, open_conn};
use serde_json::{Value, json};
use tower::ServiceExt;

struct TestHub {
    _dir: tempfile::TempDir,
    hub: Hub,
    admin: String,
    regional: String,
    /// Manager of S001, and of S002.
    m1: String,
    m2: String,
}

async fn hub() -> TestHub {
    let dir = tempfile::tempdir().unwrap();
    let paths = HubPaths {
        data_dir: dir.path().to_owned(),
    };
    {
        let c = open_conn(&paths.db()).unwrap();
        add_user(&c, "admin", Role::Admin, "admin-password").unwrap();
        add_regional_manager(&c, "region", "杭州西区", "region-password").unwrap();
        add_store_manager(&c, "m1", "S001", "manager-one").unwrap();
        add_store_manager(&c, "m2", "S002", "manager-two").unwrap();
        assert!(add_user(&c, "m3", Role::Manager, "manager-three").is_err());
    }
    let hub = Hub::open(&paths).unwrap();
    let admin = hub.login("admin", "admin-password").await.unwrap();
    let regional = hub.login("region", "region-password").await.unwrap();
    let m1 = hub.login("m1", "manager-one").await.unwrap();
    let m2 = hub.login("m2", "manager-two").await.unwrap();
    let h = TestHub {
        _dir: dir,
        hub,
        admin,
        regional,
        m1,
        m2,
    };
    for (uri, file) in [
        ("/api/v1/catalog/import", "products.csv"),
        ("/api/v1/stores/import", "stores.csv"),
    ] {
        let body = std::fs::read(format!("{}/../data/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let req = Request::builder()
            .method("POST")
            .uri(uri)
            .header("authorization", format!("Bearer {}", h.admin))
            .header("content-type", "text/csv")
            .body(Body::from(body))
            .unwrap();
        let resp = linli_hub::http::router(h.hub.clone())
            .oneshot(req)
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    h
}

impl TestHub {
    async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req
                .header("content-type", "application/json")
                .header("idempotency-key", ulid::Ulid::new().to_string());
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
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

    /// Schedules the reference session of S001 as `token`.
    async fn schedule(&self, token: &str, grace: i64) -> (StatusCode, Value) {
        self.call(
            "POST",
            "/api/v1/live-sessions",
            Some(token),
            Some(session_body(grace)),
        )
        .await
    }

    async fn order(&self, phone: &str, session: Option<&str>, qty: i64) -> Value {
        let mut body = json!({"channel": "miniapp", "customer": {"phone": phone}, "fulfilment": "pickup",
            "store_id": "S001", "lines": [{"sku": "P00001", "qty": qty}, {"sku": "P00003", "qty": 500}]});
        if let Some(s) = session {
            body["channel"] = json!("live");
            body["live_session_id"] = json!(s);
        }
        let admin = self.admin.clone();
        let (s, v) = self
            .call("POST", "/api/v1/orders", Some(&admin), Some(body))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v
    }
}

/// P00001 (¥19.50 each) at ¥9.90, P00003 (¥8.10/kg) at 88折.
fn session_body(grace: i64) -> Value {
    let now = chrono::Utc::now();
    json!({"store_id": "S001", "title": "周二晚直播：面包和土豆",
        "starts_at": now + chrono::Duration::minutes(10), "ends_at": now + chrono::Duration::minutes(70),
        "grace_minutes": grace,
        "featured": [{"sku": "P00001", "live_price_fen": 990}, {"sku": "P00003", "discount_pct": 88}]})
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn scheduling_is_validated_and_only_the_stores_manager_or_an_admin_runs_it() {
    let h = hub().await;
    let with = |f: &dyn Fn(&mut Value)| {
        let mut b = session_body(5);
        f(&mut b);
        b
    };
    let now = chrono::Utc::now();
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "end before start",
            with(&|b| b["ends_at"] = json!(now)),
            "invalid_field",
        ),
        (
            "unknown SKU",
            with(&|b| b["featured"][0]["sku"] = json!("P99999")),
            "unknown_sku",
        ),
        (
            "no featured products",
            with(&|b| b["featured"] = json!([])),
            "invalid_field",
        ),
        (
            "live price at the list price",
            with(&|b| b["featured"][0]["live_price_fen"] = json!(1950)),
            "invalid_field",
        ),
        (
            "discount 0",
            with(&|b| b["featured"][1]["discount_pct"] = json!(0)),
            "invalid_field",
        ),
        (
            "discount 100",
            with(&|b| b["featured"][1]["discount_pct"] = json!(100)),
            "invalid_field",
        ),
        (
            "both a price and a discount",
            with(&|b| b["featured"][0]["discount_pct"] = json!(90)),
            "invalid_field",
        ),
        (
            "grace too long",
            with(&|b| b["grace_minutes"] = json!(241)),
            "invalid_field",
        ),
        (
            "unknown store",
            with(&|b| b["store_id"] = json!("S999")),
            "forbidden_or_unknown",
        ),
    ];
    let admin = h.admin.clone();
    for (what, body, want) in cases {
        let (s, v) = h
            .call("POST", "/api/v1/live-sessions", Some(&admin), Some(body))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {v}");
        if want != "forbidden_or_unknown" {
            assert_eq!(code(&v), want, "{what}: {v}");
        } else {
            assert_eq!(code(&v), "unknown_store", "{what}: {v}");
        }
        // Chinese first
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            !msg.is_ascii() || want == "forbidden_or_unknown",
            "{what}: {msg}"
        );
    }

    // S002's manager may not run S001's session; nor may a regional manager
    let (s, v) = h.schedule(&h.m2.clone(), 5).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "not_your_store"));
    let (s, _) = h.schedule(&h.regional.clone(), 5).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // a manager's token is no chain-staff token
    let (s, _) = h
        .call("GET", "/api/v1/exceptions", Some(&h.m1.clone()), None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let (s, v) = h.schedule(&h.m1.clone(), 5).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["status"], "scheduled");
    assert_eq!(v["featured"][0]["live_price_fen"], 990);
    assert_eq!(v["featured"][1]["live_price_fen"], 713); // 810 × 88 %, rounded
    let id = v["session_id"].as_str().unwrap().to_owned();
    // S002's manager can neither read nor start it; the regional manager reads it
    let uri = format!("/api/v1/live-sessions/{id}");
    let (s, _) = h.call("GET", &uri, Some(&h.m2.clone()), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = h
        .call("POST", &format!("{uri}/start"), Some(&h.m2.clone()), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = h.call("GET", &uri, Some(&h.regional.clone()), None).await;
    assert_eq!((s, v["orders"].clone()), (StatusCode::OK, json!(0)));
    let (s, v) = h
        .call(
            "GET",
            "/api/v1/live-sessions?store_id=S001",
            Some(&h.m1.clone()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v.as_array().unwrap().len(), 1);
    let (s, v) = h
        .call("GET", "/api/v1/live-sessions/LNOPE", Some(&admin), None)
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::NOT_FOUND, "live_session_not_found")
    );
}

#[tokio::test]
async fn start_pin_end_move_forward_only() {
    let h = hub().await;
    let m1 = h.m1.clone();
    let (_, v) = h.schedule(&m1, 5).await;
    let uri = format!(
        "/api/v1/live-sessions/{}",
        v["session_id"].as_str().unwrap()
    );
    let pin = |sku: &str| Some(json!({ "sku": sku }));
    let (s, v) = h
        .call("POST", &format!("{uri}/pin"), Some(&m1), pin("P00001"))
        .await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "live_session_state"));
    let (s, v) = h
        .call("POST", &format!("{uri}/start"), Some(&m1), None)
        .await;
    assert_eq!((s, v["status"].clone()), (StatusCode::OK, json!("started")));
    assert_eq!(v["live_prices_now"], true);
    let started = v["started_at"].clone();
    let (s, v) = h
        .call("POST", &format!("{uri}/start"), Some(&m1), None)
        .await;
    assert_eq!((s, v["started_at"].clone()), (StatusCode::OK, started));
    let (s, v) = h
        .call("POST", &format!("{uri}/pin"), Some(&m1), pin("P00003"))
        .await;
    assert_eq!(
        (s, v["pinned_sku"].clone()),
        (StatusCode::OK, json!("P00003"))
    );
    let (s, v) = h
        .call("POST", &format!("{uri}/pin"), Some(&m1), pin("P00002"))
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "not_featured")
    );
    let (s, v) = h.call("POST", &format!("{uri}/end"), Some(&m1), None).await;
    assert_eq!((s, v["status"].clone()), (StatusCode::OK, json!("ended")));
    let ended = v["ended_at"].clone();
    // within its grace, prices still apply
    assert_eq!(v["live_prices_now"], true);
    let (s, v) = h.call("POST", &format!("{uri}/end"), Some(&m1), None).await;
    assert_eq!((s, v["ended_at"].clone()), (StatusCode::OK, ended));
    let (s, v) = h
        .call("POST", &format!("{uri}/start"), Some(&m1), None)
        .await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "live_session_state"));
}

#[tokio::test]
async fn live_prices_only_while_it_runs_and_figures_leave_cancelled_orders_out() {
    let h = hub().await;
    common::lend(&h.hub, "S001", &[("P00001", 50), ("P00003", 50_000)]).await;
    let m1 = h.m1.clone();
    // no grace: after the end press, the normal price at once
    let (_, v) = h.schedule(&m1, 0).await;
    let id = v["session_id"].as_str().unwrap().to_owned();
    let uri = format!("/api/v1/live-sessions/{id}");

    // before the start press: the chain price, not counted
    let o = h.order("13800000001", Some(&id), 2).await;
    assert_eq!(o["lines"][0]["unit_price_fen"], 1950);
    assert_eq!(o["live_session_id"], json!(id));
    // the shop shows nothing running yet
    let (_, v) = h.call("GET", "/api/v1/stores/S001/live", None, None).await;
    assert_eq!(v["session"], Value::Null);

    h.call("POST", &format!("{uri}/start"), Some(&m1), None)
        .await;
    let (_, v) = h.call("GET", "/api/v1/stores/S001/live", None, None).await;
    assert_eq!(v["session"]["session_id"], json!(id));
    assert_eq!(v["session"]["orders"], 0, "customers see prices, not sales");
    // the quote prices the basket as the order will be
    let (s, q) = h
        .call(
            "POST",
            "/api/v1/quote",
            None,
            Some(
                json!({"fulfilment": "pickup", "store_id": "S001", "live_session_id": id,
                "lines": [{"sku": "P00001", "qty": 2}, {"sku": "P00003", "qty": 500}]}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    // 2 × 990 + 500 g × 713/kg (357) = 2337
    assert_eq!(q["subtotal_fen"], 2337);

    let a = h.order("13800000002", Some(&id), 2).await;
    assert_eq!(a["lines"][0]["unit_price_fen"], 990);
    assert_eq!(a["lines"][1]["unit_price_fen"], 713);
    assert_eq!(a["subtotal_fen"], 2337);
    let b = h.order("13800000003", Some(&id), 1).await;
    let c = h.order("13800000002", Some(&id), 3).await;
    // an unknown session, or none: the chain price, never counted
    let n = h.order("13800000004", Some("LNOSUCH"), 1).await;
    assert_eq!(n["lines"][0]["unit_price_fen"], 1950);
    let plain = h.order("13800000004", None, 1).await;
    assert_eq!(plain["lines"][0]["unit_price_fen"], 1950);
    // b is cancelled: out of the figures
    let (s, _) = h
        .call(
            "POST",
            &format!("/api/v1/orders/{}/cancel", b["order_id"].as_str().unwrap()),
            Some(&h.admin.clone()),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    let (s, v) = h.call("GET", &uri, Some(&m1), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["orders"], 2, "{v}");
    assert_eq!(v["buyers"], 1);
    assert_eq!(v["cancelled_orders"], 1);
    let gmv = a["subtotal_fen"].as_i64().unwrap() + c["subtotal_fen"].as_i64().unwrap();
    assert_eq!(v["gmv_fen"], gmv);
    assert_eq!(v["top_products"][0]["sku"], "P00001");
    assert_eq!(v["top_products"][0]["qty"], 5);
    let as_of = chrono::DateTime::parse_from_rfc3339(v["as_of"].as_str().unwrap()).unwrap();
    let placed = chrono::DateTime::parse_from_rfc3339(c["placed_at"].as_str().unwrap()).unwrap();
    assert_eq!(as_of, placed, "as_of is the newest counted order");

    // after the end press (no grace): the chain price, not counted
    h.call("POST", &format!("{uri}/end"), Some(&m1), None).await;
    let late = h.order("13800000005", Some(&id), 1).await;
    assert_eq!(late["lines"][0]["unit_price_fen"], 1950);
    let (_, v) = h.call("GET", &uri, Some(&m1), None).await;
    assert_eq!(v["orders"], 2);
    let (_, v) = h.call("GET", "/api/v1/stores/S001/live", None, None).await;
    assert_eq!(v["session"], Value::Null);
}

#[tokio::test]
async fn scheduling_pulls_rights_for_the_featured_products() {
    let h = hub().await;
    let wanted = |hub: Hub, sku: &'static str| async move {
        hub.store
            .read(move |c| {
                c.query_row(
                    "SELECT coalesce(max(wanted), 0) FROM hub_rights WHERE store_id = 'S001' AND sku = ?1",
                    [sku],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(linli_sync::db::StoreError::from)
            })
            .await
            .unwrap()
    };
    assert_eq!(wanted(h.hub.clone(), "P00001").await, 0);
    let (s, _) = h.schedule(&h.m1.clone(), 5).await;
    assert_eq!(s, StatusCode::CREATED);
    // each-products: 20 units; kg products: 20 kg, in grams
    assert_eq!(wanted(h.hub.clone(), "P00001").await, 20);
    assert_eq!(wanted(h.hub.clone(), "P00003").await, 20_000);
    assert_eq!(wanted(h.hub.clone(), "P00002").await, 0);
    // and the store reads it in the hub's stock document
    let day = chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .date_naive();
    let (s, _) = h
        .call(
            "GET",
            &format!("/api/v1/docs/hub/S001/stock/{day}"),
            Some(&h.admin.clone()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
}
