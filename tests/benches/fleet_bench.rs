//! One hub, a fleet of stores (issue 9): a load generator of simulated
//! stores against one real `linli-hub` process on loopback.
//!
//! Each simulated store ([`linli_tests::sim::SimStore`]) has its own SQLite
//! database, its own certificate issued by the hub's CA (as `linli-hub
//! issue-cert` does) and its own QUIC connection, and writes its sales into
//! its day's ledger *and* stock documents with the document functions a
//! store node uses. Propagation is the time from a sale's write at the
//! store until the hub's sync messages show it holds every document change
//! of the sale (see `linli_tests::sim`).
//!
//! Phases:
//! 1. setup: certificates, databases (the stock's opening part with
//!    `FLEET_SKUS` levels), the hub started with no store connected (its
//!    memory then is the baseline);
//! 2. connect: every store connects and hands over its opening stock; the
//!    hub's memory again, divided by the stores;
//! 3. steady: 1 sale per 5 s per store (jittered, seeded) for `FLEET_SECS`:
//!    propagation p50/p99, sales/s, hub CPU, the generator's own CPU;
//! 4. ramp: the rate doubles every `FLEET_RAMP_SECS` until p99 exceeds 1 s,
//!    errors appear or the generator cannot keep up: the saturation rate;
//! 5. reconnect storm: the hub is killed (SIGKILL), the stores keep selling
//!    for `FLEET_DOWN_SECS`, the hub restarts on the same port and data
//!    directory: time until every store is back and the hub holds every
//!    sale.
//!
//! The generator shares the machine with the hub, so its own CPU is printed
//! beside the hub's. Run it after building the hub in release:
//!
//! ```text
//! cargo build --release -p linli-hub --bin linli-hub
//! cargo bench -p linli-tests --bench fleet_bench
//! FLEET_STORES=50 FLEET_SECS=20 cargo bench -p linli-tests --bench fleet_bench   # smoke
//! ```
//!
//! `FLEET_HUB_BIN` points at another hub binary.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use chrono::NaiveDate;
use linli_hub::hub::HubPaths;
use linli_sync::tls::{self, Ca, StoreIdentity, TransportSettings};
use linli_tests::probe::{cpu_of, rss_of, udp_rcvbuf_errors, udp_socket_drops};
use linli_tests::sim::{SimStore, failures, sim_link, summary};
use linli_tests::{Spawned, check_fresh, hub_quic_addr, spawn_listening};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Goal: propagation p99 (issue 9).
const GOAL_P99: Duration = Duration::from_secs(1);
/// Goal: hub memory per connected store, bytes.
const GOAL_PER_STORE: u64 = 1 << 20;
/// Deadline of any single wait; the bench fails rather than hang.
const DEADLINE: Duration = Duration::from_secs(180);
/// Sales written in the first seconds of a measured window are left out
/// (the rate is still changing).
const SETTLE: Duration = Duration::from_secs(3);

/// The run's parameters, from the environment.
#[derive(Debug, Clone)]
struct Params {
    stores: usize,
    steady: Duration,
    skus: usize,
    period: Duration,
    ramp_step: Duration,
    ramp_steps: u32,
    down: Duration,
    seed: u64,
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Params {
    fn from_env() -> Params {
        Params {
            stores: env("FLEET_STORES", 1_000usize).max(1),
            steady: Duration::from_secs(env("FLEET_SECS", 180u64).max(5)),
            skus: env("FLEET_SKUS", 1_500usize),
            period: Duration::from_millis(env("FLEET_PERIOD_MS", 5_000u64).max(1)),
            ramp_step: Duration::from_secs(env("FLEET_RAMP_SECS", 15u64).max(5)),
            ramp_steps: env("FLEET_RAMP_STEPS", 7u32),
            down: Duration::from_secs(env("FLEET_DOWN_SECS", 5u64)),
            seed: env("FLEET_SEED", 9u64),
        }
    }
}

fn main() -> Result<()> {
    let p = Params::from_env();
    let hub_bin = hub_bin()?;
    let tmp = tempfile::tempdir().context("cannot create a temp dir")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot build the runtime")?;
    let started = Instant::now();
    let mut out = Report::default();
    rt.block_on(run(&p, &hub_bin, tmp.path(), &mut out))?;
    out.print(&p, started.elapsed());
    Ok(())
}

/// The hub binary: `FLEET_HUB_BIN`, or the release `linli-hub` beside
/// this bench's executable, refused if older than its sources.
fn hub_bin() -> Result<PathBuf> {
    if let Ok(bin) = std::env::var("FLEET_HUB_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let mut dir = std::env::current_exe()?;
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join("linli-hub");
    check_fresh(&bin, "linli-hub").map_err(|e| {
        anyhow!("{e}\n(this bench needs `cargo build --release -p linli-hub --bin linli-hub`)")
    })?;
    Ok(bin)
}

// ------------------------------------------------------------ report

#[derive(Default)]
struct Report {
    rows: Vec<(String, String, String)>,
    notes: Vec<String>,
}

impl Report {
    fn row(&mut self, what: impl Into<String>, value: impl Into<String>, goal: &str) {
        let (what, value) = (what.into(), value.into());
        progress(&format!("{what}: {value}"));
        self.rows.push((what, value, goal.to_owned()));
    }

    fn note(&mut self, n: String) {
        progress(&n);
        self.notes.push(n);
    }

    fn print(&self, p: &Params, took: Duration) {
        println!();
        println!(
            "fleet_bench: {} stores, 1 sale per {:.1} s each, {} SKUs, steady {} s, \
             {} cores, took {:.0} s",
            p.stores,
            p.period.as_secs_f64(),
            p.skus,
            p.steady.as_secs(),
            cores(),
            took.as_secs_f64()
        );
        let w = self.rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let v = self.rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
        for (what, value, goal) in &self.rows {
            println!("  {what:<w$}  {value:>v$}  {goal}");
        }
        for n in &self.notes {
            println!("  - {n}");
        }
    }
}

fn progress(msg: &str) {
    eprintln!("[fleet_bench] {msg}");
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ------------------------------------------------------------ the hub

struct HubProcess {
    proc: Spawned,
    quic: SocketAddr,
}

impl HubProcess {
    fn start(bin: &Path, data: &Path, quic: &str) -> Result<HubProcess> {
        let data = data.to_str().ok_or_else(|| anyhow!("non-UTF-8 temp dir"))?;
        let proc = spawn_listening(
            bin,
            &[
                "serve",
                "--data-dir",
                data,
                "--listen",
                "127.0.0.1:0",
                "--quic",
                quic,
            ],
            Duration::from_secs(60),
        )?;
        let quic = hub_quic_addr(&proc.ready_line)?;
        Ok(HubProcess { proc, quic })
    }

    fn pid(&self) -> String {
        self.proc.child.id().to_string()
    }

    fn cpu(&self) -> Duration {
        cpu_of(&self.pid())
    }

    fn rss(&self) -> u64 {
        rss_of(&self.pid())
    }
}

/// CPU of the hub and of this generator over a window.
struct Window {
    at: Instant,
    hub: Duration,
    gen_cpu: Duration,
    sold: usize,
}

impl Window {
    fn open(hub: &HubProcess, sold: &AtomicUsize) -> Window {
        Window {
            at: Instant::now(),
            hub: hub.cpu(),
            gen_cpu: cpu_of("self"),
            sold: sold.load(Ordering::Relaxed),
        }
    }

    /// (wall, hub cores, generator cores, sales/s) since `self`.
    fn close(&self, hub: &HubProcess, sold: &AtomicUsize) -> (Duration, f64, f64, f64) {
        let wall = self.at.elapsed();
        let s = wall.as_secs_f64().max(1e-3);
        (
            wall,
            hub.cpu().saturating_sub(self.hub).as_secs_f64() / s,
            cpu_of("self").saturating_sub(self.gen_cpu).as_secs_f64() / s,
            sold.load(Ordering::Relaxed).saturating_sub(self.sold) as f64 / s,
        )
    }
}

// ---------------------------------------------------------- the stores

/// The rate the sellers follow: the mean period between two sales of one
/// store, `None` while paused.
type Rate = watch::Sender<Option<Duration>>;

/// One store's till: a sale every period, jittered ±50 % from a seeded
/// generator, the first one at a random point of the first period.
async fn seller(
    sim: Arc<SimStore>,
    seed: u64,
    mut rate: watch::Receiver<Option<Duration>>,
    sold: Arc<AtomicUsize>,
    errors: Arc<AtomicUsize>,
    cancel: CancellationToken,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut next = 0usize;
    let mut first = true;
    loop {
        let period = *rate.borrow_and_update();
        let wait = match period {
            Some(p) if first => p.mul_f64(rng.gen_range(0.0..1.0)),
            Some(p) => p.mul_f64(rng.gen_range(0.5..1.5)),
            None => Duration::MAX,
        };
        let sleep = tokio::time::sleep(wait.min(Duration::from_secs(3600)));
        tokio::select! {
            _ = cancel.cancelled() => return,
            // a new rate: draw the wait again from it
            r = rate.changed() => {
                if r.is_err() {
                    return;
                }
                continue;
            }
            _ = sleep => {}
        }
        first = false;
        match sim.sell(next, 1).await {
            Ok(()) => {
                next += 1;
                sold.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                errors.fetch_add(1, Ordering::Relaxed);
                sim.failed(format!("sell: {e}"));
            }
        }
    }
}

/// Propagation of the sales written in `[from, to)` across the fleet: the
/// held ones sorted, and how many are not held yet.
fn propagation(sims: &[Arc<SimStore>], from: Instant, to: Instant) -> (Vec<Duration>, usize) {
    let mut all = Vec::new();
    let mut waiting = 0;
    for s in sims {
        let (held, w) = s.propagation(from, to);
        all.extend(held);
        waiting += w;
    }
    all.sort();
    (all, waiting)
}

/// p50 and p99 counting sales not held yet as slower than any held one
/// (an hour).
fn p50_p99(held: &[Duration], waiting: usize) -> (Duration, Duration) {
    let mut all = held.to_vec();
    all.extend(std::iter::repeat_n(Duration::from_secs(3600), waiting));
    all.sort();
    (quantile(&all, 0.5), quantile(&all, 0.99))
}

fn unacknowledged(sims: &[Arc<SimStore>]) -> usize {
    sims.iter().map(|s| s.unacknowledged()).sum()
}

fn live(sims: &[Arc<SimStore>]) -> usize {
    sims.iter()
        .filter(|s| s.live.load(Ordering::Relaxed) > 0)
        .count()
}

/// Waits until `cond`, polling every 20 ms, or fails after [`DEADLINE`].
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) -> Result<Instant> {
    let start = Instant::now();
    loop {
        if cond() {
            return Ok(Instant::now());
        }
        if start.elapsed() > DEADLINE {
            bail!("timed out after {DEADLINE:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ------------------------------------------------------------ the run

async fn run(p: &Params, bin: &Path, dir: &Path, out: &mut Report) -> Result<()> {
    tls::install_crypto_provider();
    let setup = Instant::now();
    let paths = HubPaths {
        data_dir: dir.join("hub"),
    };
    progress(&format!("issuing {} certificates", p.stores));
    let ids: Vec<String> = (1..=p.stores).map(|i| format!("F{i:04}")).collect();
    let sims_dir = dir.join("stores");
    issue_certificates(&paths, &ids, &sims_dir)?;
    let certs = setup.elapsed();

    progress("opening the stores' databases");
    let day = NaiveDate::from_ymd_opt(2026, 11, 25).ok_or_else(|| anyhow!("bad date"))?;
    // four at a time: each store's writer thread writes its opening stock
    let mut sims = Vec::with_capacity(p.stores);
    let mut opening = JoinSet::new();
    for (i, id) in ids.iter().enumerate() {
        if opening.len() >= 4
            && let Some(r) = opening.join_next().await
        {
            sims.push(r??);
        }
        let (id, db, skus) = (id.clone(), sims_dir.join(format!("{id}.db")), p.skus);
        opening.spawn(async move { SimStore::open(&id, &db, day, skus).await.map(|s| (i, s)) });
    }
    while let Some(r) = opening.join_next().await {
        sims.push(r??);
    }
    sims.sort_by_key(|(i, _)| *i);
    let sims: Vec<Arc<SimStore>> = sims.into_iter().map(|(_, s)| s).collect();
    let dbs = setup.elapsed() - certs;

    progress("starting the hub");
    let mut hub = HubProcess::start(bin, &paths.data_dir, "127.0.0.1:0")?;
    let quic = hub.quic;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = hub.rss();
    let gen_rss_idle = rss_of("self");

    progress("connecting every store");
    let cancel = CancellationToken::new();
    let mut links = JoinSet::new();
    let drops = (udp_rcvbuf_errors(), udp_socket_drops(quic.port()));
    let connecting = Window::open(&hub, &AtomicUsize::new(0));
    for sim in &sims {
        let identity = StoreIdentity::load(&sims_dir.join(format!("{}-identity", sim.id)))?;
        let cfg = tls::client_config(&identity, TransportSettings::default())?;
        let endpoint = tls::client_endpoint(cfg, quic)?;
        links.spawn(sim_link(sim.clone(), endpoint, quic, cancel.child_token()));
    }
    let all_live = wait_until("every store to connect", || live(&sims) == p.stores).await?;
    let converged = wait_until("the hub to hold every store's opening stock", || {
        unacknowledged(&sims) == 0
    })
    .await?;
    let (_, connect_hub, connect_gen, _) = connecting.close(&hub, &AtomicUsize::new(0));
    let connect_drops = (
        udp_rcvbuf_errors().saturating_sub(drops.0),
        udp_socket_drops(quic.port()).saturating_sub(drops.1),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_connected = hub.rss();
    out.row(
        "setup: certificates / databases",
        format!("{:.1} / {:.1} s", certs.as_secs_f64(), dbs.as_secs_f64()),
        "",
    );
    out.row(
        "connect: all stores live / hub holds their opening stock",
        format!(
            "{:.2} / {:.2} s",
            (all_live - connecting.at).as_secs_f64(),
            (converged - connecting.at).as_secs_f64()
        ),
        "",
    );
    out.row(
        "connect: hub / generator CPU (cores)",
        format!("{connect_hub:.2} / {connect_gen:.2}"),
        "",
    );
    out.row(
        "hub RSS: 0 stores / all connected",
        format!("{:.1} / {:.1} MB", mb(rss_idle), mb(rss_connected)),
        "",
    );
    let per_store = rss_connected.saturating_sub(rss_idle) / p.stores as u64;
    out.row(
        "hub memory per connected store",
        format!("{:.2} MB", mb(per_store)),
        &format!("goal < 1 MB ({})", verdict(per_store < GOAL_PER_STORE)),
    );

    // sellers follow one rate
    let (rate, _) = watch::channel(Some(p.period));
    let rate: Rate = rate;
    let sold = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let mut sellers = JoinSet::new();
    for (i, sim) in sims.iter().enumerate() {
        sellers.spawn(seller(
            sim.clone(),
            p.seed ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            rate.subscribe(),
            sold.clone(),
            errors.clone(),
            cancel.child_token(),
        ));
    }

    // 3. steady
    progress(&format!(
        "steady: 1 sale per {:.1} s per store for {} s",
        p.period.as_secs_f64(),
        p.steady.as_secs()
    ));
    tokio::time::sleep(SETTLE.max(p.period)).await;
    let w = Window::open(&hub, &sold);
    let fails_from = Instant::now();
    tokio::time::sleep(p.steady.saturating_sub(SETTLE.max(p.period))).await;
    let (wall, hub_cores, gen_cores, rate_done) = w.close(&hub, &sold);
    let steady_end = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (held, waiting) = propagation(&sims, w.at, steady_end);
    let (p50, p99) = p50_p99(&held, waiting);
    let rss_steady = hub.rss();
    let steady_fails = failures(&sims, fails_from, Instant::now());
    out.row(
        format!("steady ({:.0} s): sales/s", wall.as_secs_f64()),
        format!(
            "{rate_done:.1} (target {:.1})",
            p.stores as f64 / p.period.as_secs_f64()
        ),
        "",
    );
    out.row(
        "steady: propagation p50 / p99",
        format!("{:.1} / {:.1} ms", ms(p50), ms(p99)),
        &format!(
            "goal p99 <= 1 s ({}; {} sales, {waiting} not held after 1 s)",
            verdict(p99 <= GOAL_P99),
            held.len()
        ),
    );
    out.row(
        "steady: propagation p90 / p99.9 / max, over 1 s",
        format!(
            "{:.0} / {:.0} / {:.0} ms, {}",
            ms(quantile(&held, 0.9)),
            ms(quantile(&held, 0.999)),
            ms(quantile(&held, 1.0)),
            held.iter().filter(|d| **d > GOAL_P99).count()
        ),
        "",
    );
    let mut commits: Vec<Duration> = sims.iter().flat_map(|s| s.commit_times()).collect();
    commits.sort();
    out.row(
        "steady: store commit (not counted) p50 / p99 / max",
        format!(
            "{:.1} / {:.1} / {:.0} ms",
            ms(quantile(&commits, 0.5)),
            ms(quantile(&commits, 0.99)),
            ms(quantile(&commits, 1.0))
        ),
        "the generator's own SQLite, fsync per sale",
    );
    out.row(
        "steady: hub CPU (cores)",
        format!("{hub_cores:.3}"),
        &format!(
            "goal < 1 core ({}); {:.2} ms hub CPU per sale",
            verdict(hub_cores < 1.0),
            1000.0 * hub_cores / rate_done.max(1e-9)
        ),
    );
    out.row(
        "steady: generator CPU (cores, same machine)",
        format!("{gen_cores:.3}"),
        &format!("of {} cores", cores()),
    );
    out.row(
        "steady: hub RSS after / per store",
        format!(
            "{:.1} MB / {:.2} MB",
            mb(rss_steady),
            mb(rss_steady.saturating_sub(rss_idle) / p.stores as u64)
        ),
        &format!(
            "generator RSS {:.0} MB ({:.0} MB before the stores connected)",
            mb(rss_of("self")),
            mb(gen_rss_idle)
        ),
    );
    out.row(
        "steady: errors (sell / session ends)",
        format!(
            "{} / {}",
            errors.load(Ordering::Relaxed),
            steady_fails.len()
        ),
        "",
    );
    if !steady_fails.is_empty() {
        out.note(format!("steady session ends: {}", summary(&steady_fails)));
    }

    // 4. ramp
    ramp(p, &hub, &sims, &rate, &sold, &errors, out).await?;
    rate.send_replace(Some(p.period));
    let drained = wait_until("the hub to catch up after the ramp", || {
        unacknowledged(&sims) <= p.stores
    })
    .await;
    if let Err(e) = drained {
        out.note(format!("after the ramp: {e}"));
    }

    // 5. reconnect storm
    progress("storm: killing the hub (SIGKILL)");
    let rss_before_kill = hub.rss();
    hub.proc.kill_9();
    tokio::time::sleep(p.down).await;
    let sold_down = sold.load(Ordering::Relaxed);
    rate.send_replace(None);
    let drops = udp_rcvbuf_errors();
    let restarting = Instant::now();
    hub = HubProcess::start(bin, &paths.data_dir, &quic.to_string())?;
    let started_in = restarting.elapsed();
    let hub_drops = udp_socket_drops(quic.port());
    let w = Window::open(&hub, &sold);
    let fails_from = Instant::now();
    let back = wait_until("every store to reconnect", || live(&sims) == p.stores).await;
    let all_back = match back {
        Ok(t) => t,
        Err(e) => {
            let n = live(&sims);
            out.note(format!("storm: {e}: {n} of {} live", p.stores));
            bail!("storm: only {n} of {} stores reconnected", p.stores)
        }
    };
    let held_all = wait_until("the hub to hold every sale", || unacknowledged(&sims) == 0).await?;
    let (_, storm_hub, storm_gen, _) = w.close(&hub, &sold);
    let storm_drops = (
        udp_rcvbuf_errors().saturating_sub(drops),
        udp_socket_drops(quic.port()).saturating_sub(hub_drops),
    );
    let storm_fails = failures(&sims, fails_from, Instant::now());
    out.row(
        "storm: hub restarted (process up, ready)",
        format!("{:.2} s", started_in.as_secs_f64()),
        &format!("down {:.0} s", p.down.as_secs_f64()),
    );
    out.row(
        "storm: ready -> every store back / hub holds every sale",
        format!(
            "{:.2} / {:.2} s",
            (all_back - restarting).as_secs_f64(),
            (held_all - restarting).as_secs_f64()
        ),
        &format!("{} sales in all", sold_down),
    );
    out.row(
        "storm: hub / generator CPU (cores) until converged",
        format!("{storm_hub:.2} / {storm_gen:.2}"),
        "",
    );
    out.row(
        "storm: hub RSS before kill / after converged",
        format!("{:.1} / {:.1} MB", mb(rss_before_kill), mb(hub.rss())),
        "",
    );
    out.note(format!(
        "UDP datagrams dropped on full receive buffers (system-wide / at the hub's socket): \
         connect {} / {}, storm {} / {}. Failed attempts and session ends during the storm: {}.",
        connect_drops.0,
        connect_drops.1,
        storm_drops.0,
        storm_drops.1,
        summary(&storm_fails)
    ));

    cancel.cancel();
    while sellers.join_next().await.is_some() {}
    while links.join_next().await.is_some() {}
    for sim in &sims {
        sim.store.shutdown().await;
    }
    hub.proc.kill_9();
    Ok(())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

/// Issues each store's certificate from the hub's CA in its data
/// directory, as `linli-hub issue-cert` does (`Ca::issue_store`), on two
/// threads.
fn issue_certificates(paths: &HubPaths, ids: &[String], dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let ca = Ca::load_or_create(&paths.ca_dir())?;
    let ca = &ca;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|t| {
                s.spawn(move || {
                    for id in ids.iter().skip(t).step_by(2) {
                        ca.issue_store(id, &dir.join(format!("{id}-identity")))?;
                    }
                    Ok::<_, anyhow::Error>(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow!("certificate thread panicked"))??;
        }
        Ok(())
    })
}

/// Doubles the rate every step until propagation p99 exceeds the goal,
/// errors appear or the generator falls behind its target.
async fn ramp(
    p: &Params,
    hub: &HubProcess,
    sims: &[Arc<SimStore>],
    rate: &Rate,
    sold: &AtomicUsize,
    errors: &AtomicUsize,
    out: &mut Report,
) -> Result<()> {
    let mut passed: Option<f64> = None;
    let mut stopped = None;
    for step in 1..=p.ramp_steps {
        let factor = 1u32 << step;
        let period = p.period / factor;
        let target = p.stores as f64 / period.as_secs_f64();
        progress(&format!("ramp step {step}: target {target:.0} sales/s"));
        let errors_before = errors.load(Ordering::Relaxed);
        rate.send_replace(Some(period));
        tokio::time::sleep(SETTLE).await;
        let w = Window::open(hub, sold);
        let fails_from = Instant::now();
        tokio::time::sleep(p.ramp_step.saturating_sub(SETTLE)).await;
        let (wall, hub_cores, gen_cores, achieved) = w.close(hub, sold);
        let end = Instant::now();
        // back to the base rate; one more second for the last sales' acks:
        // a sale not held by then took more than a second
        rate.send_replace(Some(p.period));
        tokio::time::sleep(GOAL_P99).await;
        let (held, waiting) = propagation(sims, w.at, end);
        let (p50, p99) = p50_p99(&held, waiting);
        let errs = errors.load(Ordering::Relaxed) - errors_before;
        let fails = failures(sims, fails_from, end);
        out.row(
            format!("ramp x{factor}: target / achieved sales/s"),
            format!("{target:.0} / {achieved:.0}"),
            &format!(
                "p50 {:.0} / p99 {:.0} ms ({} not held after 1 s), hub {hub_cores:.2} cores, \
                 generator {gen_cores:.2} cores, {errs} sell errors, {} session ends, {:.0} s",
                ms(p50),
                ms(p99),
                waiting,
                fails.len(),
                wall.as_secs_f64()
            ),
        );
        let why = if p99 > GOAL_P99 {
            Some(format!("propagation p99 {:.0} ms > 1 s", ms(p99)))
        } else if errs > 0 || !fails.is_empty() {
            Some(format!(
                "errors: {errs} sales failed, sessions ended: {}",
                summary(&fails)
            ))
        } else if achieved < 0.9 * target {
            Some(format!(
                "the generator reached only {achieved:.0} of {target:.0} sales/s \
                 (generator {gen_cores:.2} cores + hub {hub_cores:.2} cores of {})",
                cores()
            ))
        } else {
            None
        };
        match why {
            Some(why) => {
                stopped = Some((achieved, why));
                break;
            }
            None => passed = Some(achieved),
        }
        // let a backlog drain before the next step
        wait_until("the hub to catch up between ramp steps", || {
            unacknowledged(sims) <= p.stores
        })
        .await?;
    }
    let passed = passed.map_or("none".into(), |r| format!("{r:.0} sales/s"));
    match stopped {
        Some((at, why)) => out.row(
            "saturation: highest rate within the goal / stopped at",
            format!("{passed} / {at:.0} sales/s"),
            &format!("stopped: {why}"),
        ),
        None => out.row(
            "saturation: highest rate within the goal",
            passed,
            &format!(
                "not saturated within {} doublings (FLEET_RAMP_STEPS)",
                p.ramp_steps
            ),
        ),
    }
    Ok(())
}
