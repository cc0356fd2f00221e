//! The hub's QUIC server: stores connect with mutual TLS; the store id is
//! read from the peer certificate (never from a message) and checked against
//! the revocation list; each store gets one sync session scoped to its
//! documents. Handshakes are capped so a reconnect storm gets everyone in.

use std::net::SocketAddr;
use std::sync::Arc;

use linli_shared::docs::DocId;
use linli_shared::sync::Index;
use linli_sync::doc_store::{DocError, Received};
use linli_sync::session::{self, SyncHost};
use linli_sync::tls::{self, Ca, HandshakeLimiter, TransportSettings};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::error::HubError;
use crate::hub::Hub;

/// How often the hub rereads the revocation list to cut revoked stores'
/// live connections.
pub const REVOCATION_CHECK: std::time::Duration = std::time::Duration::from_millis(250);

/// The hub's side of one store's session: what the sync session asks of
/// the hub's replica for that store. The QUIC server builds one per
/// session; a deterministic simulation builds them the same way over its
/// virtual network.
pub struct HubHost {
    hub: Hub,
    store_id: String,
}

impl std::fmt::Debug for HubHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubHost")
            .field("store_id", &self.store_id)
            .finish()
    }
}

impl HubHost {
    /// The host of a new session of `store_id` (read from its certificate).
    pub fn new(hub: Hub, store_id: String) -> HubHost {
        HubHost { hub, store_id }
    }

    /// The session begins: it starts from the persisted shared heads, not
    /// from the in-memory state of a session it replaced.
    pub async fn session_began(&self) {
        let peer = self.store_id.clone();
        let _ = self
            .hub
            .with_docs(move |_, docs| {
                docs.end_session(&peer);
                Ok(())
            })
            .await;
    }

    /// The store's last session ended: its sync states and its idle
    /// documents leave memory ([`Hub::store_left`]).
    pub async fn store_left(&self) {
        let (peer, h) = (self.store_id.clone(), self.hub.clone());
        let _ = self
            .hub
            .with_docs(move |_, docs| {
                let evicted = h.store_left(docs, &peer);
                tracing::debug!(store = %peer, evicted, "store's documents left memory");
                Ok(())
            })
            .await;
    }
}

fn doc_error(e: HubError) -> DocError {
    match e {
        HubError::Doc(d) => d,
        other => DocError::Message(other.to_string()),
    }
}

impl SyncHost for HubHost {
    async fn index(&self) -> Result<Index, DocError> {
        let store = self.store_id.clone();
        // the hub writes its documents in the transaction of each fact:
        // none waits; its time tells a store whose clock is behind
        let sent_at = self.hub.now();
        self.hub
            .with_docs(move |c, docs| {
                // documents of the store's scope, its own and the hub's,
                // that the store has not acknowledged whole: the index
                // stays small after years of day documents (the store lists
                // its today's documents and the catalog itself)
                Ok(Index {
                    sent_at: Some(sent_at),
                    ..Index::of(
                        docs.scope_index(c, &store, &store)?
                            .into_iter()
                            .filter(|(_, acked)| !acked)
                            .map(|(e, _)| e)
                            .collect(),
                    )
                })
            })
            .await
            .map_err(doc_error)
    }

    async fn generate(&self, doc: DocId) -> Result<Option<Vec<u8>>, DocError> {
        let store = self.store_id.clone();
        self.hub
            .with_docs(move |c, docs| Ok(docs.generate(c, &doc, &store)?))
            .await
            .map_err(doc_error)
    }

    async fn receive(&self, doc: DocId, msg: Vec<u8>) -> Result<Received, DocError> {
        let r = self
            .hub
            .receive_from(&self.store_id, doc, msg)
            .await
            .map_err(doc_error)?;
        if r.new_changes > 0 && self.hub.report_pending(&self.store_id) {
            self.hub
                .check_report(&self.store_id)
                .await
                .map_err(doc_error)?;
        }
        Ok(r)
    }

    async fn peer_index(&self, index: Index) -> Result<(), DocError> {
        self.hub
            .store_index(&self.store_id, index)
            .await
            .map_err(doc_error)
    }

    fn scope(&self) -> &str {
        &self.store_id
    }

    fn on_activity(&self) {
        self.hub.touch(&self.store_id);
    }
}

/// The bound QUIC server.
#[derive(Debug)]
pub struct Ingest {
    pub endpoint: quinn::Endpoint,
    ca: Arc<Ca>,
}

impl Ingest {
    /// Loads (or creates) the CA, issues the hub's certificate and binds.
    pub fn bind(
        ca_dir: &std::path::Path,
        addr: SocketAddr,
        names: &[String],
    ) -> anyhow::Result<Ingest> {
        tls::install_crypto_provider();
        let ca = Ca::load_or_create(ca_dir)?;
        let (cert, key) = ca.issue_hub(names)?;
        let cfg = tls::server_config(ca.cert(), cert, key, TransportSettings::default())?;
        let endpoint = tls::server_endpoint(addr, cfg)?;
        Ok(Ingest {
            endpoint,
            ca: Arc::new(ca),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Accepts stores until `cancel`; every session is a task of this loop's
    /// own set, ended in order on shutdown.
    pub async fn run(self, hub: Hub, cancel: CancellationToken) {
        let limiter = HandshakeLimiter::default();
        let mut sessions = JoinSet::new();
        // a revocation (an admin command, another process) cuts the live
        // link within this interval
        let mut revocations = tokio::time::interval(REVOCATION_CHECK);
        revocations.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let incoming = tokio::select! {
                _ = cancel.cancelled() => break,
                _ = revocations.tick() => {
                    match self.ca.revoked() {
                        Ok(revoked) if !revoked.is_empty() => {
                            hub.cut_revoked(&revoked);
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "cannot read the revocation list"),
                    }
                    continue;
                }
                i = self.endpoint.accept() => match i {
                    Some(i) => i,
                    None => break,
                },
                Some(_) = sessions.join_next(), if !sessions.is_empty() => continue,
            };
            let (hub, ca, limiter, cancel) = (
                hub.clone(),
                self.ca.clone(),
                limiter.clone(),
                cancel.clone(),
            );
            sessions.spawn(async move {
                let conn = match limiter.handshake(incoming).await {
                    Ok(Some(c)) => c,
                    Ok(None) => return, // sent a Retry; the store comes back
                    Err(e) => {
                        tracing::warn!(error = %e, "handshake failed");
                        return;
                    }
                };
                let store_id = match ca.admit_peer(&conn) {
                    Ok(id) => id,
                    Err(e) => {
                        if matches!(e, tls::TlsError::Revoked { .. }) {
                            hub.counters
                                .refused_revoked
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        tracing::warn!(error = %e, remote = %conn.remote_address(), "store refused");
                        return;
                    }
                };
                serve_store(hub, conn, store_id, cancel).await;
            });
        }
        self.endpoint.close(0u32.into(), b"hub shutting down");
        while sessions.join_next().await.is_some() {}
        self.endpoint.wait_idle().await;
    }
}

async fn serve_store(
    hub: Hub,
    conn: quinn::Connection,
    store_id: String,
    cancel: CancellationToken,
) {
    let (send, recv) = match conn.accept_bi().await {
        Ok(s) => s,
        Err(e) => {
            tracing::info!(store = %store_id, error = %e, "store left before its session began");
            return;
        }
    };
    // the newest connection owns the link: an older one is closed
    let session_no = hub.link_up(&store_id, Some(&conn));
    tracing::info!(store = %store_id, remote = %conn.remote_address(), "store connected");
    let host = Arc::new(HubHost::new(hub.clone(), store_id.clone()));
    host.session_began().await;
    let result = session::run(host.clone(), send, recv, hub.subscribe(), cancel).await;
    conn.close(0u32.into(), b"session ended");
    // in-session sync states and the store's idle documents are dropped
    // (the persisted shared heads and chunks remain), unless a newer
    // session of the store owns the link now
    if hub.link_down(&store_id, session_no) {
        host.store_left().await;
    }
    match result {
        Ok(()) => tracing::info!(store = %store_id, "session ended"),
        Err(e) => tracing::info!(store = %store_id, error = %e, "session ended"),
    }
}
