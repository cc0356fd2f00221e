//! The hub's state and its own few use cases: users (logins and sessions),
//! the catalog document, what the stores have sent (as the query tables
//! hold it), and the status of each store's link. Writing what a store
//! sends into those tables is `app::projection`'s; the features' use cases
//! are the `app` layer's, above this module (it names none of them).
//!
//! Every write runs on the database's writer thread, the documents with it,
//! so a received sale and its row in `hub_sales` commit together.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, SaltString};
use chrono::{DateTime, NaiveDate, Utc};
use linli_shared::catalog::{RejectedRow, parse_catalog_csv};
use linli_shared::docs::catalog::put_products;
use linli_shared::docs::{DocId, Owner};
use linli_shared::login_guard::{CheckWorkers, LoginGuard, LoginLimits, Refusal};
use linli_shared::sync::{Index, IndexEntry};
use linli_sync::clock::{Clock, system_clock};
use linli_sync::db::{Store, StoreError};
use linli_sync::doc_store::{DocError, Docs, Received};
use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;

use crate::auth::{Role, User};
use crate::error::HubError;

/// The current catalog epoch. A new epoch (a fresh document seeded from the
/// last one) is the way to bound the catalog's history; one import is one
/// change, so an epoch lasts thousands of imports.
pub const CATALOG_EPOCH: u32 = 1;

/// One store's link as the hub sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkStatus {
    pub connected: bool,
    pub since: DateTime<Utc>,
    pub last_activity: DateTime<Utc>,
    pub changes_applied: u64,
    pub refused: u64,
    /// When the store last "reported": the hub's time at which the store
    /// sent an index the hub has since caught up with (every change of
    /// the store's own documents it listed is here), less how long the
    /// store's oldest fact not yet in those documents had waited
    /// ([`Index::facts_waiting`]). Whatever the store committed before
    /// then (a counter commitment taken offline) is at the hub. `None`
    /// until that happens after the hub started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_at: Option<DateTime<Utc>>,
    /// The session that owns the link (the newest connection with the
    /// store's certificate); an older session ending leaves it alone.
    #[serde(skip)]
    pub session: u64,
}

/// Links as the hub sees them, and the live connection of each.
#[derive(Debug, Default)]
struct Links {
    status: HashMap<String, LinkStatus>,
    /// The connection that owns each store's link, by session number
    /// (`None`: a session over a simulation's virtual network).
    live: HashMap<String, (u64, Option<quinn::Connection>)>,
    next_session: u64,
    /// Each store's newest index the hub has not yet caught up with: when
    /// it arrived, and the heads it listed of the store's own documents.
    pending_reports: HashMap<String, (DateTime<Utc>, Vec<IndexEntry>)>,
}

/// Counters of link events, exposed in `/metrics`.
#[derive(Debug, Default)]
pub struct LinkCounters {
    /// Sessions closed because a newer connection presented the same
    /// store certificate.
    pub sessions_replaced: std::sync::atomic::AtomicU64,
    /// Live sessions cut because their store was revoked.
    pub sessions_revoked: std::sync::atomic::AtomicU64,
    /// Connections refused at admission because their store is revoked.
    pub refused_revoked: std::sync::atomic::AtomicU64,
    /// Sessions that ended (for whatever reason).
    pub sessions_ended: std::sync::atomic::AtomicU64,
}

/// QUIC close code for a session replaced by a newer connection of the
/// same store.
pub const CLOSE_REPLACED: u32 = 0x4c02;

/// How long a connected store may leave changes unacknowledged, with no
/// frame from it, before it counts as stuck.
pub const STUCK_AFTER_SECS: i64 = 60;

/// Paths of the hub's files inside its data directory.
#[derive(Debug, Clone)]
pub struct HubPaths {
    pub data_dir: PathBuf,
}

impl HubPaths {
    pub fn db(&self) -> PathBuf {
        self.data_dir.join("hub.db")
    }
    pub fn ca_dir(&self) -> PathBuf {
        self.data_dir.join("ca")
    }
    pub fn signing_key(&self) -> PathBuf {
        self.data_dir.join("pickup-signing.key")
    }
    /// The chain's member key (0600): stores hash member phones under it
    /// ([`linli_shared::member`]); it goes to each store with its identity.
    pub fn member_key(&self) -> PathBuf {
        self.data_dir.join("member.key")
    }
}

/// The hub's core. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Hub {
    pub store: Store,
    docs: Arc<Mutex<Option<Docs>>>,
    pub(crate) changes: broadcast::Sender<DocId>,
    links: Arc<Mutex<Links>>,
    /// Link event counters for `/metrics`.
    pub counters: Arc<LinkCounters>,
    /// A connected store with changes waiting unacknowledged and no frame
    /// for longer than this many seconds is `stuck`.
    stuck_after_secs: Arc<std::sync::atomic::AtomicI64>,
    /// Stores and products for routing and pricing (rebuilt on import).
    pub(crate) directory: Arc<std::sync::RwLock<crate::directory::Directory>>,
    pub(crate) order_settings: Arc<crate::settings::OrderSettings>,
    /// The key that signs pickup codes (`pickup-signing.key`, 0600).
    pub(crate) signing: Arc<ed25519_dalek::SigningKey>,
    /// Who may try a password or open a session now.
    pub(crate) gate: Arc<Gate>,
    /// Wakes the refund worker when a refund is queued.
    pub(crate) pay_wake: Arc<tokio::sync::Notify>,
    /// The chain's member key (`member.key`, 0600): ties a counter sale's
    /// member hash to a customer.
    pub(crate) member_key: Arc<[u8; 32]>,
    /// The persons last read for the figures, with the `people_version`
    /// they were read at.
    pub(crate) people: Arc<crate::people::PeopleCache>,
    /// Where the hub's "now" comes from ([`Hub::now`]).
    clock: HubClock,
}

/// The hub's [`Clock`], in a field `Debug` can print.
#[derive(Clone)]
struct HubClock(Clock);

impl std::fmt::Debug for HubClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HubClock")
    }
}

/// How many argon2 checks may run at once (each holds ~19 MiB of memory).
pub const MAX_CONCURRENT_PASSWORD_CHECKS: usize = 2;

/// Lockouts and address buckets of logins and of customer sessions, and the
/// bound on concurrent password checks.
#[derive(Debug)]
pub(crate) struct Gate {
    logins: Mutex<LoginGuard>,
    sessions: Mutex<LoginGuard>,
    checks: CheckWorkers,
    checked: AtomicU64,
}

impl Gate {
    fn new(s: &crate::settings::OrderSettings) -> Gate {
        Gate {
            logins: Mutex::new(LoginGuard::new(s.login)),
            sessions: Mutex::new(LoginGuard::new(LoginLimits {
                per_addr_burst: s.sessions_per_addr_burst.max(1),
                per_addr_per_minute: s.sessions_per_addr_per_minute,
                ..LoginLimits::default()
            })),
            checks: CheckWorkers::new("password-check", MAX_CONCURRENT_PASSWORD_CHECKS),
            checked: AtomicU64::new(0),
        }
    }

    fn logins(&self) -> std::sync::MutexGuard<'_, LoginGuard> {
        match self.logins.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Takes one customer-session creation from `addr`'s bucket.
    pub(crate) fn session_from(&self, addr: &str, now: DateTime<Utc>) -> Result<(), HubError> {
        let mut g = match self.sessions.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.take_addr(addr, now).map_err(refused)
    }
}

fn refused(r: Refusal) -> HubError {
    match r {
        Refusal::LockedOut { retry_after_secs } => HubError::LockedOut { retry_after_secs },
        Refusal::RateLimited { retry_after_secs } => HubError::RateLimited { retry_after_secs },
    }
}

/// A reserved login attempt; one dropped unsettled (the client went away
/// during the check) counts as a failure. Settled at the hub's time when
/// the check ends.
struct Attempt<'a> {
    gate: &'a Gate,
    clock: &'a Clock,
    name: &'a str,
    settled: bool,
}

impl Attempt<'_> {
    fn settle(mut self, ok: bool) {
        self.settled = true;
        self.gate.logins().settle(self.name, ok, (self.clock)());
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.gate.logins().settle(self.name, false, (self.clock)());
        }
    }
}

/// The hash an unknown name's password is checked against, so that a wrong
/// name costs as long as a wrong password.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Argon2::default()
            .hash_password(b"not-a-password", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

fn token_hash(t: &str) -> String {
    hex::encode(Sha256::digest(t.as_bytes()))
}

/// Adds a hub user (the `user add` command). A [`Role::Manager`] needs its
/// store: use [`add_store_manager`]; a [`Role::Regional`] its region: use
/// [`add_regional_manager`]. These one-off commands run on a bare
/// connection, not in a [`Hub`]: the user's `created_at` is the system
/// time.
pub fn add_user(c: &Connection, name: &str, role: Role, password: &str) -> Result<(), HubError> {
    match role {
        Role::Manager => Err(HubError::Invalid(
            "a manager belongs to a store: give --store".into(),
        )),
        Role::Regional => Err(HubError::Invalid(
            "a regional manager belongs to a region: give --region".into(),
        )),
        Role::Admin => insert_user(c, name, role, None, None, password),
    }
}

/// Adds a regional manager (`user add --role regional --region 杭州西区`):
/// a hub login that sees the stores of that region (the `region` column of
/// the store directory) and their customers.
pub fn add_regional_manager(
    c: &Connection,
    name: &str,
    region: &str,
    password: &str,
) -> Result<(), HubError> {
    let region =
        linli_shared::login_guard::clean_text("region", region, 64).map_err(HubError::Invalid)?;
    insert_user(c, name, Role::Regional, None, Some(&region), password)
}

/// Adds the manager of one store (`user add --role manager --store S001`):
/// a hub login that runs that store's live sessions and nothing else.
pub fn add_store_manager(
    c: &Connection,
    name: &str,
    store_id: &str,
    password: &str,
) -> Result<(), HubError> {
    let store =
        linli_shared::login_guard::clean_text("store", store_id, 32).map_err(HubError::Invalid)?;
    insert_user(c, name, Role::Manager, Some(&store), None, password)
}

fn insert_user(
    c: &Connection,
    name: &str,
    role: Role,
    store_id: Option<&str>,
    region: Option<&str>,
    password: &str,
) -> Result<(), HubError> {
    let name =
        linli_shared::login_guard::clean_text("name", name, 64).map_err(HubError::Invalid)?;
    let name = name.as_str();
    if password.len() < 8 {
        return Err(HubError::Invalid(
            "password must be at least 8 characters".into(),
        ));
    }
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| HubError::Invalid(e.to_string()))?
        .to_string();
    let created_at = system_clock()().to_rfc3339();
    let n = c.execute(
        "INSERT OR IGNORE INTO users(name, role, pw_hash, created_at, store_id, region) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![name, role.as_str(), hash, created_at, store_id, region],
    )?;
    if n == 0 {
        return Err(HubError::UserExists(name.to_owned()));
    }
    Ok(())
}

/// Opens the hub's database for a one-off command.
pub fn open_conn(db: &Path) -> Result<Connection, StoreError> {
    linli_sync::db::open_writer_conn(db, crate::store::schema::migrate)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HubSale {
    pub sale_id: String,
    pub ticket_no: String,
    pub total_fen: i64,
    /// What the store refunded of this sale so far (any day's refunds).
    pub refunded_fen: i64,
    pub cashier: String,
    pub created_at: String,
    pub lines: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HubStock {
    pub store_id: String,
    pub sku: String,
    pub on_hand: i64,
    pub reserved: i64,
    /// The store's business day of the document this level came from.
    pub as_of_day: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CatalogReport {
    pub imported: usize,
    pub changed: usize,
    pub rejected: Vec<RejectedRow>,
}

impl Hub {
    pub fn open(paths: &HubPaths) -> anyhow::Result<Hub> {
        Self::open_with(paths, crate::settings::OrderSettings::default())
    }

    /// Opens the hub with the chain's order settings.
    pub fn open_with(
        paths: &HubPaths,
        order_settings: crate::settings::OrderSettings,
    ) -> anyhow::Result<Hub> {
        Self::open_with_clock(paths, order_settings, system_clock())
    }

    /// Opens the hub with the chain's order settings on `clock`: every
    /// business time the hub reads (expiries, deadlines, business days,
    /// the times it stamps) comes from it, so tests and simulations drive
    /// the hub's time by hand ([`linli_sync::clock::ManualClock`]).
    pub fn open_with_clock(
        paths: &HubPaths,
        order_settings: crate::settings::OrderSettings,
        clock: Clock,
    ) -> anyhow::Result<Hub> {
        linli_sync::db::create_private_dir(&paths.data_dir)?;
        let docs: Arc<Mutex<Option<Docs>>> = Arc::new(Mutex::new(None));
        let (d1, d2) = (docs.clone(), docs.clone());
        let (compactions, copies) = crate::store::compactor::channel();
        // the hub's documents are persisted once per batch: every order of
        // a live burst changes the same two documents of its store, and an
        // incremental save costs what the document's history costs
        // (docs/DECISIONS.md, "Live bursts: one chunk per document per
        // batch"); the chunks commit with the batch or not at all
        let store = Store::open_with_hooks(
            &paths.db(),
            crate::store::schema::migrate,
            linli_sync::db::Hooks {
                before_commit: Some(Arc::new(move |c: &Connection| {
                    let mut g = d1.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    match g.as_mut() {
                        Some(docs) => {
                            // the batch's rights totals, once per SKU
                            crate::store::rights::write_deferred(c, docs)
                                .map_err(|e| StoreError::Sql(e.to_string()))?;
                            // the batch's orders, one change per document
                            crate::store::orders::write_deferred(c, docs)
                                .map_err(|e| StoreError::Sql(e.to_string()))?;
                            docs.persist_pending(c)
                                .map_err(|e| StoreError::Sql(e.to_string()))
                        }
                        None => Ok(()),
                    }
                })),
                on_commit: Some(Arc::new(move |_, _, committed| {
                    let mut g = d2.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    if let Some(docs) = g.as_mut() {
                        docs.batch_ended(committed);
                        // documents due for compaction, as committed: saved
                        // whole off the writer
                        let due = docs.take_compactions();
                        if !due.is_empty() && compactions.send(due).is_err() {
                            tracing::warn!("the compactor has stopped; documents stay uncompacted");
                        }
                    }
                })),
            },
        )?;
        crate::store::compactor::start(store.clone(), docs.clone(), copies)?;
        let signing = crate::signing::load_or_create(&paths.signing_key())?;
        let member_key = crate::signing::load_or_create_secret(&paths.member_key())?;
        // customers known before the hub kept their member hash (issue 12):
        // hashed once, on a connection of its own before any request runs
        {
            let conn =
                linli_sync::db::open_writer_conn(&paths.db(), crate::store::schema::migrate)?;
            crate::store::members::backfill_member_hashes(&conn, &member_key)?;
        }
        let hub = Hub {
            member_key: Arc::new(member_key),
            people: Arc::default(),
            store,
            docs,
            changes: broadcast::channel(4096).0,
            links: Arc::new(Mutex::new(Links::default())),
            counters: Arc::new(LinkCounters::default()),
            stuck_after_secs: Arc::new(std::sync::atomic::AtomicI64::new(STUCK_AFTER_SECS)),
            directory: Arc::new(std::sync::RwLock::new(Default::default())),
            gate: Arc::new(Gate::new(&order_settings)),
            order_settings: Arc::new(order_settings),
            signing: Arc::new(signing),
            pay_wake: Arc::new(tokio::sync::Notify::new()),
            clock: HubClock(clock),
        };
        Ok(hub)
    }

    /// The hub's time now, by its clock: the only "now" its use cases read.
    pub fn now(&self) -> DateTime<Utc> {
        (self.clock.0)()
    }

    /// The chain's member key (what stores hash members' phones under): for
    /// the hub's own tools and tests; it never leaves the chain.
    pub fn chain_member_key(&self) -> [u8; 32] {
        *self.member_key
    }

    /// Runs `f` with the hub's documents on the writer thread.
    pub async fn with_docs<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &mut Docs) -> Result<T, HubError> + Send + 'static,
    ) -> Result<T, HubError> {
        let docs = self.docs.clone();
        self.store
            .write(move |c| {
                let mut g = match docs.lock() {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
                if g.is_none() {
                    let mut d = Docs::open(c, Owner::Hub)?;
                    d.defer_persistence();
                    *g = Some(d);
                }
                match g.as_mut() {
                    Some(d) => {
                        // a failed job is rolled back to its savepoint: its
                        // document changes leave memory with it
                        d.begin_job(c);
                        let r = f(c, d);
                        d.end_job(c, r.is_ok());
                        r
                    }
                    None => Err(HubError::Store(StoreError::Closed)),
                }
            })
            .await
    }

    pub fn subscribe(&self) -> broadcast::Receiver<DocId> {
        self.changes.subscribe()
    }

    /// Imports a catalog CSV into the hub's catalog document; every store
    /// receives it by sync.
    pub async fn import_catalog(
        &self,
        user: &User,
        csv: Vec<u8>,
    ) -> Result<CatalogReport, HubError> {
        if user.role != Role::Admin {
            return Err(HubError::Forbidden);
        }
        let parsed = parse_catalog_csv(&csv)?;
        let id = DocId::catalog(CATALOG_EPOCH);
        let products: Vec<_> = parsed.products.iter().map(|(_, p)| p.clone()).collect();
        let imported = products.len();
        let doc = id.clone();
        let changed = self
            .with_docs(move |c, docs| {
                let mut changed = 0;
                docs.change(c, &doc, |d| {
                    changed = put_products(d, &products)?;
                    Ok(())
                })?;
                Ok(changed)
            })
            .await?;
        if changed > 0 {
            let _ = self.changes.send(id);
        }
        self.reload_directory().await?;
        Ok(CatalogReport {
            imported,
            changed,
            rejected: parsed.rejected,
        })
    }

    /// Counts a store's message on its link: its activity, the changes
    /// applied or the refusal.
    pub(crate) fn count_received(&self, store_id: &str, r: &Result<Received, HubError>) {
        if let Ok(mut links) = self.links.lock()
            && let Some(l) = links.status.get_mut(store_id)
        {
            l.last_activity = self.now();
            match r {
                Ok(rec) => l.changes_applied += rec.new_changes as u64,
                Err(HubError::Doc(DocError::Refused(_))) => l.refused += 1,
                Err(_) => {}
            }
        }
    }

    /// A store's session begins on `conn`: it owns the store's link from
    /// now on. An older live connection of the same store (a second node
    /// with the same certificate, or a reconnect the hub has not yet seen
    /// die) is closed, logged as a warning and counted. Returns the
    /// session's number, for [`Hub::link_down`]. A deterministic
    /// simulation's sessions have no connection (`None`).
    pub fn link_up(&self, store_id: &str, conn: Option<&quinn::Connection>) -> u64 {
        let Ok(mut links) = self.links.lock() else {
            return 0;
        };
        links.next_session += 1;
        let session = links.next_session;
        if let Some((_, old)) = links
            .live
            .insert(store_id.to_owned(), (session, conn.cloned()))
        {
            self.counters
                .sessions_replaced
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Some(old) = old {
                old.close(
                    CLOSE_REPLACED.into(),
                    b"replaced by a newer connection with this store's certificate",
                );
                tracing::warn!(
                    store = %store_id,
                    old = %old.remote_address(),
                    new = ?conn.map(quinn::Connection::remote_address),
                    "a second connection presented this store's certificate: the older one is closed"
                );
            }
        }
        let now = self.now();
        let e = links
            .status
            .entry(store_id.to_owned())
            .or_insert(LinkStatus {
                connected: true,
                since: now,
                last_activity: now,
                changes_applied: 0,
                refused: 0,
                reported_at: None,
                session,
            });
        e.connected = true;
        e.since = now;
        e.last_activity = now;
        e.session = session;
        session
    }

    /// A store's index arrived (it lists what the store held as its session
    /// began): the store has reported once the hub holds all of it, which
    /// may be at once, for what it had committed `index.facts_waiting`
    /// before it sent it (its facts still in its outbox are not listed),
    /// and no later than the store's own time as it sent it
    /// (`index.sent_at`: a counter whose clock is behind may still take
    /// commitments the hub's deadline has closed, until its time passes it).
    pub async fn store_index(&self, store_id: &str, index: Index) -> Result<(), HubError> {
        let own = Owner::Store(store_id.to_owned());
        let listed: Vec<IndexEntry> = index
            .entries
            .into_iter()
            .filter(|e| e.doc.owner() == own)
            .collect();
        let waited =
            chrono::Duration::from_std(index.facts_waiting).unwrap_or(chrono::Duration::MAX);
        let at = self
            .now()
            .checked_sub_signed(waited)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        // and no later than the store's own time: until its time has
        // passed a deadline its counter may still take what the deadline
        // closes (a clock behind the chain's), stamped before it
        let at = index.sent_at.map_or(at, |own| at.min(own));
        if let Ok(mut links) = self.links.lock() {
            links
                .pending_reports
                .insert(store_id.to_owned(), (at, listed));
        }
        self.check_report(store_id).await
    }

    /// Marks the store reported if the hub now holds everything its newest
    /// index listed (called after each of its messages is applied).
    pub async fn check_report(&self, store_id: &str) -> Result<(), HubError> {
        let pending = match self.links.lock() {
            Ok(links) => links.pending_reports.get(store_id).cloned(),
            Err(_) => None,
        };
        let Some((at, listed)) = pending else {
            return Ok(());
        };
        let held = self
            .with_docs(move |c, docs| {
                for e in &listed {
                    if !docs.holds_all(c, &e.doc, &e.heads)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            })
            .await?;
        if held && let Ok(mut links) = self.links.lock() {
            // only the index checked: a newer one may have come meanwhile
            if links
                .pending_reports
                .get(store_id)
                .is_some_and(|(t, _)| *t == at)
            {
                links.pending_reports.remove(store_id);
            }
            if let Some(l) = links.status.get_mut(store_id) {
                l.reported_at = Some(l.reported_at.map_or(at, |r| r.max(at)));
            }
        }
        Ok(())
    }

    /// Whether a store has an index the hub has not yet caught up with.
    pub fn report_pending(&self, store_id: &str) -> bool {
        self.links
            .lock()
            .map(|l| l.pending_reports.contains_key(store_id))
            .unwrap_or(false)
    }

    /// Session `session` of a store ended. Marks the link down only if that
    /// session still owned it; returns whether it did.
    pub fn link_down(&self, store_id: &str, session: u64) -> bool {
        self.counters
            .sessions_ended
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Ok(mut links) = self.links.lock() else {
            return false;
        };
        if links.live.get(store_id).map(|(s, _)| *s) != Some(session) {
            return false;
        }
        links.live.remove(store_id);
        if let Some(l) = links.status.get_mut(store_id) {
            l.connected = false;
            l.since = self.now();
        }
        true
    }

    /// A store's session ended: its in-session sync states go, and so do
    /// the documents only its sessions write (its ledger, stock and
    /// fulfilment parts) and its documents of past days, so the hub's
    /// memory follows the stores connected, not every part of every day
    /// since the hub started (`fleet_bench`: 337 MB with 1,000 stores
    /// connected grew to 470 MB after a reconnect storm). The hub's own
    /// documents of today stay: online orders write them while the store is
    /// away. Everything evicted reloads from its chunks when next used.
    /// Returns how many documents left memory.
    pub fn store_left(&self, docs: &mut Docs, store_id: &str) -> usize {
        docs.end_session(store_id);
        let today = self
            .now()
            .with_timezone(&self.order_settings.utc_offset)
            .date_naive();
        docs.evict_idle(|d| {
            d.store() == Some(store_id)
                && (matches!(d.owner(), Owner::Store(_)) || d.day().is_some_and(|day| day < today))
        })
    }

    /// Closes the live connection of every store in `revoked`; returns the
    /// stores cut.
    pub fn cut_revoked(&self, revoked: &std::collections::BTreeSet<String>) -> Vec<String> {
        let Ok(links) = self.links.lock() else {
            return Vec::new();
        };
        let mut cut = Vec::new();
        for (store, (_, conn)) in links.live.iter() {
            let Some(conn) = conn else { continue };
            if revoked.contains(store) && conn.close_reason().is_none() {
                conn.close(
                    linli_sync::tls::CLOSE_REVOKED.into(),
                    b"certificate revoked",
                );
                self.counters
                    .sessions_revoked
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(store = %store, "store revoked: its live connection is closed");
                cut.push(store.clone());
            }
        }
        cut
    }

    pub fn touch(&self, store_id: &str) {
        if let Ok(mut links) = self.links.lock()
            && let Some(l) = links.status.get_mut(store_id)
        {
            l.last_activity = self.now();
        }
    }

    pub fn links(&self) -> HashMap<String, LinkStatus> {
        self.links
            .lock()
            .map(|l| l.status.clone())
            .unwrap_or_default()
    }

    /// Seconds without a frame, with changes waiting, before a connected
    /// store counts as `stuck` (default [`STUCK_AFTER_SECS`]).
    pub fn stuck_after_secs(&self) -> i64 {
        self.stuck_after_secs
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sets the `stuck` threshold (tests use a short one).
    pub fn set_stuck_after_secs(&self, secs: i64) {
        self.stuck_after_secs
            .store(secs, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the hub holds changes in `store_id`'s documents that the
    /// store has not acknowledged.
    pub async fn has_unacknowledged(&self, store_id: &str) -> Result<bool, HubError> {
        let store = store_id.to_owned();
        self.with_docs(move |c, docs| {
            let index = docs.scope_index(c, &store, &store)?;
            Ok(index.iter().any(|(_, acked)| !acked))
        })
        .await
    }

    pub async fn login(&self, name: &str, password: &str) -> Result<String, HubError> {
        self.login_from(name, password, None).await
    }

    /// Checks a user's password and opens a session. Five wrong passwords in
    /// a row lock the name (15 min by default) and `addr` has its own bucket
    /// of attempts; the attempt is reserved before the slow check, so a burst
    /// of guesses gets no more checks than the lockout allows.
    pub async fn login_from(
        &self,
        name: &str,
        password: &str,
        addr: Option<&str>,
    ) -> Result<String, HubError> {
        let name = name.trim();
        self.gate
            .logins()
            .begin(name, addr, self.now())
            .map_err(refused)?;
        let attempt = Attempt {
            gate: &self.gate,
            clock: &self.clock.0,
            name,
            settled: false,
        };
        let ok = self.check_password(name, password).await;
        attempt.settle(matches!(ok, Ok(true)));
        if !ok? {
            return Err(HubError::BadCredentials);
        }
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let token = hex::encode(raw);
        let (h, n) = (token_hash(&token), name.to_owned());
        let expires = (self.now() + chrono::Duration::hours(12)).to_rfc3339();
        self.store
            .write(move |c| {
                c.execute(
                    "INSERT INTO sessions(token_hash, user, expires_at) VALUES (?1, ?2, ?3)",
                    params![h, n, expires],
                )?;
                Ok::<_, HubError>(())
            })
            .await?;
        Ok(token)
    }

    /// Checks `name`'s password (a dummy hash for an unknown name), at most
    /// [`MAX_CONCURRENT_PASSWORD_CHECKS`] at a time.
    async fn check_password(&self, name: &str, password: &str) -> Result<bool, HubError> {
        let n = name.to_owned();
        let row: Option<String> = self
            .store
            .read(move |c| {
                c.query_row("SELECT pw_hash FROM users WHERE name = ?1", [n], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(StoreError::from)
            })
            .await?;
        self.gate.checked.fetch_add(1, Ordering::SeqCst);
        // on the check threads only: argon2 is deliberately slow and big
        let pw = password.to_owned();
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.gate.checks.submit(move || {
            let known = row.is_some();
            let hash = row.unwrap_or_else(|| dummy_hash().to_owned());
            let ok = linli_shared::login_guard::verify_argon2(pw.as_bytes(), &hash);
            let _ = tx.send(known && ok);
        });
        let ok = rx.await.map_err(|_| StoreError::Panicked)?;
        Ok(ok)
    }

    /// How many password checks (argon2 verifications) the hub has run.
    pub fn password_checks(&self) -> u64 {
        self.gate.checked.load(Ordering::SeqCst)
    }

    /// Ends the session of `token` (a hub user's or a customer's) at once.
    pub async fn logout(&self, token: &str) -> Result<(), HubError> {
        let h = token_hash(token);
        self.store
            .write(move |c| {
                c.execute("DELETE FROM sessions WHERE token_hash = ?1", [&h])?;
                c.execute("DELETE FROM customer_sessions WHERE token_hash = ?1", [&h])?;
                Ok::<_, HubError>(())
            })
            .await
    }

    /// The chain's staff (admin, regional) behind a token. A store
    /// manager's token is not one: it opens only its store's live sessions
    /// ([`Self::authenticate_user`]).
    pub async fn authenticate(&self, token: &str) -> Result<User, HubError> {
        let u = self.authenticate_user(token).await?;
        if u.role == Role::Manager {
            return Err(HubError::Unauthenticated);
        }
        Ok(u)
    }

    /// Any hub user behind a token, store managers included.
    pub async fn authenticate_user(&self, token: &str) -> Result<User, HubError> {
        let h = token_hash(token);
        type Row = (String, String, String, Option<String>, Option<String>);
        let row: Option<Row> = self
            .store
            .read(move |c| {
                c.query_row(
                    "SELECT u.name, u.role, s.expires_at, u.store_id, u.region FROM sessions s JOIN users u ON u.name = s.user WHERE s.token_hash = ?1",
                    [h],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .optional()
                .map_err(StoreError::from)
            })
            .await?;
        let (name, role, expires, store_id, region) = row.ok_or(HubError::Unauthenticated)?;
        let expired = DateTime::parse_from_rfc3339(&expires).map_or(true, |e| e < self.now());
        if expired {
            return Err(HubError::Unauthenticated);
        }
        Ok(User {
            name,
            role: Role::parse(&role).ok_or(HubError::Unauthenticated)?,
            store_id,
            region,
        })
    }

    /// Whether the hub knows `store_id`: in its store directory, linked
    /// now or before, or holding a document the store owns.
    pub async fn knows_store(&self, store_id: &str) -> Result<bool, HubError> {
        if self.links().contains_key(store_id) {
            return Ok(true);
        }
        let id = store_id.to_owned();
        // documents of store S are `store/S/...`; '0' sorts right after '/'
        let (from, to) = (format!("store/{store_id}/"), format!("store/{store_id}0"));
        Ok(self
            .store
            .read(move |c| {
                c.query_row(
                    "SELECT EXISTS(SELECT 1 FROM stores WHERE store_id = ?1)
                         OR EXISTS(SELECT 1 FROM docs WHERE doc_id >= ?2 AND doc_id < ?3)",
                    params![id, from, to],
                    |r| r.get::<_, bool>(0),
                )
                .map_err(StoreError::from)
            })
            .await?)
    }

    pub async fn sales(&self, store_id: &str, day: NaiveDate) -> Result<Vec<HubSale>, HubError> {
        let (s, d) = (store_id.to_owned(), day.to_string());
        Ok(self
            .store
            .read(move |c| {
                let mut stmt = c.prepare(
                    "SELECT s.sale_id, s.ticket_no, s.total_fen, s.cashier, s.created_at, s.lines,
                            (SELECT coalesce(sum(r.amount_fen), 0) FROM hub_refunds r
                             WHERE r.store_id = s.store_id AND r.sale_id = s.sale_id)
                     FROM hub_sales s
                     WHERE s.store_id = ?1 AND s.day = ?2 ORDER BY s.ticket_no",
                )?;
                let rows = stmt
                    .query_map(params![s, d], |r| {
                        let lines: String = r.get(5)?;
                        Ok(HubSale {
                            sale_id: r.get(0)?,
                            ticket_no: r.get(1)?,
                            total_fen: r.get(2)?,
                            refunded_fen: r.get(6)?,
                            cashier: r.get(3)?,
                            created_at: r.get(4)?,
                            lines: serde_json::from_str(&lines).unwrap_or_default(),
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok::<_, StoreError>(rows)
            })
            .await?)
    }

    pub async fn stock(&self, store_id: &str, sku: &str) -> Result<Option<HubStock>, HubError> {
        let (s, k) = (store_id.to_owned(), sku.to_owned());
        Ok(self
            .store
            .read(move |c| {
                c.query_row(
                    "SELECT store_id, sku, on_hand, reserved, day FROM hub_stock WHERE store_id = ?1 AND sku = ?2",
                    params![s, k],
                    |r| {
                        Ok(HubStock {
                            store_id: r.get(0)?,
                            sku: r.get(1)?,
                            on_hand: r.get(2)?,
                            reserved: r.get(3)?,
                            as_of_day: r.get(4)?,
                        })
                    },
                )
                .optional()
                .map_err(StoreError::from)
            })
            .await?)
    }
}
