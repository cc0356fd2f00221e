//! Simulated stores for the benchmarks: a store built from the sync library
//! alone (its SQLite database, its [`Docs`] and a sync session per QUIC
//! connection, no HTTP and no books), writing its sales through the same
//! document functions a store node uses: [`record_sale`] into the day's
//! ledger and [`set_level`] into the day's stock, each into the part
//! [`Docs::part_to_write`] picks ([`PART_CHANGES`] changes a part, part 0
//! of the stock holding the opening levels only).
//!
//! A simulated store also measures propagation: every sale is timed from
//! its commit at the store, and once the hub's sync messages show that
//! it holds every document the sale touched ([`Docs::acknowledged`]: the
//! shared heads the store persisted equal the document's heads), the sale
//! counts as held by the hub. The hub sends those heads only after it has
//! applied and committed the change, so the figure is "store write →
//! durable at the hub → the store knows", one network round trip more than
//! the hub's own commit. A later sale written before the earlier one's
//! acknowledgment holds it back until both are held, so under load the
//! figure errs high, never low.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use linli_shared::docs::ledger::{PaymentFact, SaleFact, SaleLineFact, record_sale};
use linli_shared::docs::stock::{Level, set_level};
use linli_shared::docs::{DocId, Owner, PART_CHANGES};
use linli_shared::sync::Index;
use linli_sync::db::{Store, StoreError};
use linli_sync::doc_store::{DocError, Docs, MIGRATION, Received};
use linli_sync::session::{self, SyncHost};
use linli_sync::tls;
use rand::Rng;
use rusqlite::Connection;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// The peer name under which a store keeps the hub's sync states.
pub const HUB_PEER: &str = "hub";

/// Units on hand of every SKU when a simulated store opens its day.
const OPENING_ON_HAND: i64 = 1_000_000;

/// What a simulated store's writer can fail with.
#[derive(Debug)]
pub enum SimError {
    /// The documents refused or failed.
    Doc(DocError),
    /// The database's writer failed or is closed.
    Store(StoreError),
}

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SimError::Doc(e) => write!(f, "{e}"),
            SimError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SimError {}

impl From<DocError> for SimError {
    fn from(e: DocError) -> Self {
        SimError::Doc(e)
    }
}

impl From<StoreError> for SimError {
    fn from(e: StoreError) -> Self {
        SimError::Store(e)
    }
}

impl From<rusqlite::Error> for SimError {
    fn from(e: rusqlite::Error) -> Self {
        SimError::Doc(DocError::Sql(e))
    }
}

impl From<automerge::AutomergeError> for SimError {
    fn from(e: automerge::AutomergeError) -> Self {
        SimError::Doc(DocError::Message(e.to_string()))
    }
}

fn to_doc_error(e: SimError) -> DocError {
    match e {
        SimError::Doc(d) => d,
        SimError::Store(s) => DocError::Message(s.to_string()),
    }
}

fn sim_migrate(c: &mut Connection) -> rusqlite::Result<()> {
    linli_sync::db::migrate(c, &[MIGRATION])
}

/// Sales written and not yet held by the hub, and the propagation of those
/// that are.
#[derive(Debug, Default)]
struct Acks {
    /// Each waiting sale: when its write ended, and the documents it
    /// touched that the hub has not acknowledged yet.
    waiting: Vec<(Instant, Vec<DocId>)>,
    /// Each held sale: when its write was committed, and how long until
    /// the hub was known to hold it.
    held: Vec<(Instant, Duration)>,
    /// How long each write took from its documents' change to its commit.
    commits: Vec<Duration>,
}

/// A store built from the sync library alone: its database, its documents
/// and the notifications of its commits.
pub struct SimStore {
    pub id: String,
    pub store: Store,
    docs: Arc<Mutex<Option<Docs>>>,
    changes: broadcast::Sender<DocId>,
    /// The day's ledger (part 0; sales go to the part to write).
    ledger: DocId,
    /// The day's stock (part 0), if the store writes stock; `None` for a
    /// ledger-only store (`sync_bench` part 3).
    stock: Option<DocId>,
    /// Units on hand per SKU number (index 0 is `P00001`).
    on_hand: Arc<Mutex<Vec<i64>>>,
    /// Sessions begun.
    pub sessions: AtomicUsize,
    /// Sessions running now.
    pub live: AtomicUsize,
    /// Why sessions or connection attempts ended (kept for the report).
    failures: Mutex<Vec<(Instant, String)>>,
    acks: Arc<Mutex<Acks>>,
}

impl std::fmt::Debug for SimStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimStore")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl SimStore {
    /// Opens (or creates) the store's database at `db`. With `skus` > 0 the
    /// store also keeps a stock document: part 0 opens the day with `skus`
    /// levels in one change (as a store node's first write of the day
    /// does), and every sale sets the levels of the SKUs it sold.
    pub async fn open(
        id: &str,
        db: &Path,
        day: NaiveDate,
        skus: usize,
    ) -> Result<Arc<SimStore>, SimError> {
        let docs: Arc<Mutex<Option<Docs>>> = Arc::new(Mutex::new(None));
        let d = docs.clone();
        let store = Store::open(
            db,
            sim_migrate,
            Some(Arc::new(move |_, _, committed| {
                // a commit lets the batch's changes be offered to the hub;
                // a failed one leaves memory holding what the disk does not
                if let Some(docs) = d.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
                    docs.batch_ended(committed);
                }
            })),
        )?;
        let owner = Owner::Store(id.to_owned());
        let opened = store
            .write(move |c: &Connection| Ok::<_, SimError>(Docs::open(c, owner)?))
            .await?;
        *docs.lock().unwrap_or_else(PoisonError::into_inner) = Some(opened);
        let sim = Arc::new(SimStore {
            id: id.to_owned(),
            store,
            docs,
            changes: broadcast::channel(1024).0,
            ledger: DocId::store_ledger(id, day),
            stock: (skus > 0).then(|| DocId::store_stock(id, day)),
            on_hand: Arc::new(Mutex::new(vec![OPENING_ON_HAND; skus])),
            sessions: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            failures: Mutex::new(Vec::new()),
            acks: Arc::new(Mutex::new(Acks::default())),
        });
        if let Some(stock) = sim.stock.clone() {
            let acks = sim.acks.clone();
            sim.with_docs(move |c, docs| {
                if docs.exists(c, &stock)? {
                    return Ok(());
                }
                // the opening levels wait for the hub like a sale does
                acks.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .waiting
                    .push((Instant::now(), vec![stock.clone()]));
                docs.change(c, &stock, |doc| {
                    for n in 0..skus {
                        set_level(
                            doc,
                            &sku(n),
                            Level {
                                on_hand: OPENING_ON_HAND,
                                reserved: 0,
                            },
                        )?;
                    }
                    Ok(())
                })?;
                Ok(())
            })
            .await?;
        }
        Ok(sim)
    }

    async fn with_docs<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &mut Docs) -> Result<T, SimError> + Send + 'static,
    ) -> Result<T, SimError> {
        let docs = self.docs.clone();
        self.store
            .write(move |c: &Connection| {
                let mut g = docs.lock().unwrap_or_else(PoisonError::into_inner);
                match g.as_mut() {
                    Some(d) => f(c, d),
                    None => Err(SimError::Store(StoreError::Closed)),
                }
            })
            .await
    }

    /// Notes why a session or an attempt ended.
    pub fn failed(&self, why: String) {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((Instant::now(), why));
    }

    /// Why sessions or attempts ended between `from` and `to`.
    pub fn failures_between(&self, from: Instant, to: Instant) -> Vec<String> {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .map(|(_, why)| why.clone())
            .collect()
    }

    /// Records sales `from..from + n` in one transaction, one change per
    /// sale in the ledger (and one in the stock), then wakes the session.
    pub async fn sell(&self, from: usize, n: usize) -> Result<(), SimError> {
        let (id, ledger, stock) = (self.id.clone(), self.ledger.clone(), self.stock.clone());
        let (on_hand, acks) = (self.on_hand.clone(), self.acks.clone());
        let touched = self
            .with_docs(move |c, docs| {
                let mut touched = Vec::new();
                let mut written = Vec::new();
                for i in from..from + n {
                    let fact = sim_sale(&id, i);
                    let mut docs_of_sale = Vec::with_capacity(2);
                    let part = docs.part_to_write(c, &ledger, PART_CHANGES)?;
                    docs.change(c, &part, |d| record_sale(d, &fact))?;
                    docs_of_sale.push(part);
                    if let Some(stock) = &stock {
                        let levels: Vec<(String, Level)> = {
                            let mut on_hand =
                                on_hand.lock().unwrap_or_else(PoisonError::into_inner);
                            let skus = on_hand.len();
                            fact.lines
                                .iter()
                                .filter_map(|l| {
                                    let n = sku_no(&l.sku)?.checked_rem(skus)?;
                                    on_hand[n] -= l.qty;
                                    Some((
                                        sku(n),
                                        Level {
                                            on_hand: on_hand[n],
                                            reserved: 0,
                                        },
                                    ))
                                })
                                .collect()
                        };
                        let part = docs.part_to_write(c, stock, PART_CHANGES)?;
                        docs.change(c, &part, |d| {
                            for (sku, level) in &levels {
                                set_level(d, sku, *level)?;
                            }
                            Ok(())
                        })?;
                        docs_of_sale.push(part);
                    }
                    for d in &docs_of_sale {
                        if !touched.contains(d) {
                            touched.push(d.clone());
                        }
                    }
                    written.push(docs_of_sale);
                }
                // registered here, in the writer, so that no acknowledgment
                // can be looked at before the sale is waiting for it
                let now = Instant::now();
                let mut acks = acks.lock().unwrap_or_else(PoisonError::into_inner);
                let first = acks.waiting.len();
                acks.waiting
                    .extend(written.into_iter().map(|docs| (now, docs)));
                Ok((touched, now, first))
            })
            .await?;
        let (touched, written, first) = touched;
        // timed from the commit: the store's own fsync is not the hub's
        // latency (it is under a second fsync-bound writer per store here)
        let committed = Instant::now();
        {
            let mut acks = self.acks.lock().unwrap_or_else(PoisonError::into_inner);
            acks.commits
                .push(committed.saturating_duration_since(written));
            for (t, _) in acks.waiting.iter_mut().skip(first) {
                if *t == written {
                    *t = committed;
                }
            }
        }
        for d in touched {
            let _ = self.changes.send(d);
        }
        Ok(())
    }

    /// Sales written and not yet known to be held by the hub.
    pub fn unacknowledged(&self) -> usize {
        self.acks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .waiting
            .len()
    }

    /// How long the store's writes took from the documents' change to the
    /// commit (the store's own SQLite, not part of the propagation).
    pub fn commit_times(&self) -> Vec<Duration> {
        self.acks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .commits
            .clone()
    }

    /// Propagation of the sales whose write ended in `[from, to)`, and how
    /// many written then are still not held by the hub.
    pub fn propagation(&self, from: Instant, to: Instant) -> (Vec<Duration>, usize) {
        let acks = self.acks.lock().unwrap_or_else(PoisonError::into_inner);
        let held = acks
            .held
            .iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .map(|(_, d)| *d)
            .collect();
        let waiting = acks
            .waiting
            .iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .count();
        (held, waiting)
    }
}

/// The SKU code of SKU number `n` (0-based): `P00001`, ...
fn sku(n: usize) -> String {
    format!("P{:05}", n + 1)
}

fn sku_no(sku: &str) -> Option<usize> {
    sku.strip_prefix('P')?.parse::<usize>().ok()?.checked_sub(1)
}

/// Sale `i` of `store`: 3 lines of 1,500 SKUs, paid in cash.
pub fn sim_sale(store: &str, i: usize) -> SaleFact {
    SaleFact {
        sale_id: format!("{store}-{i:06}"),
        ticket_no: format!("{store}-20261125-{:04}", i + 1),
        created_at: "2026-11-25T02:00:00.000Z".into(),
        cashier: "ana".into(),
        total_fen: 1_000 + i as i64,
        lines: (0..3)
            .map(|l| SaleLineFact {
                sku: format!("P{:05}", (i * 3 + l) % 1500 + 1),
                qty: 1,
                total_fen: 300 + l as i64,
                unit_price_fen: 300 + l as i64,
            })
            .collect(),
        payments: vec![PaymentFact {
            method: "cash".into(),
            amount_fen: 1_000 + i as i64,
        }],
        member: false,
        ..Default::default()
    }
}

impl SyncHost for SimStore {
    async fn index(&self) -> Result<Index, DocError> {
        // (it writes its documents in the transaction of each sale: no outbox)
        let id = self.id.clone();
        self.with_docs(move |c, docs| Ok(Index::of(docs.index(c, |d| d.in_scope_of(&id))?)))
            .await
            .map_err(to_doc_error)
    }

    async fn generate(&self, doc: DocId) -> Result<Option<Vec<u8>>, DocError> {
        self.with_docs(move |c, docs| Ok(docs.generate(c, &doc, HUB_PEER)?))
            .await
            .map_err(to_doc_error)
    }

    async fn receive(&self, doc: DocId, msg: Vec<u8>) -> Result<Received, DocError> {
        let (own, acks) = (Owner::Store(self.id.clone()), self.acks.clone());
        self.with_docs(move |c, docs| {
            let r = docs.receive(c, &doc, HUB_PEER, &Owner::Hub, &msg)?;
            if doc.owner() == own && docs.acknowledged(c, &doc, HUB_PEER)? {
                let now = Instant::now();
                let mut acks = acks.lock().unwrap_or_else(PoisonError::into_inner);
                let Acks { waiting, held, .. } = &mut *acks;
                waiting.retain_mut(|(t, docs)| {
                    docs.retain(|d| *d != doc);
                    if docs.is_empty() {
                        held.push((*t, now.saturating_duration_since(*t)));
                    }
                    !docs.is_empty()
                });
            }
            Ok(r)
        })
        .await
        .map_err(to_doc_error)
    }

    fn scope(&self) -> &str {
        &self.id
    }
}

/// The simulated store's link: reconnects with jittered exponential
/// backoff (100 ms doubling to 5 s, ±50 %), as the store node's uplink does.
pub async fn sim_link(
    sim: Arc<SimStore>,
    endpoint: quinn::Endpoint,
    hub: SocketAddr,
    cancel: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let attempt = tokio::select! {
            _ = cancel.cancelled() => break,
            c = tls::connect(&endpoint, hub, "localhost") => c,
        };
        match attempt {
            Err(e) => sim.failed(format!("connect: {e}")),
            Ok(conn) => {
                let ended = async {
                    let (send, recv) = conn.open_bi().await?;
                    backoff = Duration::from_millis(100);
                    sim.sessions.fetch_add(1, Ordering::Relaxed);
                    sim.live.fetch_add(1, Ordering::Relaxed);
                    let r = session::run(
                        sim.clone(),
                        send,
                        recv,
                        sim.changes.subscribe(),
                        cancel.child_token(),
                    )
                    .await;
                    sim.live.fetch_sub(1, Ordering::Relaxed);
                    r?;
                    Ok::<_, anyhow::Error>(())
                }
                .await;
                // why the connection ended, before closing it ourselves
                let reason = conn.close_reason();
                conn.close(0u32.into(), b"bye");
                let _ = sim
                    .with_docs(|_, docs| {
                        docs.end_session(HUB_PEER);
                        Ok(())
                    })
                    .await;
                if !cancel.is_cancelled() {
                    let why = match ended {
                        Ok(()) => "session ended".into(),
                        Err(e) => format!("session: {e}"),
                    };
                    sim.failed(match reason {
                        Some(reason) => format!("{why} ({reason})"),
                        None => why,
                    });
                }
            }
        }
        if cancel.is_cancelled() {
            break;
        }
        let jitter = rand::thread_rng().gen_range(0.5..1.5);
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(backoff.mul_f64(jitter)) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
    endpoint.close(0u32.into(), b"shutdown");
}

/// The failures `sims` saw between `from` and `to`.
pub fn failures(sims: &[Arc<SimStore>], from: Instant, to: Instant) -> Vec<String> {
    sims.iter()
        .flat_map(|s| s.failures_between(from, to))
        .collect()
}

/// "3x reason, 1x other" for a list of failures.
pub fn summary(failures: &[String]) -> String {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut order: Vec<&str> = Vec::new();
    for f in failures {
        let n = counts.entry(f.as_str()).or_insert(0);
        if *n == 0 {
            order.push(f.as_str());
        }
        *n += 1;
    }
    if order.is_empty() {
        return "none".into();
    }
    order
        .iter()
        .map(|r| format!("{}x {r:?}", counts[r]))
        .collect::<Vec<_>>()
        .join(", ")
}
