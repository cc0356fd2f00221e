//! One run: the hub, the stores, their links, and the seeded steps.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use linli_edge::app::sales::{PaymentRequest, SaleLineRequest, SaleRequest};
use linli_edge::app::stock::{ReceiptRequest, StockLineRequest};
use linli_edge::app::{Actor, App, Role};
use linli_edge::uplink::{EdgeHost, SyncStatus};
use linli_hub::auth::User;
use linli_hub::hub::{Hub, HubPaths};
use linli_hub::ingest::HubHost;
use linli_shared::docs::DocId;
use linli_shared::sale::PaymentMethod;
use linli_shared::sync::session::Session;
use linli_sync::session::{SyncHost, carry_out};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::broadcast;

use crate::check;
use crate::clock::ManualClock;
use crate::net::{Direction, Faults};
use linli_hub::settings::StockScheme;

mod coupons;
mod groupbuy;
mod online;

pub use online::{OnlineReport, Units};

/// What a run is made of.
#[derive(Debug, Clone)]
pub struct Settings {
    pub stores: usize,
    pub steps: usize,
    /// Changes per document part (small, so parts roll within a run).
    pub part_changes: u64,
    /// Products in the catalog.
    pub products: usize,
    pub faults: Faults,
    /// Links cut, stores crash, the hub restarts; `false`: only delays and
    /// losses on links that stay up.
    pub outages: bool,
    /// How the hub bounds online sales: by rights, or (for the comparison
    /// in `sim_rights_bench`) by a naive shared counter, whose oversells
    /// are counted rather than failing the run.
    pub scheme: StockScheme,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            stores: 3,
            steps: 250,
            part_changes: 24,
            products: 8,
            faults: Faults::default(),
            outages: true,
            scheme: StockScheme::Rights,
        }
    }
}

/// What a run did.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub seed: u64,
    pub steps: usize,
    pub sales: usize,
    /// Sales whose answer the client never saw.
    pub answers_lost: usize,
    /// Requests sent again with the same idempotency key.
    pub retries: usize,
    /// Sales the counter refused (while recovering, say).
    pub refused: usize,
    /// Refunds answered (a repeat of the same request not counted).
    pub refunds: usize,
    pub cuts: usize,
    pub store_crashes: usize,
    /// Store PCs replaced: a new, empty database recovered from the hub.
    pub stores_replaced: usize,
    pub hub_restarts: usize,
    /// Store clocks set back or put right.
    pub clock_steps: usize,
    /// Frames in flight when their connection was lost.
    pub frames_lost: usize,
    pub frames: u64,
    pub bytes: u64,
    pub virtual_time: Duration,
    /// Virtual time from the last heal to an idle, converged chain.
    pub converged_after: Duration,
    pub online: OnlineReport,
    /// How the run's group-buy ended.
    pub group_buy: Option<String>,
    /// What the run's coupon campaign gave.
    pub coupons: Option<String>,
    /// Coupons in use at the end (at counters and online).
    pub coupons_used: usize,
    /// What happened, step by step (`SIM_TRACE` prints it): two runs of a
    /// seed have the same, ids and pickup codes included.
    pub trace: Vec<String>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {}: {} steps, {} sales ({} answers lost, {} retries, {} refused), {} refunds, \
             {} cuts, {} store crashes, {} PCs replaced, {} hub restarts, {} store clocks stepped, {} frames ({} lost in cuts, {} kB), \
             {:.1} s virtual, converged {:.2} s after the last heal; online: {} placed, \
             {} refused, {} handed over, {} cancelled, {} released by settlement, {} conflicts, \
             oversold {}; group-buy {}; coupons: {}",
            self.seed,
            self.steps,
            self.sales,
            self.answers_lost,
            self.retries,
            self.refused,
            self.refunds,
            self.cuts,
            self.store_crashes,
            self.stores_replaced,
            self.hub_restarts,
            self.clock_steps,
            self.frames,
            self.frames_lost,
            self.bytes / 1000,
            self.virtual_time.as_secs_f64(),
            self.converged_after.as_secs_f64(),
            self.online.placed,
            self.online.refused,
            self.online.handed_over,
            self.online.cancelled,
            self.online.released,
            self.online.conflicts,
            self.online.oversold,
            self.group_buy.as_deref().unwrap_or("none"),
            self.coupons.as_deref().unwrap_or("none"),
        )
    }
}

impl Settings {
    /// The arguments of `linli-sim` that make these settings, each that
    /// differs from the default.
    pub fn reproduce(&self) -> String {
        let d = Settings::default();
        let mut out = String::new();
        if self.steps != d.steps {
            out.push_str(&format!(" --steps {}", self.steps));
        }
        if self.stores != d.stores {
            out.push_str(&format!(" --stores {}", self.stores));
        }
        if self.scheme == StockScheme::Naive {
            out.push_str(" --scheme naive");
        }
        if !self.outages {
            out.push_str(" --outages off");
        }
        out
    }
}

/// Runs seed `seed`; the error names the seed, the step and what broke.
pub fn run(seed: u64, settings: &Settings) -> anyhow::Result<Report> {
    // the hub's and the stores' databases are written and read on this
    // thread, so no scheduling between threads orders a run
    let _inline = linli_sync::db::InlineWrites::enter();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut world = World::new(seed, settings.clone()).await?;
        let r = world.run().await;
        if std::env::var_os("SIM_TRACE").is_some() {
            eprintln!("{}", world.trace.join("\n"));
        }
        if std::env::var_os("SIM_KEEP").is_some() {
            eprintln!("files kept in {}", world._dir.path().display());
            let _ = std::mem::replace(&mut world._dir, tempfile::tempdir()?).keep();
        }
        let trace = world.trace.join("\n  ");
        let steps = std::mem::take(&mut world.trace);
        world.close().await;
        r.map(|r| Report { trace: steps, ..r }).map_err(|e| {
            anyhow::anyhow!(
                "seed {seed} failed: {e:#}\n  reproduce: cargo run --release -p linli-sim -- --seed {seed}{}\n  last steps:\n  {trace}",
                settings.reproduce()
            )
        })
    })
}

/// One end of a live session.
struct Side<H> {
    host: Arc<H>,
    core: Session,
    changes: broadcast::Receiver<DocId>,
}

impl<H: SyncHost> Side<H> {
    /// Feeds local commits and the timer to the session.
    fn feed(&mut self, now: std::time::Instant) -> bool {
        let mut fed = false;
        loop {
            match self.changes.try_recv() {
                Ok(doc) => self.core.local_commit(doc, now),
                Err(broadcast::error::TryRecvError::Lagged(_)) => self.core.local_lagged(),
                Err(_) => break,
            }
            fed = true;
        }
        if self.core.poll_timeout().is_some_and(|t| t <= now) {
            self.core.handle_timeout(now);
            fed = true;
        }
        fed
    }

    /// Carries out every effect, sending frames on `out`.
    async fn effects(
        &mut self,
        out: &mut Direction,
        (at, now): (Duration, std::time::Instant),
        faults: &Faults,
        rng: &mut StdRng,
    ) -> anyhow::Result<bool> {
        let mut any = false;
        while let Some(effect) = self.core.poll_effect() {
            any = true;
            if let Some(frame) = carry_out(&*self.host, &mut self.core, effect, now).await? {
                out.send(&frame, at, faults, rng);
            }
        }
        Ok(any)
    }
}

struct Link {
    to_hub: Direction,
    to_store: Direction,
    /// Both ends while the link is up.
    up: Option<(Side<EdgeHost>, Side<HubHost>, u64)>,
}

struct Store {
    id: String,
    dir: PathBuf,
    app: App,
    status: Arc<SyncStatus>,
    /// Every sale the counter answered, by sale id, with its total (also
    /// those whose answer the client never saw).
    committed: check::Sales,
    /// Idempotency key → the sale id answered.
    by_key: BTreeMap<String, String>,
    /// Requests whose answer was lost: the client sends them again.
    unanswered: Vec<(String, SaleRequest)>,
    /// Every refund the store answered: refund id → (sale, amount).
    refunds: check::Refunds,
    /// Refund idempotency key → the refund id answered.
    refund_keys: BTreeMap<String, String>,
    next_key: u64,
    /// Sales the hub once held.
    hub_held: BTreeSet<String>,
    /// How far the store PC's clock is off the chain's, in milliseconds
    /// (negative: set back); kept across a crash, as a PC's clock is.
    skew: Arc<AtomicI64>,
    link: Link,
}

struct World {
    settings: Settings,
    rng: StdRng,
    clock: ManualClock,
    _dir: tempfile::TempDir,
    hub_dir: PathBuf,
    hub: Hub,
    stores: Vec<Store>,
    skus: Vec<(String, bool)>,
    /// The chain price of each of `skus`, fen.
    prices: Vec<i64>,
    placed: Vec<online::Placed>,
    campaign: Option<groupbuy::Campaign>,
    coupons: Option<coupons::Coupons>,
    audit: check::Auditor,
    report: Report,
    trace: Vec<String>,
    /// The applications' ids and random numbers, drawn from the seed and
    /// the virtual clock for as long as the world stands.
    _ids: linli_sync::ids::SeededIds,
}

/// Odd seeds start at 10:00 in Hangzhou, even seeds twenty seconds
/// before midnight, so their business day rolls over mid-run (new day
/// documents while sales and syncs are in flight).
fn start_time(seed: u64) -> DateTime<Utc> {
    let at = match seed % 2 {
        1 => "2026-12-03T02:00:00Z",
        _ => "2026-12-03T15:59:40Z",
    };
    DateTime::parse_from_rfc3339(at)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

const PRODUCTS_CSV: &str = include_str!("../../data/products.csv");
const STORES_CSV: &str = include_str!("../../data/stores.csv");

/// The first `n` rows of a CSV, with its header.
fn head(csv: &str, n: usize) -> String {
    csv.lines().take(n + 1).map(|l| format!("{l}\n")).collect()
}

/// The chain's admin at the hub (opens campaigns, recalls allotments).
fn admin() -> User {
    User {
        name: "sim-admin".into(),
        role: linli_hub::auth::Role::Admin,
        store_id: None,
        region: None,
    }
}

fn cashier() -> Actor {
    Actor {
        name: "sim-cashier".into(),
        role: Role::Cashier,
    }
}

async fn open_store(
    hub_dir: &std::path::Path,
    id: &str,
    dir: &std::path::Path,
    clock: &ManualClock,
    skew: &Arc<AtomicI64>,
    part_changes: u64,
) -> anyhow::Result<App> {
    let config = linli_edge::config::Config {
        store_id: id.into(),
        part_changes,
        max_change_fen: 10_000_000,
        ..Default::default()
    };
    // enrolment gave the store the chain's member key with its identity
    let identity = dir.join("identity");
    if !identity.join("member.key").exists() {
        std::fs::create_dir_all(&identity)?;
        let key = linli_hub::signing::load_or_create_secret(&hub_paths(hub_dir).member_key())?;
        linli_hub::signing::write_member_key(&key, &identity)?;
    }
    crate::template::store(&linli_edge::config::database_path(dir))?;
    let metrics = linli_edge::metrics::Metrics::new();
    let app =
        linli_edge::node::open_app(&config, dir.to_owned(), clock.skewed(skew), &metrics).await?;
    // as a node with a hub does at start, with the hub's pickup key its
    // identity carries
    let key = linli_hub::signing::load_or_create(&hub_paths(hub_dir).signing_key())?;
    linli_edge::node::prepare_for_hub(&app, Some(key.verifying_key())).await?;
    Ok(app)
}

/// The hub's pickup signing key and the chain's member key, drawn from the
/// seed (the hub makes them from the OS's randomness on first start): the
/// pickup QR codes, coupon codes and member hashes they sign or key are
/// then the same every run of a seed, and so are the bytes sent.
fn hub_keys(dir: &std::path::Path, seed: u64) -> anyhow::Result<()> {
    use std::io::Write;
    linli_sync::db::create_private_dir(dir)?;
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6be7_5eed);
    let paths = hub_paths(dir);
    for path in [paths.signing_key(), paths.member_key()] {
        let key: [u8; 32] = rng.r#gen();
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        opts.open(&path)
            .with_context(|| format!("create {}", path.display()))?
            .write_all(hex.as_bytes())?;
    }
    Ok(())
}

fn hub_paths(dir: &std::path::Path) -> HubPaths {
    HubPaths {
        data_dir: dir.to_owned(),
    }
}

/// Opens the hub as its server does at start (with the stores and
/// products it routes and prices by).
async fn open_hub(
    dir: &std::path::Path,
    clock: &ManualClock,
    scheme: StockScheme,
) -> anyhow::Result<Hub> {
    crate::template::hub(&hub_paths(dir).db())?;
    let hub = Hub::open_with_clock(
        &hub_paths(dir),
        linli_hub::settings::OrderSettings {
            scheme,
            ..Default::default()
        },
        clock.clock(),
    )?;
    hub.reload_directory().await?;
    Ok(hub)
}

impl World {
    async fn new(seed: u64, settings: Settings) -> anyhow::Result<World> {
        // memory-backed where there is one: a run's fsyncs are not what it
        // tests, and a thousand seeds should take seconds, not minutes
        let shm = std::path::Path::new("/dev/shm");
        let dir = match shm.is_dir() {
            true => tempfile::tempdir_in(shm)?,
            false => tempfile::tempdir()?,
        };
        let clock = ManualClock::new(start_time(seed));
        // a stream of its own, so drawing an id never shifts the run's steps
        let ids = linli_sync::ids::SeededIds::enter(seed ^ 0x1d5_5eed, clock.clock());
        let hub_dir = dir.path().join("hub");
        hub_keys(&hub_dir, seed)?;
        let hub = open_hub(&hub_dir, &clock, settings.scheme).await?;
        let csv = head(PRODUCTS_CSV, settings.products);
        let (skus, prices): (Vec<_>, Vec<_>) = csv
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                let price: i64 = f.get(5)?.parse().ok()?;
                Some(((f[0].to_owned(), *f.get(4)? == "kg"), price))
            })
            .unzip();
        let admin = admin();
        hub.import_catalog(&admin, csv.into_bytes()).await?;
        hub.import_stores(&admin, head(STORES_CSV, settings.stores).into_bytes())
            .await?;
        let mut stores = Vec::new();
        for n in 1..=settings.stores {
            let id = format!("S{n:03}");
            let dir = dir.path().join(&id);
            let skew = Arc::new(AtomicI64::new(0));
            let app = open_store(&hub_dir, &id, &dir, &clock, &skew, settings.part_changes).await?;
            stores.push(Store {
                id,
                dir,
                app,
                status: Arc::new(SyncStatus::new(None)),
                committed: BTreeMap::new(),
                by_key: BTreeMap::new(),
                unanswered: Vec::new(),
                refunds: BTreeMap::new(),
                refund_keys: BTreeMap::new(),
                next_key: 0,
                hub_held: BTreeSet::new(),
                skew,
                link: Link {
                    to_hub: Direction::default(),
                    to_store: Direction::default(),
                    up: None,
                },
            });
        }
        let mut w = World {
            _ids: ids,
            rng: StdRng::seed_from_u64(seed),
            settings,
            clock,
            _dir: dir,
            hub_dir,
            hub,
            stores,
            skus,
            prices,
            placed: Vec::new(),
            campaign: None,
            coupons: None,
            audit: check::Auditor::default(),
            report: Report {
                seed,
                ..Report::default()
            },
            trace: Vec::new(),
        };
        // first contact: each store recovers (nothing) and gets the catalog
        for i in 0..w.stores.len() {
            w.heal(i).await?;
        }
        w.quiesce().await?;
        let manager = Actor {
            name: "sim-manager".into(),
            role: Role::Manager,
        };
        for s in &w.stores {
            anyhow::ensure!(
                !s.app.sync_ctx().recovering(),
                "{} still recovering after first contact",
                s.id
            );
            anyhow::ensure!(
                s.app.catalog().len() == w.skus.len(),
                "{} has {} products of {}",
                s.id,
                s.app.catalog().len(),
                w.skus.len()
            );
            let lines = w
                .skus
                .iter()
                .map(|(sku, kg)| StockLineRequest {
                    sku: sku.clone(),
                    qty: if *kg { 6_000 } else { 12 },
                })
                .collect();
            s.app
                .receive_stock(&manager, None, ReceiptRequest { lines, note: None })
                .await?;
            s.app.rebalance_rights().await?;
        }
        w.open_campaign().await?;
        w.open_coupons().await?;
        w.quiesce().await?;
        if std::env::var_os("SIM_TRACE").is_some() {
            let c = rusqlite::Connection::open(w.hub_db())?;
            let mut st =
                c.prepare("SELECT store_id, sku, lent, overdraft, delivered FROM store_rights")?;
            let rows: Vec<(String, String, i64, i64, i64)> = st
                .query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<Result<_, _>>()?;
            eprintln!("store_rights at the hub: {rows:?}");
        }
        w.trace.clear();
        Ok(w)
    }

    async fn run(&mut self) -> anyhow::Result<Report> {
        for step in 0..self.settings.steps {
            self.step().await.with_context(|| format!("step {step}"))?;
            self.check(false)
                .await
                .with_context(|| format!("after step {step}"))?;
            self.report.steps += 1;
        }
        for i in 0..self.stores.len() {
            if self.stores[i].link.up.is_none() {
                self.heal(i).await?;
            }
        }
        let healed = self.clock.elapsed();
        self.quiesce().await?;
        self.report.converged_after = self.clock.elapsed() - healed;
        self.check(true).await?;
        for s in &self.stores {
            let at_hub = self
                .audit
                .hub_sales(&self.hub_db())?
                .remove(&s.id)
                .unwrap_or_default();
            let db = linli_edge::config::database_path(&s.dir);
            check::converged(
                &s.id,
                &at_hub,
                &s.committed,
                &self.audit.hub_levels(&self.hub_db(), &s.id)?,
                &self.audit.store_levels(&db)?,
            )?;
        }
        self.check_online_settled().await?;
        // every store sends its index again within a period (spread): the
        // hub then knows what each had written, and its sweep decides what
        // the deadline left open
        use linli_shared::sync::session::{REINDEX_EVERY, REINDEX_SPREAD};
        self.advance(REINDEX_EVERY.mul_f64(1.0 + REINDEX_SPREAD) + Duration::from_secs(1))
            .await?;
        self.quiesce().await?;
        self.hub_sweeps().await?;
        self.quiesce().await?;
        self.check_campaign().await?;
        self.check_campaign_settled().await?;
        self.report.virtual_time = self.clock.elapsed();
        for s in &self.stores {
            self.report.frames += s.link.to_hub.frames + s.link.to_store.frames;
            self.report.bytes += s.link.to_hub.bytes + s.link.to_store.bytes;
        }
        Ok(self.report.clone())
    }

    fn hub_db(&self) -> PathBuf {
        hub_paths(&self.hub_dir).db()
    }

    fn note(&mut self, what: String) {
        let t = self.clock.elapsed().as_millis();
        self.trace.push(format!("t={t}ms {what}"));
        if self.trace.len() > 30 && std::env::var_os("SIM_TRACE").is_none() {
            self.trace.remove(0);
        }
    }

    async fn step(&mut self) -> anyhow::Result<()> {
        let i = self.rng.gen_range(0..self.stores.len());
        match self.rng.gen_range(0..100) {
            0..28 => self.sale(i).await,
            28..31 => self.retry(i).await,
            31..34 => self.refund(i).await,
            34..44 => self.online_order(i).await,
            44..50 => self.hand_over(i).await,
            50..52 => self.cancel_online().await,
            52..54 => self.goods_in(i).await,
            54..59 => self.commit_at_counter(i).await,
            59..61 => self.refund_failed(i).await,
            61..63 => {
                self.maybe_recall().await?;
                self.hub_sweeps().await
            }
            63..80 => {
                let ms = self.rng.gen_range(1..=100);
                self.advance(Duration::from_millis(ms)).await
            }
            80..96 if !self.settings.outages => self.advance(Duration::from_millis(20)).await,
            80..84 => match self.stores[i].link.up.is_some() {
                true => self.cut(i, "network cut").await,
                false => self.heal(i).await,
            },
            84..92 => match self.stores[i].link.up.is_none() {
                true => self.heal(i).await,
                false => self.advance(Duration::from_millis(20)).await,
            },
            92..94 => self.crash_store(i).await,
            94..95 => self.replace_store(i).await,
            95..96 => self.restart_hub().await,
            96..97 if self.settings.outages => self.step_clock(i),
            _ => {
                let ms = self.rng.gen_range(200..=3_000);
                self.advance(Duration::from_millis(ms)).await
            }
        }
    }

    /// A walk-in's basket at store `i`: the counter sells only what is on
    /// its shelf (rights or not; the hub's share is settled later).
    fn basket(&mut self, i: usize) -> anyhow::Result<Option<SaleRequest>> {
        let mut shelf = self
            .audit
            .store_levels(&linli_edge::config::database_path(&self.stores[i].dir))?;
        let n = self.rng.gen_range(1..=3);
        let mut lines = Vec::new();
        for _ in 0..n {
            let (sku, kg) = self.skus[self.rng.gen_range(0..self.skus.len())].clone();
            let want = match kg {
                true => self.rng.gen_range(100..=1_500),
                false => self.rng.gen_range(1..=3),
            };
            let on = shelf.entry(sku.clone()).or_default();
            let qty = want.min(*on);
            if qty <= 0 {
                continue;
            }
            *on -= qty;
            lines.push(SaleLineRequest {
                barcode: None,
                sku: Some(sku),
                qty: Some(qty),
            });
        }
        if lines.is_empty() {
            return Ok(None);
        }
        Ok(Some(SaleRequest {
            lines,
            payments: vec![PaymentRequest {
                method: PaymentMethod::Cash,
                amount_fen: 5_000_000,
            }],
            member_phone: None,
            coupon: None,
        }))
    }

    async fn sale(&mut self, i: usize) -> anyhow::Result<()> {
        let Some(mut req) = self.basket(i)? else {
            let id = self.stores[i].id.clone();
            self.note(format!("{id}: a walk-in finds the shelf empty"));
            return Ok(());
        };
        req.coupon = self.counter_code(i).await?;
        let s = &mut self.stores[i];
        s.next_key += 1;
        let key = format!("{}-sale-{}", s.id, s.next_key);
        self.send_sale(i, key, req, false).await
    }

    async fn retry(&mut self, i: usize) -> anyhow::Result<()> {
        let s = &mut self.stores[i];
        if s.unanswered.is_empty() {
            return self.sale(i).await;
        }
        let n = self.rng.gen_range(0..s.unanswered.len());
        let (key, req) = s.unanswered.swap_remove(n);
        self.report.retries += 1;
        self.send_sale(i, key, req, true).await
    }

    async fn send_sale(
        &mut self,
        i: usize,
        key: String,
        req: SaleRequest,
        retry: bool,
    ) -> anyhow::Result<()> {
        let lose_answer = self.rng.gen_bool(0.1);
        let s = &mut self.stores[i];
        let idem = linli_edge::app::idempotency::IdempotencyKey::parse(&key)?;
        let answer = s.app.record_sale(&cashier(), idem, req.clone()).await;
        let coupon = req.coupon.clone();
        if let (Some(code), Ok((receipt, _))) = (&coupon, &answer) {
            self.counter_answered(i, code, receipt)?;
        }
        let s = &mut self.stores[i];
        let what = match answer {
            Ok((receipt, replayed)) => {
                match s.by_key.get(&key) {
                    Some(earlier) if *earlier != receipt.sale_id => bail!(
                        "{}: key {key} answered {} after {earlier}",
                        s.id,
                        receipt.sale_id
                    ),
                    Some(_) if !replayed => {
                        bail!("{}: key {key} sold again, not replayed", s.id)
                    }
                    None if replayed => bail!("{}: a first request for {key} was a replay", s.id),
                    _ => {}
                }
                s.by_key.insert(key.clone(), receipt.sale_id.clone());
                s.committed
                    .insert(receipt.sale_id.clone(), receipt.total_fen);
                if !replayed {
                    self.report.sales += 1;
                }
                if lose_answer {
                    self.report.answers_lost += 1;
                    s.unanswered.push((key.clone(), req));
                }
                format!(
                    "{} sold {} ({} fen){}{}",
                    s.id,
                    receipt.sale_id,
                    receipt.total_fen,
                    if retry { ", a retry" } else { "" },
                    if lose_answer { ", answer lost" } else { "" }
                )
            }
            Err(e) => {
                self.report.refused += 1;
                if let (Some(_), Some(cp)) = (&coupon, self.coupons.as_mut()) {
                    cp.refused += 1;
                }
                if retry {
                    s.unanswered.push((key.clone(), req));
                }
                format!("{} refused {key}: {e}", s.id)
            }
        };
        self.note(what);
        self.pump().await
    }

    /// A manager refunds a whole sale at store `i`; sometimes the answer is
    /// lost and the same request goes again, sometimes another request
    /// tries the same sale (refused: nothing is left to give back).
    async fn refund(&mut self, i: usize) -> anyhow::Result<()> {
        let s = &mut self.stores[i];
        if s.committed.is_empty() {
            return self.sale(i).await;
        }
        let sale = s
            .committed
            .keys()
            .nth(self.rng.gen_range(0..s.committed.len()))
            .cloned()
            .unwrap_or_default();
        s.next_key += 1;
        let key = format!("{}-refund-{}", s.id, s.next_key);
        let sends = if self.rng.gen_bool(0.2) { 2 } else { 1 };
        let manager = Actor {
            name: "sim-manager".into(),
            role: Role::Manager,
        };
        for _ in 0..sends {
            let s = &mut self.stores[i];
            let idem = linli_edge::app::idempotency::IdempotencyKey::parse(&key)?;
            let req = linli_edge::app::sales::RefundRequest {
                lines: None,
                disposition: None,
                reason: Some("顾客退货".into()),
            };
            let answer = s.app.refund_sale(&manager, idem, &sale, req).await;
            if let Ok((r, _)) = &answer {
                self.refund_answered(&sale, r)?;
            }
            let s = &mut self.stores[i];
            let what = match answer {
                Ok((r, replayed)) => {
                    match s.refund_keys.get(&key) {
                        Some(earlier) if *earlier != r.refund_id => {
                            bail!(
                                "{}: refund key {key} answered {} after {earlier}",
                                s.id,
                                r.refund_id
                            )
                        }
                        None if replayed => {
                            bail!("{}: a first refund request {key} was a replay", s.id)
                        }
                        Some(_) if !replayed => bail!("{}: refund {key} made twice", s.id),
                        _ => {}
                    }
                    if !replayed {
                        self.report.refunds += 1;
                    }
                    s.refund_keys.insert(key.clone(), r.refund_id.clone());
                    s.refunds
                        .insert(r.refund_id.clone(), (r.sale_id.clone(), r.amount_fen));
                    format!(
                        "{} refunded {} of {sale} ({})",
                        s.id, r.amount_fen, r.refund_id
                    )
                }
                Err(e) => format!("{} refused a refund of {sale}: {e}", s.id),
            };
            self.note(what);
        }
        self.pump().await
    }

    /// Ends a link: what was in flight is lost and both ends end their
    /// session as the QUIC drivers do.
    async fn cut(&mut self, i: usize, why: &str) -> anyhow::Result<()> {
        let s = &mut self.stores[i];
        let lost = s.link.to_hub.drop_in_flight() + s.link.to_store.drop_in_flight();
        if let Some((store, hub, session)) = s.link.up.take() {
            store.host.session_ended().await;
            if self.hub.link_down(&s.id, session) {
                hub.host.store_left().await;
            }
            self.report.cuts += 1;
        }
        self.report.frames_lost += lost;
        let id = self.stores[i].id.clone();
        self.note(format!("{id} link cut ({why}), {lost} frames lost"));
        Ok(())
    }

    /// A new connection and session at both ends.
    async fn heal(&mut self, i: usize) -> anyhow::Result<()> {
        let s = &mut self.stores[i];
        if s.link.up.is_some() {
            return Ok(());
        }
        let hub_host = Arc::new(HubHost::new(self.hub.clone(), s.id.clone()));
        let hub_changes = self.hub.subscribe();
        hub_host.session_began().await;
        let store_side = Side {
            host: Arc::new(EdgeHost::new(s.app.clone(), s.status.clone())),
            core: Session::new(s.id.clone()),
            changes: s.app.sync_ctx().subscribe(),
        };
        let hub_side = Side {
            host: hub_host,
            core: Session::new(s.id.clone()),
            changes: hub_changes,
        };
        let session = self.hub.link_up(&s.id, None);
        s.link.up = Some((store_side, hub_side, session));
        let id = s.id.clone();
        self.note(format!("{id} link up"));
        self.pump().await
    }

    /// The store's process dies at a commit boundary and starts again
    /// from its database.
    async fn crash_store(&mut self, i: usize) -> anyhow::Result<()> {
        self.cut(i, "store crash").await?;
        self.reopen_store(i).await?;
        let s = &mut self.stores[i];
        s.app.rebalance_rights().await?;
        self.report.store_crashes += 1;
        let id = s.id.clone();
        self.note(format!("{id} crashed and restarted"));
        Ok(())
    }

    /// The store's PC is replaced after a sync (its disk failed, say): a
    /// new, empty database under the same identity recovers what the hub
    /// holds before it sells again. Only once the hub holds every sale and
    /// refund the store answered: what a disk loses before it synced is
    /// lost by its nature, not what this checks. The old PC's clients send
    /// nothing again.
    async fn replace_store(&mut self, i: usize) -> anyhow::Result<()> {
        self.heal(i).await?;
        self.quiesce().await?;
        let id = self.stores[i].id.clone();
        let hub_db = self.hub_db();
        let held = self
            .audit
            .hub_sales(&hub_db)?
            .remove(&id)
            .unwrap_or_default();
        let refunds = self.audit.hub_refunds(&hub_db, &id)?;
        let s = &self.stores[i];
        if s.app.sync_ctx().recovering()
            || held.len() != s.committed.len()
            || refunds.len() != s.refunds.len()
        {
            self.note(format!("{id}: the hub does not hold all yet; its PC stays"));
            return Ok(());
        }
        self.cut(i, "store PC replaced").await?;
        let s = &mut self.stores[i];
        s.app.store().shutdown().await;
        let db = linli_edge::config::database_path(&s.dir);
        self.audit.forget(&db);
        for suffix in ["", "-wal", "-shm"] {
            let f = PathBuf::from(format!("{}{suffix}", db.display()));
            if f.exists() {
                std::fs::remove_file(&f)?;
            }
        }
        s.skew.store(0, Ordering::Relaxed);
        s.unanswered.clear();
        s.by_key.clear();
        s.refund_keys.clear();
        self.reopen_store(i).await?;
        anyhow::ensure!(
            self.stores[i].app.sync_ctx().recovering(),
            "{id}: a new database did not start in recovery"
        );
        self.report.stores_replaced += 1;
        self.note(format!("{id}: PC replaced, recovering"));
        self.heal(i).await
    }

    /// Stops store `i`'s process (if it still runs) and starts it again on
    /// what its directory holds, as a node with a hub starts.
    async fn reopen_store(&mut self, i: usize) -> anyhow::Result<()> {
        let s = &mut self.stores[i];
        s.app.store().shutdown().await;
        s.app = open_store(
            &self.hub_dir,
            &s.id,
            &s.dir,
            &self.clock,
            &s.skew,
            self.settings.part_changes,
        )
        .await?;
        Ok(())
    }

    /// The store PC's clock is set back (an NTP correction after it ran
    /// fast, a cashier's hand) or forward (a cashier's hand, a PC that
    /// ran fast) by up to 15 minutes, or, when it is off, put right again.
    fn step_clock(&mut self, i: usize) -> anyhow::Result<()> {
        let s = &self.stores[i];
        let was = s.skew.load(Ordering::Relaxed);
        let to = match was {
            0 => {
                let by = self.rng.gen_range(1_000..=900_000);
                if self.rng.gen_bool(0.5) { -by } else { by }
            }
            _ => 0,
        };
        s.skew.store(to, Ordering::Relaxed);
        self.report.clock_steps += 1;
        let id = s.id.clone();
        self.note(format!("{id} clock set from {was:+} ms to {to:+} ms"));
        Ok(())
    }

    async fn restart_hub(&mut self) -> anyhow::Result<()> {
        for i in 0..self.stores.len() {
            let s = &mut self.stores[i];
            self.report.frames_lost +=
                s.link.to_hub.drop_in_flight() + s.link.to_store.drop_in_flight();
            if let Some((store, _, _)) = s.link.up.take() {
                store.host.session_ended().await;
                self.report.cuts += 1;
            }
        }
        self.hub.store.shutdown().await;
        self.hub = open_hub(&self.hub_dir, &self.clock, self.settings.scheme).await?;
        self.report.hub_restarts += 1;
        self.note("hub restarted; every link cut".into());
        Ok(())
    }

    /// Carries out everything that can happen at the current virtual time.
    async fn pump(&mut self) -> anyhow::Result<()> {
        let at = self.clock.elapsed();
        let now = self.clock.instant(at);
        let faults = self.settings.faults;
        loop {
            let mut progressed = false;
            for i in 0..self.stores.len() {
                let s = &mut self.stores[i];
                let Some((store, hub, _)) = s.link.up.as_mut() else {
                    continue;
                };
                progressed |= store.feed(now) | hub.feed(now);
                while let Some(frame) = s.link.to_store.take_due(at) {
                    store.host.on_activity();
                    store.core.handle_frame(frame?);
                    progressed = true;
                }
                while let Some(frame) = s.link.to_hub.take_due(at) {
                    hub.host.on_activity();
                    hub.core.handle_frame(frame?);
                    progressed = true;
                }
                let r = match store
                    .effects(&mut s.link.to_hub, (at, now), &faults, &mut self.rng)
                    .await
                {
                    Ok(a) => hub
                        .effects(&mut s.link.to_store, (at, now), &faults, &mut self.rng)
                        .await
                        .map(|b| a | b),
                    Err(e) => Err(e),
                };
                match r {
                    Ok(any) => progressed |= any,
                    Err(e) => {
                        // a session error ends the connection, as in the
                        // QUIC driver; the store reconnects later
                        let why = format!("session error: {e:#}");
                        self.cut(i, &why).await?;
                        bail!("{} {why}", self.stores[i].id);
                    }
                }
            }
            if !progressed {
                return Ok(());
            }
        }
    }

    /// When the next frame arrives or a session timer fires.
    fn next_event(&self) -> Option<Duration> {
        let mut next: Option<Duration> = None;
        let mut consider = |t: Option<Duration>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        for s in &self.stores {
            if let Some((store, hub, _)) = &s.link.up {
                consider(s.link.to_hub.next_due());
                consider(s.link.to_store.next_due());
                for timer in [store.core.poll_timeout(), hub.core.poll_timeout()] {
                    consider(
                        timer.map(|t| {
                            t.saturating_duration_since(self.clock.instant(Duration::ZERO))
                        }),
                    );
                }
            }
        }
        next
    }

    /// Writes every store's outbox to its documents, as a node's drainer
    /// does a moment after its facts committed. Between two of these the
    /// facts of the steps in between wait in the outbox, and a store that
    /// crashes meanwhile drains them after its restart. Returns the rows
    /// drained.
    async fn drain_outboxes(&mut self) -> anyhow::Result<usize> {
        let mut rows = 0;
        for s in &self.stores {
            rows += s.app.drain_outbox().await?;
        }
        Ok(rows)
    }

    /// Lets `d` of virtual time pass, event by event.
    async fn advance(&mut self, d: Duration) -> anyhow::Result<()> {
        self.drain_outboxes().await?;
        let target = self.clock.elapsed() + d;
        while let Some(t) = self.next_event().filter(|t| *t <= target) {
            self.clock.set(t.max(self.clock.elapsed()));
            self.pump().await?;
        }
        self.clock.set(target);
        self.note(format!("{} ms passed", d.as_millis()));
        self.pump().await
    }

    /// Whether a frame is in flight or a session has a push waiting (the
    /// periodic index aside).
    fn busy(&self) -> bool {
        self.stores.iter().any(|s| {
            !s.link.to_hub.is_empty()
                || !s.link.to_store.is_empty()
                || s.link
                    .up
                    .as_ref()
                    .is_some_and(|(a, b, _)| a.core.push_pending() || b.core.push_pending())
        })
    }

    /// Runs until nothing is in flight and no push waits (at most a
    /// virtual minute).
    async fn quiesce(&mut self) -> anyhow::Result<()> {
        let deadline = self.clock.elapsed() + Duration::from_secs(60);
        loop {
            self.pump().await?;
            // what the hub's messages made the stores write goes out too,
            // and what a store held until its session confirmed it
            if self.drain_outboxes().await? > 0 {
                continue;
            }
            if !self.busy() {
                return Ok(());
            }
            let Some(t) = self.next_event() else {
                return Ok(());
            };
            if t > deadline {
                bail!("still busy after a virtual minute");
            }
            self.clock.set(t.max(self.clock.elapsed()));
        }
    }

    /// The invariants of every step; `idle` adds those of a quiet chain.
    async fn check(&mut self, idle: bool) -> anyhow::Result<()> {
        let mut at_hub = self.audit.hub_sales(&self.hub_db())?;
        let hub_db = self.hub_db();
        for s in &mut self.stores {
            let db = linli_edge::config::database_path(&s.dir);
            let held = at_hub.remove(&s.id).unwrap_or_default();
            check::hub_holds_only_real_sales(&s.id, &held, &s.committed, &s.hub_held)?;
            s.hub_held.extend(held.into_keys());
            if s.app.sync_ctx().recovering() {
                // a replaced PC's tables fill when its recovery ends; it
                // sells nothing before
                anyhow::ensure!(!idle, "{}: still recovering once idle", s.id);
                continue;
            }
            check::store_holds_what_it_answered(
                &s.id,
                &self.audit.store_sales(&db)?,
                &s.committed,
            )?;
            if let Some((sku, n)) = self
                .audit
                .store_levels(&db)?
                .into_iter()
                .find(|(_, n)| *n < 0)
            {
                bail!("{}: {n} of {sku} on the shelf", s.id);
            }
            check::refunds_once(
                &s.id,
                &self.audit.store_refunds(&db)?,
                &s.refunds,
                &self.audit.hub_refunds(&hub_db, &s.id)?,
                &s.committed,
                idle,
            )?;
        }
        if let Some(other) = at_hub.keys().next() {
            bail!("the hub holds sales of {other}, which is not in this chain");
        }
        self.check_campaign().await?;
        self.check_coupons(idle).await?;
        Ok(())
    }

    async fn close(&mut self) {
        for i in 0..self.stores.len() {
            let _ = self.cut(i, "end of run").await;
            self.stores[i].app.store().shutdown().await;
        }
        self.hub.store.shutdown().await;
    }
}
