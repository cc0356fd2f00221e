//! Store node benchmark: durable sales through the write path and over HTTP,
//! pickup redeems and barcode look-ups, next to a raw SQLite baseline, all
//! measured in one run on this machine.
//!
//! Run with `cargo bench -p linli-edge --bench edge_bench` (release build).
//! Every phase has a sample target and a time cap, so the whole run stays
//! under about two minutes even on a slow disk; the table shows how many
//! samples each figure actually rests on.
//!
//! The node runs on its own multi-thread runtime (as in `linli-edge serve`);
//! the HTTP client runs on a separate single-thread runtime on the main
//! thread, like a till process on the same machine, talking over loopback.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use linli_edge::app::idempotency::IdempotencyKey;
use linli_edge::app::sales::{PaymentRequest, SaleLineRequest, SaleRequest};
use linli_edge::app::stock::{ReceiptRequest, StockLineRequest};
use linli_edge::app::{Actor, App, Role};
use linli_edge::config::{Config, database_path};
use linli_edge::metrics::Metrics;
use linli_edge::node::Node;
use linli_shared::sale::PaymentMethod;
use linli_shared::{ScaleLabel, Unit};
use reqwest::StatusCode;
use tokio::runtime::Runtime;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Concurrent writers / clients in flight in the concurrent phases.
const CONCURRENCY: usize = 32;
/// Cash tendered with every sale: more than any 3-line sale of the sample
/// catalog costs (cash may exceed the total; the bench's stores allow this
/// much change).
const CASH_FEN: i64 = 1_000_000;
const CASHIER: &str = "bench-cashier";
const CASHIER_PIN: &str = "2468";

/// Sample target and time cap of one phase.
#[derive(Clone, Copy)]
struct Budget {
    /// Index of the first call (keeps idempotency keys unique across parts).
    first: usize,
    warmup: usize,
    samples: usize,
    cap: Duration,
}

const fn budget(warmup: usize, samples: usize, cap_secs: u64) -> Budget {
    Budget {
        first: 0,
        warmup,
        samples,
        cap: Duration::from_secs(cap_secs),
    }
}

impl Budget {
    /// The warm-up alone, and the measured part alone (indices following
    /// the warm-up), so counters can be read between the two.
    fn split(self) -> (Budget, Budget) {
        let warm = Budget {
            first: self.first,
            warmup: 0,
            samples: self.warmup,
            cap: self.cap,
        };
        let measured = Budget {
            first: self.first + self.warmup,
            warmup: 0,
            ..self
        };
        (warm, measured)
    }
}

const RAW_COMMITS: Budget = budget(20, 2_000, 8);
const APP_SEQ: Budget = budget(50, 1_000, 8);
const APP_CONC: Budget = budget(200, 4_000, 8);
/// Sales made while every core is kept busy (2c), and how long the
/// documents may take to catch up with them before the phase gives up.
const BUSY_SALES: Budget = Budget {
    // keys of their own, after 2a's
    first: 1_000_000,
    ..budget(0, 300, 20)
};
const BUSY_CATCH_UP: Duration = Duration::from_secs(60);
/// 2c's goal: the documents hold the busy phase's sales this soon after
/// the last of them (the drain's floor, `DRAIN_FLOOR`, plus the drain).
const BUSY_GOAL: Duration = Duration::from_secs(5);
const HTTP_SEQ: Budget = budget(50, 1_000, 8);
const HTTP_CONC: Budget = budget(200, 4_000, 8);
const SALE_LATENCY: Budget = budget(100, 1_000, 12);
const PICKUP_REDEEM: Budget = budget(20, 500, 10);
const LOOKUP_HTTP_SEQ: Budget = budget(100, 2_000, 5);
const LOOKUP_HTTP_CONC: Budget = budget(200, 5_000, 5);
/// In-memory look-ups: full passes over every code, for about this long.
const LOOKUP_MEM_TIME: Duration = Duration::from_secs(1);

fn main() -> Result<()> {
    let started = Instant::now();
    let tmp = tempfile::tempdir().context("cannot create a temp dir")?;
    let ctx = MachineContext::probe(tmp.path());
    let catalog = Arc::new(SampleCatalog::load()?);

    // the node's runtime, sized like `linli-edge serve` (one worker per core)
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("node")
        .build()
        .context("cannot build the node runtime")?;
    // the till's runtime: one thread, on this (main) thread
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot build the client runtime")?;

    let mut rows: Vec<Row> = Vec::new();

    // 1. raw SQLite baseline
    progress("1/6 raw SQLite single-row commits");
    let raw_start = raw_sqlite_commits(&tmp.path().join("raw-start"), RAW_COMMITS)?;
    rows.push(raw_row("1a raw SQLite commit, 1 INSERT/txn", &raw_start));

    // 2. the node's write path, no HTTP
    progress("2/6 sales through App::record_sale");
    write_path(&server_rt, &tmp.path().join("app"), &catalog, &mut rows)?;

    // 3.-6. a real node over loopback HTTP
    progress("3/6 starting a node for the HTTP phases");
    let data_dir = tmp.path().join("node");
    std::fs::create_dir_all(&data_dir)?;
    {
        let conn = linli_edge::store::open_writer_conn(&database_path(&data_dir))?;
        linli_edge::app::staff::add_staff(&conn, CASHIER, Role::Cashier, CASHIER_PIN)?;
    }
    let config = Config {
        listen: "127.0.0.1:0".parse()?,
        max_change_fen: CASH_FEN,
        ..Config::default()
    };
    let node = server_rt.block_on(Node::start(
        config,
        data_dir.clone(),
        CancellationToken::new(),
    ))?;
    server_rt.block_on(linli_edge::demo::seed(&node.app))?;
    let api = client_rt.block_on(Api::login(node.addr))?;

    progress("3/6 sales over HTTP");
    http_sales(&client_rt, &api, &catalog, &mut rows)?;
    progress("4/6 sale latency over HTTP");
    sale_latency(&client_rt, &api, &catalog, &mut rows)?;
    progress("5/6 pickup redeem latency over HTTP");
    pickup_latency(&server_rt, &client_rt, &node.app, &api, &catalog, &mut rows)?;
    progress("6/6 barcode look-ups");
    lookups(&client_rt, &node.app, &api, &catalog, &mut rows)?;

    server_rt.block_on(node.shutdown());
    drop(client_rt);
    drop(server_rt);

    // the disk of a shared machine drifts: measure the baseline again and
    // hold the node to the better of the two
    progress("1/6 raw SQLite single-row commits, again");
    let raw_end = raw_sqlite_commits(&tmp.path().join("raw-end"), RAW_COMMITS)?;
    rows.insert(
        1,
        raw_row("1b raw SQLite commit, again at the end", &raw_end),
    );
    let baseline = raw_start.rate().max(raw_end.rate());

    print_report(&ctx, &catalog, &rows, baseline, started.elapsed());
    Ok(())
}

fn progress(what: &str) {
    eprintln!("[edge_bench] {what} ...");
}

// ---------------------------------------------------------------------------
// measurements

/// What one phase measured.
struct Run {
    /// Operations counted (warm-up excluded).
    n: usize,
    elapsed: Duration,
    /// Per-operation latencies when measured one at a time.
    lat: Vec<Duration>,
    /// Why a phase stopped before its sample target, if it did.
    capped: bool,
}

impl Run {
    fn rate(&self) -> f64 {
        self.n as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn percentile(&self, p: f64) -> Duration {
        percentile(&self.lat, p)
    }

    fn max(&self) -> Duration {
        self.lat.iter().copied().max().unwrap_or_default()
    }
}

/// Nearest-rank percentile of unsorted samples.
fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut v = samples.to_vec();
    v.sort_unstable();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Runs `f(0..)` one at a time: `warmup` untimed calls, then timed calls
/// until `samples` are done or the cap is reached.
async fn run_sequential<F, Fut>(b: Budget, mut f: F) -> Result<Run>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let start = b.first + b.warmup;
    for i in b.first..start {
        f(i).await?;
    }
    let started = Instant::now();
    let mut lat = Vec::with_capacity(b.samples);
    let mut capped = false;
    for i in start..start + b.samples {
        if started.elapsed() >= b.cap {
            capped = true;
            break;
        }
        let t = Instant::now();
        f(i).await?;
        lat.push(t.elapsed());
    }
    Ok(Run {
        n: lat.len(),
        elapsed: started.elapsed(),
        lat,
        capped,
    })
}

/// Runs `f(0..)` from `tasks` tasks on the current runtime, each taking the
/// next index as soon as its previous call returned: `warmup` calls first
/// (untimed, same concurrency), then `samples` timed calls or until the cap.
async fn run_concurrent<F, Fut>(tasks: usize, b: Budget, f: F) -> Result<Run>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let f = Arc::new(f);
    async fn wave<F, Fut>(
        f: &Arc<F>,
        tasks: usize,
        from: usize,
        to: usize,
        cap: Duration,
    ) -> Result<(usize, Duration, bool)>
    where
        F: Fn(usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let next = Arc::new(AtomicUsize::new(from));
        let started = Instant::now();
        let deadline = started + cap;
        let mut set = JoinSet::new();
        for _ in 0..tasks {
            let (f, next) = (f.clone(), next.clone());
            set.spawn(async move {
                let mut done = 0usize;
                let mut capped = false;
                loop {
                    if Instant::now() >= deadline {
                        capped = true;
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= to {
                        break;
                    }
                    f(i).await?;
                    done += 1;
                }
                Ok::<_, anyhow::Error>((done, capped))
            });
        }
        let (mut done, mut capped) = (0, false);
        while let Some(r) = set.join_next().await {
            let (d, c) = r.context("a benchmark task panicked")??;
            done += d;
            capped |= c;
        }
        Ok((done, started.elapsed(), capped))
    }
    let start = b.first + b.warmup;
    if b.warmup > 0 {
        wave(&f, tasks, b.first, start, b.cap).await?;
    }
    let (n, elapsed, capped) = wave(&f, tasks, start, start + b.samples, b.cap).await?;
    Ok(Run {
        n,
        elapsed,
        lat: Vec::new(),
        capped,
    })
}

// ---------------------------------------------------------------------------
// 1. raw SQLite

fn raw_sqlite_commits(dir: &Path, b: Budget) -> Result<Run> {
    std::fs::create_dir_all(dir)?;
    // a fresh database each time, like the node's phases get
    let conn = rusqlite::Connection::open(dir.join("raw.db"))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
    let sync: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0))?;
    ensure!(
        mode == "wal" && sync == 2,
        "baseline pragmas not applied: journal_mode={mode} synchronous={sync}"
    );
    conn.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE, payload TEXT NOT NULL)",
    )?;
    let payload = "x".repeat(200);
    let mut stmt = conn.prepare("INSERT INTO t (k, payload) VALUES (?1, ?2)")?;
    let mut commit_one = |i: usize| -> Result<()> {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        stmt.execute(rusqlite::params![format!("k{i:08}"), payload])?;
        conn.execute_batch("COMMIT")?;
        Ok(())
    };
    for i in 0..b.warmup {
        commit_one(i)?;
    }
    let started = Instant::now();
    let mut lat = Vec::with_capacity(b.samples);
    let mut capped = false;
    for i in b.warmup..b.warmup + b.samples {
        if started.elapsed() >= b.cap {
            capped = true;
            break;
        }
        let t = Instant::now();
        commit_one(i)?;
        lat.push(t.elapsed());
    }
    Ok(Run {
        n: lat.len(),
        elapsed: started.elapsed(),
        lat,
        capped,
    })
}

// ---------------------------------------------------------------------------
// 2. the write path without HTTP

fn write_path(
    rt: &Runtime,
    data_dir: &Path,
    catalog: &Arc<SampleCatalog>,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let metrics = Metrics::new();
    let config = Config {
        max_change_fen: CASH_FEN,
        ..Config::default()
    };
    let app = rt.block_on(linli_edge::node::open_app(
        &config,
        data_dir.to_path_buf(),
        linli_edge::app::system_clock(),
        &metrics,
    ))?;
    rt.block_on(linli_edge::demo::seed(&app))?;
    ensure!(
        app.catalog().len() == catalog.len(),
        "seeded catalog has {} products, the sample CSV {}",
        app.catalog().len(),
        catalog.len()
    );
    let actor = Actor {
        name: CASHIER.into(),
        role: Role::Cashier,
    };
    // the documents are written from the outbox as a node does it
    let stop_drainer = CancellationToken::new();
    let drainer = rt.spawn(linli_edge::node::outbox_drainer(
        app.clone(),
        stop_drainer.clone(),
    ));
    // how long the documents lag the last sale of a phase
    let tail = |app: &App| -> Result<Duration> {
        let t = Instant::now();
        rt.block_on(app.drain_outbox())?;
        Ok(t.elapsed())
    };

    let sequential = |b: Budget| {
        let (app, actor, catalog) = (app.clone(), actor.clone(), catalog.clone());
        rt.block_on(run_sequential(b, move |i| {
            let (app, actor, req) = (app.clone(), actor.clone(), catalog.sale(i));
            async move { sale_via_app(&app, &actor, &format!("app-seq-{i}"), req).await }
        }))
    };
    let (warm, measured) = APP_SEQ.split();
    sequential(warm)?;
    let before = app_commit_stats(&metrics);
    let seq = sequential(measured)?;
    let seq_tail = tail(&app)?;
    let after = app_commit_stats(&metrics);
    rows.push(
        Row::rate("2a write path, sequential", &seq, "sales/s")
            .vs_baseline(Some(50.0))
            .note(format!(
                "p50 {} p99 {} max {}; {}; outbox drained {} after the last sale",
                ms(seq.percentile(50.0)),
                ms(seq.percentile(99.0)),
                ms(seq.max()),
                after.since(&before),
                ms(seq_tail)
            )),
    );

    let concurrent = |b: Budget| {
        let (app, actor, catalog) = (app.clone(), actor.clone(), catalog.clone());
        rt.block_on(run_concurrent(CONCURRENCY, b, move |i| {
            let (app, actor, req) = (app.clone(), actor.clone(), catalog.sale(i));
            async move { sale_via_app(&app, &actor, &format!("app-conc-{i}"), req).await }
        }))
    };
    let (warm, measured) = APP_CONC.split();
    concurrent(warm)?;
    let before = app_commit_stats(&metrics);
    let conc = concurrent(measured)?;
    let conc_tail = tail(&app)?;
    let after = app_commit_stats(&metrics);
    rows.push(
        Row::rate(
            &format!("2b write path, {CONCURRENCY} tasks in flight"),
            &conc,
            "sales/s",
        )
        .vs_baseline(Some(100.0))
        .note(format!(
            "{}; outbox drained {} after the last sale",
            after.since(&before),
            ms(conc_tail)
        )),
    );
    // 2c. another program keeps every core busy (a virus scan, a stuck
    // browser tab): the sales still go through, and the node's own
    // drainer must still bring the documents (what the hub learns of the
    // store) up to them
    let hogs = Busy::start();
    let busy = sequential(BUSY_SALES)?;
    let t = Instant::now();
    let caught_up = loop {
        if rt.block_on(app.outbox_len()) == Some(0) {
            break Some(t.elapsed());
        }
        if t.elapsed() >= BUSY_CATCH_UP {
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let threads = hogs.threads;
    hogs.stop();
    let (result, met) = match caught_up {
        Some(d) => (
            format!("drained {:.2} s after", d.as_secs_f64()),
            d <= BUSY_GOAL,
        ),
        None => (
            format!("not drained {} s after", BUSY_CATCH_UP.as_secs()),
            false,
        ),
    };
    rows.push(Row {
        name: "2c documents caught up, cores busy".into(),
        samples: busy.n,
        capped: busy.capped,
        result,
        rate: busy.rate(),
        compare: Compare::No,
        verdict: format!(
            "goal <= {} s: {}",
            BUSY_GOAL.as_secs(),
            if met { "met" } else { "MISSED" }
        ),
        note: format!(
            "the last of {} sales made beside {} busy threads ({} sales/s, p99 {} max {})",
            busy.n,
            threads,
            thousands(busy.rate()),
            ms(busy.percentile(99.0)),
            ms(busy.max())
        ),
    });

    stop_drainer.cancel();
    rt.block_on(drainer)?;
    rt.block_on(app.store().shutdown());
    Ok(())
}

/// Threads at the default priority that spin, one per core: another
/// program that wants every core.
struct Busy {
    threads: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl Busy {
    fn start() -> Busy {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let handles = (0..threads)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 1u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    }
                })
            })
            .collect();
        Busy {
            threads,
            stop,
            handles,
        }
    }

    fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for h in self.handles {
            let _ = h.join();
        }
    }
}

/// The store reports a commit to the metrics just after answering its
/// writes, so give the writer thread a moment before reading the counters.
fn app_commit_stats(metrics: &Metrics) -> CommitStats {
    std::thread::sleep(Duration::from_millis(20));
    CommitStats::parse(&metrics.encode())
}

async fn sale_via_app(app: &App, actor: &Actor, key: &str, req: SaleRequest) -> Result<()> {
    let key = IdempotencyKey::parse(key)?;
    let (receipt, replayed) = app.record_sale(actor, key, req).await?;
    ensure!(!replayed, "sale {} was a replay", receipt.sale_id);
    ensure!(
        receipt.lines.len() == 3,
        "sale has {} lines",
        receipt.lines.len()
    );
    Ok(())
}

/// Commit counters scraped from the node's Prometheus text.
#[derive(Clone, Copy, Default)]
struct CommitStats {
    commits: f64,
    writes: f64,
    seconds: f64,
    /// Upper bound (seconds) of the first commit-duration bucket at or
    /// above [`SLOW_COMMIT`], and how many commits fell within it.
    slow_le: f64,
    within_slow_le: f64,
}

/// Commits slower than this are counted as slow (issue 9: `POST
/// /api/v1/sales` p99 <= 3 ms).
const SLOW_COMMIT: f64 = 0.003;

impl CommitStats {
    fn parse(text: &str) -> CommitStats {
        let value = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| {
                    let rest = l.strip_prefix(name)?;
                    rest.strip_prefix(' ')?.trim().parse().ok()
                })
                .unwrap_or(0.0)
        };
        // linli_edge_db_commit_duration_seconds_bucket{le="0.0064"} 123
        let (slow_le, within_slow_le) = text
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix("linli_edge_db_commit_duration_seconds_bucket{le=\"")?;
                let (le, rest) = rest.split_once("\"}")?;
                Some((le.parse::<f64>().ok()?, rest.trim().parse::<f64>().ok()?))
            })
            .filter(|(le, _)| *le >= SLOW_COMMIT)
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap_or((f64::INFINITY, 0.0));
        CommitStats {
            commits: value("linli_edge_db_commit_batch_size_count"),
            writes: value("linli_edge_db_commit_batch_size_sum"),
            seconds: value("linli_edge_db_commit_duration_seconds_sum"),
            slow_le,
            within_slow_le,
        }
    }

    /// Where the tail is: the share of commits and of `latencies` slower
    /// than the commit histogram's bucket bound just above 3 ms.
    fn tail(&self, before: &CommitStats, latencies: &[Duration]) -> String {
        let commits = self.commits - before.commits;
        if commits <= 0.0 || !self.slow_le.is_finite() || latencies.is_empty() {
            return String::new();
        }
        let slow_commits = (commits - (self.within_slow_le - before.within_slow_le)) / commits;
        let slow_requests = latencies
            .iter()
            .filter(|d| d.as_secs_f64() > self.slow_le)
            .count() as f64
            / latencies.len() as f64;
        format!(
            "> {:.1} ms: {:.1}% of requests, {:.1}% of commits",
            self.slow_le * 1000.0,
            slow_requests * 100.0,
            slow_commits * 100.0
        )
    }

    /// Average batch and commit time between two scrapes.
    fn since(&self, before: &CommitStats) -> String {
        let commits = self.commits - before.commits;
        if commits <= 0.0 {
            return "no commit metrics".into();
        }
        format!(
            "{commits:.0} commits, avg batch {:.1}, avg commit {:.2} ms",
            (self.writes - before.writes) / commits,
            (self.seconds - before.seconds) / commits * 1000.0
        )
    }
}

// ---------------------------------------------------------------------------
// 3.-6. over HTTP

/// A logged-in till.
#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: Arc<str>,
    auth: Arc<str>,
}

impl Api {
    async fn login(addr: std::net::SocketAddr) -> Result<Api> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(2 * CONCURRENCY)
            .build()?;
        let base: Arc<str> = format!("http://{addr}").into();
        let resp = client
            .post(format!("{base}/api/v1/login"))
            .json(&serde_json::json!({ "name": CASHIER, "pin": CASHIER_PIN }))
            .send()
            .await?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await?;
        ensure!(status == StatusCode::OK, "login: {status} {body}");
        let token = body["token"]
            .as_str()
            .context("login response without token")?;
        Ok(Api {
            client,
            base,
            auth: format!("Bearer {token}").into(),
        })
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::AUTHORIZATION, &*self.auth)
    }

    async fn sale(&self, key: &str, req: &SaleRequest) -> Result<()> {
        let resp = self
            .post("/api/v1/sales")
            .header("Idempotency-Key", key)
            .json(req)
            .send()
            .await?;
        expect_status(resp, StatusCode::CREATED, "POST /api/v1/sales").await?;
        Ok(())
    }

    /// Places a community pickup order; returns its pickup code.
    async fn order(&self, key: &str, sku: &str) -> Result<String> {
        let body = serde_json::json!({
            "channel": "community",
            "fulfilment": "pickup",
            "customer": { "phone": "13800000000" },
            "lines": [{ "sku": sku, "qty": 1 }],
        });
        let resp = self
            .post("/api/v1/orders")
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .await?;
        let bytes = expect_status(resp, StatusCode::CREATED, "POST /api/v1/orders").await?;
        let v: serde_json::Value = serde_json::from_slice(&bytes)?;
        ensure!(v["order_id"].is_string(), "order without order_id: {v}");
        Ok(v["pickup_code"]
            .as_str()
            .context("order without pickup_code")?
            .to_owned())
    }

    async fn redeem(&self, code: &str) -> Result<()> {
        let resp = self
            .post("/api/v1/pickups/redeem")
            .json(&serde_json::json!({ "code": code }))
            .send()
            .await?;
        expect_status(resp, StatusCode::OK, "POST /api/v1/pickups/redeem").await?;
        Ok(())
    }

    async fn by_barcode(&self, code: &str) -> Result<()> {
        let resp = self
            .client
            .get(format!("{}/api/v1/products/by-barcode/{code}", self.base))
            .header(reqwest::header::AUTHORIZATION, &*self.auth)
            .send()
            .await?;
        expect_status(resp, StatusCode::OK, "GET /api/v1/products/by-barcode").await?;
        Ok(())
    }
}

/// Reads the whole body (the request is complete only then) and checks the status.
async fn expect_status(resp: reqwest::Response, want: StatusCode, what: &str) -> Result<Vec<u8>> {
    let status = resp.status();
    let body = resp.bytes().await?;
    if status != want {
        bail!(
            "{what}: expected {want}, got {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(body.to_vec())
}

fn http_sales(
    client_rt: &Runtime,
    api: &Api,
    catalog: &Arc<SampleCatalog>,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let sequential = |b: Budget| {
        client_rt.block_on(run_sequential(b, |i| {
            let req = catalog.sale(i);
            async move { api.sale(&format!("http-seq-{i}"), &req).await }
        }))
    };
    let (warm, measured) = HTTP_SEQ.split();
    sequential(warm)?;
    let before = client_rt.block_on(api.commit_stats())?;
    let seq = sequential(measured)?;
    let after = client_rt.block_on(api.commit_stats())?;
    rows.push(
        Row::rate("3a HTTP sales, sequential", &seq, "sales/s")
            .vs_baseline(None)
            .note(format!(
                "p50 {} p99 {}; {}",
                ms(seq.percentile(50.0)),
                ms(seq.percentile(99.0)),
                after.since(&before)
            )),
    );

    let concurrent = |b: Budget| {
        let (api, catalog) = (api.clone(), catalog.clone());
        client_rt.block_on(run_concurrent(CONCURRENCY, b, move |i| {
            let (api, req) = (api.clone(), catalog.sale(i));
            async move { api.sale(&format!("http-conc-{i}"), &req).await }
        }))
    };
    let (warm, measured) = HTTP_CONC.split();
    concurrent(warm)?;
    let before = client_rt.block_on(api.commit_stats())?;
    let conc = concurrent(measured)?;
    let after = client_rt.block_on(api.commit_stats())?;
    rows.push(
        Row::rate(
            &format!("3b HTTP sales, {CONCURRENCY} clients in flight"),
            &conc,
            "sales/s",
        )
        .vs_baseline(None)
        .note(after.since(&before)),
    );
    Ok(())
}

impl Api {
    async fn commit_stats(&self) -> Result<CommitStats> {
        // the store reports a commit just after answering its writes
        tokio::time::sleep(Duration::from_millis(20)).await;
        let resp = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await?;
        let text = resp.text().await?;
        Ok(CommitStats::parse(&text))
    }
}

fn sale_latency(
    client_rt: &Runtime,
    api: &Api,
    catalog: &Arc<SampleCatalog>,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let sequential = |b: Budget| {
        client_rt.block_on(run_sequential(b, |i| {
            let req = catalog.sale(i + 7);
            async move { api.sale(&format!("http-lat-{i}"), &req).await }
        }))
    };
    let (warm, measured) = SALE_LATENCY.split();
    sequential(warm)?;
    let before = client_rt.block_on(api.commit_stats())?;
    let run = sequential(measured)?;
    let after = client_rt.block_on(api.commit_stats())?;
    let row = Row::latency("4  POST /api/v1/sales (3 lines) latency", &run, Some(3.0));
    let note = format!(
        "{}; {}; {}",
        row.note,
        after.since(&before),
        after.tail(&before, &run.lat)
    );
    rows.push(row.note(note));
    Ok(())
}

fn pickup_latency(
    server_rt: &Runtime,
    client_rt: &Runtime,
    app: &App,
    api: &Api,
    catalog: &Arc<SampleCatalog>,
    rows: &mut Vec<Row>,
) -> Result<()> {
    // setup (untimed): enough stock of every each-SKU for the orders, whatever
    // the sales phases did to it, then the orders themselves
    let manager = Actor {
        name: "bench-manager".into(),
        role: Role::Manager,
    };
    for chunk in catalog.each.chunks(500) {
        let lines = chunk
            .iter()
            .map(|p| StockLineRequest {
                sku: p.sku.clone(),
                qty: 1_000,
            })
            .collect();
        server_rt.block_on(app.receive_stock(
            &manager,
            None,
            ReceiptRequest {
                lines,
                note: Some("bench".into()),
            },
        ))?;
    }
    let n_orders = PICKUP_REDEEM.warmup + PICKUP_REDEEM.samples;
    let codes = Arc::new(Mutex::new(vec![String::new(); n_orders]));
    let created = client_rt.block_on({
        let (api, catalog, codes) = (api.clone(), catalog.clone(), codes.clone());
        run_concurrent(8, budget(0, n_orders, 60), move |i| {
            let (api, codes) = (api.clone(), codes.clone());
            let sku = catalog.each[i % catalog.each.len()].sku.clone();
            async move {
                let code = api.order(&format!("order-{i}"), &sku).await?;
                if let Ok(mut c) = codes.lock() {
                    c[i] = code;
                }
                Ok(())
            }
        })
    })?;
    ensure!(
        created.n == n_orders,
        "only {} of {n_orders} orders created",
        created.n
    );
    let codes: Vec<String> = codes
        .lock()
        .map_err(|_| anyhow::anyhow!("codes lock poisoned"))?
        .clone();
    rows.push(Row::rate(
        "5a POST /api/v1/orders, 8 clients (setup)",
        &created,
        "orders/s",
    ));
    let sequential = |b: Budget| {
        client_rt.block_on(run_sequential(b, |i| {
            let code = codes[i].clone();
            async move { api.redeem(&code).await }
        }))
    };
    let (warm, measured) = PICKUP_REDEEM.split();
    sequential(warm)?;
    let before = client_rt.block_on(api.commit_stats())?;
    let run = sequential(measured)?;
    let after = client_rt.block_on(api.commit_stats())?;
    let row = Row::latency("5b POST /api/v1/pickups/redeem latency", &run, None);
    let note = format!(
        "{}; {}; {}",
        row.note,
        after.since(&before),
        after.tail(&before, &run.lat)
    );
    rows.push(row.note(note));
    Ok(())
}

fn lookups(
    client_rt: &Runtime,
    app: &App,
    api: &Api,
    catalog: &Arc<SampleCatalog>,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let codes = catalog.scan_codes();
    // every code must resolve, and to the product it was made from
    for (code, sku) in &codes {
        let (p, _) = app
            .catalog()
            .by_scan(code)
            .map_err(|e| anyhow::anyhow!("by_scan({code}): {e}"))?;
        ensure!(p.sku.as_str() == sku, "{code} resolved to {}", p.sku);
    }
    let started = Instant::now();
    let mut n = 0usize;
    while started.elapsed() < LOOKUP_MEM_TIME {
        for (code, _) in &codes {
            let found = app.catalog().by_scan(std::hint::black_box(code));
            std::hint::black_box(found.is_ok());
        }
        n += codes.len();
    }
    let mem = Run {
        n,
        elapsed: started.elapsed(),
        lat: Vec::new(),
        capped: false,
    };
    rows.push(
        Row::rate("6a App::catalog().by_scan, 1 thread", &mem, "look-ups/s").note(format!(
            "{} codes: {} barcodes + {} scale labels",
            codes.len(),
            catalog.len(),
            codes.len() - catalog.len()
        )),
    );

    let codes = Arc::new(codes);
    let seq = client_rt.block_on(run_sequential(LOOKUP_HTTP_SEQ, |i| {
        let code = codes[i % codes.len()].0.clone();
        async move { api.by_barcode(&code).await }
    }))?;
    rows.push(
        Row::rate(
            "6b GET /products/by-barcode, sequential",
            &seq,
            "look-ups/s",
        )
        .note(format!(
            "p50 {} p99 {}",
            ms(seq.percentile(50.0)),
            ms(seq.percentile(99.0))
        )),
    );
    let conc = client_rt.block_on({
        let (api, codes) = (api.clone(), codes.clone());
        run_concurrent(CONCURRENCY, LOOKUP_HTTP_CONC, move |i| {
            let (api, code) = (api.clone(), codes[i % codes.len()].0.clone());
            async move { api.by_barcode(&code).await }
        })
    })?;
    rows.push(Row::rate(
        &format!("6c GET /products/by-barcode, {CONCURRENCY} clients"),
        &conc,
        "look-ups/s",
    ));
    Ok(())
}

// ---------------------------------------------------------------------------
// the sample catalog, as the bench builds requests from it

struct EachProduct {
    sku: String,
    barcode: String,
}

struct KgProduct {
    sku: String,
    barcode: String,
    item_code: u32,
}

struct SampleCatalog {
    each: Vec<EachProduct>,
    kg: Vec<KgProduct>,
}

impl SampleCatalog {
    fn load() -> Result<SampleCatalog> {
        let parsed = linli_shared::catalog::parse_catalog_csv(linli_edge::demo::SAMPLE_CATALOG)?;
        ensure!(
            parsed.rejected.is_empty(),
            "sample catalog has rejected rows: {:?}",
            parsed.rejected
        );
        let mut each = Vec::new();
        let mut kg = Vec::new();
        for (_, p) in parsed.products {
            match p.unit {
                Unit::Each => each.push(EachProduct {
                    sku: p.sku.to_string(),
                    barcode: p.barcode.to_string(),
                }),
                Unit::Kg => {
                    let code = p.barcode.as_str();
                    let item_code: u32 = code
                        .get(1..6)
                        .and_then(|s| s.parse().ok())
                        .with_context(|| format!("{}: no item code in {code}", p.sku))?;
                    kg.push(KgProduct {
                        sku: p.sku.to_string(),
                        barcode: code.to_owned(),
                        item_code,
                    });
                }
            }
        }
        ensure!(
            !each.is_empty() && !kg.is_empty(),
            "sample catalog lacks each or kg products"
        );
        Ok(SampleCatalog { each, kg })
    }

    fn len(&self) -> usize {
        self.each.len() + self.kg.len()
    }

    /// Sale `i`: an each-product scanned by barcode, a weighed product by
    /// its scale label, and an each-product typed by SKU with qty 2, paid in
    /// cash.
    fn sale(&self, i: usize) -> SaleRequest {
        let scanned = &self.each[i % self.each.len()];
        let weighed = &self.kg[(i * 7 + 1) % self.kg.len()];
        let typed = &self.each[(i * 13 + 5) % self.each.len()];
        let grams = 100 + (i as u32 * 37) % 1_900;
        SaleRequest {
            lines: vec![
                SaleLineRequest {
                    barcode: Some(scanned.barcode.clone()),
                    sku: None,
                    qty: None,
                },
                SaleLineRequest {
                    barcode: Some(ScaleLabel::encode(weighed.item_code, grams).to_string()),
                    sku: None,
                    qty: None,
                },
                SaleLineRequest {
                    barcode: None,
                    sku: Some(typed.sku.clone()),
                    qty: Some(2),
                },
            ],
            payments: vec![PaymentRequest {
                method: PaymentMethod::Cash,
                amount_fen: CASH_FEN,
            }],
            member_phone: None,
            coupon: None,
        }
    }

    /// Every product barcode plus one scale label per weighed product, each
    /// with the SKU it must resolve to.
    fn scan_codes(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .each
            .iter()
            .map(|p| (p.barcode.clone(), p.sku.clone()))
            .chain(self.kg.iter().map(|p| (p.barcode.clone(), p.sku.clone())))
            .collect();
        for (i, p) in self.kg.iter().enumerate() {
            let grams = 50 + (i as u32 * 211) % 4_950;
            out.push((
                ScaleLabel::encode(p.item_code, grams).to_string(),
                p.sku.clone(),
            ));
        }
        out
    }
}

// ---------------------------------------------------------------------------
// the report

struct Row {
    name: String,
    samples: usize,
    capped: bool,
    result: String,
    /// Throughput, when the row is compared with the baseline.
    rate: f64,
    compare: Compare,
    verdict: String,
    note: String,
}

enum Compare {
    No,
    /// A baseline measurement itself.
    Baseline,
    /// As a share of the baseline, with an optional goal in percent.
    Share(Option<f64>),
}

fn raw_row(name: &str, run: &Run) -> Row {
    let mut row = Row::rate(name, run, "commits/s").note(format!(
        "p50 {} p99 {} max {}",
        ms(run.percentile(50.0)),
        ms(run.percentile(99.0)),
        ms(run.max())
    ));
    row.compare = Compare::Baseline;
    row
}

impl Row {
    fn rate(name: &str, run: &Run, unit: &str) -> Row {
        Row {
            name: name.to_owned(),
            samples: run.n,
            capped: run.capped,
            result: format!("{} {unit}", thousands(run.rate())),
            rate: run.rate(),
            compare: Compare::No,
            verdict: String::new(),
            note: String::new(),
        }
    }

    fn vs_baseline(mut self, goal_pct: Option<f64>) -> Row {
        self.compare = Compare::Share(goal_pct);
        self
    }

    /// The comparison column, once the baseline is known.
    fn verdict(&self, baseline: f64) -> String {
        let pct = self.rate / baseline.max(1e-9) * 100.0;
        match self.compare {
            Compare::No => self.verdict.clone(),
            Compare::Baseline if self.rate >= baseline => "= 100% (the baseline)".into(),
            Compare::Baseline => format!("{pct:.0}% of baseline"),
            Compare::Share(None) => format!("{pct:.0}% of baseline"),
            Compare::Share(Some(goal)) => format!(
                "{pct:.0}% of baseline (goal >= {goal:.0}%: {})",
                if pct >= goal { "met" } else { "MISSED" }
            ),
        }
    }

    fn latency(name: &str, run: &Run, goal_p99_ms: Option<f64>) -> Row {
        let p99 = run.percentile(99.0);
        let verdict = match goal_p99_ms {
            Some(goal) => {
                let ok = p99.as_secs_f64() * 1000.0 <= goal;
                format!(
                    "goal p99 <= {goal} ms: {}",
                    if ok { "met" } else { "MISSED" }
                )
            }
            None => "no goal set".into(),
        };
        Row {
            name: name.to_owned(),
            samples: run.n,
            capped: run.capped,
            result: format!(
                "p50 {} p99 {} max {}",
                ms(run.percentile(50.0)),
                ms(p99),
                ms(run.max())
            ),
            rate: run.rate(),
            compare: Compare::No,
            verdict,
            note: format!("{} req/s sequential", thousands(run.rate())),
        }
    }

    fn note(mut self, note: String) -> Row {
        self.note = note;
        self
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn thousands(x: f64) -> String {
    let n = x.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

struct MachineContext {
    cores: usize,
    cpu: String,
    loadavg: String,
    fs: String,
    temp_dir: PathBuf,
}

impl MachineContext {
    fn probe(temp_dir: &Path) -> MachineContext {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let loadavg = load_average();
        // the mount holding the temp dir: longest mount point that prefixes it
        let fs = std::fs::read_to_string("/proc/mounts")
            .ok()
            .and_then(|m| {
                m.lines()
                    .filter_map(|l| {
                        let f: Vec<&str> = l.split_whitespace().collect();
                        (f.len() >= 3 && temp_dir.starts_with(f[1]))
                            .then(|| (f[1].len(), format!("{} on {} ({})", f[2], f[1], f[0])))
                    })
                    .max_by_key(|(len, _)| *len)
                    .map(|(_, s)| s)
            })
            .unwrap_or_else(|| "unknown filesystem".into());
        MachineContext {
            cores,
            cpu,
            loadavg,
            fs,
            temp_dir: temp_dir.to_owned(),
        }
    }
}

/// The 1, 5 and 15 minute load averages (the machine may be shared).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

fn print_report(
    ctx: &MachineContext,
    catalog: &SampleCatalog,
    rows: &[Row],
    baseline: f64,
    wall: Duration,
) {
    let profile = if cfg!(debug_assertions) {
        "debug (numbers not representative)"
    } else {
        "release"
    };
    println!();
    println!("Linli edge node benchmark");
    println!(
        "machine: {} cores ({}), load avg at start {}, at end {}",
        ctx.cores,
        ctx.cpu,
        ctx.loadavg,
        load_average()
    );
    println!(
        "storage: temp dir {} on {}; SQLite {} (WAL, synchronous=FULL)",
        ctx.temp_dir.display(),
        ctx.fs,
        rusqlite::version()
    );
    println!(
        "build: {profile}; catalog {} products ({} each, {} kg); sales have 3 lines, paid in cash",
        catalog.len(),
        catalog.each.len(),
        catalog.kg.len()
    );
    println!();
    let w_name = rows.iter().map(|r| r.name.len()).max().unwrap_or(10);
    let w_res = rows.iter().map(|r| r.result.len()).max().unwrap_or(10);
    let verdicts: Vec<String> = rows.iter().map(|r| r.verdict(baseline)).collect();
    let w_ver = verdicts.iter().map(String::len).max().unwrap_or(10);
    println!(
        "{:<w_name$}  {:>8}  {:<w_res$}  {:<w_ver$}  notes",
        "figure", "samples", "result", "vs baseline / goal"
    );
    println!("{}", "-".repeat(w_name + w_res + w_ver + 8 + 8 + 40));
    for (r, verdict) in rows.iter().zip(&verdicts) {
        let samples = if r.capped {
            format!("{}*", r.samples)
        } else {
            r.samples.to_string()
        };
        println!(
            "{:<w_name$}  {:>8}  {:<w_res$}  {:<w_ver$}  {}",
            r.name, samples, r.result, verdict, r.note
        );
    }
    if rows.iter().any(|r| r.capped) {
        println!("* stopped at the phase's time cap before its sample target");
    }
    println!(
        "baseline = the better of 1a and 1b ({} commits/s); warm-up calls are not counted",
        thousands(baseline)
    );
    println!();
    println!("wall time {:.1} s", wall.as_secs_f64());
}
