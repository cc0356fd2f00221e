//! The store's link to the hub: one QUIC connection with mutual TLS, kept up
//! with jittered backoff, running the sync session of `linli_sync::session`.
//!
//! The store keeps selling whatever the link does: every fact is on disk in
//! its documents before it is acknowledged, and the session pushes them when
//! the link returns. What the hub sends is applied only to hub-owned
//! documents (the catalog), in the writer's transaction together with the
//! products table it feeds.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use linli_shared::docs::json::records_of;
use linli_shared::docs::{DocId, DocKind, Owner, catalog::read_products};
use linli_shared::online::HubOrderFact;
use linli_shared::rights::HubRights;
use linli_shared::sync::{Index, IndexEntry};
use linli_sync::doc_store::{DocError, Received};
use linli_sync::session::{self, SyncHost};
use linli_sync::tls::{self, StoreIdentity, TransportSettings};
use rand::Rng;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::app::{App, AppError};

/// The peer name under which the hub's sync states are kept.
pub const HUB_PEER: &str = "hub";

/// Where the hub is and who we are.
#[derive(Debug, Clone)]
pub struct UplinkConfig {
    pub hub: SocketAddr,
    /// Name the hub's certificate must carry (`localhost` for a local hub).
    pub server_name: String,
    /// Directory with `store.pem`, `store.key` and `ca.pem` from `linli-hub issue-cert`.
    pub identity: PathBuf,
}

/// What `/health` reports about sync.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SyncHealth {
    /// `no_hub`, `connecting`, `connected`, `disconnected`, or `revoked`
    /// (the hub revoked this store's certificate: it keeps retrying with
    /// backoff until an admin reinstates it).
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hub: Option<String>,
    /// When the current state began.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// Documents with changes the hub has not acknowledged.
    pub pending_docs: usize,
    /// Age of the oldest change the hub has not acknowledged, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_unsynced_secs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// `in_progress` while a new database recovers what the hub holds for
    /// this store (it records nothing until then); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery: Option<String>,
    /// Facts (sales, refunds, stock moves, ...) saved in the store's
    /// database and not yet written to its documents: they are safe, and
    /// not yet counted in `pending_docs`.
    #[serde(default)]
    pub outbox_facts: i64,
    /// Whether the outbox is held: after a start, a store with a hub writes
    /// nothing to its documents until its first session with the hub showed
    /// its database is not behind (DESIGN §3). True while it waits.
    #[serde(default)]
    pub outbox_held: bool,
}

/// A link state, since when, and the last error.
type LinkState = (String, DateTime<Utc>, Option<String>);

/// Shared, updated by the uplink task, read by `/health`.
#[derive(Debug, Default)]
pub struct SyncStatus {
    inner: Mutex<Option<LinkState>>,
    hub: Option<String>,
}

impl SyncStatus {
    pub fn new(hub: Option<SocketAddr>) -> SyncStatus {
        SyncStatus {
            inner: Mutex::new(None),
            hub: hub.map(|h| h.to_string()),
        }
    }

    fn set(&self, state: &str, error: Option<String>) {
        if let Ok(mut g) = self.inner.lock() {
            let keep_since = g
                .as_ref()
                .filter(|(s, _, _)| s == state)
                .map(|(_, t, _)| *t);
            *g = Some((state.to_owned(), keep_since.unwrap_or_else(Utc::now), error));
        }
    }

    pub async fn health(&self, app: &App) -> SyncHealth {
        let (pending_docs, oldest) = app.sync_ctx().pending();
        let (state, since, last_error) = match self.inner.lock().ok().and_then(|g| g.clone()) {
            Some((s, t, e)) => (s, Some(t), e),
            None if self.hub.is_some() => ("connecting".into(), None, None),
            None => ("no_hub".into(), None, None),
        };
        SyncHealth {
            state,
            hub: self.hub.clone(),
            since,
            pending_docs,
            oldest_unsynced_secs: oldest.map(|d| d.as_secs_f64()),
            last_error,
            recovery: app
                .sync_ctx()
                .recovering()
                .then(|| "in_progress".to_owned()),
            outbox_facts: app.outbox_len().await.unwrap_or(0),
            outbox_held: self.hub.is_some() && !app.sync_ctx().confirmed(),
        }
    }
}

/// The store's side of a session: what the sync session asks of the
/// store's replica. The uplink builds one per connection; a deterministic
/// simulation builds them the same way over its virtual network.
pub struct EdgeHost {
    app: App,
    status: Arc<SyncStatus>,
    /// Whether the hub has sent a frame in this session: only then is the
    /// link up (a handshake alone proves nothing, the hub may refuse right
    /// after it).
    linked: std::sync::atomic::AtomicBool,
    /// While recovering: the documents asked of the hub that have not yet
    /// reached the hub's heads here.
    unsettled: Mutex<Option<std::collections::BTreeSet<DocId>>>,
    /// This session's index as sent (what the store held).
    ours: Mutex<Vec<IndexEntry>>,
    /// While recovering: the hub's latest word on what it holds of each
    /// document, from its indexes and from the heads each of its messages
    /// carries (a part asked after that word came may be here already at
    /// those heads).
    theirs: Mutex<std::collections::BTreeMap<DocId, Vec<[u8; 32]>>>,
    /// Until the database is confirmed: the store's own documents whose
    /// heads differ between the two indexes, each waiting for a message of
    /// the hub applied without finding the database behind.
    unconfirmed: Mutex<Option<std::collections::BTreeSet<DocId>>>,
}

/// What `/health` says when the hub revoked this store.
const REVOKED_MESSAGE: &str =
    "本店证书已被总部吊销，无法同步；请联系总部 (the hub revoked this store's certificate)";

impl std::fmt::Debug for EdgeHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeHost")
            .field("store_id", &self.store_id())
            .finish()
    }
}

impl EdgeHost {
    /// The host of one new session of `app`'s link, reporting to `status`.
    pub fn new(app: App, status: Arc<SyncStatus>) -> EdgeHost {
        EdgeHost {
            app,
            status,
            linked: std::sync::atomic::AtomicBool::new(false),
            unsettled: Mutex::new(None),
            ours: Mutex::new(Vec::new()),
            theirs: Mutex::new(std::collections::BTreeMap::new()),
            unconfirmed: Mutex::new(None),
        }
    }

    fn store_id(&self) -> &str {
        &self.app.settings().store_id
    }

    /// Whether the hub has answered in this session.
    pub fn linked(&self) -> bool {
        self.linked.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The session is over: its in-memory sync states go (the persisted
    /// shared heads remain), so the next session starts from what is on disk.
    pub async fn session_ended(&self) {
        // what is written while the link is down starts new parts, which
        // go to the hub whole (compressed) when it is back
        self.app.sync_ctx().roll_parts();
        let sync = self.app.sync_ctx().clone();
        let _ = self
            .app
            .store()
            .write(move |c| {
                sync.with_docs(c, |d| {
                    d.end_session(HUB_PEER);
                    Ok(())
                })
            })
            .await;
    }
}

impl SyncHost for EdgeHost {
    async fn index(&self) -> Result<Index, DocError> {
        let sync = self.app.sync_ctx().clone();
        let store_id = self.store_id().to_owned();
        let clock = self.app.timeline.clock().clone();
        // read before the snapshot: every fact stamped up to it has
        // committed (so the snapshot holds it), and one stamped from now
        // on is stamped later
        let sent_at = self.app.timeline.committed_until();
        let today = self.app.business_day(sent_at);
        // on a read connection: the index lists committed heads only
        self.app
            .sync_ctx()
            .open_docs(self.app.store())
            .await
            .map_err(to_doc_error)?;
        let r = self
            .app
            .store()
            .read(move |c| {
                // one snapshot: the documents and the facts not in them yet
                let snapshot = c
                    .unchecked_transaction()
                    .map_err(crate::store::StoreError::from)?;
                // the oldest fact waiting in this snapshot, and how long it
                // has waited by the clock read after it (so it was stamped
                // before)
                let oldest = crate::app::replication::oldest_waiting_stamp(c)?;
                let waiting = crate::app::replication::waited_since(oldest, || clock());
                let open = sync.with_docs(c, |docs| {
                    // open documents: today's, the catalog, and any the hub
                    // has not acknowledged
                    Ok(docs
                        .scope_index(c, &store_id, HUB_PEER)?
                        .into_iter()
                        .filter(|(e, acked)| {
                            e.doc.kind() == DocKind::Catalog || e.doc.day() == Some(today) || !acked
                        })
                        .map(|(e, _)| e)
                        .collect::<Vec<IndexEntry>>())
                })?;
                snapshot.finish().map_err(crate::store::StoreError::from)?;
                Ok::<_, AppError>((open, waiting, oldest))
            })
            .await;
        let (mut open, facts_waiting, oldest) = r.map_err(to_doc_error)?;
        // the facts it does not list yet were stamped at or after the
        // oldest of them: the index reports up to before it, in the
        // store's own time (the hub's `arrival − facts_waiting` reads later
        // by the index's time in transit)
        let sent_at = oldest.map_or(sent_at, |o| {
            sent_at.min(o - chrono::TimeDelta::milliseconds(1))
        });
        if self.app.sync_ctx().recovering() {
            // a new database asks for what the hub holds: listed with no
            // heads, every document below differs from the hub's copy
            let wanted = crate::app::recovery::wanted(self.store_id(), today);
            for doc in &wanted {
                if !open.iter().any(|e| &e.doc == doc) {
                    open.push(IndexEntry {
                        doc: doc.clone(),
                        heads: Vec::new(),
                    });
                }
            }
            // once per session (a re-sent index does not reopen settled ones)
            if let Ok(mut u) = self.unsettled.lock()
                && u.is_none()
            {
                *u = Some(wanted.into_iter().collect());
            }
        }
        if let Ok(mut o) = self.ours.lock() {
            o.clone_from(&open);
        }
        Ok(Index {
            entries: open,
            facts_waiting,
            sent_at: Some(sent_at),
        })
    }

    /// On a read connection, not the writer: a message offers only
    /// committed changes and writes nothing, so the counter's sales never
    /// wait behind it (`sync_bench` 2c).
    async fn generate(&self, doc: DocId) -> Result<Option<Vec<u8>>, DocError> {
        let sync = self.app.sync_ctx().clone();
        sync.open_docs(self.app.store())
            .await
            .map_err(to_doc_error)?;
        self.app
            .store()
            .read(move |r| sync.with_docs(r, |docs| Ok(docs.generate_unsaved(r, &doc, HUB_PEER)?)))
            .await
            .map_err(to_doc_error)
    }

    async fn receive(&self, doc: DocId, msg: Vec<u8>) -> Result<Received, DocError> {
        let sync = self.app.sync_ctx().clone();
        let member_key = *self.app.member_key;
        // what the hub's message moves (a level, by the rights it changed)
        // is a fact of the store's: stamped, held until committed
        let stamp = self.app.stamp();
        let now = stamp.at();
        let day = self.app.business_day(now);
        let d = doc.clone();
        let settle = self
            .unsettled
            .lock()
            .ok()
            .and_then(|u| u.as_ref().map(|u| u.contains(&doc)))
            .unwrap_or(false);
        // recovering: every message carries the hub's heads of `doc`, its
        // word on what it holds. The message that brought a part may come
        // before the part is asked (the session's first round, for a part
        // a session before a crash brought here); once asked, no round
        // would open for it again, and the hub's index leaves out a part
        // the store acknowledged (found by `linli-sim`, seed 30007 at 5
        // stores × 1,000 steps: a replaced PC stuck in recovery for good)
        let hub_heads = if self.app.sync_ctx().recovering() {
            // (a message that does not decode is refused by the apply)
            match automerge::sync::Message::decode(&msg) {
                Ok(m) => {
                    if let Ok(mut t) = self.theirs.lock() {
                        t.insert(doc.clone(), m.heads.iter().map(|h| h.0).collect());
                    }
                    m.heads
                }
                Err(_) => Vec::new(),
            }
        } else {
            Vec::new()
        };
        let applied = self
            .app
            .write_stamped(stamp, move |c| {
                let applied = sync.with_docs(c, |docs| {
                    let r = match docs.receive(c, &d, HUB_PEER, &Owner::Hub, &msg) {
                        Ok(r) => r,
                        Err(DocError::Behind(why)) => {
                            // this database is older than what it once sent
                            // (restored from a backup): recover first
                            crate::app::recovery::begin(c, docs)?;
                            return Ok(Err(why));
                        }
                        Err(e) => return Err(e.into()),
                    };
                    let (mut products, mut orders, mut rights) = (None, None, None);
                    // only hub documents feed the tables here (a recovering
                    // node also receives its own, projected when it completes)
                    if r.new_changes > 0 && d.owner() == Owner::Hub {
                        match d.kind() {
                            DocKind::Catalog => {
                                // the catalog feeds the products table in the same transaction
                                let list = docs.read(c, &d, read_products)?.unwrap_or_default();
                                let at = crate::app::ts(now);
                                for p in &list {
                                    crate::app::catalog::upsert(c, p, &at)?;
                                }
                                products = Some(crate::app::catalog::read_products(c)?);
                            }
                            // only the entries the new changes touched
                            DocKind::Orders => {
                                let ids = r.keys("orders");
                                orders = docs.read(c, &d, |doc| {
                                    records_of::<HubOrderFact>(doc, "orders", &ids)
                                })?;
                                // group-buys this counter takes part in
                                let ids = r.keys("group_buys");
                                if !ids.is_empty() {
                                    let terms = docs
                                        .read(c, &d, |doc| {
                                            records_of::<linli_shared::groupbuy::CounterTerms>(
                                                doc,
                                                "group_buys",
                                                &ids,
                                            )
                                        })?
                                        .unwrap_or_default();
                                    crate::app::groupbuy::save_terms(c, &terms, now)?;
                                }
                                // the store's markdowns and the coupons its counter takes
                                if r.touched.contains_key("markdowns") {
                                    let m = docs.read(c, &d, |doc| {
                                        linli_shared::docs::json::get_record::<
                                            linli_shared::pricing::StoreMarkdowns,
                                        >(
                                            doc, "markdowns", "current"
                                        )
                                    })?;
                                    if let Some(m) = m.flatten() {
                                        crate::app::promotions::save_markdowns(c, &m)?;
                                    }
                                }
                                let ids = r.keys("coupons");
                                if !ids.is_empty() {
                                    let list = docs
                                        .read(c, &d, |doc| {
                                            records_of::<linli_shared::coupon::CounterCoupon>(
                                                doc, "coupons", &ids,
                                            )
                                        })?
                                        .unwrap_or_default();
                                    // a recall is answered after this
                                    // transaction (`return_recalled_coupons`)
                                    crate::app::promotions::save_coupons(c, &list)?;
                                }
                                // a customer's erasure (PIPL): erase here, confirm after
                                let ids = r.keys("erasures");
                                if !ids.is_empty() {
                                    let notices = docs
                                        .read(c, &d, |doc| {
                                            records_of::<linli_shared::erasure::ErasureNotice>(
                                                doc, "erasures", &ids,
                                            )
                                        })?
                                        .unwrap_or_default();
                                    crate::app::erasure::apply_notices(
                                        c,
                                        &notices,
                                        &member_key,
                                        now,
                                    )?;
                                }
                                // the hub's word that a group-buy failed: the
                                // counter refunds its commitments
                                let ids = r.keys("group_buy_failed");
                                if !ids.is_empty() {
                                    let failures = docs
                                        .read(c, &d, |doc| {
                                            records_of::<linli_shared::groupbuy::CounterFailure>(
                                                doc,
                                                "group_buy_failed",
                                                &ids,
                                            )
                                        })?
                                        .unwrap_or_default();
                                    crate::app::groupbuy::save_failures(c, &failures, now)?;
                                }
                                // a reached group-buy's participants here
                                let ids = r.keys("group_buy_participants");
                                if !ids.is_empty() {
                                    let lists = docs
                                        .read(c, &d, |doc| {
                                            records_of::<linli_shared::groupbuy::ParticipantList>(
                                                doc,
                                                "group_buy_participants",
                                                &ids,
                                            )
                                        })?
                                        .unwrap_or_default();
                                    crate::app::groupbuy::save_participants(
                                        c,
                                        &lists,
                                        &member_key,
                                    )?;
                                }
                            }
                            DocKind::Stock => {
                                let skus = r.keys("rights");
                                rights = docs.read(c, &d, |doc| {
                                    records_of::<HubRights>(doc, "rights", &skus)
                                })?;
                            }
                            DocKind::Ledger | DocKind::Fulfilment => {}
                        }
                    }
                    if docs.acknowledged(c, &d, HUB_PEER)? {
                        sync.acknowledged(&d);
                    }
                    let settled = if settle {
                        settles(c, docs, &d, &hub_heads)?
                    } else {
                        (false, None)
                    };
                    Ok(Ok((r, products, orders, rights, settled)))
                })?;
                let (r, products, orders, rights, settled) = match applied {
                    Ok(a) => a,
                    Err(why) => return Ok(Err(why)),
                };
                if let Some(orders) = orders {
                    let n = crate::app::online::project_hub_orders(c, &orders)?;
                    if n > 0 {
                        tracing::info!(orders = n, "online orders from the hub");
                    }
                }
                let mut written = false;
                if let Some(rights) = rights {
                    // what the hub consumed, returned or wants changes what
                    // the store lends: the store's step runs in this commit
                    let mut moved = Vec::new();
                    for (sku, h) in &rights {
                        if crate::app::rights::merge_hub_rights(c, sku, h)? {
                            moved.push(sku.as_str());
                        }
                    }
                    // (a recovering node takes its step once recovered)
                    if !moved.is_empty() && !sync.recovering() {
                        let mut p = crate::app::replication::Publish::new(c, &sync, day, now);
                        p.levels(moved);
                        written = p.finish()?;
                    }
                }
                Ok(Ok((r, products, written, settled)))
            })
            .await
            .map_err(to_doc_error)?;
        let (received, products, written, settled) = match applied {
            Ok(a) => a,
            Err(why) => {
                self.app.sync_ctx().set_recovering(true);
                tracing::error!(
                    %why,
                    "this database is older than what the store once sent the hub (restored from a backup?): recovering from the hub before writing"
                );
                return Err(DocError::Restart(why));
            }
        };
        if written {
            self.app.sync_ctx().outbox_written();
        }
        self.confirmed_by(&doc);
        if doc.kind() == DocKind::Orders
            && doc.owner() == Owner::Hub
            && received.touched.contains_key("markdowns")
        {
            if let Err(e) = self.app.reload_rules().await {
                tracing::warn!(error = %e, "markdowns from the hub kept, but not reloaded");
            } else {
                tracing::info!(%doc, "markdowns updated from the hub");
            }
        }
        // a recalled coupon allotment: the counter gives back what it has
        // not spent, in its own ledger (nothing while recovering: its
        // spending is not back yet; recovery's end answers it)
        if doc.kind() == DocKind::Orders
            && doc.owner() == Owner::Hub
            && received.touched.contains_key("coupons")
            && !self.app.sync_ctx().recovering()
            && let Err(e) = self.app.return_recalled_coupons().await
        {
            tracing::warn!(error = %e, "a coupon recall kept, its return not yet written");
        }
        if doc.kind() == DocKind::Orders
            && doc.owner() == Owner::Hub
            && received.touched.contains_key("erasures")
            && let Err(e) = self.app.confirm_erasures().await
        {
            // confirmed at the next start or the next notice
            tracing::warn!(error = %e, "erasure done, its confirmation not yet written");
        }
        if let Some(products) = products {
            tracing::info!(products = products.len(), %doc, "catalog updated from the hub");
            self.app.swap_catalog(products);
        }
        let (settled, next) = settled;
        if settled {
            self.settle(&doc, next).await?;
        }
        Ok(received)
    }

    /// Recovering: a document the hub lists with heads this replica already
    /// holds is settled at once. No round would ever settle it, since
    /// neither side opens one for a document whose heads are the same on
    /// both (it happens when the session that found this database behind
    /// had already brought the document here, and the hub did not hear the
    /// acknowledgement before that session ended).
    async fn peer_index(&self, index: Index) -> Result<(), DocError> {
        if let Some(at) = index.sent_at {
            // the hub's time has passed this: a clock behind it does not
            // take the counter back before the hub's deadlines
            self.app.timeline.observe(at);
        }
        let index = index.entries;
        self.confirm_from_index(&index);
        if !self.app.sync_ctx().recovering() {
            return Ok(());
        }
        if let Ok(mut t) = self.theirs.lock() {
            t.extend(index.iter().map(|e| (e.doc.clone(), e.heads.clone())));
        }
        let listed: Vec<IndexEntry> = match self.unsettled.lock() {
            Ok(u) => match u.as_ref() {
                Some(set) => index.into_iter().filter(|e| set.contains(&e.doc)).collect(),
                None => return Ok(()),
            },
            Err(_) => return Ok(()),
        };
        if listed.is_empty() {
            return Ok(());
        }
        let found = self.here_at(listed).await?;
        for (doc, next) in found {
            tracing::debug!(%doc, "recovering: the hub listed what is already here");
            self.settle(&doc, next).await?;
        }
        Ok(())
    }

    fn scope(&self) -> &str {
        self.store_id()
    }

    fn on_activity(&self) {
        if !self.linked.swap(true, std::sync::atomic::Ordering::Relaxed) {
            self.status.set("connected", None);
            tracing::info!("linked with the hub");
        }
    }
}

/// Whether the hub closed `conn` because this store is revoked.
fn closed_as_revoked(conn: &quinn::Connection) -> bool {
    matches!(
        conn.close_reason(),
        Some(quinn::ConnectionError::ApplicationClosed(c)) if c.error_code == quinn::VarInt::from_u32(tls::CLOSE_REVOKED)
    )
}

impl EdgeHost {
    /// The first index of the hub this session: the store's own documents
    /// whose heads differ are the ones a message of the hub must be applied
    /// for (one that finds the database behind starts a recovery instead);
    /// none differing confirms the database at once.
    fn confirm_from_index(&self, theirs: &[IndexEntry]) {
        let sync = self.app.sync_ctx();
        if sync.confirmed() || sync.recovering() {
            return;
        }
        let Ok(mut pending) = self.unconfirmed.lock() else {
            return;
        };
        if pending.is_some() {
            return;
        }
        let ours = self.ours.lock().map(|o| o.clone()).unwrap_or_default();
        let own = Owner::Store(self.store_id().to_owned());
        let set: std::collections::BTreeSet<DocId> =
            linli_shared::sync::docs_to_sync(&ours, theirs, |d| d.owner() == own)
                .into_iter()
                .chain(linli_shared::sync::docs_to_sync(theirs, &ours, |d| {
                    d.owner() == own
                }))
                .collect();
        if set.is_empty() {
            tracing::debug!("the hub holds nothing of this store's that it lacks: confirmed");
            sync.confirm();
        } else {
            *pending = Some(set);
        }
    }

    /// A message of the hub about `doc` was applied without finding the
    /// database behind.
    fn confirmed_by(&self, doc: &DocId) {
        let sync = self.app.sync_ctx();
        if sync.confirmed() || sync.recovering() {
            return;
        }
        let Ok(mut pending) = self.unconfirmed.lock() else {
            return;
        };
        if let Some(set) = pending.as_mut() {
            set.remove(doc);
            if set.is_empty() {
                tracing::debug!(
                    "every differing document of this store's is level with the hub: confirmed"
                );
                sync.confirm();
            }
        }
    }

    /// A document asked of the hub during recovery is here whole (and
    /// `next`, the part after it, is wanted now); once all are, recovery
    /// completes in one transaction.
    ///
    /// The part asked next may be here already at the heads the hub last
    /// gave for it, in its index or in a message (brought by a session
    /// before a crash): no round would settle it, since neither side opens
    /// one for a document whose heads are the same on both, and the
    /// recovery would wait for the hub's next index (found by `linli-sim`,
    /// seed 20: a replaced PC crashed mid-recovery), or for good where the
    /// index leaves the part out (seed 30007). It settles here at once, and
    /// so on part by part.
    async fn settle(&self, doc: &DocId, next: Option<DocId>) -> Result<(), DocError> {
        let (mut doc, mut next) = (doc.clone(), next);
        loop {
            if let Some(next) = &next {
                // wanted before this part settles, so recovery cannot end
                // between the two; the notification makes the session ask
                if let Ok(mut u) = self.unsettled.lock()
                    && let Some(set) = u.as_mut()
                {
                    set.insert(next.clone());
                }
                self.app.sync_ctx().ask(next.clone());
            }
            let all_settled = match self.unsettled.lock() {
                Ok(mut u) => match u.as_mut() {
                    Some(set) => {
                        set.remove(&doc);
                        set.is_empty()
                    }
                    None => false,
                },
                Err(_) => false,
            };
            if all_settled && self.app.sync_ctx().recovering() {
                return self.complete_recovery().await;
            }
            let Some(part) = next else {
                return Ok(());
            };
            let listed = self.theirs.lock().ok().and_then(|t| t.get(&part).cloned());
            let Some(heads) = listed else {
                return Ok(());
            };
            let Some((_, after)) = self
                .here_at(vec![IndexEntry {
                    doc: part.clone(),
                    heads,
                }])
                .await?
                .pop()
            else {
                return Ok(());
            };
            tracing::debug!(doc = %part, "recovering: the part asked is here at the hub's heads");
            (doc, next) = (part, after);
        }
    }

    /// Recovering: of `entries` (documents at the heads the hub gave for
    /// them), those held here whole, each with the part to ask for next.
    async fn here_at(
        &self,
        entries: Vec<IndexEntry>,
    ) -> Result<Vec<(DocId, Option<DocId>)>, DocError> {
        let sync = self.app.sync_ctx().clone();
        self.app
            .store()
            .write(move |c| {
                sync.with_docs(c, |docs| {
                    let mut out = Vec::new();
                    for e in entries {
                        let heads: Vec<automerge::ChangeHash> =
                            e.heads.iter().map(|h| automerge::ChangeHash(*h)).collect();
                        if let (true, next) = settles(c, docs, &e.doc, &heads)? {
                            out.push((e.doc, next));
                        }
                    }
                    Ok(out)
                })
            })
            .await
            .map_err(to_doc_error)
    }

    /// Ends a recovery whose documents are all here: in one transaction,
    /// then the counter's rules, rights and recalls as after a start.
    async fn complete_recovery(&self) -> Result<(), DocError> {
        let sync = self.app.sync_ctx().clone();
        let store_id = self.store_id().to_owned();
        let now = self.app.now();
        let today = self.app.business_day(now);
        let offset = self.app.settings.utc_offset;
        let (report, floor) = self
            .app
            .store()
            .write(move |c| {
                let report = sync.with_docs(c, |docs| {
                    crate::app::recovery::complete(c, docs, &store_id, today, now)
                })?;
                // the old PC's latest time, as a restart would read it: a
                // PC whose clock ran ahead past midnight wrote tomorrow's
                // documents, and this one must not write an earlier day's
                // after them (the hub keeps a store's level from its latest
                // day)
                let floor = crate::app::timeline::latest_used(c, &store_id, offset)?;
                Ok::<_, crate::app::AppError>((report, floor))
            })
            .await
            .map_err(to_doc_error)?;
        if let Some(t) = floor {
            self.app.timeline.raise(t);
        }
        if let Ok(mut u) = self.unsettled.lock() {
            *u = None;
        }
        self.app.sync_ctx().set_recovering(false);
        // facts a restored database held in its outbox go out now
        self.app.sync_ctx().confirm();
        self.app.sync_ctx().outbox_written();
        tracing::info!(
            sales = report.sales,
            last_ticket_seq = report.last_ticket_seq,
            levels = report.levels,
            rebuilt = ?report.rebuilt,
            "recovered the store's data from the hub; writing under a new actor from now on"
        );
        // a recall that arrived before the crash, or during the recovery
        if let Err(e) = self.app.return_recalled_coupons().await {
            tracing::warn!(error = %e, "could not give back recalled coupon allotments after recovery");
        }
        // the markdowns the recovery restored price the counter from now on
        if let Err(e) = self.app.reload_rules().await {
            tracing::warn!(error = %e, "markdowns recovered, but not reloaded");
        }
        if let Err(e) = self.app.rebalance_rights().await {
            tracing::warn!(error = %e, "could not rebalance stock rights after recovery");
        }
        Ok(())
    }
}

/// Recovering: whether `doc` is settled, every head the hub announced for
/// it being here, and if so the part to ask for next (a part of the
/// store's own ledger or stock that came with something in it).
fn settles(
    c: &rusqlite::Connection,
    docs: &mut linli_sync::doc_store::Docs,
    doc: &DocId,
    hub_heads: &[automerge::ChangeHash],
) -> Result<(bool, Option<DocId>), AppError> {
    let settled = docs
        .read(c, doc, |d| {
            hub_heads
                .iter()
                .all(|h| automerge::ReadDoc::get_change_by_hash(d, h).is_some())
        })?
        .unwrap_or(hub_heads.is_empty());
    let next = if settled && docs.exists(c, doc)? {
        crate::app::recovery::next_part(doc)
    } else {
        None
    };
    Ok((settled, next))
}

fn to_doc_error(e: AppError) -> DocError {
    match e {
        AppError::Store(s) => DocError::Message(s.to_string()),
        other => DocError::Message(other.to_string()),
    }
}

/// Keeps the link to the hub up until `cancel`.
pub async fn run(app: App, cfg: UplinkConfig, status: Arc<SyncStatus>, cancel: CancellationToken) {
    tls::install_crypto_provider();
    let setup = (|| {
        let identity = StoreIdentity::load(&cfg.identity)?;
        if identity.store_id() != app.settings().store_id {
            return Err(anyhow::anyhow!(
                "identity in {} is for store {}, this node is {}",
                cfg.identity.display(),
                identity.store_id(),
                app.settings().store_id
            ));
        }
        let client = tls::client_config(&identity, TransportSettings::default())?;
        Ok(tls::client_endpoint(client, cfg.hub)?)
    })();
    let endpoint = match setup {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "uplink cannot start");
            status.set("disconnected", Some(e.to_string()));
            return;
        }
    };
    // lend the hub its share of every SKU before the first session
    if let Err(e) = app.rebalance_rights().await {
        tracing::warn!(error = %e, "could not rebalance stock rights");
    }
    let mut backoff = Duration::from_millis(100);
    let mut revoked = false;
    loop {
        // a revoked store stays `revoked` while it retries
        if !revoked {
            status.set("connecting", None);
        }
        let attempt = tokio::select! {
            _ = cancel.cancelled() => break,
            c = tls::connect(&endpoint, cfg.hub, &cfg.server_name) => c,
        };
        let error = match attempt {
            Ok(conn) => {
                let host = Arc::new(EdgeHost::new(app.clone(), status.clone()));
                let result = async {
                    let (send, recv) = conn.open_bi().await?;
                    tracing::info!(hub = %cfg.hub, "connected to the hub");
                    session::run(
                        host.clone(),
                        send,
                        recv,
                        app.sync_ctx().subscribe(),
                        cancel.child_token(),
                    )
                    .await?;
                    Ok::<_, anyhow::Error>(())
                }
                .await;
                if result.is_err() && conn.close_reason().is_none() {
                    // the stream failed first: let the connection say why
                    let _ = tokio::time::timeout(Duration::from_millis(500), conn.closed()).await;
                }
                revoked = closed_as_revoked(&conn);
                // only a session the hub answered resets the backoff: a hub
                // that refuses right after the handshake is retried slower
                if host.linked() {
                    backoff = Duration::from_millis(100);
                }
                conn.close(0u32.into(), b"bye");
                host.session_ended().await;
                result.err().map(|e| e.to_string())
            }
            Err(e) => Some(e.to_string()),
        };
        if cancel.is_cancelled() {
            break;
        }
        if revoked {
            tracing::warn!("the hub revoked this store's certificate; retrying with backoff");
            status.set("revoked", Some(REVOKED_MESSAGE.to_owned()));
        } else {
            tracing::warn!(error = ?error, "link to the hub lost; retrying");
            status.set("disconnected", error);
        }
        // jittered exponential backoff: 100 ms doubling to 5 s, ±50 %
        let jitter = rand::thread_rng().gen_range(0.5..1.5);
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(backoff.mul_f64(jitter)) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
    endpoint.close(0u32.into(), b"shutdown");
    endpoint.wait_idle().await;
}

#[cfg(test)]
mod tests;
