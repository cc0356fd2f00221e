//! The hub in a temp dir with the reference catalog and stores imported,
//! called through its router (no socket), for the API test suites.

#![allow(clippy::unwrap_used, dead_code)] // test code; each suite uses a part

use automerge::AutoCommit;
use automerge::sync::{self, SyncDoc};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use linli_hub::auth::Role;
use linli_hub::hub::{Hub, HubPaths, add_user, open_conn};
use linli_hub::settings::OrderSettings;
use linli_shared::docs::DocId;
use serde_json::{Value, json};
use tower::ServiceExt;

pub(crate) struct TestHub {
    _dir: tempfile::TempDir,
    pub(crate) hub: Hub,
    pub(crate) admin: String,
}

pub(crate) async fn hub() -> TestHub {
    hub_on(linli_sync::clock::system_clock()).await
}

/// [`hub`] on `clock`: a [`linli_sync::clock::ManualClock`]'s lets the
/// test set the hub's time. Its admin token lasts 12 h of that clock.
pub(crate) async fn hub_on(clock: linli_sync::clock::Clock) -> TestHub {
    let dir = tempfile::tempdir().unwrap();
    let paths = HubPaths {
        data_dir: dir.path().to_owned(),
    };
    {
        let c = open_conn(&paths.db()).unwrap();
        add_user(&c, "admin", Role::Admin, "admin-password").unwrap();
        // a manager for each of the first two stores ([`TestHub::manager`])
        linli_hub::hub::add_store_manager(&c, "m1", "S001", "manager-password").unwrap();
        linli_hub::hub::add_store_manager(&c, "m2", "S002", "manager-password").unwrap();
        // regional managers of S001's and S002's regions ([`TestHub::regional`])
        linli_hub::hub::add_regional_manager(&c, "west", "杭州西区", "region-password").unwrap();
        linli_hub::hub::add_regional_manager(&c, "north", "杭州北区", "region-password").unwrap();
    }
    let hub = Hub::open_with_clock(&paths, OrderSettings::default(), clock).unwrap();
    let admin = hub.login("admin", "admin-password").await.unwrap();
    let h = TestHub {
        _dir: dir,
        hub,
        admin,
    };
    for (uri, file) in [
        ("/api/v1/catalog/import", "products.csv"),
        ("/api/v1/stores/import", "stores.csv"),
    ] {
        let body = std::fs::read(format!("{}/../data/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let (s, v) = h
            .call("POST", uri, Some(&h.admin), Some(("text/csv", body)))
            .await;
        assert_eq!(s, StatusCode::OK, "{uri}: {v}");
    }
    h
}

impl TestHub {
    pub(crate) async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let body = match body {
            Some((ct, b)) => {
                req = req.header("content-type", ct);
                Body::from(b)
            }
            None => Body::empty(),
        };
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

    pub(crate) async fn post(&self, uri: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(
            "POST",
            uri,
            Some(token),
            Some(("application/json", body.to_string().into_bytes())),
        )
        .await
    }

    /// A POST with an `Idempotency-Key`.
    pub(crate) async fn post_keyed(
        &self,
        uri: &str,
        token: &str,
        key: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let req = Request::builder()
            .method("POST")
            .uri(uri)
            .header("authorization", format!("Bearer {token}"))
            .header("idempotency-key", key)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let resp = linli_hub::http::router(self.hub.clone())
            .oneshot(req)
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub(crate) async fn get(&self, uri: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.call("GET", uri, token, None).await
    }

    pub(crate) async fn customer(&self, phone: &str) -> String {
        let (s, v) = self
            .call(
                "POST",
                "/api/v1/customer/session",
                None,
                Some((
                    "application/json",
                    json!({ "phone": phone }).to_string().into_bytes(),
                )),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["token"].as_str().unwrap().to_owned()
    }

    /// The chain's member key the hub made (`member.key`).
    pub(crate) fn member_key(&self) -> [u8; 32] {
        let hex = std::fs::read_to_string(self._dir.path().join("member.key")).unwrap();
        linli_shared::member::parse_key(&hex).unwrap()
    }

    /// The hub stopped and opened again on the same directory, as a
    /// restarted server opens it; the admin logs in again.
    pub(crate) async fn reopen(self) -> TestHub {
        let TestHub { _dir, hub, .. } = self;
        drop(hub);
        let paths = HubPaths {
            data_dir: _dir.path().to_owned(),
        };
        let hub = Hub::open(&paths).unwrap();
        let admin = hub.login("admin", "admin-password").await.unwrap();
        TestHub { _dir, hub, admin }
    }

    /// The hub's database file.
    pub(crate) fn db_path(&self) -> std::path::PathBuf {
        self._dir.path().join("hub.db")
    }

    /// A store manager's hub login: `m1` manages S001, `m2` S002.
    pub(crate) async fn manager(&self, name: &str) -> String {
        self.hub.login(name, "manager-password").await.unwrap()
    }

    /// A regional manager's hub login: `west` (杭州西区, S001's region) or
    /// `north` (杭州北区, S002's).
    pub(crate) async fn regional(&self, name: &str) -> String {
        self.hub.login(name, "region-password").await.unwrap()
    }

    pub(crate) async fn community_of(&self, token: &str) -> Value {
        let (s, v) = self.get("/api/v1/customer/community", Some(token)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }
}

/// Syncs a store-owned document into the hub the way a store's session
/// would, until neither side has more to say.
pub(crate) async fn sync_in(hub: &Hub, store: &str, id: &DocId, doc: &mut AutoCommit) {
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

/// `store` lends the hub `units` of each SKU through its stock document of
/// today, as a store's uplink would.
pub(crate) async fn lend(hub: &Hub, store: &str, skus: &[(&str, i64)]) {
    use linli_shared::docs::stock::set_rights;
    use linli_shared::docs::{Owner, new_doc};
    let id = DocId::store_stock(store, chrono::Utc::now().date_naive());
    let mut doc: AutoCommit = new_doc(&id, Owner::Store(store.into()).actor([7; 8])).unwrap();
    for (sku, lent) in skus {
        let rights = linli_shared::rights::StoreRights {
            lent: *lent,
            ..Default::default()
        };
        set_rights(&mut doc, sku, &rights).unwrap();
    }
    doc.commit();
    sync_in(hub, store, &id, &mut doc).await;
}
