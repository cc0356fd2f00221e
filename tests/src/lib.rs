//! Multi-process harness for Linli: real `linli-hub` and `linli-edge`
//! processes on port 0 with temp dirs, each store talking to the hub through
//! an in-process UDP proxy that can cut, heal, drop, duplicate and reorder
//! packets. Tests wait on conditions with deadlines, never on sleeps.
//!
//! Binaries are those `cargo test --workspace` builds next to the test
//! executables (`target/<profile>/`).

pub mod probe;
pub mod sim;

pub use linli_chain::link::{LinkMode, UdpProxy};

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use serde_json::{Value, json};

/// Path of a workspace binary built by `cargo test --workspace` (or
/// `cargo build --bins`). `cargo test -p linli-tests` alone does not rebuild
/// the binaries it spawns, so a test would run yesterday's node against
/// today's test: this panics, saying what to run, when the binary is
/// missing or older than any source it is built from.
pub fn workspace_bin(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().unwrap_or_default();
    dir.pop(); // the test executable
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join(name);
    if let Err(e) = check_fresh(&bin, name) {
        panic!("{e}");
    }
    bin
}

/// The workspace crates a binary is built from (its own and its path
/// dependencies), relative to the workspace root.
fn sources_of(bin: &str) -> &'static [&'static str] {
    match bin {
        "linli-edge" => &["edge-node", "shared", "sync", "courier"],
        "linli-hub" => &["cloud-hub", "shared", "sync", "pay-sim"],
        "linli-courier-sim" => &["courier"],
        "linli-pay-sim" => &["pay-sim"],
        "linli-install" => &["installer", "shared"],
        "linli" => &[
            "chain",
            "edge-node",
            "cloud-hub",
            "shared",
            "sync",
            "courier",
            "pay-sim",
        ],
        _ => &[],
    }
}

/// Newest modification time of the files under `path`.
fn newest_mtime(path: &Path) -> Option<(std::time::SystemTime, PathBuf)> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.is_file() {
        return Some((meta.modified().ok()?, path.to_owned()));
    }
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    for entry in std::fs::read_dir(path).ok()?.flatten() {
        let p = entry.path();
        if let Some(found) = newest_mtime(&p)
            && newest.as_ref().is_none_or(|n| found.0 > n.0)
        {
            newest = Some(found);
        }
    }
    newest
}

/// Refuses a missing binary, or one older than a source file it is built from.
pub fn check_fresh(bin: &Path, name: &str) -> anyhow::Result<()> {
    let built = std::fs::metadata(bin)
        .and_then(|m| m.modified())
        .map_err(|e| {
            anyhow!(
                "{} is missing ({e}): run `cargo build --bins` (or `cargo test --workspace`) first",
                bin.display()
            )
        })?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?;
    // the files that go into the binary: a change to one always makes cargo
    // relink it (a manifest or `Cargo.lock` change need not)
    let inputs = sources_of(name)
        .iter()
        .flat_map(|c| [root.join(c).join("src"), root.join(c).join("assets")]);
    for input in inputs {
        if let Some((changed, file)) = newest_mtime(&input)
            && changed > built
        {
            return Err(anyhow!(
                "{} is stale: {} changed after it was built; run `cargo build --bins` \
                 (or `cargo test --workspace`) before `cargo test -p linli-tests`",
                bin.display(),
                file.display()
            ));
        }
    }
    Ok(())
}

/// A running child process that printed `... listening on <rest>`.
#[derive(Debug)]
pub struct Spawned {
    pub child: Child,
    /// What followed "listening on " on the ready line.
    pub ready_line: String,
    pub base_url: String,
}

impl Spawned {
    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// Starts `bin args...` and waits (with a deadline) for its ready line.
pub fn spawn_listening(bin: &Path, args: &[&str], deadline: Duration) -> anyhow::Result<Spawned> {
    spawn_logged(bin, args, deadline, None)
}

fn spawn_logged(
    bin: &Path,
    args: &[&str],
    deadline: Duration,
    log: Option<&Path>,
) -> anyhow::Result<Spawned> {
    let stderr = match log {
        Some(p) => Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)?,
        ),
        None => Stdio::null(),
    };
    let mut child = Command::new(bin)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on ").nth(1) {
                let _ = tx.send(rest.trim().to_owned());
            }
        }
    });
    let ready_line = rx.recv_timeout(deadline).map_err(|_| {
        anyhow!(
            "{} {:?} did not start within {:?}",
            bin.display(),
            args,
            deadline
        )
    })?;
    let base_url = ready_line
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    Ok(Spawned {
        child,
        ready_line,
        base_url,
    })
}

/// The QUIC address a hub printed on its ready line
/// (`linli-hub listening on http://... quic <addr>`).
pub fn hub_quic_addr(ready_line: &str) -> anyhow::Result<SocketAddr> {
    Ok(ready_line
        .split("quic ")
        .nth(1)
        .ok_or_else(|| anyhow!("no quic address in {ready_line:?}"))?
        .trim()
        .parse()?)
}

/// Polls `cond` until it returns `Some`, or fails after `deadline`.
pub fn wait_for<T>(
    deadline: Duration,
    what: &str,
    mut cond: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = cond() {
            return Ok(v);
        }
        if start.elapsed() > deadline {
            return Err(anyhow!("timed out after {deadline:?} waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The hub process and its admin session.
#[derive(Debug)]
pub struct HubProc {
    pub proc: Spawned,
    pub http: String,
    pub quic: SocketAddr,
    pub token: String,
}

/// A store process, its session, and its link to the hub.
#[derive(Debug)]
pub struct StoreProc {
    pub id: String,
    pub proc: Option<Spawned>,
    pub data_dir: PathBuf,
    pub identity: PathBuf,
    pub proxy: UdpProxy,
    pub base_url: String,
    pub token: String,
    /// Extra flags the node is started with (e.g. a courier).
    pub extra_args: Vec<String>,
}

/// A hub and its stores, each in its own temp dir.
#[derive(Debug)]
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub hub: Option<HubProc>,
    pub stores: HashMap<String, StoreProc>,
    pub http: reqwest::blocking::Client,
    seed: u64,
    /// Extra flags the hub is started with (e.g. a payment provider).
    pub hub_args: Vec<String>,
}

/// A failing test shows the end of every process's log (the hub's and
/// each store's), so a failure in CI can be read without rerunning it;
/// `LINLI_TEST_KEEP_LOGS=<dir>` copies the whole logs there as well.
impl Drop for Cluster {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let Ok(entries) = std::fs::read_dir(self.dir.path()) else {
            return;
        };
        let mut logs: Vec<PathBuf> = entries
            .filter_map(|e| Some(e.ok()?.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        logs.sort();
        for log in logs {
            if let Some(keep) = std::env::var_os("LINLI_TEST_KEEP_LOGS")
                && let Some(name) = log.file_name()
            {
                let _ = std::fs::copy(&log, Path::new(&keep).join(name));
            }
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL)..];
            eprintln!("--- the last {} lines of {} ---", tail.len(), log.display());
            for l in tail {
                eprintln!("{l}");
            }
        }
    }
}

/// How many lines of each log a failing test prints.
const LOG_TAIL: usize = 80;

const START: Duration = Duration::from_secs(60);
pub const ADMIN_PASSWORD: &str = "admin-password";

impl Cluster {
    /// A cluster with a running hub.
    pub fn new(seed: u64) -> anyhow::Result<Cluster> {
        Self::new_with_hub_args(seed, &[])
    }

    /// A cluster whose hub runs with `hub_args` as well.
    pub fn new_with_hub_args(seed: u64, hub_args: &[&str]) -> anyhow::Result<Cluster> {
        let dir = tempfile::tempdir()?;
        let status = Command::new(workspace_bin("linli-hub"))
            .args(["user", "add", "--data-dir"])
            .arg(dir.path().join("hub"))
            .args([
                "--name",
                "admin",
                "--role",
                "admin",
                "--password",
                ADMIN_PASSWORD,
            ])
            .stdout(Stdio::null())
            .status()?;
        anyhow::ensure!(status.success(), "linli-hub user add failed");
        let mut c = Cluster {
            dir,
            hub: None,
            stores: HashMap::new(),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()?,
            seed,
            hub_args: hub_args.iter().map(|a| (*a).to_owned()).collect(),
        };
        c.start_hub(None)?;
        Ok(c)
    }

    pub fn hub_dir(&self) -> PathBuf {
        self.dir.path().join("hub")
    }

    /// Starts the hub; `quic` pins its QUIC address (to come back on the
    /// same port after a restart).
    pub fn start_hub(&mut self, quic: Option<SocketAddr>) -> anyhow::Result<()> {
        self.start_hub_at(quic, "127.0.0.1:0")
    }

    fn start_hub_at(&mut self, quic: Option<SocketAddr>, listen: &str) -> anyhow::Result<()> {
        let hub_dir = self.hub_dir();
        let quic_arg = quic.map_or("127.0.0.1:0".to_owned(), |q| q.to_string());
        let mut args = vec![
            "serve",
            "--data-dir",
            hub_dir.to_str().unwrap_or_default(),
            "--listen",
            listen,
            "--quic",
            &quic_arg,
        ];
        args.extend(self.hub_args.iter().map(String::as_str));
        let proc = spawn_logged(
            &workspace_bin("linli-hub"),
            &args,
            START,
            Some(&self.dir.path().join("hub.log")),
        )?;
        let quic = hub_quic_addr(&proc.ready_line)?;
        let http = proc.base_url.clone();
        let login: Value = self
            .http
            .post(format!("{http}/api/v1/login"))
            .json(&json!({"name": "admin", "password": ADMIN_PASSWORD}))
            .send()?
            .json()?;
        let token = login["token"]
            .as_str()
            .ok_or_else(|| anyhow!("hub login failed: {login}"))?
            .to_owned();
        for s in self.stores.values() {
            s.proxy.set_target(quic);
        }
        self.hub = Some(HubProc {
            proc,
            http,
            quic,
            token,
        });
        Ok(())
    }

    /// Kills the hub with SIGKILL and starts it again on the same QUIC port.
    pub fn restart_hub(&mut self) -> anyhow::Result<()> {
        let quic = self.hub()?.quic;
        if let Some(mut h) = self.hub.take() {
            h.proc.kill_9();
        }
        self.start_hub(Some(quic))
    }

    /// Stops the hub, runs `linli-hub <command>` on its data (e.g. `user
    /// add`), and starts it again on the same HTTP and QUIC addresses with
    /// `hub_args`: how a test gives the hub a store console's origin, known
    /// only once the store runs.
    pub fn restart_hub_with(&mut self, command: &[&str]) -> anyhow::Result<()> {
        let (quic, http) = (self.hub()?.quic, self.hub()?.http.clone());
        if let Some(mut h) = self.hub.take() {
            h.proc.kill_9();
        }
        if !command.is_empty() {
            let status = Command::new(workspace_bin("linli-hub"))
                .args(command)
                .arg("--data-dir")
                .arg(self.hub_dir())
                .stdout(Stdio::null())
                .status()?;
            anyhow::ensure!(status.success(), "linli-hub {command:?} failed");
        }
        let listen = http.trim_start_matches("http://").to_owned();
        self.start_hub_at(Some(quic), &listen)
    }

    /// Stops the hub, lets `f` work on its data directory (e.g. seed its
    /// database through the hub's own library), and starts it again on the
    /// same HTTP and QUIC addresses.
    pub fn with_hub_stopped(
        &mut self,
        f: impl FnOnce(&std::path::Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let (quic, http) = (self.hub()?.quic, self.hub()?.http.clone());
        if let Some(mut h) = self.hub.take() {
            h.proc.kill_9();
        }
        f(&self.hub_dir())?;
        let listen = http.trim_start_matches("http://").to_owned();
        self.start_hub_at(Some(quic), &listen)
    }

    pub fn hub(&self) -> anyhow::Result<&HubProc> {
        self.hub
            .as_ref()
            .ok_or_else(|| anyhow!("the hub is not running"))
    }

    /// Issues a certificate for `id` and starts its node (demo catalog and
    /// stock, staff cashier/1234 and manager/9999) linked through a proxy.
    pub fn add_store(&mut self, id: &str) -> anyhow::Result<()> {
        self.add_store_with(id, &[])
    }

    /// [`Self::add_store`] with extra flags for `linli-edge demo`.
    pub fn add_store_with(&mut self, id: &str, extra_args: &[&str]) -> anyhow::Result<()> {
        let identity = self.dir.path().join(format!("{id}-identity"));
        let status = Command::new(workspace_bin("linli-hub"))
            .args(["issue-cert", "--data-dir"])
            .arg(self.hub_dir())
            .args(["--store", id, "--out"])
            .arg(&identity)
            .stdout(Stdio::null())
            .status()?;
        anyhow::ensure!(status.success(), "issue-cert failed");
        let seed = self.seed ^ (self.stores.len() as u64 + 1);
        let proxy = UdpProxy::start(self.hub()?.quic, seed)?;
        let data_dir = self.dir.path().join(id);
        let mut store = StoreProc {
            id: id.to_owned(),
            proc: None,
            data_dir,
            identity,
            proxy,
            base_url: String::new(),
            token: String::new(),
            extra_args: extra_args.iter().map(|a| (*a).to_owned()).collect(),
        };
        self.launch(&mut store)?;
        self.stores.insert(id.to_owned(), store);
        Ok(())
    }

    fn launch(&self, s: &mut StoreProc) -> anyhow::Result<()> {
        let proxy = s.proxy.addr().to_string();
        let mut args = vec![
            "demo",
            "--store-id",
            &s.id,
            "--data-dir",
            s.data_dir.to_str().unwrap_or_default(),
            "--listen",
            "127.0.0.1:0",
            "--hub",
            &proxy,
            "--identity",
            s.identity.to_str().unwrap_or_default(),
        ];
        args.extend(s.extra_args.iter().map(String::as_str));
        let proc = spawn_logged(
            &workspace_bin("linli-edge"),
            &args,
            START,
            Some(&self.dir.path().join(format!("{}.log", s.id))),
        )?;
        s.base_url = proc.base_url.clone();
        let login: Value = self
            .http
            .post(format!("{}/api/v1/login", s.base_url))
            .json(&json!({"name": "manager", "pin": "9999"}))
            .send()?
            .json()?;
        s.token = login["token"]
            .as_str()
            .ok_or_else(|| anyhow!("store login failed: {login}"))?
            .to_owned();
        s.proc = Some(proc);
        Ok(())
    }

    pub fn store(&self, id: &str) -> anyhow::Result<&StoreProc> {
        self.stores.get(id).ok_or_else(|| anyhow!("no store {id}"))
    }

    /// Kills a store's node with SIGKILL.
    pub fn kill_store(&mut self, id: &str) -> anyhow::Result<()> {
        let s = self
            .stores
            .get_mut(id)
            .ok_or_else(|| anyhow!("no store {id}"))?;
        if let Some(mut p) = s.proc.take() {
            p.kill_9();
        }
        Ok(())
    }

    /// Starts a killed store again on its data.
    pub fn restart_store(&mut self, id: &str) -> anyhow::Result<()> {
        let mut s = self
            .stores
            .remove(id)
            .ok_or_else(|| anyhow!("no store {id}"))?;
        if let Some(mut p) = s.proc.take() {
            p.kill_9();
        }
        let r = self.launch(&mut s);
        self.stores.insert(id.to_owned(), s);
        r
    }

    /// Sets how a store's link behaves (cut, heal, lossy).
    pub fn link(&self, id: &str, mode: LinkMode) -> anyhow::Result<()> {
        self.store(id)?.proxy.set_mode(mode);
        Ok(())
    }

    /// A counter sale at a store; returns the receipt.
    pub fn sell(&self, id: &str, key: &str, lines: Value) -> anyhow::Result<Value> {
        let s = self.store(id)?;
        let resp = self
            .http
            .post(format!("{}/api/v1/sales", s.base_url))
            .bearer_auth(&s.token)
            .header("Idempotency-Key", key)
            .json(&json!({"lines": lines, "payments": [{"method": "cash", "amount_fen": 100_000}]}))
            .send()?;
        anyhow::ensure!(
            resp.status().as_u16() == 201,
            "sale refused: {}",
            resp.text()?
        );
        Ok(resp.json()?)
    }

    /// GET on a store's API.
    pub fn store_get(&self, id: &str, path: &str) -> anyhow::Result<Value> {
        let s = self.store(id)?;
        Ok(self
            .http
            .get(format!("{}{path}", s.base_url))
            .bearer_auth(&s.token)
            .send()?
            .json()?)
    }

    /// POST on a store's API; returns status and body.
    pub fn store_post(
        &self,
        id: &str,
        path: &str,
        key: Option<&str>,
        body: Value,
    ) -> anyhow::Result<(u16, Value)> {
        let s = self.store(id)?;
        let mut req = self
            .http
            .post(format!("{}{path}", s.base_url))
            .bearer_auth(&s.token)
            .json(&body);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        let resp = req.send()?;
        Ok((resp.status().as_u16(), resp.json()?))
    }

    /// Posts one of the project's reference files (`data/<file>`) to a hub
    /// import endpoint as admin; fails unless the hub answers 200.
    pub fn hub_import(&self, path: &str, file: &str) -> anyhow::Result<()> {
        let h = self.hub()?;
        let body = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../data")
                .join(file),
        )?;
        let r = self
            .http
            .post(format!("{}{path}", h.http))
            .bearer_auth(&h.token)
            .header("content-type", "text/csv")
            .body(body)
            .send()?;
        anyhow::ensure!(r.status().as_u16() == 200, "{path}: {}", r.text()?);
        Ok(())
    }

    /// A customer's session token at the hub (by phone).
    pub fn customer(&self, phone: &str) -> anyhow::Result<String> {
        let h = self.hub()?;
        let v: Value = self
            .http
            .post(format!("{}/api/v1/customer/session", h.http))
            .json(&json!({ "phone": phone }))
            .send()?
            .json()?;
        v["token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("no customer session: {v}"))
    }

    /// A request on the hub's API with `token` (the admin's if `None`) and
    /// an optional Idempotency-Key; returns status and body.
    pub fn hub_call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        key: Option<&str>,
        body: Value,
    ) -> anyhow::Result<(u16, Value)> {
        let h = self.hub()?;
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut req = self
            .http
            .request(method, format!("{}{path}", h.http))
            .bearer_auth(token.unwrap_or(&h.token))
            .json(&body);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        let resp = req.send()?;
        Ok((resp.status().as_u16(), resp.json()?))
    }

    /// Opens a group-buy as admin (P00009 at 39.90 yuan, at most 2 a
    /// customer, picked up two days after the deadline): `count`
    /// participants at `stores` by `deadline`; `extra` adds fields such as
    /// `grace_minutes` or `counter_allotment`. Returns its id.
    pub fn open_group_buy(
        &self,
        stores: &[&str],
        count: i64,
        deadline: chrono::DateTime<chrono::Utc>,
        extra: Value,
    ) -> anyhow::Result<String> {
        let mut body = json!({
            "sku": "P00009", "price_fen": 3990,
            "threshold": {"kind": "participants", "count": count},
            "deadline": deadline.to_rfc3339(),
            "pickup_date": (deadline + chrono::Duration::days(2)).date_naive().to_string(),
            "per_customer_limit": 2, "store_ids": stores,
        });
        if let (Some(b), Value::Object(more)) = (body.as_object_mut(), extra) {
            b.extend(more);
        }
        let (status, v) = self.hub_call("POST", "/api/v1/group-buys", None, None, body)?;
        anyhow::ensure!(status == 201, "opening a group-buy: {status} {v}");
        v["group_buy_id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no group_buy_id in {v}"))
    }

    /// GET on the hub's API as admin.
    pub fn hub_get(&self, path: &str) -> anyhow::Result<Value> {
        let h = self.hub()?;
        Ok(self
            .http
            .get(format!("{}{path}", h.http))
            .bearer_auth(&h.token)
            .send()?
            .json()?)
    }

    /// The sale ids the hub holds for a store and day.
    pub fn hub_sale_ids(&self, id: &str, day: &str) -> anyhow::Result<Vec<String>> {
        let v = self.hub_get(&format!("/api/v1/stores/{id}/sales?day={day}"))?;
        Ok(v["sales"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s["sale_id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The sale ids in the hub's copy of a store's ledger of the day (the
    /// automerge document itself, `GET /api/v1/docs/{id}`), one entry per
    /// value held: a sale written twice under its id (a conflict between
    /// two writers) appears twice. No document yet is no sales.
    pub fn hub_ledger_sales(&self, id: &str, day: &str) -> anyhow::Result<Vec<String>> {
        use automerge::{ObjType, ReadDoc, Value as AmValue};
        let h = self.hub()?;
        let mut out = Vec::new();
        // every part of the day's ledger, in order, until one is missing
        for part in 0..linli_shared::docs::MAX_PARTS {
            let suffix = if part == 0 {
                String::new()
            } else {
                format!("/p{part}")
            };
            let resp = self
                .http
                .get(format!(
                    "{}/api/v1/docs/store/{id}/ledger/{day}{suffix}",
                    h.http
                ))
                .bearer_auth(&h.token)
                .send()?;
            if resp.status().as_u16() == 404 {
                break;
            }
            anyhow::ensure!(
                resp.status().is_success(),
                "the hub refused the ledger: {} {}",
                resp.status(),
                resp.text()?
            );
            let doc = automerge::AutoCommit::load(&resp.bytes()?)?;
            let sales = match doc.get(automerge::ROOT, "sales")? {
                Some((AmValue::Object(ObjType::Map), o)) => o,
                None => continue,
                Some(other) => anyhow::bail!("the ledger's sales are not a map: {other:?}"),
            };
            for key in doc.keys(&sales) {
                let held = doc.get_all(&sales, key.as_str())?.len();
                out.extend(std::iter::repeat_n(key, held));
            }
        }
        Ok(out)
    }

    /// Waits until the hub holds exactly `want`, each sale once: counted in
    /// the hub's copy of the ledger document, and the same in the hub's
    /// sales table (which ignores a second insert, so it cannot show a
    /// duplicate on its own).
    pub fn wait_hub_has(
        &self,
        id: &str,
        day: &str,
        want: &[String],
        deadline: Duration,
    ) -> anyhow::Result<()> {
        let mut want_sorted = want.to_vec();
        want_sorted.sort();
        let mut unique = want_sorted.clone();
        unique.dedup();
        anyhow::ensure!(
            unique.len() == want_sorted.len(),
            "the same sale id was acknowledged twice"
        );
        let (mut ledger, mut table) = (Vec::new(), Vec::new());
        let r = wait_for(deadline, "the hub to hold the store's sales", || {
            let mut got = self.hub_ledger_sales(id, day).ok()?;
            got.sort();
            ledger = got;
            if ledger != want_sorted {
                return None;
            }
            let mut rows = self.hub_sale_ids(id, day).ok()?;
            rows.sort();
            table = rows;
            (table == want_sorted).then_some(())
        });
        r.with_context(|| {
            let extra: Vec<&String> = ledger
                .windows(2)
                .filter(|w| w[0] == w[1])
                .map(|w| &w[0])
                .collect();
            format!(
                "the hub's ledger holds {} sales (held twice: {extra:?}), its table {}, want {}",
                ledger.len(),
                table.len(),
                want_sorted.len()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn a_binary_older_than_its_sources_or_missing_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("linli-hub");
        let missing = check_fresh(&bin, "linli-hub").unwrap_err().to_string();
        assert!(missing.contains("missing"), "{missing}");

        let f = std::fs::File::create(&bin).unwrap();
        f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1))
            .unwrap();
        let stale = check_fresh(&bin, "linli-hub").unwrap_err().to_string();
        assert!(
            stale.contains("stale") && stale.contains("cargo build --bins"),
            "{stale}"
        );

        f.set_modified(SystemTime::now() + Duration::from_secs(3600))
            .unwrap();
        check_fresh(&bin, "linli-hub").unwrap();
    }
}
