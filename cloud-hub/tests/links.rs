//! Store links at the hub, over real QUIC with real certificates: one
//! session per store id (a new connection replaces the old, and link state
//! belongs to the session that owns the link); revocation cuts a live link
//! at once; `stuck` means changes waiting, not an idle link; the public
//! `/health` lists no store; `issue-cert` refuses a revoked store unless
//! told to reinstate it.

#![allow(clippy::unwrap_used)] // test code

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use linli_hub::auth::{Role, User};
use linli_hub::hub::{CLOSE_REPLACED, HubPaths, add_user, open_conn};
use linli_hub::server::HubServer;
use linli_shared::sync::Frame;
use linli_sync::session::write_frame;
use linli_sync::tls::{self, CLOSE_REVOKED, Ca, StoreIdentity, TransportSettings};
use serde_json::Value;
use tower::ServiceExt;

const DEADLINE: Duration = Duration::from_secs(10);

struct TestHub {
    dir: tempfile::TempDir,
    paths: HubPaths,
    server: HubServer,
    admin: String,
}

async fn start() -> TestHub {
    let dir = tempfile::tempdir().unwrap();
    let paths = HubPaths {
        data_dir: dir.path().join("hub"),
    };
    std::fs::create_dir_all(&paths.data_dir).unwrap();
    add_user(
        &open_conn(&paths.db()).unwrap(),
        "admin",
        Role::Admin,
        "admin-password",
    )
    .unwrap();
    let server = HubServer::start(
        &paths,
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        &[],
    )
    .await
    .unwrap();
    let admin = server.hub.login("admin", "admin-password").await.unwrap();
    TestHub {
        dir,
        paths,
        server,
        admin,
    }
}

impl TestHub {
    fn enrol(&self, store: &str) -> std::path::PathBuf {
        let out = self.dir.path().join(store);
        Ca::load(&self.paths.ca_dir())
            .unwrap()
            .issue_store(store, &out)
            .unwrap();
        out
    }

    async fn get(&self, uri: &str, token: Option<&str>) -> (StatusCode, String) {
        let mut req = Request::builder().uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = linli_hub::http::router(self.server.hub.clone())
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The staff view of a store's link.
    async fn link(&self, store: &str) -> Value {
        let (s, body) = self.get("/api/v1/stores", Some(&self.admin)).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let all: Vec<Value> = serde_json::from_str(&body).unwrap();
        all.into_iter()
            .find(|v| v["store_id"] == store)
            .unwrap_or(Value::Null)
    }

    async fn wait_until<F: std::future::Future<Output = bool>>(
        &self,
        what: &str,
        mut cond: impl FnMut() -> F,
    ) {
        let start = tokio::time::Instant::now();
        while !cond().await {
            assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A store's connection that said hello (its index) and then only listens.
struct Peer {
    conn: quinn::Connection,
    _send: quinn::SendStream,
    _recv: quinn::RecvStream,
    _endpoint: quinn::Endpoint,
}

async fn connect(hub: &TestHub, identity: &std::path::Path) -> Peer {
    tls::install_crypto_provider();
    let id = StoreIdentity::load(identity).unwrap();
    let cfg = tls::client_config(&id, TransportSettings::default()).unwrap();
    let endpoint = tls::client_endpoint(cfg, hub.server.quic_addr).unwrap();
    let conn = tls::connect(&endpoint, hub.server.quic_addr, "localhost")
        .await
        .unwrap();
    let (mut send, recv) = conn.open_bi().await.unwrap();
    write_frame(&mut send, &Frame::Index(Default::default()))
        .await
        .unwrap();
    Peer {
        conn,
        _send: send,
        _recv: recv,
        _endpoint: endpoint,
    }
}

/// The application close code the hub closed `conn` with.
async fn close_code(conn: &quinn::Connection) -> u32 {
    match tokio::time::timeout(DEADLINE, conn.closed()).await {
        Ok(quinn::ConnectionError::ApplicationClosed(c)) => {
            u32::try_from(c.error_code.into_inner()).unwrap()
        }
        Ok(other) => panic!("closed otherwise: {other:?}"),
        Err(_) => panic!("the hub did not close the connection within {DEADLINE:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_with_one_certificate_replaces_the_first() {
    let h = start().await;
    let id = h.enrol("S001");
    let first = connect(&h, &id).await;
    h.wait_until("the first session to own the link", || async {
        h.server
            .hub
            .links()
            .get("S001")
            .is_some_and(|l| l.connected)
    })
    .await;

    let second = connect(&h, &id).await;
    // the older connection is closed, as replaced
    assert_eq!(close_code(&first.conn).await, CLOSE_REPLACED);
    let c = &h.server.hub.counters;
    assert_eq!(c.sessions_replaced.load(Relaxed), 1);
    let (_, metrics) = h.get("/metrics", None).await;
    assert!(
        metrics.contains("linli_hub_sessions_replaced_total 1"),
        "{metrics}"
    );
    // once the replaced session has ended, the link is still the new one's
    h.wait_until("the replaced session to end", || async {
        c.sessions_ended.load(Relaxed) >= 1
    })
    .await;
    assert!(second.conn.close_reason().is_none());
    assert_eq!(h.link("S001").await["sync_state"], "connected");

    // and when the owner leaves, the store is disconnected
    second.conn.close(0u32.into(), b"bye");
    h.wait_until("the link to go down", || async {
        h.link("S001").await["sync_state"] == "disconnected"
    })
    .await;
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_store_cuts_its_live_link_at_once() {
    let h = start().await;
    let id = h.enrol("S001");
    let other = h.enrol("S002");
    let live = connect(&h, &id).await;
    let bystander = connect(&h, &other).await;
    h.wait_until("both stores linked", || async {
        let l = h.server.hub.links();
        l.get("S001").is_some_and(|l| l.connected) && l.get("S002").is_some_and(|l| l.connected)
    })
    .await;

    // the admin command runs in another process: it only writes the list
    let t = tokio::time::Instant::now();
    Ca::load(&h.paths.ca_dir()).unwrap().revoke("S001").unwrap();
    assert_eq!(close_code(&live.conn).await, CLOSE_REVOKED);
    let cut_after = t.elapsed();
    assert!(
        cut_after < Duration::from_secs(2),
        "cut after {cut_after:?}"
    );
    let c = &h.server.hub.counters;
    assert_eq!(c.sessions_revoked.load(Relaxed), 1);
    h.wait_until("the revoked link to go down", || async {
        h.link("S001").await["sync_state"] == "disconnected"
    })
    .await;
    // another store is not touched
    assert!(bystander.conn.close_reason().is_none());

    // and it is refused when it comes back
    let ident = StoreIdentity::load(&id).unwrap();
    let cfg = tls::client_config(&ident, TransportSettings::default()).unwrap();
    let endpoint = tls::client_endpoint(cfg, h.server.quic_addr).unwrap();
    let again = tls::connect(&endpoint, h.server.quic_addr, "localhost")
        .await
        .unwrap();
    if let Ok((mut send, _recv)) = again.open_bi().await {
        let _ = write_frame(&mut send, &Frame::Index(Default::default())).await;
    }
    assert_eq!(close_code(&again).await, CLOSE_REVOKED);
    assert_eq!(c.refused_revoked.load(Relaxed), 1);
    let (_, metrics) = h.get("/metrics", None).await;
    assert!(
        metrics.contains("linli_hub_sessions_revoked_total 1")
            && metrics.contains("linli_hub_refused_revoked_total 1"),
        "{metrics}"
    );
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_link_is_connected_and_only_waiting_changes_make_it_stuck() {
    let h = start().await;
    h.server.hub.set_stuck_after_secs(1);
    let id = h.enrol("S001");
    let _peer = connect(&h, &id).await;
    // nothing to exchange: the link goes quiet and stays healthy
    h.wait_until("the link to be quiet past the threshold", || async {
        h.link("S001").await["seconds_since_activity"]
            .as_i64()
            .is_some_and(|s| s >= 2)
    })
    .await;
    assert_eq!(h.link("S001").await["sync_state"], "connected");

    // the public health lists no store
    let (s, health) = h.get("/health", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!health.contains("S001"), "{health}");
    assert!(!health.contains("sync_state"), "{health}");

    // the hub has changes for the store, which never acknowledges them
    let csv = std::fs::read(format!(
        "{}/../data/products.csv",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let admin = User {
        name: "admin".into(),
        role: Role::Admin,
        store_id: None,
        region: None,
    };
    h.server.hub.import_catalog(&admin, csv).await.unwrap();
    h.wait_until("the link to be reported stuck", || async {
        h.link("S001").await["sync_state"] == "stuck"
    })
    .await;
    h.server.shutdown().await;
}

#[test]
fn issue_cert_refuses_a_revoked_store_unless_reinstated() {
    let dir = tempfile::tempdir().unwrap();
    let hub_dir = dir.path().join("hub");
    let issue = |out: &str, extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_linli-hub"))
            .args(["issue-cert", "--data-dir"])
            .arg(&hub_dir)
            .args(["--store", "S001", "--out"])
            .arg(dir.path().join(out))
            .args(extra)
            .output()
            .unwrap()
    };
    assert!(issue("a", &[]).status.success());
    let revoke = std::process::Command::new(env!("CARGO_BIN_EXE_linli-hub"))
        .args(["revoke", "--data-dir"])
        .arg(&hub_dir)
        .args(["--store", "S001"])
        .output()
        .unwrap();
    assert!(revoke.status.success());

    let refused = issue("b", &[]);
    assert!(!refused.status.success());
    let msg = String::from_utf8_lossy(&refused.stderr);
    assert!(msg.contains("--reinstate"), "{msg}");
    assert!(
        !dir.path().join("b").exists(),
        "nothing is written for a refused store"
    );
    let ca = Ca::load(&hub_dir.join("ca")).unwrap();
    assert!(ca.is_revoked("S001").unwrap());

    assert!(issue("c", &["--reinstate"]).status.success());
    assert!(dir.path().join("c").join("store.pem").exists());
    assert!(!ca.is_revoked("S001").unwrap());
}
