//! The store node's HTTP API, driven through the real router and a real
//! SQLite file (no socket: `tower::ServiceExt::oneshot`). Every refusal is
//! checked for its status and code *and* for leaving nothing written.

#![allow(clippy::unwrap_used)] // test helpers panic on setup failure by design

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use linli_edge::app::{App, Clock, Role};
use linli_edge::config::{Config, database_path};
use linli_edge::http::{AppState, router};
use linli_edge::metrics::Metrics;
use linli_edge::store::StoreError;
use serde_json::{Value, json};
use tower::ServiceExt;

struct TestNode {
    router: Router,
    app: App,
    clock: Arc<AtomicI64>,
    cashier: String,
    manager: String,
    _dir: tempfile::TempDir,
}

impl TestNode {
    async fn new() -> TestNode {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = linli_edge::store::open_writer_conn(&database_path(dir.path())).unwrap();
            linli_edge::app::staff::add_staff(&conn, "ana", Role::Cashier, "1234").unwrap();
            linli_edge::app::staff::add_staff(&conn, "mei", Role::Manager, "9999").unwrap();
        }
        let start = DateTime::parse_from_rfc3339("2026-11-25T02:00:00Z")
            .unwrap()
            .timestamp_millis();
        let clock = Arc::new(AtomicI64::new(start));
        let c = clock.clone();
        let clock_fn: Clock = Arc::new(move || {
            DateTime::<Utc>::from_timestamp_millis(c.load(Ordering::SeqCst)).unwrap()
        });
        let config = Config::default();
        let metrics = Metrics::new();
        let app = linli_edge::node::open_app(&config, dir.path().to_owned(), clock_fn, &metrics)
            .await
            .unwrap();
        let router = router(AppState {
            app: app.clone(),
            metrics,
            max_body_bytes: config.max_body_bytes,
            max_csv_bytes: config.max_csv_bytes,
            sync_status: Arc::new(linli_edge::uplink::SyncStatus::new(None)),
            hub_http: None,
        });
        let mut node = TestNode {
            router,
            app,
            clock,
            cashier: String::new(),
            manager: String::new(),
            _dir: dir,
        };
        node.cashier = node.login("ana", "1234").await;
        node.manager = node.login("mei", "9999").await;
        let csv =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../data/products.csv")).unwrap();
        let (s, body) = node
            .send(
                "POST",
                "/api/v1/catalog/import",
                Some(&node.manager.clone()),
                None,
                Body::from(csv),
                "text/csv",
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        node
    }

    /// Moves the clock on; staff log in again (sessions last 12 h).
    async fn advance_hours(&mut self, h: i64) {
        self.clock.fetch_add(h * 3_600_000, Ordering::SeqCst);
        self.cashier = self.login("ana", "1234").await;
        self.manager = self.login("mei", "9999").await;
    }

    async fn login(&self, name: &str, pin: &str) -> String {
        let (s, body) = self
            .json(
                "POST",
                "/api/v1/login",
                None,
                None,
                json!({"name": name, "pin": pin}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    async fn send(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        key: Option<&str>,
        body: Body,
        content_type: &str,
    ) -> (StatusCode, Value) {
        let (s, _, v) = self
            .send_full(method, uri, token, key, body, content_type)
            .await;
        (s, v)
    }

    async fn send_full(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        key: Option<&str>,
        body: Body,
        content_type: &str,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        req = req.header("content-type", content_type);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        let resp = self
            .router
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, headers, v)
    }

    async fn json(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        key: Option<&str>,
        body: Value,
    ) -> (StatusCode, Value) {
        self.send(
            method,
            uri,
            token,
            key,
            Body::from(body.to_string()),
            "application/json",
        )
        .await
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        let t = self.cashier.clone();
        self.send(
            "GET",
            uri,
            Some(&t),
            None,
            Body::empty(),
            "application/json",
        )
        .await
    }

    async fn json_get(&self, uri: &str, token: &str) -> (StatusCode, Value) {
        self.send(
            "GET",
            uri,
            Some(token),
            None,
            Body::empty(),
            "application/json",
        )
        .await
    }

    async fn sale(&self, key: &str, body: Value) -> (StatusCode, Value) {
        let t = self.cashier.clone();
        self.json("POST", "/api/v1/sales", Some(&t), Some(key), body)
            .await
    }

    async fn receive(&self, sku: &str, qty: i64) {
        let t = self.cashier.clone();
        let (s, b) = self
            .json(
                "POST",
                "/api/v1/stock/receipts",
                Some(&t),
                None,
                json!({"lines":[{"sku": sku, "qty": qty}]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }

    /// Rows in the tables a write could touch.
    async fn counts(&self) -> Vec<i64> {
        self.app
            .store()
            .read(|c| {
                [
                    "sales",
                    "sale_lines",
                    "sale_payments",
                    "movements",
                    "orders",
                    "idempotency",
                    "ticket_counters",
                    "refunds",
                    "group_buy_commitments",
                    "group_buy_refunds",
                    "doc_outbox",
                ]
                .iter()
                .map(|t| c.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0)))
                .collect::<Result<Vec<i64>, _>>()
                .map_err(StoreError::from)
            })
            .await
            .unwrap()
    }

    async fn on_hand(&self, sku: &str) -> (i64, i64) {
        let (s, b) = self.get(&format!("/api/v1/stock/{sku}")).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        (
            b["on_hand"].as_i64().unwrap(),
            b["reserved"].as_i64().unwrap(),
        )
    }
}

fn cash(amount: i64) -> Value {
    json!([{"method": "cash", "amount_fen": amount}])
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<none>")
}

#[tokio::test]
async fn sale_is_priced_ticketed_and_replayed() {
    let n = TestNode::new().await;
    n.receive("P00001", 10).await;
    // P00001 bun 1950 fen each; P00002 chicken 7460 fen/kg via a 1234 g scale label
    let label = linli_shared::ScaleLabel::encode(2, 1234).to_string();
    let body = json!({"lines":[{"barcode":"6942215277577","qty":2},{"barcode": label},{"sku":"P00003","qty":500}],
                      "payments":[{"method":"wechat_pay","amount_fen":5000},{"method":"cash","amount_fen":10000}],
                      "member_phone":"13800138000"});
    let (s, r) = n.sale("k-1", body.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    // 2*1950 + round(7460*1.234)=9206 + round(810*0.5)=405
    assert_eq!(r["total_fen"], 3900 + 9206 + 405);
    assert_eq!(r["change_fen"], 15000 - (3900 + 9206 + 405));
    assert_eq!(r["ticket_no"], "S001-20261125-0001");
    assert_eq!(r["lines"][1]["qty"], 1234);
    assert_eq!(r["member"], true);
    let before = n.counts().await;
    let (s, h, again) = n
        .send_full(
            "POST",
            "/api/v1/sales",
            Some(&n.cashier.clone()),
            Some("k-1"),
            Body::from(body.to_string()),
            "application/json",
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(h.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(again, r);
    assert_eq!(n.counts().await, before, "a replay writes nothing");
    // the same key for another request is refused
    let (s, e) = n
        .sale(
            "k-1",
            json!({"lines":[{"sku":"P00001"}],"payments":cash(1950)}),
        )
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
    );
    assert_eq!(n.counts().await, before);
    // stock went down by what was sold
    assert_eq!(n.on_hand("P00001").await.0, 8);
    let (s, got) = n
        .get(&format!("/api/v1/sales/{}", r["sale_id"].as_str().unwrap()))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["total_fen"], r["total_fen"]);
}

#[tokio::test]
async fn refused_sales_write_nothing() {
    let n = TestNode::new().await;
    let before = n.counts().await;
    let t = n.cashier.clone();
    let good_line = json!([{"sku":"P00001"}]);
    let cases: Vec<(Body, &str, StatusCode, &str)> = vec![
        (
            Body::from("{\"lines\": [}"),
            "application/json",
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            Body::from("{}"),
            "text/plain",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            Body::from(json!({"lines": good_line, "payments": cash(1950), "qyt": 1}).to_string()),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            Body::from(
                json!({"lines":[{"barcode":"6900000000007"}], "payments": cash(100)}).to_string(),
            ),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_barcode",
        ),
        (
            Body::from(
                json!({"lines":[{"barcode":"6942215277578"}], "payments": cash(100)}).to_string(),
            ),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "barcode_check_digit",
        ),
        (
            Body::from(
                json!({"lines":[{"barcode":"69422152775"}], "payments": cash(100)}).to_string(),
            ),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_barcode",
        ),
        (
            Body::from(
                json!({"lines":[{"sku":"P00001","qty":0}], "payments": cash(100)}).to_string(),
            ),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_quantity",
        ),
        (
            Body::from(
                json!({"lines":[{"sku":"P00001","qty":-2}], "payments": cash(100)}).to_string(),
            ),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_quantity",
        ),
        (
            Body::from(
                json!({"lines":[{"sku":"P00001","qty":100000}], "payments": cash(100)}).to_string(),
            ),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_quantity",
        ),
        (
            Body::from(json!({"lines":[{"sku":"P00003"}], "payments": cash(100)}).to_string()),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            Body::from(json!({"lines":[{"sku":"NOPE"}], "payments": cash(100)}).to_string()),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_sku",
        ),
        (
            Body::from(json!({"lines": good_line, "payments": cash(1949)}).to_string()),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "payment_insufficient",
        ),
        (
            Body::from(
                json!({"lines": good_line, "payments": [{"method":"card","amount_fen":2000}]})
                    .to_string(),
            ),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "payment_overpaid",
        ),
        // issue 8: i64::MAX fen of cash was committed with ¥92 quadrillion
        // change; cash is at most the total plus the change limit (¥1,000)
        (
            Body::from(json!({"lines": good_line, "payments": cash(i64::MAX)}).to_string()),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "change_too_large",
        ),
        (
            Body::from(json!({"lines": good_line, "payments": cash(1950 + 100_001)}).to_string()),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "change_too_large",
        ),
        (
            Body::from(json!({"lines": good_line, "payments": []}).to_string()),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payment",
        ),
        (
            Body::from(
                json!({"lines": good_line, "payments": [{"method":"bitcoin","amount_fen":2000}]})
                    .to_string(),
            ),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            Body::from(json!({"lines": [], "payments": cash(100)}).to_string()),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            Body::from(
                json!({"lines": good_line, "payments": cash(1950), "member_phone": "12345"})
                    .to_string(),
            ),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            Body::from(vec![b' '; 300 * 1024]),
            "application/json",
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
    ];
    for (i, (body, ct, status, want)) in cases.into_iter().enumerate() {
        let (s, e) = n
            .send(
                "POST",
                "/api/v1/sales",
                Some(&t),
                Some(&format!("bad-{i}")),
                body,
                ct,
            )
            .await;
        assert_eq!((s, code(&e)), (status, want), "case {i}: {e}");
        assert!(!e["error"]["message"].as_str().unwrap().is_empty());
    }
    // no key, no token
    let (s, e) = n
        .json(
            "POST",
            "/api/v1/sales",
            Some(&t),
            None,
            json!({"lines": good_line, "payments": cash(1950)}),
        )
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::BAD_REQUEST, "idempotency_key_required")
    );
    let (s, e) = n
        .json(
            "POST",
            "/api/v1/sales",
            None,
            Some("x"),
            json!({"lines": good_line, "payments": cash(1950)}),
        )
        .await;
    assert_eq!((s, code(&e)), (StatusCode::UNAUTHORIZED, "unauthenticated"));
    let (s, e) = n
        .json(
            "POST",
            "/api/v1/sales",
            Some("not-a-token"),
            Some("x"),
            json!({"lines": good_line, "payments": cash(1950)}),
        )
        .await;
    assert_eq!((s, code(&e)), (StatusCode::UNAUTHORIZED, "unauthenticated"));
    assert_eq!(n.counts().await, before, "refusals left nothing behind");
}

#[tokio::test]
async fn tickets_are_gapless_and_negative_stock_is_reported() {
    let mut n = TestNode::new().await;
    n.receive("P00001", 1).await;
    let mut tickets = Vec::new();
    for i in 0..5 {
        // a refused sale in between must not consume a number
        let (s, _) = n
            .sale(
                &format!("bad-{i}"),
                json!({"lines":[{"sku":"P00001"}],"payments":cash(1)}),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        let (s, r) = n
            .sale(
                &format!("ok-{i}"),
                json!({"lines":[{"sku":"P00001"}],"payments":cash(1950)}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{r}");
        tickets.push(r["ticket_no"].as_str().unwrap().to_owned());
        if i >= 1 {
            assert_eq!(r["negative_stock"][0]["sku"], "P00001", "{r}");
            assert_eq!(r["negative_stock"][0]["on_hand"], -i);
        }
    }
    let want: Vec<String> = (1..=5).map(|i| format!("S001-20261125-{i:04}")).collect();
    assert_eq!(tickets, want);
    let (_, neg) = n.get("/api/v1/stock?negative=true").await;
    assert_eq!(neg[0]["sku"], "P00001");
    assert_eq!(neg[0]["on_hand"], -4);
    // the business day follows store time (UTC+8): 20:00 UTC is the next day
    n.advance_hours(18).await;
    let (_, r) = n
        .sale(
            "next-day",
            json!({"lines":[{"sku":"P00001"}],"payments":cash(1950)}),
        )
        .await;
    assert_eq!(r["ticket_no"], "S001-20261126-0001");
    let (_, day) = n.get("/api/v1/sales?day=2026-11-25").await;
    assert_eq!(day.as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn refunds_restock_or_waste_and_never_exceed_the_sale() {
    let n = TestNode::new().await;
    n.receive("P00001", 10).await;
    n.receive("P00003", 5000).await;
    let (_, sale) = n
        .sale("s", json!({"lines":[{"sku":"P00001","qty":3},{"sku":"P00003","qty":1000}],"payments":cash(10000)}))
        .await;
    let id = sale["sale_id"].as_str().unwrap();
    let uri = format!("/api/v1/sales/{id}/refunds");
    let (m, c) = (n.manager.clone(), n.cashier.clone());
    let (s, e) = n.json("POST", &uri, Some(&c), Some("r0"), json!({})).await;
    assert_eq!((s, code(&e)), (StatusCode::FORBIDDEN, "forbidden"));
    // one bun back on the shelf, half the potatoes thrown away
    let (s, r) = n
        .json(
            "POST",
            &uri,
            Some(&m),
            Some("r1"),
            json!({"lines":[{"line_no":1,"qty":1},{"line_no":2,"qty":500,"disposition":"waste"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["amount_fen"], 1950 + 405);
    assert_eq!(n.on_hand("P00001").await.0, 8);
    assert_eq!(
        n.on_hand("P00003").await.0,
        4000,
        "wasted goods do not return to stock"
    );
    let (s, e) = n
        .json(
            "POST",
            &uri,
            Some(&m),
            Some("r2"),
            json!({"lines":[{"line_no":1,"qty":3}]}),
        )
        .await;
    assert_eq!((s, code(&e)), (StatusCode::CONFLICT, "refund_exceeds_sale"));
    // the rest of the sale; the total refunded equals the sale's total
    let (s, r) = n
        .json(
            "POST",
            &uri,
            Some(&m),
            Some("r3"),
            json!({"reason":"customer changed mind"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    let (_, got) = n.get(&format!("/api/v1/sales/{id}")).await;
    let refunded: i64 = got["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["refunded_fen"].as_i64().unwrap())
        .sum();
    assert_eq!(refunded, sale["total_fen"].as_i64().unwrap());
    let (s, e) = n.json("POST", &uri, Some(&m), Some("r4"), json!({})).await;
    assert_eq!((s, code(&e)), (StatusCode::CONFLICT, "refund_exceeds_sale"));
    let (s, e) = n
        .json(
            "POST",
            "/api/v1/sales/NOPE/refunds",
            Some(&m),
            Some("r5"),
            json!({}),
        )
        .await;
    assert_eq!((s, code(&e)), (StatusCode::NOT_FOUND, "sale_not_found"));
}

#[tokio::test]
async fn pickup_orders_reserve_and_hand_over_once() {
    let n = TestNode::new().await;
    n.receive("P00001", 5).await;
    let c = n.cashier.clone();
    let order = |qty: i64| json!({"channel":"community","fulfilment":"pickup","customer":{"phone":"13900001111"},"lines":[{"sku":"P00001","qty":qty}]});
    let before = n.counts().await;
    let (s, e) = n
        .json("POST", "/api/v1/orders", Some(&c), Some("o0"), order(6))
        .await;
    assert_eq!((s, code(&e)), (StatusCode::CONFLICT, "insufficient_stock"));
    assert_eq!(e["error"]["details"]["available"], 5);
    let (s, e) = n
        .json("POST", "/api/v1/orders", Some(&c), Some("o0b"), json!({"channel":"live","fulfilment":"pickup","customer":{"phone":"13900001111"},"lines":[{"sku":"P00001","qty":1}]}))
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNPROCESSABLE_ENTITY, "not_taken_at_store")
    );
    assert_eq!(n.counts().await, before);

    let (s, o) = n
        .json("POST", "/api/v1/orders", Some(&c), Some("o1"), order(3))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let pickup = o["pickup_code"].as_str().unwrap().to_owned();
    assert_eq!(pickup.len(), 6);
    assert_eq!(o["customer_phone"], "139****1111");
    assert_eq!(n.on_hand("P00001").await, (5, 3));
    // only 2 left to reserve; a counter sale still goes through
    let (s, _) = n
        .json("POST", "/api/v1/orders", Some(&c), Some("o2"), order(3))
        .await;
    assert_eq!(s, StatusCode::CONFLICT);

    let (s, e) = n
        .json(
            "POST",
            "/api/v1/pickups/redeem",
            Some(&c),
            None,
            json!({"code":"000000"}),
        )
        .await;
    let unknown = if pickup == "000000" {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    assert_eq!(s, unknown, "{e}");
    let (s, e) = n
        .json(
            "POST",
            "/api/v1/pickups/redeem",
            Some(&c),
            None,
            json!({"code":"12ab"}),
        )
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")
    );

    let (s, h) = n
        .json(
            "POST",
            "/api/v1/pickups/redeem",
            Some(&c),
            None,
            json!({"code": pickup}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{h}");
    assert_eq!(h["status"], "handed_over");
    assert_eq!(h["handed_over_by"], "ana");
    assert_eq!(n.on_hand("P00001").await, (2, 0));
    let m = n.manager.clone();
    let (s, e) = n
        .json(
            "POST",
            "/api/v1/pickups/redeem",
            Some(&m),
            None,
            json!({"code": pickup}),
        )
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::CONFLICT, "pickup_already_handed_over")
    );
    assert_eq!(e["error"]["details"]["handed_over_by"], "ana");
    assert_eq!(
        n.on_hand("P00001").await,
        (2, 0),
        "a second redeem moves nothing"
    );
    let (s, e) = n
        .json(
            "POST",
            &format!("/api/v1/orders/{}/cancel", o["order_id"].as_str().unwrap()),
            Some(&m),
            None,
            json!({}),
        )
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::CONFLICT, "order_not_cancellable")
    );
}

#[tokio::test]
async fn cancelled_and_expired_codes_are_refused_distinctly() {
    let mut n = TestNode::new().await;
    n.receive("P00001", 10).await;
    let (c, m) = (n.cashier.clone(), n.manager.clone());
    let order = json!({"channel":"community","fulfilment":"pickup","customer":{"phone":"13900001111"},"lines":[{"sku":"P00001","qty":2}]});
    let (_, a) = n
        .json("POST", "/api/v1/orders", Some(&c), Some("a"), order.clone())
        .await;
    let (_, b) = n
        .json("POST", "/api/v1/orders", Some(&c), Some("b"), order.clone())
        .await;
    assert_eq!(n.on_hand("P00001").await, (10, 4));
    let cancel = format!("/api/v1/orders/{}/cancel", a["order_id"].as_str().unwrap());
    let (s, e) = n.json("POST", &cancel, Some(&c), None, json!({})).await;
    assert_eq!((s, code(&e)), (StatusCode::FORBIDDEN, "forbidden"));
    let (s, x) = n.json("POST", &cancel, Some(&m), None, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{x}");
    assert_eq!(x["status"], "cancelled");
    assert_eq!(n.on_hand("P00001").await, (10, 2));
    let (s, e) = n
        .json(
            "POST",
            "/api/v1/pickups/redeem",
            Some(&c),
            None,
            json!({"code": a["pickup_code"]}),
        )
        .await;
    assert_eq!((s, code(&e)), (StatusCode::GONE, "pickup_order_cancelled"));
    // 72 h hold by default
    n.advance_hours(73).await;
    let c = n.cashier.clone();
    let (s, e) = n
        .json(
            "POST",
            "/api/v1/pickups/redeem",
            Some(&c),
            None,
            json!({"code": b["pickup_code"]}),
        )
        .await;
    assert_eq!((s, code(&e)), (StatusCode::GONE, "pickup_code_expired"));
    assert_eq!(n.app.release_expired_orders().await.unwrap(), 1);
    assert_eq!(
        n.on_hand("P00001").await,
        (10, 0),
        "expiry releases the reservation"
    );
    assert_eq!(
        n.app.release_expired_orders().await.unwrap(),
        0,
        "and only once"
    );
}

#[tokio::test]
async fn stock_receipts_waste_counts_and_history() {
    let n = TestNode::new().await;
    let (c, m) = (n.cashier.clone(), n.manager.clone());
    let (s, e) = n
        .json(
            "POST",
            "/api/v1/stock/receipts",
            Some(&c),
            None,
            json!({"lines":[{"sku":"P00003","qty":0}]}),
        )
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_quantity")
    );
    n.receive("P00003", 12_500).await; // grams of a kg product
    let (s, _) = n
        .json(
            "POST",
            "/api/v1/stock/waste",
            Some(&c),
            None,
            json!({"lines":[{"sku":"P00003","qty":500}],"reason":"expired"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, e) = n
        .json(
            "POST",
            "/api/v1/stock/waste",
            Some(&c),
            None,
            json!({"lines":[{"sku":"P00003","qty":5}],"reason":"stolen"}),
        )
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")
    );
    let (s, e) = n
        .json(
            "POST",
            "/api/v1/stock/counts",
            Some(&c),
            None,
            json!({"sku":"P00003","counted":11000}),
        )
        .await;
    assert_eq!((s, code(&e)), (StatusCode::FORBIDDEN, "forbidden"));
    let (s, r) = n
        .json(
            "POST",
            "/api/v1/stock/counts",
            Some(&m),
            Some("cnt"),
            json!({"sku":"P00003","counted":11000}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["levels"][0]["delta"], -1000);
    // a retried count with the same key does not count twice
    let (_, r2) = n
        .json(
            "POST",
            "/api/v1/stock/counts",
            Some(&m),
            Some("cnt"),
            json!({"sku":"P00003","counted":11000}),
        )
        .await;
    assert_eq!(r2, r);
    assert_eq!(n.on_hand("P00003").await.0, 11_000);
    let (s, h) = n.get("/api/v1/stock/P00003/movements").await;
    assert_eq!(s, StatusCode::OK);
    let kinds: Vec<&str> = h
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["count", "waste", "receipt"]);
    let sum: i64 = h
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["delta"].as_i64().unwrap())
        .sum();
    assert_eq!(sum, 11_000, "the level is the sum of the movements");
    let (s, e) = n.get("/api/v1/stock/NOPE").await;
    assert_eq!((s, code(&e)), (StatusCode::NOT_FOUND, "product_not_found"));
}

#[tokio::test]
async fn catalog_import_reports_rows_and_lookups_work() {
    let n = TestNode::new().await;
    let m = n.manager.clone();
    let csv = "sku,barcode,name,category,unit,price_fen,shelf_life_days\n\
               X1,6901234567892,Tea,drinks,each,500,365\n\
               X2,6901234567893,Bad,drinks,each,500,365\n\
               X3,6942215277577,Steals P00001 barcode,drinks,each,500,365\n\
               X4,6901234567892,Dup in file,drinks,each,500,365\n";
    let (s, r) = n
        .send(
            "POST",
            "/api/v1/catalog/import",
            Some(&m),
            None,
            Body::from(csv),
            "text/csv",
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["imported"], 1);
    let lines: Vec<i64> = r["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["line"].as_i64().unwrap())
        .collect();
    assert_eq!(lines, [3, 4, 5]);
    assert_eq!(r["total_products"], 1501);
    let c = n.cashier.clone();
    let (s, e) = n
        .send(
            "POST",
            "/api/v1/catalog/import",
            Some(&c),
            None,
            Body::from(csv),
            "text/csv",
        )
        .await;
    assert_eq!((s, code(&e)), (StatusCode::FORBIDDEN, "forbidden"));
    let (s, e) = n
        .send(
            "POST",
            "/api/v1/catalog/import",
            Some(&m),
            None,
            Body::from("a,b\n1,2\n"),
            "text/csv",
        )
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_csv")
    );
    let (s, p) = n.get("/api/v1/products/by-barcode/6901234567892").await;
    assert_eq!((s, p["sku"].as_str()), (StatusCode::OK, Some("X1")));
    let (s, p) = n.get("/api/v1/products/P00001").await;
    assert_eq!(
        (s, p["barcode"].as_str()),
        (StatusCode::OK, Some("6942215277577"))
    );
    let label = linli_shared::ScaleLabel::encode(3, 750).to_string();
    let (s, p) = n.get(&format!("/api/v1/products/by-barcode/{label}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (
            p["sku"].as_str(),
            p["label_grams"].as_i64(),
            p["label_price_fen"].as_i64()
        ),
        (Some("P00003"), Some(750), Some(608))
    );
    let (s, e) = n.get("/api/v1/products/by-barcode/6900000000007").await;
    assert_eq!((s, code(&e)), (StatusCode::NOT_FOUND, "product_not_found"));
    let (s, e) = n.get("/api/v1/products/by-barcode/6900000000008").await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNPROCESSABLE_ENTITY, "barcode_check_digit")
    );
}

#[tokio::test]
async fn products_are_found_by_name_pinyin_initials_and_sku() {
    let n = TestNode::new().await;
    let (s, p) = n.get("/api/v1/products/P00001").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(p["name"], "本地全麦面包（浙江）");
    assert_eq!(p["name_en"], "Local Whole Wheat Bun (Zhejiang)");
    assert_eq!(p["initials"], "bdqmmbzj");
    let skus = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|p| p["sku"].as_str().unwrap().to_owned())
            .collect()
    };
    // pinyin initials: every hit has them, those starting with them first
    let (s, hits) = n.get("/api/v1/products?q=xg").await;
    assert_eq!(s, StatusCode::OK);
    let hits = hits.as_array().unwrap().clone();
    assert!(!hits.is_empty() && hits.len() <= 20);
    assert!(
        hits.iter()
            .all(|p| p["initials"].as_str().unwrap().contains("xg")),
        "{hits:?}"
    );
    let starts: Vec<bool> = hits
        .iter()
        .map(|p| p["initials"].as_str().unwrap().starts_with("xg"))
        .collect();
    assert!(starts.windows(2).all(|w| w[0] >= w[1]), "{starts:?}");
    // the full initials of one product find it first
    let (_, hits) = n.get("/api/v1/products?q=jpqlxg").await;
    assert_eq!(skus(&hits)[0], "P00238", "{hits}");
    assert!(hits[0]["name"].as_str().unwrap().contains("西瓜"));
    // SKU, Chinese and English name fragments
    let (_, hits) = n.get("/api/v1/products?q=p00007").await;
    assert_eq!(skus(&hits), ["P00007"]);
    let (_, hits) = n
        .get("/api/v1/products?q=%E8%8A%9D%E5%A3%AB%E7%89%87")
        .await; // 芝士片
    assert!(skus(&hits).contains(&"P00007".to_owned()), "{hits}");
    let (_, hits) = n.get("/api/v1/products?q=cheese%20slices").await;
    assert!(skus(&hits).contains(&"P00007".to_owned()), "{hits}");
    let (s, hits) = n.get("/api/v1/products?q=%20").await;
    assert_eq!((s, skus(&hits).len()), (StatusCode::OK, 0));
}

#[tokio::test]
async fn logins_lock_out_after_wrong_pins() {
    let n = TestNode::new().await;
    for _ in 0..5 {
        let (s, e) = n
            .json(
                "POST",
                "/api/v1/login",
                None,
                None,
                json!({"name":"ana","pin":"0000"}),
            )
            .await;
        assert_eq!(
            (s, code(&e)),
            (StatusCode::UNAUTHORIZED, "invalid_credentials")
        );
    }
    let (s, e) = n
        .json(
            "POST",
            "/api/v1/login",
            None,
            None,
            json!({"name":"ana","pin":"1234"}),
        )
        .await;
    assert_eq!((s, code(&e)), (StatusCode::TOO_MANY_REQUESTS, "locked_out"));
    n.clock.fetch_add(3_600_000, Ordering::SeqCst);
    let t = n.login("ana", "1234").await;
    // sessions expire (12 h by default)
    n.clock.fetch_add(13 * 3_600_000, Ordering::SeqCst);
    let (s, e) = n
        .send(
            "GET",
            "/api/v1/products/P00001",
            Some(&t),
            None,
            Body::empty(),
            "application/json",
        )
        .await;
    assert_eq!((s, code(&e)), (StatusCode::UNAUTHORIZED, "unauthenticated"));
}

#[tokio::test]
async fn openapi_documents_exactly_what_is_served() {
    let n = TestNode::new().await;
    let (s, doc) = n
        .send(
            "GET",
            "/api/v1/openapi.json",
            None,
            None,
            Body::empty(),
            "application/json",
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = 0;
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            documented += 1;
            let uri = path
                .replace("{sku}", "P00001")
                .replace("{code}", "6942215277577")
                .replace("{sale_id}", "X")
                .replace("{order_id}", "X");
            let t = n.manager.clone();
            let (s, e) = n
                .send(
                    &method.to_uppercase(),
                    &uri,
                    Some(&t),
                    None,
                    Body::from("{}"),
                    "application/json",
                )
                .await;
            assert_ne!(
                code(&e),
                "not_found",
                "{method} {path} is documented but not served"
            );
            assert_ne!(s, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        }
    }
    assert_eq!(documented, 46, "every route of http::router is documented");
    // the documented request schema is the one the server enforces
    let sale = &doc["components"]["schemas"]["SaleRequest"];
    assert!(
        sale["required"]
            .as_array()
            .unwrap()
            .contains(&json!("payments"))
    );
    let (s, e) = n
        .send(
            "GET",
            "/api/v1/nowhere",
            None,
            None,
            Body::empty(),
            "application/json",
        )
        .await;
    assert_eq!((s, code(&e)), (StatusCode::NOT_FOUND, "not_found"));
}

#[tokio::test]
async fn health_and_metrics() {
    let n = TestNode::new().await;
    let (s, h) = n
        .send(
            "GET",
            "/health",
            None,
            None,
            Body::empty(),
            "application/json",
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["store_id"], "S001");
    assert_eq!(h["database"]["ok"], true);
    assert_eq!(h["sync"]["state"], "no_hub");
    n.sale(
        "m1",
        json!({"lines":[{"sku":"P00001"}],"payments":cash(1950)}),
    )
    .await;
    let (_, text) = n
        .send(
            "GET",
            "/metrics",
            None,
            None,
            Body::empty(),
            "application/json",
        )
        .await;
    let text = text.as_str().unwrap();
    assert!(text.contains("linli_edge_sales_total 1"), "{text}");
    assert!(text.contains("linli_edge_db_commit_duration_seconds_count"));
    assert!(text.contains("route=\"/api/v1/sales\""));
}

#[tokio::test]
async fn online_codes_are_refused_clearly_when_the_store_cannot_check_them() {
    let n = TestNode::new().await;
    let c = n.cashier.clone();
    let cases = [
        // no hub key on this node: a QR cannot be checked, and it says so
        (
            "LP1.e30.AAAA",
            StatusCode::SERVICE_UNAVAILABLE,
            "pickup_key_missing",
        ),
        // the hub's eight-digit code of an order that has not synced
        ("12345678", StatusCode::NOT_FOUND, "pickup_code_unknown"),
        (
            "not a code",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
    ];
    for (code_text, status, want) in cases {
        for path in ["/api/v1/pickups/lookup", "/api/v1/pickups/redeem"] {
            let (s, e) = n
                .json("POST", path, Some(&c), None, json!({ "code": code_text }))
                .await;
            assert_eq!((s, code(&e)), (status, want), "{path} {code_text}: {e}");
        }
    }
    let (s, e) = n
        .json(
            "POST",
            "/api/v1/online-orders/01NOPE/accept",
            Some(&c),
            None,
            json!({}),
        )
        .await;
    assert_eq!((s, code(&e)), (StatusCode::NOT_FOUND, "order_not_found"));
    // a store without riders or courier cannot dispatch an unknown order
    let (s, e) = n
        .json(
            "POST",
            "/api/v1/online-orders/01NOPE/dispatch",
            Some(&c),
            None,
            json!({}),
        )
        .await;
    assert_eq!((s, code(&e)), (StatusCode::NOT_FOUND, "order_not_found"));
    // riders: managers only, valid phones only
    let (s, e) = n
        .json(
            "POST",
            "/api/v1/riders",
            Some(&c),
            None,
            json!({"name": "li", "phone": "13900000009"}),
        )
        .await;
    assert_eq!((s, code(&e)), (StatusCode::FORBIDDEN, "forbidden"));
    let m = n.manager.clone();
    let (s, e) = n
        .json(
            "POST",
            "/api/v1/riders",
            Some(&m),
            None,
            json!({"name": "li", "phone": "123"}),
        )
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")
    );
}

/// Method, path, token, body, content type, expected status and code.
type ErrorCase<'a> = (
    &'a str,
    &'a str,
    &'a str,
    Body,
    &'a str,
    StatusCode,
    &'a str,
);

/// Issue 8 item 14: every error is the JSON error shape with a stable code,
/// including what axum itself refuses before a handler runs (a bad query
/// string, bad UTF-8 in a path, a method the route does not take, a body over
/// the limit) and what no route matches.
#[tokio::test]
async fn every_error_is_the_json_error_shape() {
    let n = TestNode::new().await;
    let (c, m) = (n.cashier.clone(), n.manager.clone());
    let big_csv = format!(
        "sku,barcode,name,category,unit,price_fen,shelf_life_days\n{}",
        "x".repeat(9 * 1024 * 1024)
    );
    let big_json = format!("{{\"lines\":[{}]}}", " ".repeat(300 * 1024));
    let cases: Vec<ErrorCase<'_>> = vec![
        (
            "GET",
            "/api/v1/stock/P00001/movements?limit=lots",
            &c,
            Body::empty(),
            "application/json",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "GET",
            "/api/v1/orders?status=flying",
            &c,
            Body::empty(),
            "application/json",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "GET",
            "/api/v1/online-orders?open=perhaps",
            &c,
            Body::empty(),
            "application/json",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "GET",
            "/api/v1/stock?negative=3",
            &c,
            Body::empty(),
            "application/json",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "GET",
            "/api/v1/sales/%FF%FE",
            &c,
            Body::empty(),
            "application/json",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "GET",
            "/api/v1/products/%C3%28",
            &c,
            Body::empty(),
            "application/json",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "DELETE",
            "/api/v1/sales",
            &c,
            Body::empty(),
            "application/json",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "PUT",
            "/api/v1/sales/01X",
            &c,
            Body::empty(),
            "application/json",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "GET",
            "/api/v1/login",
            &c,
            Body::empty(),
            "application/json",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "POST",
            "/health",
            &c,
            Body::empty(),
            "application/json",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "GET",
            "/api/v1/nope",
            &c,
            Body::empty(),
            "application/json",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "GET",
            "/nope",
            &c,
            Body::empty(),
            "application/json",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "POST",
            "/api/v1/catalog/import",
            &m,
            Body::from(big_csv),
            "text/csv",
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (
            "POST",
            "/api/v1/stock/receipts",
            &c,
            Body::from(big_json.clone()),
            "application/json",
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (
            "POST",
            "/api/v1/orders",
            &c,
            Body::from(big_json),
            "application/json",
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (
            "POST",
            "/api/v1/stock/receipts",
            &c,
            Body::from("{"),
            "application/json",
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
    ];
    for (method, uri, token, body, ct, status, want) in cases {
        let (s, headers, v) = n
            .send_full(method, uri, Some(token), Some("k-1"), body, ct)
            .await;
        let what = format!("{method} {uri}");
        assert_eq!((s, code(&v)), (status, want), "{what}: {v}");
        assert!(
            headers["content-type"]
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
            assert!(headers.contains_key("allow"), "{what}: no Allow header");
        }
    }
}

impl TestNode {
    /// A login as a client at `addr` would send it (the server's connect info).
    async fn login_from(&self, addr: &str, name: &str, pin: &str) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method("POST")
            .uri("/api/v1/login")
            .header("content-type", "application/json")
            .body(Body::from(json!({"name": name, "pin": pin}).to_string()))
            .unwrap();
        let sock: std::net::SocketAddr = addr.parse().unwrap();
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(sock));
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_100_guesses_gets_at_most_5_pin_checks() {
    let n = TestNode::new().await;
    let before = n.app.pin_checks();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..100 {
        let router = n.router.clone();
        set.spawn(async move {
            let req = Request::builder()
                .method("POST")
                .uri("/api/v1/login")
                .header("content-type", "application/json")
                .body(Body::from(
                    json!({"name": "ana", "pin": format!("{:04}", 5000 + i)}).to_string(),
                ))
                .unwrap();
            router.oneshot(req).await.unwrap().status()
        });
    }
    let mut statuses = Vec::new();
    while let Some(s) = set.join_next().await {
        statuses.push(s.unwrap());
    }
    let checked = n.app.pin_checks() - before;
    assert!(checked <= 5, "{checked} PINs were checked in the burst");
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::UNAUTHORIZED)
            .count() as u64,
        checked
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED || *s == StatusCode::TOO_MANY_REQUESTS)
    );
    // the right PIN is refused while the name is locked, without a check
    let (s, e) = n
        .json(
            "POST",
            "/api/v1/login",
            None,
            None,
            json!({"name":"ana","pin":"1234"}),
        )
        .await;
    assert_eq!((s, code(&e)), (StatusCode::TOO_MANY_REQUESTS, "locked_out"));
    assert_eq!(n.app.pin_checks() - before, checked);
    // others are not locked out with her
    n.login("mei", "9999").await;
}

#[tokio::test]
async fn an_unknown_name_costs_a_pin_check_like_a_known_one() {
    let n = TestNode::new().await;
    let before = n.app.pin_checks();
    let (s, e) = n
        .json(
            "POST",
            "/api/v1/login",
            None,
            None,
            json!({"name":"nobody","pin":"1234"}),
        )
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );
    assert_eq!(
        n.app.pin_checks() - before,
        1,
        "checked against a dummy hash"
    );
}

#[tokio::test]
async fn logins_are_limited_per_client_address() {
    let n = TestNode::new().await;
    // 10 at once (default), whichever names they try
    for i in 0..10 {
        let (s, _) = n
            .login_from("10.0.0.7:5000", &format!("guess{i}"), "1234")
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let (s, e) = n.login_from("10.0.0.7:5001", "ana", "1234").await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    assert!(e["error"]["details"]["retry_after_secs"].as_i64().unwrap() >= 1);
    // another till is not affected; the address regains attempts with time
    let (s, _) = n.login_from("10.0.0.8:5000", "ana", "1234").await;
    assert_eq!(s, StatusCode::OK);
    n.clock.fetch_add(60_000, Ordering::SeqCst);
    let (s, _) = n.login_from("10.0.0.7:5002", "ana", "1234").await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn logout_ends_the_session_at_once() {
    let n = TestNode::new().await;
    let t = n.login("ana", "1234").await;
    let other = n.login("ana", "1234").await;
    let (s, _) = n
        .send(
            "POST",
            "/api/v1/logout",
            Some(&t),
            None,
            Body::empty(),
            "application/json",
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, e) = n
        .send(
            "GET",
            "/api/v1/products/P00001",
            Some(&t),
            None,
            Body::empty(),
            "application/json",
        )
        .await;
    assert_eq!((s, code(&e)), (StatusCode::UNAUTHORIZED, "unauthenticated"));
    // logging out again is refused like any dead token; her other till stays in
    let (s, _) = n
        .send(
            "POST",
            "/api/v1/logout",
            Some(&t),
            None,
            Body::empty(),
            "application/json",
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = n
        .send(
            "GET",
            "/api/v1/products/P00001",
            Some(&other),
            None,
            Body::empty(),
            "application/json",
        )
        .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn idempotency_keys_are_scoped_by_staff_member() {
    let n = TestNode::new().await;
    n.receive("P00001", 10).await;
    let body = json!({"lines":[{"sku":"P00001"}],"payments":cash(1950)});
    let (s, a) = n.sale("shared-key", body.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    // the manager's request with the same key is her own, not a replay of ana's
    let (s, h, b) = n
        .send_full(
            "POST",
            "/api/v1/sales",
            Some(&n.manager.clone()),
            Some("shared-key"),
            Body::from(body.to_string()),
            "application/json",
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert!(h.get("idempotent-replayed").is_none());
    assert_ne!(a["sale_id"], b["sale_id"]);
    assert_eq!(b["cashier"], "mei");
    // and ana's retry still gets her own sale back
    let (s, again) = n.sale("shared-key", body).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(again["sale_id"], a["sale_id"]);
    assert_eq!(n.on_hand("P00001").await.0, 8);
}

#[tokio::test]
async fn the_end_of_day_report_splits_sales_by_method_and_counts_the_drawer() {
    let n = TestNode::new().await;
    n.receive("P00001", 10).await;
    // 3 buns cash (¥100 tendered, ¥41.50 change), 2 buns cash ¥10 + WeChat, 1 bun by card
    let (s, a) = n
        .sale(
            "d1",
            json!({"lines":[{"sku":"P00001","qty":3}],"payments":cash(10000)}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    let (s, b) = n
        .sale(
            "d2",
            json!({"lines":[{"sku":"P00001","qty":2}],"payments":[
            {"method":"cash","amount_fen":1000},{"method":"wechat_pay","amount_fen":2900}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, c) = n
        .sale("d3", json!({"lines":[{"sku":"P00001","qty":1}],"payments":[{"method":"card","amount_fen":1950}]}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let m = n.manager.clone();
    // the split sale refunded whole: ¥10 back in cash, ¥29 by WeChat;
    // one bun of the cash sale back in cash
    let refund = |id: &Value| format!("/api/v1/sales/{}/refunds", id["sale_id"].as_str().unwrap());
    let (s, r) = n
        .json("POST", &refund(&b), Some(&m), Some("rb"), json!({}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    let (s, r) = n
        .json(
            "POST",
            &refund(&a),
            Some(&m),
            Some("ra"),
            json!({"lines":[{"line_no":1,"qty":1}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");

    let (s, rep) = n.json_get("/api/v1/reports/day?day=2026-11-25", &m).await;
    assert_eq!(s, StatusCode::OK, "{rep}");
    assert_eq!(rep["store_id"], "S001");
    assert_eq!(rep["business_day"], "2026-11-25");
    assert_eq!(
        (rep["sales_count"].as_i64(), rep["sales_fen"].as_i64()),
        (Some(3), Some(11700))
    );
    assert_eq!(
        (rep["refunds_count"].as_i64(), rep["refunds_fen"].as_i64()),
        (Some(2), Some(5850))
    );
    assert_eq!(rep["net_fen"], 11700 - 5850);
    let by: Vec<(String, i64, i64, i64)> = rep["payments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["method"].as_str().unwrap().to_owned(),
                p["sales_fen"].as_i64().unwrap(),
                p["refunds_fen"].as_i64().unwrap(),
                p["net_fen"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        by,
        vec![
            ("cash".into(), 5850 + 1000, 1000 + 1950, 3900),
            ("wechat_pay".into(), 2900, 2900, 0),
            ("alipay".into(), 0, 0, 0),
            ("card".into(), 1950, 0, 1950),
        ]
    );
    assert_eq!(rep["cash_expected_fen"], 3900);

    // another day is empty; a cashier may not see it; a bad day is named
    let (s, other) = n.json_get("/api/v1/reports/day?day=2026-11-24", &m).await;
    assert_eq!(
        (s, other["sales_count"].as_i64()),
        (StatusCode::OK, Some(0))
    );
    assert_eq!(other["cash_expected_fen"], 0);
    let (s, e) = n.get("/api/v1/reports/day").await;
    assert_eq!((s, code(&e)), (StatusCode::FORBIDDEN, "forbidden"));
    let (s, e) = n.json_get("/api/v1/reports/day?day=25.11.2026", &m).await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")
    );
    // today by default (the clock is 2026-11-25 10:00 in the store)
    let (s, today) = n.json_get("/api/v1/reports/day", &m).await;
    assert_eq!(
        (s, today["business_day"].as_str()),
        (StatusCode::OK, Some("2026-11-25"))
    );
}

#[tokio::test]
async fn a_lost_code_is_found_by_the_phones_last_four_digits_and_handed_over_once() {
    let n = TestNode::new().await;
    n.receive("P00001", 5).await;
    let c = n.cashier.clone();
    let order = |phone: &str| json!({"channel":"community","fulfilment":"pickup","customer":{"phone":phone},"lines":[{"sku":"P00001","qty":1}]});
    let (s, o) = n
        .json(
            "POST",
            "/api/v1/orders",
            Some(&c),
            Some("p1"),
            order("13900001111"),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let (s, _) = n
        .json(
            "POST",
            "/api/v1/orders",
            Some(&c),
            Some("p2"),
            order("13900002222"),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let by_phone = |last4: &str| json!({"last4": last4});

    let (s, found) = n
        .json(
            "POST",
            "/api/v1/pickups/by-phone",
            Some(&c),
            None,
            by_phone("1111"),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{found}");
    let found = found.as_array().unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["order_id"], o["order_id"]);
    assert_eq!(found[0]["customer_phone"], "139****1111");
    let (s, none) = n
        .json(
            "POST",
            "/api/v1/pickups/by-phone",
            Some(&c),
            None,
            by_phone("3333"),
        )
        .await;
    assert_eq!((s, none), (StatusCode::OK, json!([])));
    // the whole phone finds the order by its member hash (the store keeps
    // no phone); another phone with the same last four digits does not
    let (s, whole) = n
        .json(
            "POST",
            "/api/v1/pickups/by-phone",
            Some(&c),
            None,
            json!({"phone": "13900001111"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{whole}");
    assert_eq!(whole.as_array().map(Vec::len), Some(1), "{whole}");
    assert_eq!(whole[0]["order_id"], o["order_id"]);
    let (s, other) = n
        .json(
            "POST",
            "/api/v1/pickups/by-phone",
            Some(&c),
            None,
            json!({"phone": "13800001111"}),
        )
        .await;
    assert_eq!((s, other), (StatusCode::OK, json!([])));
    for bad in ["111", "11a1", "11111"] {
        let (s, e) = n
            .json(
                "POST",
                "/api/v1/pickups/by-phone",
                Some(&c),
                None,
                by_phone(bad),
            )
            .await;
        assert_eq!(
            (s, code(&e)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
            "{bad}"
        );
    }

    // handed over by the code found: once, then gone from the phone list
    let code_found = found[0]["pickup_code"].as_str().unwrap();
    let (s, h) = n
        .json(
            "POST",
            "/api/v1/pickups/redeem",
            Some(&c),
            None,
            json!({"code": code_found}),
        )
        .await;
    assert_eq!(
        (s, h["status"].as_str()),
        (StatusCode::OK, Some("handed_over"))
    );
    let (s, again) = n
        .json(
            "POST",
            "/api/v1/pickups/redeem",
            Some(&c),
            None,
            json!({"code": code_found}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{again}");
    let (_, after) = n
        .json(
            "POST",
            "/api/v1/pickups/by-phone",
            Some(&c),
            None,
            by_phone("1111"),
        )
        .await;
    assert_eq!(after, json!([]));
    assert_eq!(n.on_hand("P00001").await.0, 4);
}

#[tokio::test]
async fn stock_levels_flag_negative_and_low_stock() {
    let n = TestNode::new().await;
    n.receive("P00001", 20).await;
    n.receive("P00007", 3).await;
    n.receive("P00003", 1500).await; // 1.5 kg of potatoes
    let (s, _) = n
        .sale(
            "neg",
            json!({"lines":[{"sku":"P00007","qty":5}],"payments":cash(100000)}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, levels) = n.get("/api/v1/stock").await;
    assert_eq!(s, StatusCode::OK, "{levels}");
    let flag = |sku: &str| {
        let l = levels
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["sku"] == sku)
            .unwrap();
        (
            l["on_hand"].as_i64().unwrap(),
            l["negative"].as_bool().unwrap(),
            l["low"].as_bool().unwrap(),
        )
    };
    assert_eq!(flag("P00001"), (20, false, false));
    assert_eq!(flag("P00007"), (-2, true, false));
    assert_eq!(flag("P00003"), (1500, false, true));
}

/// A counter commitment cancelled at the counter, offline (no hub): the
/// customer is given the money back once (the day report's group-buy
/// refund line), its units go back to the allotment and the customer's
/// limit, a second cancel answers the same and writes nothing, and the
/// hub's rule refuses it once the campaign is reached or past its deadline.
#[tokio::test]
async fn a_counter_commitment_is_cancelled_and_refunded_at_the_counter_once() {
    let mut n = TestNode::new().await;
    let db = linli_edge::store::open_writer_conn(&database_path(n._dir.path())).unwrap();
    let terms = json!({
        "group_buy_id": "G1", "sku": "P00009", "name": "阳光玫瑰", "price_fen": 3990,
        "deadline": "2026-11-25T10:00:00.000Z", "pickup_date": "2026-11-27",
        "per_customer_limit": 2, "allotment": 3,
    });
    db.execute(
        "INSERT INTO group_buys(group_buy_id, terms, deadline, received_at) VALUES ('G1', ?1, '2026-11-25T10:00:00.000Z', '2026-11-25T01:00:00.000Z')",
        [terms.to_string()],
    )
    .unwrap();
    let cashier = n.cashier.clone();
    let commit = |key: &'static str, phone: &'static str, qty: i64| {
        let t = cashier.clone();
        let n = &n;
        async move {
            n.json(
                "POST",
                "/api/v1/group-buys/G1/commitments",
                Some(&t),
                Some(key),
                json!({"customer": {"phone": phone}, "qty": qty}),
            )
            .await
        }
    };
    let (s, a) = commit("k-a", "13800138001", 2).await;
    assert_eq!(
        (s, a["allotment_left"].as_i64()),
        (StatusCode::CREATED, Some(1)),
        "{a}"
    );
    let (s, e) = commit("k-b", "13800138002", 2).await;
    assert_eq!((s, code(&e)), (StatusCode::CONFLICT, "allotment_exhausted"));
    let cid = a["commitment_id"].as_str().unwrap().to_owned();

    let cancel = format!("/api/v1/group-buys/G1/commitments/{cid}/cancel");
    let (s, v) = n
        .json("POST", &cancel, Some(&cashier), None, json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (
            v["status"].as_str(),
            v["phone"].as_str(),
            v["refund"]["refund_id"].as_str(),
            v["refund"]["amount_fen"].as_i64(),
            v["allotment_left"].as_i64()
        ),
        (
            Some("cancelled"),
            Some("138****8001"),
            Some(format!("GBC-{cid}").as_str()),
            Some(7980),
            Some(3)
        ),
        "{v}"
    );
    let before = n.counts().await;
    let (s, again) = n
        .json("POST", &cancel, Some(&cashier), None, json!({}))
        .await;
    assert_eq!((s, &again), (StatusCode::OK, &v), "the same cancel");
    assert_eq!(n.counts().await, before, "a second cancel writes nothing");
    let cancelled = |db: &rusqlite::Connection| -> (i64, i64) {
        db.query_row(
            "SELECT (SELECT count(*) FROM group_buy_refunds),
                    (SELECT count(*) FROM group_buy_commitments WHERE cancelled_at IS NOT NULL)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    assert_eq!(cancelled(&db), (1, 1));

    // the allotment and the customer's limit are free again
    let (s, b) = commit("k-b2", "13800138002", 2).await;
    assert_eq!(
        (s, b["allotment_left"].as_i64()),
        (StatusCode::CREATED, Some(1)),
        "{b}"
    );
    // paid by WeChat at the counter
    let (s, a2) = n
        .json(
            "POST",
            "/api/v1/group-buys/G1/commitments",
            Some(&cashier),
            Some("k-a2"),
            json!({"customer": {"phone": "13800138001"}, "qty": 1, "payment_method": "wechat_pay"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{a2}");
    assert_eq!(a2["payment_method"], "wechat_pay");
    assert_eq!(b["payment_method"], "cash", "cash unless said");
    let (s, list) = n
        .json_get("/api/v1/group-buys/G1/commitments", &cashier)
        .await;
    assert_eq!(s, StatusCode::OK);
    let statuses: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["active", "active", "cancelled"], "{list}");

    // refusals, each writing nothing
    let before = n.counts().await;
    let (s, e) = n
        .json(
            "POST",
            "/api/v1/group-buys/G1/commitments/NOSUCH/cancel",
            Some(&cashier),
            None,
            json!({}),
        )
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::NOT_FOUND, "commitment_not_found")
    );
    let (s, e) = n
        .json(
            "POST",
            &format!("/api/v1/group-buys/G2/commitments/{cid}/cancel"),
            Some(&cashier),
            None,
            json!({}),
        )
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::NOT_FOUND, "group_buy_not_found")
    );
    // the hub says reached (its participants list came): it stays reached
    db.execute(
        "INSERT INTO group_buy_participants(commitment_id, group_buy_id, sku, price_fen, phone, qty) VALUES ('S001/x', 'G1', 'P00009', 3990, '', 1)",
        [],
    )
    .unwrap();
    let b_cancel = format!(
        "/api/v1/group-buys/G1/commitments/{}/cancel",
        b["commitment_id"].as_str().unwrap()
    );
    let (s, e) = n
        .json("POST", &b_cancel, Some(&cashier), None, json!({}))
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::CONFLICT, "group_buy_reached"),
        "{e}"
    );
    assert!(
        e["error"]["message"].as_str().unwrap().contains("已成团"),
        "{e}"
    );
    db.execute("DELETE FROM group_buy_participants", [])
        .unwrap();
    n.advance_hours(9).await;
    let cashier = n.cashier.clone();
    let (s, e) = n
        .json("POST", &b_cancel, Some(&cashier), None, json!({}))
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::CONFLICT, "group_buy_closed"),
        "{e}"
    );
    assert_eq!(n.counts().await, before, "refusals wrote nothing");
    assert_eq!(cancelled(&db), (1, 1));

    // the till: three commitments taken (two in cash, one by WeChat), the
    // first given back in cash; the drawer holds the second's cash
    let manager = n.manager.clone();
    let (s, r) = n
        .json_get("/api/v1/reports/day?day=2026-11-25", &manager)
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(
        (
            r["group_buy_commitments_count"].as_i64(),
            r["group_buy_commitments_fen"].as_i64(),
            r["group_buy_refunds_count"].as_i64(),
            r["group_buy_refunds_fen"].as_i64(),
            r["cash_expected_fen"].as_i64()
        ),
        (Some(3), Some(5 * 3990), Some(1), Some(7980), Some(7980)),
        "{r}"
    );
    let by_method: Vec<(&str, i64, i64)> = r["payments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["method"].as_str().unwrap(),
                p["group_buys_fen"].as_i64().unwrap(),
                p["net_fen"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        by_method,
        vec![
            ("cash", 2 * 7980 - 7980, 0),
            ("wechat_pay", 3990, 0),
            ("alipay", 0, 0),
            ("card", 0, 0),
        ],
        "commitments by method, apart from the sales' net"
    );
}

/// A failed campaign's counter commitments are refunded at the counter
/// (issue 11): refused while the campaign is open, reached or merely past
/// its deadline (`group_buy_not_failed`); once the hub's word that it
/// failed has come, each commitment is refunded once in full (`GBF-`), a
/// second press answers the same refund and writes nothing, one cancelled
/// while open is not refunded again, and the list and the day report show
/// it.
#[tokio::test]
async fn a_failed_group_buys_counter_commitments_are_refunded_at_the_counter_once() {
    let mut n = TestNode::new().await;
    let db = linli_edge::store::open_writer_conn(&database_path(n._dir.path())).unwrap();
    let terms = json!({
        "group_buy_id": "G1", "sku": "P00009", "name": "阳光玫瑰", "price_fen": 3990,
        "deadline": "2026-11-25T10:00:00.000Z", "pickup_date": "2026-11-27",
        "per_customer_limit": 2, "allotment": 5,
    });
    db.execute(
        "INSERT INTO group_buys(group_buy_id, terms, deadline, received_at) VALUES ('G1', ?1, '2026-11-25T10:00:00.000Z', '2026-11-25T01:00:00.000Z')",
        [terms.to_string()],
    )
    .unwrap();
    let cashier = n.cashier.clone();
    let mut ids = Vec::new();
    for (key, phone, qty) in [("k-a", "13800138001", 2), ("k-b", "13800138002", 1)] {
        let (s, v) = n
            .json(
                "POST",
                "/api/v1/group-buys/G1/commitments",
                Some(&cashier),
                Some(key),
                json!({"customer": {"phone": phone}, "qty": qty}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        ids.push(v["commitment_id"].as_str().unwrap().to_owned());
    }
    let (a, b) = (ids[0].clone(), ids[1].clone());
    let refund_a = format!("/api/v1/group-buys/G1/commitments/{a}/refund");
    // b leaves while the campaign is open: cancelled and refunded then
    let (s, v) = n
        .json(
            "POST",
            &format!("/api/v1/group-buys/G1/commitments/{b}/cancel"),
            Some(&cashier),
            None,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // open, reached, past the deadline: not failed as this store knows it
    let before = n.counts().await;
    let (s, e) = n
        .json("POST", &refund_a, Some(&cashier), None, json!({}))
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::CONFLICT, "group_buy_not_failed"),
        "{e}"
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("不能按未成团退款"),
        "{e}"
    );
    db.execute(
        "INSERT INTO group_buy_participants(commitment_id, group_buy_id, sku, price_fen, phone, qty) VALUES ('S001/x', 'G1', 'P00009', 3990, '', 1)",
        [],
    )
    .unwrap();
    let (s, e) = n
        .json("POST", &refund_a, Some(&cashier), None, json!({}))
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::CONFLICT, "group_buy_not_failed")
    );
    db.execute("DELETE FROM group_buy_participants", [])
        .unwrap();
    n.advance_hours(9).await;
    let cashier = n.cashier.clone();
    let (s, e) = n
        .json("POST", &refund_a, Some(&cashier), None, json!({}))
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::CONFLICT, "group_buy_not_failed")
    );
    assert_eq!(n.counts().await, before, "refusals wrote nothing");

    // the hub's word that it failed arrives (its orders document)
    db.execute(
        "INSERT INTO group_buy_failures(group_buy_id, decided_at, reason, received_at)
         VALUES ('G1', '2026-11-25T10:30:00.000Z', '截止时参团人数未达到 5 人（实际 1 人），团购未成', '2026-11-25T10:31:00.000Z')",
        [],
    )
    .unwrap();
    let (_, list) = n.json_get("/api/v1/group-buys", &cashier).await;
    assert_eq!(
        (
            list[0]["failed"].as_bool(),
            list[0]["refunds_owed"].as_i64()
        ),
        (Some(true), Some(1)),
        "{list}"
    );
    // b was refunded when it was cancelled: not again
    let (s, e) = n
        .json(
            "POST",
            &format!("/api/v1/group-buys/G1/commitments/{b}/refund"),
            Some(&cashier),
            None,
            json!({}),
        )
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::CONFLICT, "commitment_cancelled"),
        "{e}"
    );
    let (s, v) = n
        .json("POST", &refund_a, Some(&cashier), None, json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (
            v["status"].as_str(),
            v["refund"]["refund_id"].as_str(),
            v["refund"]["amount_fen"].as_i64(),
            v["refund"]["reason"].as_str(),
        ),
        (
            Some("refunded"),
            Some(format!("GBF-{a}").as_str()),
            Some(7980),
            Some("group_buy_failed")
        ),
        "{v}"
    );
    assert!(
        v["refund"]["reason_text"]
            .as_str()
            .unwrap()
            .starts_with("拼团未成团，已在柜台退款"),
        "{v}"
    );
    let before = n.counts().await;
    let (s, again) = n
        .json("POST", &refund_a, Some(&cashier), None, json!({}))
        .await;
    assert_eq!((s, &again), (StatusCode::OK, &v), "the same refund");
    // nor can it be cancelled now: the campaign is over
    let (s, e) = n
        .json(
            "POST",
            &format!("/api/v1/group-buys/G1/commitments/{a}/cancel"),
            Some(&cashier),
            None,
            json!({}),
        )
        .await;
    assert_eq!((s, code(&e)), (StatusCode::CONFLICT, "group_buy_closed"));
    assert_eq!(n.counts().await, before, "a second refund writes nothing");

    let (s, list) = n
        .json_get("/api/v1/group-buys/G1/commitments", &cashier)
        .await;
    assert_eq!(s, StatusCode::OK);
    let rows: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["status"].as_str().unwrap(),
                k["refund"]["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("cancelled", "counter_cancelled"),
            ("refunded", "group_buy_failed")
        ],
        "{list}"
    );
    let (_, gbs) = n.json_get("/api/v1/group-buys", &cashier).await;
    assert_eq!(gbs[0]["refunds_owed"].as_i64(), Some(0), "{gbs}");
    let failed_rows: i64 = db
        .query_row(
            "SELECT count(*) FROM group_buy_refunds WHERE reason = 'group_buy_failed'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(failed_rows, 1);

    // the day report: both refunds, the failed one on its own line too
    let manager = n.manager.clone();
    let (s, r) = n
        .json_get("/api/v1/reports/day?day=2026-11-25", &manager)
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(
        (
            r["group_buy_refunds_count"].as_i64(),
            r["group_buy_refunds_fen"].as_i64(),
            r["group_buy_failed_refunds_count"].as_i64(),
            r["group_buy_failed_refunds_fen"].as_i64(),
            r["cash_expected_fen"].as_i64()
        ),
        (Some(2), Some(3 * 3990), Some(1), Some(7980), Some(0)),
        "{r}"
    );
}
