//! Sync benchmark on loopback, everything in one process: a real hub
//! (`HubServer`), a real store node (`Node`) and, for scale, 200 simulated
//! stores built from the sync library alone (SQLite + `Docs` + a session per
//! QUIC connection, no HTTP).
//!
//! 1. Catch-up after an outage: the store reaches the hub through the
//!    harness's UDP proxy (`LinkMode::Cut` / `Up`) behind a counting relay;
//!    5,000 sales of 3 lines are recorded while cut, then the link is
//!    restored and the time until the hub holds every sale is split into
//!    the store's reconnect, the handshake and the sync itself, with the
//!    bytes the relay carried.
//! 2. Live propagation: sales one at a time, each awaited; the time from
//!    the sale's acknowledgment to its row at the hub (polled every 1 ms).
//! 3. One hub, 200 simulated stores: changes/s the hub applies while every
//!    store pushes its sales, then a hub restart on the same port and the
//!    time until every store is back and the hub holds every sale.
//!
//! Simulated stores write only their ledger document; a real store also
//! pushes a stock-document change with every sale, which costs the hub more
//! than the ledger change (see the CPU per sale in part 2).
//!
//! To say where time goes, the bench reads the CPU time of the hub's and the
//! stores' SQLite writer threads from `/proc/self/task` and the kernel's
//! count of UDP datagrams dropped on full receive buffers from
//! `/proc/net/snmp` (Linux; elsewhere those figures read 0).
//!
//! Run with `cargo bench -p linli-tests --bench sync_bench` (release build,
//! about two minutes; `SYNC_BENCH_PARTS=3` runs part 3 alone, `12` parts 1
//! and 2, e.g. under `perf record`). Every figure is printed with its sample
//! count and the goal beside it.

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use chrono::{DateTime, NaiveDate, Utc};
use linli_edge::app::idempotency::IdempotencyKey;
use linli_edge::app::sales::{PaymentRequest, SaleLineRequest, SaleRequest};
use linli_edge::app::{Actor, App, Role};
use linli_edge::config::Config;
use linli_edge::node::Node;
use linli_hub::hub::{Hub, HubPaths};
use linli_hub::server::HubServer;
use linli_shared::Unit;
use linli_shared::sale::PaymentMethod;
use linli_sync::db::StoreError;
use linli_sync::tls::{self, Ca, StoreIdentity, TransportSettings};
use linli_tests::probe::{parse_stat, process_cpu, udp_rcvbuf_errors, udp_socket_drops};
use linli_tests::sim::{SimError, SimStore, failures, sim_link, summary};
use linli_tests::{LinkMode, UdpProxy};
use rusqlite::Connection;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Sales recorded while the link is cut (part 1).
const OUTAGE_SALES: usize = 5_000;
/// The outage lasts at least this long (the store is then in its
/// reconnect cycle, as after any real outage).
const MIN_OUTAGE: Duration = Duration::from_secs(10);
/// Sales in flight while recording the outage's sales.
const RECORD_CONCURRENCY: usize = 32;
/// Warm-up sales before the live measurement (part 2).
const WARMUP_SALES: usize = 20;
/// Live sales, one at a time (part 2).
const LIVE_SALES: usize = 500;
/// Sales one at a time, linked and then with the link down (2c).
const COUNTER_SALES: usize = 1_000;
/// Outages (seconds, no sales) after which only the reconnect is timed.
const RECONNECT_OUTAGES: [u64; 5] = [4, 6, 9, 12, 15];
/// Live sales again after the catch-up, on a ledger of ~5,500 sales.
const LIVE_SALES_LATE: usize = 200;
/// Simulated stores (part 3).
const SIM_STORES: usize = 200;
/// Sales each simulated store pushes in 3a, one change each.
const SIM_SALES: usize = 50;
/// Sales each simulated store records while the hub is down (3b).
const SIM_SALES_DOWN: usize = 10;
/// Deadline of any single wait; the bench fails rather than hang.
const DEADLINE: Duration = Duration::from_secs(90);

fn main() -> Result<()> {
    let started = Instant::now();
    // `SYNC_BENCH_LOG=linli_hub=info` (an env filter) logs to stderr
    if let Ok(filter) = std::env::var("SYNC_BENCH_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .init();
    }
    let tmp = tempfile::tempdir().context("cannot create a temp dir")?;
    // one runtime for hub, node and simulated stores, a worker per core
    // (the SQLite writers run on their own threads)
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot build the runtime")?;
    let mut report = Report::default();
    // `SYNC_BENCH_PARTS=3` runs part 3 only (for profiling), `12` parts 1 and 2
    let parts = std::env::var("SYNC_BENCH_PARTS").unwrap_or_else(|_| "123".into());
    rt.block_on(async {
        if parts.contains('1') || parts.contains('2') {
            one_store(tmp.path(), &mut report).await?;
        }
        if parts.contains('3') {
            many_stores(tmp.path(), &mut report).await?;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    report.print(started.elapsed());
    Ok(())
}

// ---------------------------------------------------------------- report

struct Row {
    name: String,
    samples: String,
    value: String,
    goal: String,
    verdict: &'static str,
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Report {
    fn row(
        &mut self,
        name: &str,
        samples: impl ToString,
        value: String,
        goal: &str,
        ok: Option<bool>,
    ) {
        self.rows.push(Row {
            name: name.to_owned(),
            samples: samples.to_string(),
            value,
            goal: goal.to_owned(),
            verdict: match ok {
                Some(true) => "ok",
                Some(false) => "MISSED",
                None => "",
            },
        });
    }

    fn note(&mut self, text: String) {
        self.notes.push(text);
    }

    fn print(&self, elapsed: Duration) {
        let w = self
            .rows
            .iter()
            .map(|r| r.name.chars().count())
            .max()
            .unwrap_or(10);
        println!();
        println!(
            "Linli sync bench: loopback, one process, {} cores, release build",
            std::thread::available_parallelism().map_or(0, usize::from)
        );
        println!();
        println!(
            "{:<w$}  {:>9}  {:>18}  {:<14} ",
            "figure", "samples", "result", "goal"
        );
        println!("{}", "-".repeat(w + 50));
        for r in &self.rows {
            println!(
                "{:<w$}  {:>9}  {:>18}  {:<14} {}",
                r.name, r.samples, r.value, r.goal, r.verdict
            );
        }
        println!();
        for n in &self.notes {
            println!("- {n}");
        }
        println!();
        println!("total wall time {:.1} s", elapsed.as_secs_f64());
    }
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The `q`-quantile of sorted samples (nearest rank).
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn progress(msg: &str) {
    eprintln!("[sync_bench] {msg}");
}

/// Polls `cond` every `every` until it holds, or fails after [`DEADLINE`].
async fn wait_until<F, Fut>(what: &str, every: Duration, mut cond: F) -> Result<Instant>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let start = Instant::now();
    loop {
        if cond().await? {
            return Ok(Instant::now());
        }
        if start.elapsed() > DEADLINE {
            bail!("timed out after {DEADLINE:?} waiting for {what}");
        }
        tokio::time::sleep(every).await;
    }
}

// ------------------------------------------------------------ hub queries

fn localhost0() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn link_connected_since(hub: &Hub, store: &str) -> Option<DateTime<Utc>> {
    hub.links()
        .get(store)
        .filter(|l| l.connected)
        .map(|l| l.since)
}

async fn hub_sale_count(hub: &Hub, store: Option<&str>) -> Result<usize> {
    let store = store.map(str::to_owned);
    let n: i64 = hub
        .store
        .read(move |c: &Connection| {
            let n = match &store {
                Some(s) => c
                    .prepare_cached("SELECT count(*) FROM hub_sales WHERE store_id = ?1")?
                    .query_row([s], |r| r.get(0))?,
                None => c
                    .prepare_cached("SELECT count(*) FROM hub_sales")?
                    .query_row([], |r| r.get(0))?,
            };
            Ok::<_, StoreError>(n)
        })
        .await?;
    Ok(usize::try_from(n)?)
}

async fn hub_has_sale(hub: &Hub, store: &str, sale_id: &str) -> Result<bool> {
    let (s, id) = (store.to_owned(), sale_id.to_owned());
    Ok(hub
        .store
        .read(move |c: &Connection| {
            c.prepare_cached(
                "SELECT EXISTS(SELECT 1 FROM hub_sales WHERE store_id = ?1 AND sale_id = ?2)",
            )?
            .query_row([s, id], |r| r.get(0))
            .map_err(StoreError::from)
        })
        .await?)
}

/// Starts a hub, retrying while its QUIC port is still held by the
/// previous instance.
async fn start_hub(paths: &HubPaths, quic: SocketAddr) -> Result<HubServer> {
    let start = Instant::now();
    loop {
        match HubServer::start(paths, localhost0(), quic, &[]).await {
            Ok(s) => return Ok(s),
            Err(e) if start.elapsed() < Duration::from_secs(10) => {
                progress(&format!("hub start failed ({e:#}); retrying"));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e.context("the hub does not start")),
        }
    }
}

// ------------------------------------------------ CPU and UDP probes

/// CPU time of this process's threads by thread id, with their names, from
/// `/proc/self/task` (Linux; empty elsewhere). Ticks are taken as 10 ms
/// (`CLK_TCK` = 100 on Linux).
#[derive(Clone, Default)]
struct Cpu(std::collections::HashMap<u32, (String, Duration)>);

impl Cpu {
    fn now() -> Cpu {
        let mut out = std::collections::HashMap::new();
        let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
            return Cpu(out);
        };
        for e in dir.flatten() {
            let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            if let Some((name, cpu)) = parse_stat(&stat) {
                out.insert(tid, (name, cpu));
            }
        }
        Cpu(out)
    }

    /// The SQLite writer threads started since `self`.
    fn new_writers(&self) -> Vec<u32> {
        Cpu::now()
            .0
            .into_iter()
            .filter(|(tid, (name, _))| name == "sqlite-writer" && !self.0.contains_key(tid))
            .map(|(tid, _)| tid)
            .collect()
    }

    /// CPU the threads `tids` used between `self` and `later`.
    fn used(&self, later: &Cpu, tids: &[u32]) -> Duration {
        tids.iter()
            .map(|t| {
                let after = later.0.get(t).map_or(Duration::ZERO, |x| x.1);
                let before = self.0.get(t).map_or(Duration::ZERO, |x| x.1);
                after.saturating_sub(before)
            })
            .sum()
    }
}

fn cpu_ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ------------------------------------------------- counting UDP relay

/// What the relay carried (UDP payload bytes; add 28 bytes of IPv4 and
/// UDP header per packet for the bytes on a real wire).
#[derive(Clone, Copy, Default)]
struct Traffic {
    up: u64,
    down: u64,
    up_pkts: u64,
    down_pkts: u64,
}

impl Traffic {
    fn payload(&self) -> u64 {
        self.up + self.down
    }
    fn wire(&self) -> u64 {
        self.payload() + 28 * (self.up_pkts + self.down_pkts)
    }
    fn minus(&self, o: &Traffic) -> Traffic {
        Traffic {
            up: self.up - o.up,
            down: self.down - o.down,
            up_pkts: self.up_pkts - o.up_pkts,
            down_pkts: self.down_pkts - o.down_pkts,
        }
    }
}

struct MeterShared {
    target: SocketAddr,
    client: Mutex<Option<SocketAddr>>,
    stop: AtomicBool,
    up: AtomicU64,
    down: AtomicU64,
    up_pkts: AtomicU64,
    down_pkts: AtomicU64,
    /// Set by [`Meter::reset`]; the first packet from the store after it.
    armed: AtomicBool,
    first_up: Mutex<Option<Instant>>,
}

/// A minimal counting UDP relay, put in front of the harness's proxy
/// (which has no counters): store → meter → proxy → hub.
struct Meter {
    addr: SocketAddr,
    shared: Arc<MeterShared>,
}

impl Meter {
    fn start(target: SocketAddr) -> std::io::Result<Meter> {
        let front = UdpSocket::bind("127.0.0.1:0")?;
        let back = UdpSocket::bind("127.0.0.1:0")?;
        front.set_read_timeout(Some(Duration::from_millis(50)))?;
        back.set_read_timeout(Some(Duration::from_millis(50)))?;
        let addr = front.local_addr()?;
        let shared = Arc::new(MeterShared {
            target,
            client: Mutex::new(None),
            stop: AtomicBool::new(false),
            up: AtomicU64::new(0),
            down: AtomicU64::new(0),
            up_pkts: AtomicU64::new(0),
            down_pkts: AtomicU64::new(0),
            armed: AtomicBool::new(false),
            first_up: Mutex::new(None),
        });
        let (f2, b2) = (front.try_clone()?, back.try_clone()?);
        let s = shared.clone();
        std::thread::spawn(move || meter_relay(&front, &back, &s, true));
        let s = shared.clone();
        std::thread::spawn(move || meter_relay(&b2, &f2, &s, false));
        Ok(Meter { addr, shared })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn totals(&self) -> Traffic {
        let s = &self.shared;
        Traffic {
            up: s.up.load(Ordering::Relaxed),
            down: s.down.load(Ordering::Relaxed),
            up_pkts: s.up_pkts.load(Ordering::Relaxed),
            down_pkts: s.down_pkts.load(Ordering::Relaxed),
        }
    }

    /// Starts watching for the store's next packet.
    fn arm(&self) {
        *self
            .shared
            .first_up
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        self.shared.armed.store(true, Ordering::SeqCst);
    }

    /// When the store sent its first packet after [`Meter::arm`].
    fn first_packet(&self) -> Option<Instant> {
        *self
            .shared
            .first_up
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

fn meter_relay(from: &UdpSocket, to: &UdpSocket, s: &MeterShared, upstream: bool) {
    let mut buf = vec![0u8; 65_536];
    while !s.stop.load(Ordering::Relaxed) {
        let Ok((n, src)) = from.recv_from(&mut buf) else {
            continue; // timeout: check stop
        };
        let dest = if upstream {
            *s.client.lock().unwrap_or_else(PoisonError::into_inner) = Some(src);
            if s.armed.swap(false, Ordering::SeqCst) {
                *s.first_up.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
            }
            Some(s.target)
        } else {
            *s.client.lock().unwrap_or_else(PoisonError::into_inner)
        };
        let Some(dest) = dest else { continue };
        if to.send_to(&buf[..n], dest).is_ok() {
            let (bytes, pkts) = if upstream {
                (&s.up, &s.up_pkts)
            } else {
                (&s.down, &s.down_pkts)
            };
            bytes.fetch_add(n as u64, Ordering::Relaxed);
            pkts.fetch_add(1, Ordering::Relaxed);
        }
    }
}

// ------------------------------------------------- parts 1 and 2: a node

/// Sells 3-line sales at a node, through `App::record_sale` (no HTTP).
struct Seller {
    app: App,
    actor: Actor,
    /// (sku, qty): units for `each`, grams for `kg` products.
    products: Vec<(String, i64)>,
}

impl Seller {
    fn new(app: App) -> Result<Seller> {
        let parsed = linli_shared::catalog::parse_catalog_csv(linli_edge::demo::SAMPLE_CATALOG)?;
        let products: Vec<(String, i64)> = parsed
            .products
            .into_iter()
            .map(|(_, p)| {
                let qty = match p.unit {
                    Unit::Each => 1,
                    Unit::Kg => 500,
                };
                (p.sku.to_string(), qty)
            })
            .collect();
        ensure!(!products.is_empty(), "the sample catalog is empty");
        Ok(Seller {
            app,
            actor: Actor {
                name: "bench".into(),
                role: Role::Manager,
            },
            products,
        })
    }

    /// Records sale `i`; returns its id and business day.
    async fn sell(&self, key: &str, i: usize) -> Result<(String, NaiveDate)> {
        let lines = (0..3)
            .map(|l| {
                let (sku, qty) = &self.products[(i * 3 + l) % self.products.len()];
                SaleLineRequest {
                    barcode: None,
                    sku: Some(sku.clone()),
                    qty: Some(*qty),
                }
            })
            .collect();
        let req = SaleRequest {
            lines,
            payments: vec![PaymentRequest {
                method: PaymentMethod::Cash,
                amount_fen: 1_000_000,
            }],
            member_phone: None,
            coupon: None,
        };
        let (receipt, replayed) = self
            .app
            .record_sale(&self.actor, IdempotencyKey::parse(key)?, req)
            .await?;
        ensure!(!replayed, "sale {key} was a replay");
        Ok((receipt.sale_id, receipt.business_day))
    }
}

/// Records `n` sales with [`RECORD_CONCURRENCY`] in flight.
async fn record_many(seller: &Arc<Seller>, prefix: &str, n: usize) -> Result<Vec<String>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..RECORD_CONCURRENCY {
        let (seller, next, prefix) = (seller.clone(), next.clone(), prefix.to_owned());
        tasks.spawn(async move {
            let mut ids = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(ids);
                }
                ids.push(seller.sell(&format!("{prefix}-{i}"), i).await?.0);
            }
        });
    }
    let mut all = Vec::with_capacity(n);
    while let Some(r) = tasks.join_next().await {
        all.extend(r??);
    }
    Ok(all)
}

/// Sales one at a time as fast as the counter goes; returns each sale's
/// sorted latency (request to receipt).
async fn counter(seller: &Seller, prefix: &str, n: usize, first: usize) -> Result<Vec<Duration>> {
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        seller.sell(&format!("{prefix}-{i}"), first + i).await?;
        lat.push(t.elapsed());
    }
    lat.sort();
    Ok(lat)
}

/// The store's own view of its link (`GET /health`): `connected`, ...
async fn store_link_state(http: &reqwest::Client, addr: SocketAddr) -> Result<String> {
    let h: serde_json::Value = http
        .get(format!("http://{addr}/health"))
        .send()
        .await?
        .json()
        .await?;
    Ok(h["sync"]["state"].as_str().unwrap_or_default().to_owned())
}
/// Live sales one at a time; returns the sorted ack → hub latencies.
async fn live(
    seller: &Seller,
    hub: &Hub,
    prefix: &str,
    n: usize,
    first: usize,
) -> Result<Vec<Duration>> {
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let (sale_id, _) = seller.sell(&format!("{prefix}-{i}"), first + i).await?;
        let acked = Instant::now();
        wait_until(
            "a live sale to reach the hub",
            Duration::from_millis(1),
            || hub_has_sale(hub, "S001", &sale_id),
        )
        .await?;
        lat.push(acked.elapsed());
    }
    lat.sort();
    Ok(lat)
}

fn live_rows(report: &mut Report, label: &str, lat: &[Duration]) {
    let (p50, p99, max) = (quantile(lat, 0.5), quantile(lat, 0.99), quantile(lat, 1.0));
    report.row(
        &format!("{label} p50"),
        lat.len(),
        ms(p50),
        "≤ 50 ms",
        Some(p50 <= Duration::from_millis(50)),
    );
    report.row(
        &format!("{label} p99"),
        lat.len(),
        ms(p99),
        "≤ 1 s",
        Some(p99 <= Duration::from_secs(1)),
    );
    report.row(&format!("{label} max"), lat.len(), ms(max), "", None);
}

/// Parts 1 and 2: one node behind the proxy.
async fn one_store(dir: &Path, report: &mut Report) -> Result<()> {
    progress("1-2: starting a hub and a store node behind the UDP proxy");
    let paths = HubPaths {
        data_dir: dir.join("hub1"),
    };
    let cpu = Cpu::now();
    let server = HubServer::start(&paths, localhost0(), localhost0(), &[]).await?;
    let hub_writer = cpu.new_writers();
    let identity = dir.join("S001-identity");
    Ca::load_or_create(&paths.ca_dir())?.issue_store("S001", &identity)?;
    let proxy = UdpProxy::start(server.quic_addr, 1)?;
    let meter = Meter::start(proxy.addr())?;
    let config = Config {
        store_id: "S001".into(),
        listen: "127.0.0.1:0".parse()?,
        hub: Some(meter.addr().to_string()),
        identity: Some(identity),
        // the bench pays every sale with ¥10,000 in cash
        max_change_fen: 1_000_000,
        ..Default::default()
    };
    let cpu = Cpu::now();
    let node = Node::start(config, dir.join("S001"), CancellationToken::new()).await?;
    let node_writer = cpu.new_writers();
    linli_edge::demo::seed(&node.app).await?;
    let hub = server.hub.clone();
    let sync = node.app.sync_ctx().clone();
    wait_until(
        "the store to connect and sync its seed",
        Duration::from_millis(20),
        || {
            let ok = link_connected_since(&hub, "S001").is_some() && sync.pending().0 == 0;
            async move { Ok(ok) }
        },
    )
    .await?;
    let seller = Arc::new(Seller::new(node.app.clone())?);

    // 2. live propagation
    progress("2: warm-up, then live sales one at a time");
    live(&seller, &hub, "warm", WARMUP_SALES, 0).await?;
    let cpu = Cpu::now();
    let lat = live(&seller, &hub, "live", LIVE_SALES, WARMUP_SALES).await?;
    let live_cpu = Cpu::now();
    let live_hub = cpu.used(&live_cpu, &hub_writer) / LIVE_SALES as u32;
    let live_node = cpu.used(&live_cpu, &node_writer) / LIVE_SALES as u32;
    let mut sold = WARMUP_SALES + LIVE_SALES;

    // 2c. what the link costs the counter: sales one at a time while the
    // session pushes each drain to the hub, then with the link down
    progress("2c: the counter's sales while linked, then with the link cut");
    let linked = counter(&seller, "linked", COUNTER_SALES, sold).await?;
    sold += COUNTER_SALES;
    wait_until(
        "the hub to hold the linked sales",
        Duration::from_millis(5),
        || {
            let hub = hub.clone();
            async move { Ok(hub_sale_count(&hub, Some("S001")).await? == sold) }
        },
    )
    .await?;
    let http = reqwest::Client::new();
    proxy.set_mode(LinkMode::Cut);
    wait_until(
        "the store to see its link down",
        Duration::from_millis(20),
        || {
            let http = http.clone();
            async move { Ok(store_link_state(&http, node.addr).await? != "connected") }
        },
    )
    .await?;
    let unlinked = counter(&seller, "unlinked", COUNTER_SALES, sold).await?;
    sold += COUNTER_SALES;
    proxy.set_mode(LinkMode::Up);
    wait_until(
        "the hub to hold the sales of the cut",
        Duration::from_millis(10),
        || {
            let hub = hub.clone();
            async move { Ok(hub_sale_count(&hub, Some("S001")).await? == sold) }
        },
    )
    .await?;
    for (label, lat) in [("linked", &linked), ("link down", &unlinked)] {
        let p99 = quantile(lat, 0.99);
        report.row(
            &format!("2c counter sale, {label}: p50 / p99"),
            lat.len(),
            format!("{} / {}", ms(quantile(lat, 0.5)), ms(p99)),
            "p99 ≤ 3 ms",
            Some(p99 <= Duration::from_millis(3)),
        );
    }
    report.note(format!(
        "2c: the link costs the counter {:.2}x at p50 and {:.2}x at p99 (sales one at a time, linked against link down, same store, same run)",
        quantile(&linked, 0.5).as_secs_f64() / quantile(&unlinked, 0.5).as_secs_f64().max(1e-9),
        quantile(&linked, 0.99).as_secs_f64() / quantile(&unlinked, 0.99).as_secs_f64().max(1e-9),
    ));

    // 1. catch-up after an outage
    progress("1: cutting the link and recording the outage's sales");
    let before = hub_sale_count(&hub, Some("S001")).await?;
    ensure!(
        before == sold,
        "hub holds {before} sales before the outage, want {sold}"
    );
    proxy.set_mode(LinkMode::Cut);
    let cut = Instant::now();
    let watcher = {
        let hub = hub.clone();
        tokio::spawn(async move {
            wait_until(
                "the hub to notice the outage",
                Duration::from_millis(10),
                || {
                    let down = link_connected_since(&hub, "S001").is_none();
                    async move { Ok(down) }
                },
            )
            .await
        })
    };
    let outage_ids = record_many(&seller, "outage", OUTAGE_SALES).await?;
    let recorded = cut.elapsed();
    sold += OUTAGE_SALES;
    let noticed = watcher.await?? - cut;
    tokio::time::sleep(MIN_OUTAGE.saturating_sub(cut.elapsed())).await;
    let outage = cut.elapsed();

    progress("1: restoring the link");
    let t0 = meter.totals();
    meter.arm();
    let healed_utc = Utc::now();
    proxy.set_mode(LinkMode::Up);
    let healed = Instant::now();
    let mut first_packet = None;
    let mut session = None;
    let mut at_session = (Traffic::default(), Cpu::default());
    let mut acked = None;
    let all = loop {
        if healed.elapsed() > DEADLINE {
            bail!("the hub does not hold the outage's sales after {DEADLINE:?}");
        }
        if first_packet.is_none() {
            first_packet = meter.first_packet();
        }
        if session.is_none() && link_connected_since(&hub, "S001").is_some_and(|s| s >= healed_utc)
        {
            session = Some(Instant::now());
            at_session = (meter.totals(), Cpu::now());
        }
        if session.is_some() {
            if acked.is_none() && sync.pending().0 == 0 {
                acked = Some(Instant::now());
            }
            if hub_sale_count(&hub, Some("S001")).await? == sold {
                break Instant::now();
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let at_all = Cpu::now();
    let traffic = meter.totals().minus(&t0);
    let handshake_traffic = at_session.0.minus(&t0);
    let sync_hub = at_session.1.used(&at_all, &hub_writer);
    let sync_node = at_session.1.used(&at_all, &node_writer);
    let acked = match acked {
        Some(a) => a,
        None => {
            wait_until(
                "the store to see its changes acknowledged",
                Duration::from_millis(1),
                || {
                    let ok = sync.pending().0 == 0;
                    async move { Ok(ok) }
                },
            )
            .await?
        }
    };
    let session = session.unwrap_or(all);
    let first_packet = first_packet.unwrap_or(session);

    // the hub holds every sale of the outage
    let (_, day) = seller.sell("probe", sold).await?;
    sold += 1;
    let got: HashSet<String> = hub
        .sales("S001", day)
        .await?
        .into_iter()
        .map(|s| s.sale_id)
        .collect();
    let missing = outage_ids.iter().filter(|id| !got.contains(*id)).count();
    ensure!(
        missing == 0,
        "the hub lacks {missing} of the outage's sales"
    );

    // the reconnect alone, after outages of several lengths
    let mut waits = vec![(first_packet - healed, session - healed)];
    for (i, secs) in RECONNECT_OUTAGES.iter().enumerate() {
        progress(&format!(
            "1: reconnect sample {}/{}: {secs} s outage",
            i + 1,
            RECONNECT_OUTAGES.len()
        ));
        proxy.set_mode(LinkMode::Cut);
        tokio::time::sleep(Duration::from_secs(*secs)).await;
        meter.arm();
        let healed_utc = Utc::now();
        proxy.set_mode(LinkMode::Up);
        let healed = Instant::now();
        let back = wait_until("the store to reconnect", Duration::from_millis(1), || {
            let back = link_connected_since(&hub, "S001").is_some_and(|s| s >= healed_utc);
            async move { Ok(back) }
        })
        .await?;
        let first = meter.first_packet().unwrap_or(back);
        waits.push((first - healed, back - healed));
    }

    let total = all - healed;
    report.row(
        "1  catch-up: link restored -> hub holds all",
        format!("{OUTAGE_SALES} sales"),
        secs(total),
        "≤ 2 s",
        Some(total <= Duration::from_secs(2)),
    );
    report.row(
        "1a   waiting for the store's next attempt",
        1,
        secs(first_packet.saturating_duration_since(healed)),
        "",
        None,
    );
    report.row(
        "1b   handshake + session start at the hub",
        1,
        secs(session.saturating_duration_since(first_packet)),
        "",
        None,
    );
    let apply = all.saturating_duration_since(session);
    report.row(
        "1c   sync + apply (session -> all at hub)",
        1,
        secs(apply),
        "",
        None,
    );
    report.row(
        "1c   CPU in it: hub writer / store writer",
        1,
        format!(
            "{:.2} / {:.2} s",
            sync_hub.as_secs_f64(),
            sync_node.as_secs_f64()
        ),
        "",
        None,
    );
    report.row(
        "1d   store sees everything acknowledged",
        1,
        secs(acked.saturating_duration_since(healed)),
        "",
        None,
    );
    let per_sale = traffic.payload() as f64 / OUTAGE_SALES as f64;
    report.row(
        "1e bytes relayed during catch-up, per sale",
        format!("{OUTAGE_SALES} sales"),
        format!("{per_sale:.1} B"),
        "≤ 100 B/sale",
        Some(per_sale <= 100.0),
    );
    report.row(
        "1f   of which before the session (handshake)",
        1,
        format!("{} B", handshake_traffic.payload()),
        "",
        None,
    );
    report.row(
        "1g   store -> hub / hub -> store",
        format!("{} pkts", traffic.up_pkts + traffic.down_pkts),
        format!("{} / {} B", traffic.up, traffic.down),
        "",
        None,
    );
    let mut to_packet: Vec<Duration> = waits.iter().map(|w| w.0).collect();
    let mut to_session: Vec<Duration> = waits.iter().map(|w| w.1).collect();
    to_packet.sort();
    to_session.sort();
    report.row(
        "1h reconnect: restored -> store's attempt p50/max",
        waits.len(),
        format!(
            "{:.2} / {:.2} s",
            quantile(&to_packet, 0.5).as_secs_f64(),
            quantile(&to_packet, 1.0).as_secs_f64()
        ),
        "",
        None,
    );
    report.row(
        "1h reconnect: restored -> session p50/max",
        waits.len(),
        format!(
            "{:.2} / {:.2} s",
            quantile(&to_session, 0.5).as_secs_f64(),
            quantile(&to_session, 1.0).as_secs_f64()
        ),
        "",
        None,
    );
    report.note(format!(
        "1: {OUTAGE_SALES} sales recorded in {:.2} s while cut ({RECORD_CONCURRENCY} in flight); \
         the hub noticed the outage after {:.2} s; link restored after {:.1} s. Bytes are UDP \
         payload both ways; with IPv4+UDP headers {:.1} B/sale. 1h: the catch-up's reconnect \
         plus outages of {:?} s without sales. The store's wait depends on where the restore \
         falls in its reconnect cycle: a handshake attempt sends its Initial at 0 and ~1 s \
         and gives up at the 3 s idle timeout, then a backoff sleep (100 ms doubling to 5 s, \
         ±50 %) follows, so a restore just after a retransmission waits up to ~2 s + 7.5 s.",
        recorded.as_secs_f64(),
        noticed.as_secs_f64(),
        outage.as_secs_f64(),
        traffic.wire() as f64 / OUTAGE_SALES as f64,
        RECONNECT_OUTAGES,
    ));

    // 2b. live propagation on a ledger of ~5,500 sales
    progress("2: live sales again, late in a busy day");
    let cpu = Cpu::now();
    let late = live(&seller, &hub, "late", LIVE_SALES_LATE, sold).await?;
    let late_cpu = Cpu::now();
    let late_hub = cpu.used(&late_cpu, &hub_writer) / LIVE_SALES_LATE as u32;
    let late_node = cpu.used(&late_cpu, &node_writer) / LIVE_SALES_LATE as u32;
    live_rows(
        report,
        &format!("2  live, ledger of ~{WARMUP_SALES} sales:"),
        &lat,
    );
    report.row(
        "2    CPU per sale: hub writer / store writer",
        LIVE_SALES,
        format!("{:.1} / {:.1} ms", cpu_ms(live_hub), cpu_ms(live_node)),
        "",
        None,
    );
    report.row(
        "2    one core of hub writer at that cost",
        LIVE_SALES,
        format!("{:.0} sales/s", 1000.0 / cpu_ms(live_hub).max(1e-3)),
        "",
        None,
    );
    live_rows(report, &format!("2b live, ledger of ~{sold} sales:"), &late);
    report.row(
        "2b   CPU per sale: hub writer / store writer",
        LIVE_SALES_LATE,
        format!("{:.1} / {:.1} ms", cpu_ms(late_hub), cpu_ms(late_node)),
        "",
        None,
    );

    node.shutdown().await;
    server.shutdown().await;
    drop(meter);
    drop(proxy);
    Ok(())
}

// ------------------------------------------ part 3: simulated stores

fn connected_count(hub: &Hub) -> usize {
    hub.links().values().filter(|l| l.connected).count()
}

fn applied_sum(hub: &Hub) -> u64 {
    hub.links().values().map(|l| l.changes_applied).sum()
}

/// Part 3: one hub, [`SIM_STORES`] simulated stores.
async fn many_stores(dir: &Path, report: &mut Report) -> Result<()> {
    progress("3: starting a hub and issuing certificates");
    let paths = HubPaths {
        data_dir: dir.join("hub3"),
    };
    let cpu = Cpu::now();
    let mut server = HubServer::start(&paths, localhost0(), localhost0(), &[]).await?;
    let mut hub_writer = cpu.new_writers();
    let quic = server.quic_addr;
    let setup = Instant::now();
    let ca = Ca::load_or_create(&paths.ca_dir())?;
    let ids: Vec<String> = (1..=SIM_STORES).map(|i| format!("T{i:03}")).collect();
    let sims_dir = dir.join("sims");
    {
        let (ca, ids, sims_dir) = (&ca, &ids, &sims_dir);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|t| {
                    s.spawn(move || {
                        for id in ids.iter().skip(t).step_by(4) {
                            ca.issue_store(id, &sims_dir.join(format!("{id}-identity")))?;
                        }
                        Ok::<_, anyhow::Error>(())
                    })
                })
                .collect();
            for h in handles {
                h.join()
                    .map_err(|_| anyhow!("certificate thread panicked"))??;
            }
            Ok::<_, anyhow::Error>(())
        })?;
    }
    let certs = setup.elapsed();
    progress("3: opening the simulated stores' databases");
    let day = NaiveDate::from_ymd_opt(2026, 11, 25).ok_or_else(|| anyhow!("bad date"))?;
    let cpu = Cpu::now();
    let mut sims = Vec::with_capacity(SIM_STORES);
    let mut endpoints = Vec::with_capacity(SIM_STORES);
    for id in &ids {
        sims.push(SimStore::open(id, &sims_dir.join(format!("{id}.db")), day, 0).await?);
        let identity = StoreIdentity::load(&sims_dir.join(format!("{id}-identity")))?;
        let cfg = tls::client_config(&identity, TransportSettings::default())?;
        endpoints.push(tls::client_endpoint(cfg, quic)?);
    }
    let store_writers = cpu.new_writers();
    let setup = setup.elapsed();

    progress("3: connecting every store");
    let cancel = CancellationToken::new();
    let mut links = JoinSet::new();
    let drops = udp_rcvbuf_errors();
    let hub_drops = udp_socket_drops(quic.port());
    let connecting = Instant::now();
    for (sim, endpoint) in sims.iter().zip(endpoints) {
        links.spawn(sim_link(sim.clone(), endpoint, quic, cancel.child_token()));
    }
    let hub = server.hub.clone();
    wait_until("every store to connect", Duration::from_millis(5), || {
        let n = connected_count(&hub);
        async move { Ok(n == SIM_STORES) }
    })
    .await?;
    let connect_all = connecting.elapsed();
    let connect_drops = udp_rcvbuf_errors().saturating_sub(drops);
    let connect_hub_drops = udp_socket_drops(quic.port()).saturating_sub(hub_drops);
    let connected_at = Instant::now();
    let connect_failures = failures(&sims, connecting, connected_at);

    // 3a. every store pushes its sales at once
    progress("3a: every store records and pushes its sales");
    let want = (SIM_STORES * SIM_SALES) as u64;
    let base = applied_sum(&hub);
    let (cpu, proc_cpu) = (Cpu::now(), process_cpu());
    let drops = udp_rcvbuf_errors();
    let hub_drops = udp_socket_drops(quic.port());
    let pushing = Instant::now();
    let mut sellers = JoinSet::new();
    for sim in &sims {
        let sim = sim.clone();
        sellers.spawn(async move {
            for i in 0..SIM_SALES {
                sim.sell(i, 1).await?;
            }
            Ok::<_, SimError>(Instant::now())
        });
    }
    let mut first_applied = None;
    let mut produced: Option<Instant> = None;
    let done = loop {
        if pushing.elapsed() > DEADLINE {
            bail!(
                "the hub applied {} of {want} changes after {DEADLINE:?}",
                applied_sum(&hub) - base
            );
        }
        let applied = applied_sum(&hub) - base;
        if first_applied.is_none() && applied > 0 {
            first_applied = Some(Instant::now());
        }
        if applied >= want {
            break Instant::now();
        }
        while let Some(r) = sellers.try_join_next() {
            let finished = r??;
            produced = Some(produced.map_or(finished, |p| p.max(finished)));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let (done_cpu, done_proc_cpu) = (Cpu::now(), process_cpu());
    let push_drops = udp_rcvbuf_errors().saturating_sub(drops);
    let push_hub_drops = udp_socket_drops(quic.port()).saturating_sub(hub_drops);
    while let Some(r) = sellers.join_next().await {
        let finished = r??;
        produced = Some(produced.map_or(finished, |p| p.max(finished)));
    }
    let produced = produced.unwrap_or(done);
    let held = hub_sale_count(&hub, None).await?;
    ensure!(
        held == SIM_STORES * SIM_SALES,
        "the hub holds {held} sales, want {}",
        SIM_SALES * SIM_STORES
    );
    let total = done - pushing;
    let rate = want as f64 / total.as_secs_f64();
    report.row(
        &format!("3a {SIM_STORES} stores push: changes/s applied at hub"),
        format!("{want} chg"),
        format!("{rate:.0} /s"),
        "",
        None,
    );
    let first_applied = first_applied.unwrap_or(done);
    report.row(
        "3a   first -> last change applied",
        format!("{want} chg"),
        format!(
            "{:.0} /s",
            want as f64
                / done
                    .saturating_duration_since(first_applied)
                    .as_secs_f64()
                    .max(1e-3)
        ),
        "",
        None,
    );
    report.row(
        "3a   stores done recording / hub done",
        SIM_STORES,
        format!(
            "{:.2} / {:.2} s",
            produced.saturating_duration_since(pushing).as_secs_f64(),
            total.as_secs_f64()
        ),
        "",
        None,
    );
    let hub_cpu = cpu.used(&done_cpu, &hub_writer);
    let stores_cpu = cpu.used(&done_cpu, &store_writers);
    let all_cpu = done_proc_cpu.saturating_sub(proc_cpu);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    report.row(
        "3a   hub writer CPU per change applied",
        format!("{want} chg"),
        format!("{:.2} ms", cpu_ms(hub_cpu) / want as f64),
        "",
        None,
    );
    report.row(
        "3a   CPU: hub writer / store writers / all",
        1,
        format!(
            "{:.1} / {:.1} / {:.1} s",
            hub_cpu.as_secs_f64(),
            stores_cpu.as_secs_f64(),
            all_cpu.as_secs_f64()
        ),
        "",
        None,
    );
    report.note(format!(
        "3a: over the {:.1} s the process used {:.0} % of the machine's {cores} cores; the \
         hub's writer thread was busy {:.0} % of the time and the simulated stores' writers \
         used {:.0} % of all CPU, so the figure is bound by the machine hosting hub and \
         stores together; the hub alone would sustain about {:.0} changes/s per core of writer \
         time.",
        total.as_secs_f64(),
        100.0 * all_cpu.as_secs_f64() / (total.as_secs_f64() * cores as f64),
        100.0 * hub_cpu.as_secs_f64() / total.as_secs_f64(),
        100.0 * stores_cpu.as_secs_f64() / all_cpu.as_secs_f64().max(1e-3),
        want as f64 / hub_cpu.as_secs_f64().max(1e-3),
    ));

    // 3b. hub restart on the same port
    progress("3b: restarting the hub");
    let stopping = Instant::now();
    server.shutdown().await;
    let stopped = stopping.elapsed();
    // the stores keep selling while the hub is away
    let mut sellers = JoinSet::new();
    for sim in &sims {
        let sim = sim.clone();
        sellers.spawn(async move { sim.sell(SIM_SALES, SIM_SALES_DOWN).await });
    }
    while let Some(r) = sellers.join_next().await {
        r??;
    }
    let down_for = stopping.elapsed();
    let drops = udp_rcvbuf_errors();
    let cpu = Cpu::now();
    let restarting = Instant::now();
    let restarted_utc = Utc::now();
    server = start_hub(&paths, quic).await?;
    hub_writer = cpu.new_writers();
    let hub_drops = udp_socket_drops(quic.port());
    let hub = server.hub.clone();
    let started = restarting.elapsed();
    let want = SIM_STORES * (SIM_SALES + SIM_SALES_DOWN);
    let mut all_connected = None;
    let converged = loop {
        if restarting.elapsed() > DEADLINE {
            bail!(
                "after the restart: {} stores connected, {} sales at the hub after {DEADLINE:?}",
                connected_count(&hub),
                hub_sale_count(&hub, None).await?
            );
        }
        if all_connected.is_none() && connected_count(&hub) == SIM_STORES {
            all_connected = Some(Instant::now());
        }
        if hub_sale_count(&hub, None).await? == want {
            break Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let converged_cpu = Cpu::now();
    let all_connected = match all_connected {
        Some(t) => t,
        None => {
            wait_until("every store to reconnect", Duration::from_millis(5), || {
                let n = connected_count(&hub);
                async move { Ok(n == SIM_STORES) }
            })
            .await?
        }
    };
    let restart_drops = udp_rcvbuf_errors().saturating_sub(drops);
    let restart_hub_drops = udp_socket_drops(quic.port()).saturating_sub(hub_drops);
    let mut reconnects: Vec<Duration> = hub
        .links()
        .values()
        .map(|l| (l.since - restarted_utc).to_std().unwrap_or_default())
        .collect();
    reconnects.sort();
    let total = converged - restarting;
    report.row(
        "3b hub restart: back -> all stores reconnected",
        SIM_STORES,
        secs(all_connected - restarting),
        "",
        None,
    );
    report.row(
        "3b   per store reconnect p50 / p90 / max",
        reconnects.len(),
        format!(
            "{:.2} / {:.2} / {:.2} s",
            quantile(&reconnects, 0.5).as_secs_f64(),
            quantile(&reconnects, 0.9).as_secs_f64(),
            quantile(&reconnects, 1.0).as_secs_f64()
        ),
        "",
        None,
    );
    report.row(
        "3b   back -> hub holds every sale",
        format!("{want} sales"),
        secs(total),
        "",
        None,
    );
    report.row(
        "3b   hub writer CPU until converged",
        1,
        format!(
            "{:.2} s",
            cpu.used(&converged_cpu, &hub_writer).as_secs_f64()
        ),
        "",
        None,
    );
    let buckets = [0.5, 1.0, 2.0, 3.0, f64::INFINITY];
    let mut counts = [0usize; 5];
    for r in &reconnects {
        let i = buckets
            .iter()
            .position(|b| r.as_secs_f64() <= *b)
            .unwrap_or(buckets.len() - 1);
        counts[i] += 1;
    }
    let (down_failures, up_failures) = (
        failures(&sims, stopping, restarting),
        failures(&sims, restarting, Instant::now()),
    );
    let sessions: usize = sims
        .iter()
        .map(|s| s.sessions.load(Ordering::Relaxed))
        .sum();
    report.note(format!(
        "3: setup {:.1} s ({SIM_STORES} certificates in {:.1} s, databases, endpoints). All \
         {SIM_STORES} stores connected in {:.2} s at start ({connect_drops} UDP datagrams \
         dropped on full receive buffers meanwhile, {connect_hub_drops} of them at the hub's \
         socket; {} failed attempts: {}).",
        setup.as_secs_f64(),
        certs.as_secs_f64(),
        connect_all.as_secs_f64(),
        connect_failures.len(),
        summary(&connect_failures),
    ));
    report.note(format!(
        "3a: each store records {SIM_SALES} sales, one transaction and one change each, as \
         fast as it can, all stores at once; {push_drops} UDP datagrams dropped on full \
         receive buffers until the hub had applied everything, {push_hub_drops} of them at \
         the hub's socket. Ended sessions and failed \
         attempts from the initial connect until the hub's shutdown: {}.",
        summary(&failures(&sims, connected_at, stopping)),
    ));
    report.note(format!(
        "3b: hub shutdown took {:.2} s; it was down {:.2} s while each store recorded \
         {SIM_SALES_DOWN} more sales; start on the same port took {:.2} s. Reconnects after \
         the restart: {} within 0.5 s, {} in 0.5-1 s, {} in 1-2 s, {} in 2-3 s, {} after 3 s; \
         {restart_drops} UDP datagrams dropped on full receive buffers meanwhile, \
         {restart_hub_drops} of them at the hub's socket. {sessions} \
         sessions in all. Ended sessions and failed attempts while the hub stopped and was \
         down: {}; after it was back: {}.",
        stopped.as_secs_f64(),
        down_for.as_secs_f64(),
        started.as_secs_f64(),
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        counts[4],
        summary(&down_failures),
        summary(&up_failures),
    ));

    cancel.cancel();
    while let Some(r) = links.join_next().await {
        r?;
    }
    for sim in &sims {
        sim.store.shutdown().await;
    }
    server.shutdown().await;
    Ok(())
}
