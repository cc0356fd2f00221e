//! What an attacker tried at the hub: bursts of password guesses, guessing
//! which names exist, tokens in URLs, replaying another customer's
//! Idempotency-Key, filling the disk with sessions and one session holding
//! every unit the hub may sell. Each is refused with its status and code.

#![allow(clippy::unwrap_used)] // test code

use automerge::AutoCommit;
use automerge::sync::{self, SyncDoc};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use linli_hub::auth::Role;
use linli_hub::hub::{Hub, HubPaths, add_user, open_conn};
use linli_shared::docs::stock::set_rights;
use linli_shared::docs::{DocId, Owner, new_doc};
use linli_shared::rights::StoreRights;
use serde_json::{Value, json};
use tower::ServiceExt;

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
    /// A request as a client at `from` (the server's connect info) would send it.
    async fn call_from(
        &self,
        from: Option<&str>,
        method: &str,
        uri: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: String,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut req = req.body(Body::from(body)).unwrap();
        if let Some(a) = from {
            let sock: std::net::SocketAddr = a.parse().unwrap();
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(sock));
        }
        let resp = linli_hub::http::router(self.hub.clone())
            .oneshot(req)
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned())),
        )
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: String,
    ) -> (StatusCode, Value) {
        self.call_from(None, method, uri, token, headers, body)
            .await
    }

    async fn csv(&self, uri: &str, file: &str) {
        let body = std::fs::read(format!("{}/../data/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let req = Request::builder()
            .method("POST")
            .uri(uri)
            .header("content-type", "text/csv")
            .header("authorization", format!("Bearer {}", self.admin));
        let resp = linli_hub::http::router(self.hub.clone())
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{uri}");
    }

    async fn customer(&self, phone: &str) -> String {
        let (s, v) = self
            .call(
                "POST",
                "/api/v1/customer/session",
                None,
                &[],
                json!({ "phone": phone }).to_string(),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["token"].as_str().unwrap().to_owned()
    }

    /// Catalog, stores, and S001 lending the hub `lent` units of P00001.
    async fn with_rights(&self, lent: i64) {
        self.csv("/api/v1/catalog/import", "products.csv").await;
        self.csv("/api/v1/stores/import", "stores.csv").await;
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let id = DocId::store_stock("S001", day);
        let mut doc = new_doc(&id, Owner::Store("S001".into()).actor([7; 8])).unwrap();
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
        sync_in(&self.hub, "S001", &id, &mut doc).await;
    }
}

async fn sync_in(hub: &Hub, store: &str, id: &DocId, doc: &mut AutoCommit) {
    let mut state = sync::State::new();
    for _ in 0..20 {
        let Some(msg) = doc.sync().generate_sync_message(&mut state) else {
            return;
        };
        hub.receive_from(store, id.clone(), msg.encode())
            .await
            .unwrap();
        let (s, i) = (store.to_owned(), id.clone());
        let reply = hub
            .with_docs(move |c, docs| Ok(docs.generate(c, &i, &s)?))
            .await
            .unwrap();
        if let Some(r) = reply {
            doc.sync()
                .receive_sync_message(&mut state, sync::Message::decode(&r).unwrap())
                .unwrap();
        }
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<none>")
}

fn login(name: &str, password: &str) -> String {
    json!({ "name": name, "password": password }).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_100_password_guesses_gets_at_most_5_checks() {
    let h = hub().await;
    let before = h.hub.password_checks();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..100 {
        let hub = h.hub.clone();
        set.spawn(async move { hub.login("admin", &format!("guess-{i:04}")).await.err() });
    }
    while let Some(r) = set.join_next().await {
        assert!(r.unwrap().is_some(), "a guess got in");
    }
    let checked = h.hub.password_checks() - before;
    assert!(
        checked <= 5,
        "{checked} passwords were checked in the burst"
    );
    let (s, e) = h
        .call(
            "POST",
            "/api/v1/login",
            None,
            &[],
            login("admin", "admin-password"),
        )
        .await;
    assert_eq!((s, code(&e)), (StatusCode::TOO_MANY_REQUESTS, "locked_out"));
    assert!(e["error"]["details"]["retry_after_secs"].as_i64().unwrap() > 60);
    assert_eq!(h.hub.password_checks() - before, checked);
}

#[tokio::test]
async fn logins_are_limited_per_client_address() {
    let h = hub().await;
    for i in 0..10 {
        let (s, _) = h
            .call_from(
                Some("203.0.113.9:4000"),
                "POST",
                "/api/v1/login",
                None,
                &[],
                login(&format!("user{i}"), "wrong-password"),
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let (s, e) = h
        .call_from(
            Some("203.0.113.9:4001"),
            "POST",
            "/api/v1/login",
            None,
            &[],
            login("admin", "admin-password"),
        )
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    let (s, _) = h
        .call_from(
            Some("198.51.100.2:4000"),
            "POST",
            "/api/v1/login",
            None,
            &[],
            login("admin", "admin-password"),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn an_unknown_name_costs_a_password_check_like_a_known_one() {
    let h = hub().await;
    let before = h.hub.password_checks();
    let (s, e) = h
        .call(
            "POST",
            "/api/v1/login",
            None,
            &[],
            login("nobody", "whatever-1"),
        )
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );
    assert_eq!(h.hub.password_checks() - before, 1);
}

#[tokio::test]
async fn logout_ends_staff_and_customer_sessions_at_once() {
    let h = hub().await;
    let admin = h.admin.clone();
    let (s, _) = h
        .call(
            "GET",
            "/api/v1/exceptions",
            Some(&admin),
            &[],
            String::new(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = h
        .call("POST", "/api/v1/logout", Some(&admin), &[], String::new())
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, e) = h
        .call(
            "GET",
            "/api/v1/exceptions",
            Some(&admin),
            &[],
            String::new(),
        )
        .await;
    assert_eq!((s, code(&e)), (StatusCode::UNAUTHORIZED, "unauthenticated"));

    let me = h.customer("13800000001").await;
    let (s, _) = h
        .call("POST", "/api/v1/logout", Some(&me), &[], String::new())
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, e) = h
        .call(
            "GET",
            "/api/v1/orders/01NOPE",
            Some(&me),
            &[],
            String::new(),
        )
        .await;
    assert_eq!((s, code(&e)), (StatusCode::UNAUTHORIZED, "unauthenticated"));
}

#[tokio::test]
async fn a_token_in_the_url_is_only_taken_for_the_qr_image() {
    let h = hub().await;
    h.with_rights(10).await;
    let me = h.customer("13800000001").await;
    let body = json!({"channel": "miniapp", "customer": {"phone": "13800000001"}, "fulfilment": "pickup",
                      "store_id": "S001", "lines": [{"sku": "P00001", "qty": 1}]});
    let (s, e) = h
        .call(
            "POST",
            &format!("/api/v1/orders?token={me}"),
            None,
            &[("idempotency-key", "url-1")],
            body.to_string(),
        )
        .await;
    assert_eq!((s, code(&e)), (StatusCode::UNAUTHORIZED, "unauthenticated"));
    let (s, o) = h
        .call(
            "POST",
            "/api/v1/orders",
            Some(&me),
            &[("idempotency-key", "url-1")],
            body.to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let id = o["order_id"].as_str().unwrap();
    let (s, e) = h
        .call(
            "POST",
            &format!("/api/v1/orders/{id}/cancel?token={me}"),
            None,
            &[],
            String::new(),
        )
        .await;
    assert_eq!((s, code(&e)), (StatusCode::UNAUTHORIZED, "unauthenticated"));
    let (s, e) = h
        .call(
            "GET",
            &format!("/api/v1/orders/{id}?token={me}"),
            None,
            &[],
            String::new(),
        )
        .await;
    assert_eq!((s, code(&e)), (StatusCode::UNAUTHORIZED, "unauthenticated"));
    let (s, svg) = h
        .call(
            "GET",
            &format!("/api/v1/orders/{id}/qr.svg?token={me}"),
            None,
            &[],
            String::new(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(svg.as_str().unwrap().contains("<svg"));
}

#[tokio::test]
async fn idempotency_keys_are_scoped_by_customer() {
    let h = hub().await;
    h.with_rights(10).await;
    let a = h.customer("13800000001").await;
    let b = h.customer("13900000002").await;
    // a body without a phone is the same for both customers
    let body =
        json!({"channel": "miniapp", "customer": {"openid": "o-shared"}, "fulfilment": "pickup",
                      "store_id": "S001", "lines": [{"sku": "P00001", "qty": 1}]})
        .to_string();
    let key = [("idempotency-key", "k-guessable-1")];
    let (s, mine) = h
        .call("POST", "/api/v1/orders", Some(&a), &key, body.clone())
        .await;
    assert_eq!(s, StatusCode::CREATED, "{mine}");
    let (s, theirs) = h
        .call("POST", "/api/v1/orders", Some(&b), &key, body.clone())
        .await;
    assert_eq!(s, StatusCode::CREATED, "{theirs}");
    assert_ne!(theirs["order_id"], mine["order_id"]);
    assert_ne!(theirs["pickup_code"], mine["pickup_code"]);
    assert_ne!(theirs["customer_id"], mine["customer_id"]);
    // A's retry still gets A's order
    let (s, again) = h.call("POST", "/api/v1/orders", Some(&a), &key, body).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(again["order_id"], mine["order_id"]);
}

#[tokio::test]
async fn sessions_refuse_bad_identifiers_and_floods() {
    let h = hub().await;
    let huge = "o".repeat(2 * 1024 * 1024 - 64);
    for (openid, why) in [
        (huge.as_str(), "2 MB"),
        ("o\u{0}penid", "NUL"),
        ("o\u{1b}p\u{0}", "ESC/POS"),
        ("open id", "space"),
        (&"x".repeat(129)[..], "129 characters"),
    ] {
        let (s, e) = h
            .call(
                "POST",
                "/api/v1/customer/session",
                None,
                &[],
                json!({ "openid": openid }).to_string(),
            )
            .await;
        assert!(
            s == StatusCode::UNPROCESSABLE_ENTITY || s == StatusCode::PAYLOAD_TOO_LARGE,
            "{why}: {s} {e}"
        );
    }
    let customers = || async {
        h.hub
            .store
            .read(|c| {
                c.query_row("SELECT count(*) FROM customers", [], |r| r.get::<_, i64>(0))
                    .map_err(linli_sync::db::StoreError::from)
            })
            .await
            .unwrap()
    };
    assert_eq!(customers().await, 0, "nothing refused was stored");
    // one address opens 20 sessions at once, then is told to wait
    for i in 0..20 {
        let (s, v) = h
            .call_from(
                Some("203.0.113.7:5000"),
                "POST",
                "/api/v1/customer/session",
                None,
                &[],
                json!({ "openid": format!("oWX-{i}") }).to_string(),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let (s, e) = h
        .call_from(
            Some("203.0.113.7:5001"),
            "POST",
            "/api/v1/customer/session",
            None,
            &[],
            json!({ "openid": "oWX-more" }).to_string(),
        )
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    assert_eq!(customers().await, 20);
}

#[tokio::test]
async fn a_customer_cannot_hold_more_than_the_cap_of_one_sku() {
    let h = hub().await;
    h.with_rights(61).await;
    let me = h.customer("13800000001").await;
    let order = |qty: i64| {
        json!({"channel": "miniapp", "customer": {"phone": "13800000001"}, "fulfilment": "pickup",
               "store_id": "S001", "lines": [{"sku": "P00001", "qty": qty}]})
        .to_string()
    };
    let (s, e) = h
        .call(
            "POST",
            "/api/v1/orders",
            Some(&me),
            &[("idempotency-key", "all-61")],
            order(61),
        )
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::CONFLICT, "open_units_cap"),
        "{e}"
    );
    assert!(e["error"]["message"].as_str().unwrap().contains("每位顾客"));
    assert_eq!(e["error"]["details"]["cap"], 10);
    let (s, first) = h
        .call(
            "POST",
            "/api/v1/orders",
            Some(&me),
            &[("idempotency-key", "seven")],
            order(7),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    let (s, e) = h
        .call(
            "POST",
            "/api/v1/orders",
            Some(&me),
            &[("idempotency-key", "four")],
            order(4),
        )
        .await;
    assert_eq!((s, code(&e)), (StatusCode::CONFLICT, "open_units_cap"));
    assert_eq!(e["error"]["details"]["open"], 7);
    // cancelling frees the units again
    let id = first["order_id"].as_str().unwrap();
    let (s, _) = h
        .call(
            "POST",
            &format!("/api/v1/orders/{id}/cancel"),
            Some(&me),
            &[],
            String::new(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = h
        .call(
            "POST",
            "/api/v1/orders",
            Some(&me),
            &[("idempotency-key", "ten")],
            order(10),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}
