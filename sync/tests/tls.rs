//! Mutual TLS over real QUIC connections on 127.0.0.1: who gets in, who does
//! not, where the store id comes from, and how fast a dead link is noticed.
//!
//! Every test binds port 0, uses its own temp directories, and waits for
//! conditions under a deadline rather than sleeping.

#![allow(clippy::unwrap_used)] // test helpers panic on setup failure by design

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use linli_sync::tls::{
    self, CLOSE_REVOKED, Ca, HandshakeLimiter, StoreIdentity, TlsError, TransportSettings,
};
use quinn::ConnectionError;
use tempfile::TempDir;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// Upper bound for anything a test waits for; nothing should come close.
const DEADLINE: Duration = Duration::from_secs(10);

/// A hub: its CA in a temp directory and a server endpoint on 127.0.0.1.
struct Hub {
    dir: TempDir,
    ca: Ca,
    endpoint: quinn::Endpoint,
    addr: SocketAddr,
}

fn start_hub() -> Hub {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::create(dir.path()).unwrap();
    let (cert, key) = ca.issue_hub(&["hub.linli.test".to_owned()]).unwrap();
    let cfg = tls::server_config(ca.cert(), cert, key, TransportSettings::default()).unwrap();
    let endpoint = tls::server_endpoint(loopback(), cfg).unwrap();
    let addr = endpoint.local_addr().unwrap();
    Hub {
        dir,
        ca,
        endpoint,
        addr,
    }
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Enrols `store_id` with `ca`: its credentials directory and loaded identity.
fn enrol(ca: &Ca, store_id: &str) -> (TempDir, StoreIdentity) {
    let dir = tempfile::tempdir().unwrap();
    ca.issue_store(store_id, dir.path()).unwrap();
    let identity = StoreIdentity::load(dir.path()).unwrap();
    (dir, identity)
}

fn store_endpoint(identity: &StoreIdentity, hub_addr: SocketAddr) -> quinn::Endpoint {
    let cfg = tls::client_config(identity, TransportSettings::default()).unwrap();
    tls::client_endpoint(cfg, hub_addr).unwrap()
}

/// The next connection the hub completes a handshake with (or the error).
async fn accept_one(endpoint: &quinn::Endpoint) -> Result<quinn::Connection, ConnectionError> {
    let incoming = endpoint.accept().await.expect("hub endpoint is open");
    incoming.await
}

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match timeout(DEADLINE, fut).await {
        Ok(value) => value,
        Err(_) => panic!("{what}: not done within {DEADLINE:?}"),
    }
}

/// What the hub saw of one store session.
struct HubView {
    store_id: String,
    received: Vec<u8>,
}

/// The store sends `message` on a bidi stream; the hub admits the store,
/// reads the message and echoes it back. Returns the hub's view and the echo.
async fn round_trip(hub: &Hub, identity: &StoreIdentity, message: &[u8]) -> (HubView, Vec<u8>) {
    let client = store_endpoint(identity, hub.addr);
    let hub_side = async {
        let conn = accept_one(&hub.endpoint).await.unwrap();
        let store_id = hub.ca.admit_peer(&conn).unwrap();
        let (mut send, mut recv) = conn.accept_bi().await.unwrap();
        let received = recv.read_to_end(64 * 1024).await.unwrap();
        send.write_all(&received).await.unwrap();
        send.finish().unwrap();
        // The store closes once it has the echo.
        let reason = conn.closed().await;
        assert!(
            matches!(reason, ConnectionError::ApplicationClosed(_)),
            "{reason}"
        );
        HubView { store_id, received }
    };
    let store_side = async {
        let conn = tls::connect(&client, hub.addr, "localhost").await.unwrap();
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(message).await.unwrap();
        send.finish().unwrap();
        let echo = recv.read_to_end(64 * 1024).await.unwrap();
        conn.close(0u32.into(), b"done");
        echo
    };
    within("round trip", async { tokio::join!(hub_side, store_side) }).await
}

/// A store tries to send a message on a stream and read the echo. Returns
/// why the store's connection ended and the hub's handshake result; panics
/// if the message got through.
async fn refused(
    hub: &Hub,
    client: &quinn::Endpoint,
) -> (ConnectionError, Result<quinn::Connection, ConnectionError>) {
    let hub_side = accept_one(&hub.endpoint);
    let store_side = async {
        let conn = match tls::connect(client, hub.addr, "localhost").await {
            Ok(conn) => conn,
            Err(TlsError::Connection(reason)) => return reason,
            Err(other) => panic!("connect: {other}"),
        };
        let attempt = async {
            let (mut send, mut recv) = conn.open_bi().await?;
            send.write_all(b"let me in").await?;
            send.finish()?;
            recv.read_to_end(1024).await?;
            anyhow::Ok(())
        };
        match attempt.await {
            Ok(()) => panic!("the store got a stream through"),
            Err(_) => conn.closed().await,
        }
    };
    let (hub_result, store_reason) =
        within("refusal", async { tokio::join!(hub_side, store_side) }).await;
    (store_reason, hub_result)
}

/// The hub's TLS stack closed the connection: not a timeout, not an
/// application close.
fn is_tls_refusal(reason: &ConnectionError) -> bool {
    matches!(
        reason,
        ConnectionError::ConnectionClosed(_) | ConnectionError::TransportError(_)
    )
}

#[tokio::test]
async fn store_with_certificate_from_hub_ca_connects_and_round_trips() {
    let hub = start_hub();
    let (_store_dir, identity) = enrol(&hub.ca, "S001");
    assert_eq!(identity.store_id(), "S001");

    let (view, echo) = round_trip(&hub, &identity, b"hello hub").await;

    assert_eq!(view.store_id, "S001");
    assert_eq!(view.received, b"hello hub");
    assert_eq!(echo, b"hello hub");
}

#[tokio::test]
async fn store_id_comes_from_the_certificate_not_from_messages() {
    let hub = start_hub();
    let (_store_dir, identity) = enrol(&hub.ca, "S001");

    let (view, _) = round_trip(&hub, &identity, b"{\"store_id\":\"S999\"}").await;

    assert_eq!(view.store_id, "S001");
    assert_eq!(view.received, b"{\"store_id\":\"S999\"}");
}

#[tokio::test]
async fn store_with_certificate_from_another_ca_is_refused() {
    let hub = start_hub();
    let other_dir = tempfile::tempdir().unwrap();
    let other_ca = Ca::create(other_dir.path()).unwrap();
    // An impostor: a certificate for S001 from another CA, but trusting the
    // real hub, so only the hub's check can stop it.
    let store_dir = tempfile::tempdir().unwrap();
    other_ca.issue_store("S001", store_dir.path()).unwrap();
    std::fs::copy(
        hub.dir.path().join("ca.pem"),
        store_dir.path().join("ca.pem"),
    )
    .unwrap();
    let identity = StoreIdentity::load(store_dir.path()).unwrap();
    let client = store_endpoint(&identity, hub.addr);

    let (store_reason, hub_result) = refused(&hub, &client).await;

    let hub_error = hub_result.expect_err("the hub completed the handshake");
    assert!(
        matches!(hub_error, ConnectionError::TransportError(_)),
        "{hub_error}"
    );
    // Both CAs are called "Linli Hub CA", so webpki finds a candidate
    // issuer by name and rejects the signature (BadSignature) rather than
    // reporting an unknown issuer.
    assert!(
        hub_error.to_string().contains("invalid peer certificate"),
        "{hub_error}"
    );
    assert!(is_tls_refusal(&store_reason), "{store_reason}");
}

#[tokio::test]
async fn store_without_client_certificate_gets_no_stream_through() {
    let hub = start_hub();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(hub.ca.cert().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls_config.alpn_protocols = vec![tls::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls_config).unwrap();
    let client =
        tls::client_endpoint(quinn::ClientConfig::new(Arc::new(crypto)), hub.addr).unwrap();

    let (store_reason, hub_result) = refused(&hub, &client).await;

    let hub_error = hub_result.expect_err("the hub completed the handshake");
    assert!(
        hub_error.to_string().contains("no certificates"),
        "{hub_error}"
    );
    assert!(is_tls_refusal(&store_reason), "{store_reason}");
}

#[tokio::test]
async fn revoked_store_is_reported_and_refused_after_handshake() {
    let hub = start_hub();
    let (_s1, s001) = enrol(&hub.ca, "S001");
    let (_s2, s002) = enrol(&hub.ca, "S002");

    hub.ca.revoke("S002").unwrap();
    hub.ca.revoke("S002").unwrap(); // idempotent

    assert!(hub.ca.is_revoked("S002").unwrap());
    assert!(!hub.ca.is_revoked("S001").unwrap());
    assert_eq!(
        hub.ca.revoked().unwrap().into_iter().collect::<Vec<_>>(),
        ["S002"]
    );
    // Persisted next to the CA, seen by a freshly loaded one.
    assert!(
        Ca::load(hub.dir.path())
            .unwrap()
            .is_revoked("S002")
            .unwrap()
    );
    assert!(matches!(
        hub.ca.revoke("s002"),
        Err(TlsError::InvalidStoreId { .. })
    ));

    // S002 completes the TLS handshake (its certificate is genuine) and is
    // then refused by the hub, with a close code it can recognise.
    let client = store_endpoint(&s002, hub.addr);
    let (admitted, store_closed) = within("revoked store", async {
        tokio::join!(
            async {
                let conn = accept_one(&hub.endpoint).await.unwrap();
                hub.ca.admit_peer(&conn)
            },
            async {
                let conn = tls::connect(&client, hub.addr, "localhost").await.unwrap();
                conn.closed().await
            }
        )
    })
    .await;
    assert!(
        matches!(&admitted, Err(TlsError::Revoked { store_id }) if store_id == "S002"),
        "{admitted:?}"
    );
    match store_closed {
        ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.error_code, CLOSE_REVOKED.into());
        }
        other => panic!("unexpected close: {other}"),
    }

    // S001 is unaffected.
    let (view, _) = round_trip(&hub, &s001, b"still here").await;
    assert_eq!(view.store_id, "S001");
}

#[tokio::test]
async fn issue_store_rejects_invalid_store_ids() {
    let hub_dir = tempfile::tempdir().unwrap();
    let ca = Ca::create(hub_dir.path()).unwrap();
    let bad = [
        "",
        "s001",
        "S 001",
        "S001\n",
        "../S001",
        "S/001",
        "S.001",
        "ÄÖ",
        "S0123456789ABCDEF", // 17
    ];
    for id in bad {
        let out = hub_dir.path().join("out");
        let err = ca.issue_store(id, &out).unwrap_err();
        assert!(
            matches!(&err, TlsError::InvalidStoreId { id: rejected } if rejected == id),
            "{id:?}: {err}"
        );
        assert!(!out.exists(), "{id:?}: something was written");
    }
    for id in ["A", "S-0_1", "0123456789ABCDEF"] {
        let out = tempfile::tempdir().unwrap();
        ca.issue_store(id, out.path()).unwrap();
        assert_eq!(StoreIdentity::load(out.path()).unwrap().store_id(), id);
    }
}

#[tokio::test]
async fn ca_files_are_private_and_reloadable() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::load_or_create(dir.path()).unwrap();
    let again = Ca::load_or_create(dir.path()).unwrap();
    assert_eq!(ca.cert(), again.cert());
    assert!(matches!(
        Ca::create(dir.path()),
        Err(TlsError::CaExists { .. })
    ));

    // A reloaded CA issues certificates the original's hub accepts.
    let store_dir = tempfile::tempdir().unwrap();
    again.issue_store("S042", store_dir.path()).unwrap();
    let identity = StoreIdentity::load(store_dir.path()).unwrap();
    assert_eq!(identity.ca(), ca.cert());

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("ca.key")), 0o600);
        assert_eq!(mode(&store_dir.path().join("store.key")), 0o600);

        let key = store_dir.path().join("store.key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            StoreIdentity::load(store_dir.path()),
            Err(TlsError::InsecureKeyFile { mode: 0o644, .. })
        ));
    }

    // Half a CA is an error, not a reason to make a new one.
    let half = tempfile::tempdir().unwrap();
    std::fs::copy(dir.path().join("ca.pem"), half.path().join("ca.pem")).unwrap();
    assert!(matches!(
        Ca::load_or_create(half.path()),
        Err(TlsError::CaIncomplete { .. })
    ));
}

#[tokio::test]
async fn install_crypto_provider_is_idempotent() {
    tls::install_crypto_provider();
    tls::install_crypto_provider();
    assert!(rustls::crypto::CryptoProvider::get_default().is_some());
}

#[test]
fn transport_settings_need_keep_alive_below_idle_timeout() {
    let defaults = TransportSettings::default();
    assert_eq!(defaults.keep_alive, Duration::from_secs(1));
    assert_eq!(defaults.idle_timeout, Duration::from_secs(3));
    assert_eq!(defaults.max_bidi_streams, 256);
    assert!(defaults.transport_config().is_ok());

    let too_slow = TransportSettings {
        keep_alive: Duration::from_secs(3),
        ..defaults
    };
    assert!(matches!(
        too_slow.transport_config(),
        Err(TlsError::InvalidTransport { .. })
    ));
}

/// A UDP relay between a store and the hub whose link can be cut, so a peer
/// goes silent without closing anything (as when a cable is pulled).
struct Relay {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Self {
        let front = UdpSocket::bind(loopback()).await.unwrap();
        let back = UdpSocket::bind(loopback()).await.unwrap();
        back.connect(target).await.unwrap();
        let addr = front.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let is_cut = Arc::clone(&cut);
        let task = tokio::spawn(async move {
            let mut client = None;
            let mut up = vec![0u8; 65_536];
            let mut down = vec![0u8; 65_536];
            loop {
                tokio::select! {
                    received = front.recv_from(&mut up) => {
                        let Ok((len, from)) = received else { continue };
                        client = Some(from);
                        if !is_cut.load(Ordering::SeqCst) {
                            let _ = back.send(&up[..len]).await;
                        }
                    }
                    received = back.recv(&mut down) => {
                        let Ok(len) = received else { continue };
                        if let (Some(to), false) = (client, is_cut.load(Ordering::SeqCst)) {
                            let _ = front.send_to(&down[..len], to).await;
                        }
                    }
                }
            }
        });
        Self { addr, cut, task }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn keep_alive_holds_a_quiet_link_and_idle_timeout_detects_a_dead_one() {
    let hub = start_hub();
    let (_store_dir, identity) = enrol(&hub.ca, "S001");
    let relay = Relay::start(hub.addr).await;
    let client = store_endpoint(&identity, relay.addr);
    let (hub_conn, store_conn) = within("connect through relay", async {
        tokio::join!(accept_one(&hub.endpoint), async {
            tls::connect(&client, relay.addr, "localhost").await
        })
    })
    .await;
    let (hub_conn, store_conn) = (hub_conn.unwrap(), store_conn.unwrap());
    let settings = TransportSettings::default();

    // Nothing is sent for longer than the idle timeout; keep-alives hold the
    // connection open. (Waiting here is the assertion: nothing must happen.)
    let quiet = settings.idle_timeout + Duration::from_secs(1);
    assert!(
        timeout(quiet, store_conn.closed()).await.is_err(),
        "a quiet but healthy link was closed"
    );
    assert!(hub_conn.close_reason().is_none());

    // The link dies silently: both ends notice within the idle timeout.
    relay.cut();
    let cut_at = Instant::now();
    let (store_reason, hub_reason) = within("dead link detection", async {
        tokio::join!(store_conn.closed(), hub_conn.closed())
    })
    .await;
    let detected_after = cut_at.elapsed();
    eprintln!("dead link detected after {detected_after:?}");
    assert!(
        matches!(store_reason, ConnectionError::TimedOut),
        "{store_reason}"
    );
    assert!(
        matches!(hub_reason, ConnectionError::TimedOut),
        "{hub_reason}"
    );
    // both ends closed with TimedOut within `within`'s deadline: the idle
    // timer ended them (how long it took is printed, not asserted: a
    // wall-clock limit has no place in a test on a shared machine)
}

#[tokio::test]
async fn handshake_limiter_lets_a_burst_of_stores_in() {
    const STORES: usize = 8;
    let hub = start_hub();
    let limiter = HandshakeLimiter::new(1);
    let stores: Vec<_> = (0..STORES)
        .map(|i| enrol(&hub.ca, &format!("S{i:03}")))
        .collect();
    let clients: Vec<_> = stores
        .iter()
        .map(|(_, identity)| store_endpoint(identity, hub.addr))
        .collect();

    // The hub's accept loop: one task per incoming connection, as in the
    // real hub, until every store is in.
    let hub_side = async {
        let mut handshakes = tokio::task::JoinSet::new();
        let mut admitted = Vec::new();
        let mut retries = 0;
        while admitted.len() < STORES {
            tokio::select! {
                incoming = hub.endpoint.accept() => {
                    let incoming = incoming.expect("hub endpoint is open");
                    let limiter = limiter.clone();
                    handshakes.spawn(async move { limiter.handshake(incoming).await });
                }
                Some(done) = handshakes.join_next() => match done.unwrap().unwrap() {
                    Some(conn) => admitted.push((hub.ca.admit_peer(&conn).unwrap(), conn)),
                    None => retries += 1,
                },
            }
        }
        eprintln!("{retries} connection attempts were sent a Retry");
        admitted
    };
    let mut connects = tokio::task::JoinSet::new();
    for client in &clients {
        let (client, addr) = (client.clone(), hub.addr);
        connects.spawn(async move { tls::connect(&client, addr, "localhost").await });
    }
    let stores_side = connects.join_all();
    let (admitted, connected) = within("burst of stores", async {
        tokio::join!(hub_side, stores_side)
    })
    .await;

    for conn in connected {
        conn.unwrap();
    }
    let mut ids: Vec<_> = admitted.iter().map(|(id, _)| id.clone()).collect();
    ids.sort();
    let expected: Vec<_> = (0..STORES).map(|i| format!("S{i:03}")).collect();
    assert_eq!(ids, expected);
    assert_eq!(limiter.available(), 1, "a permit leaked");
}

/// The hub's socket asks for a 4 MB receive buffer (what the kernel allows
/// of it: Linux caps it at `net.core.rmem_max` and reports twice what it
/// reserves); the other tests connect through `server_endpoint`, which
/// binds with it.
#[test]
fn hub_socket_has_a_large_receive_buffer() {
    let socket = tls::bind_udp(loopback(), tls::HUB_RECV_BUFFER).unwrap();
    let got = socket2::SockRef::from(&socket).recv_buffer_size().unwrap();
    let cap = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok());
    if let Some(cap) = cap {
        let want = tls::HUB_RECV_BUFFER.min(cap);
        assert!(got >= want, "receive buffer {got} < {want}");
        assert!(got > 212_992, "receive buffer {got} is the OS default");
    }
}
