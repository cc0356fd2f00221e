//! Process-level tests: the real `linli-edge` binary runs as a child process
//! on its own temporary data directory and an ephemeral port, and is killed
//! with SIGKILL or stopped with SIGTERM while tills are sending sales.
//!
//! What they pin down:
//! - a sale answered with `201` is durable: it survives `kill -9`, keeps its
//!   ticket number, and ticket numbers stay gapless;
//! - an `Idempotency-Key` retried after a crash returns the committed sale or
//!   records it once, never twice;
//! - SIGTERM drains in-flight requests, exits 0 and leaves a checkpointed
//!   (empty) WAL;
//! - `staff add` works offline and refuses a duplicate.
//!
//! Every wait is a condition with a deadline (a line on stdout, `/health`
//! answering, the process exiting), never a fixed sleep.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_linli-edge");

/// Generous for a debug build on a busy two-core machine.
const START_DEADLINE: Duration = Duration::from_secs(30);
const EXIT_DEADLINE: Duration = Duration::from_secs(20);
const LOAD_DEADLINE: Duration = Duration::from_secs(40);

// ---------------------------------------------------------------------------
// the node as a child process
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Serve,
    Demo,
}

/// A running `linli-edge` child. Dropping it kills the process, so a failing
/// test leaves nothing behind.
struct NodeProc {
    child: Child,
    base: String,
    log: PathBuf,
}

impl NodeProc {
    /// Starts `serve` or `demo` on `data_dir`, listening on an ephemeral port;
    /// stderr (the node's log) goes to `log`. Returns once the node printed
    /// its address (and, for `demo`, finished seeding) and `/health` is ok.
    fn start(mode: Mode, data_dir: &Path, log: &Path) -> NodeProc {
        let sub = match mode {
            Mode::Serve => "serve",
            Mode::Demo => "demo",
        };
        // an explicit config file, so a config in the platform directory of
        // whoever runs the tests cannot change the node under test
        let config = log.with_extension("toml");
        std::fs::write(&config, "store_id = \"S001\"\nutc_offset_minutes = 480\n")
            .expect("write the node config");
        let mut child = Command::new(BIN)
            .arg(sub)
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("LINLI_DATA_DIR")
            .env_remove("LINLI_LOG_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(log).expect("create the node log"))
            .spawn()
            .expect("spawn linli-edge");
        // read stdout on a thread so waiting on it can have a deadline; the
        // thread drains stdout until the child closes it (a node writing to
        // a closed pipe would fail)
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel::<String>();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let mut node = NodeProc {
            child,
            base: String::new(),
            log: log.to_owned(),
        };
        // ready when the address is printed and, for `demo`, the sample
        // catalog is loaded (its banner line); either may come first
        let deadline = Instant::now() + START_DEADLINE;
        let mut seeded = mode == Mode::Serve;
        let mut seen = Vec::new();
        while node.base.is_empty() || !seeded {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(l) => {
                    if let Some(addr) = l.strip_prefix("linli-edge listening on ") {
                        node.base = addr.trim().to_owned();
                    }
                    seeded |= l.starts_with("Linli demo store");
                    seen.push(l);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => node.fail(&format!(
                    "not ready before the deadline; stdout so far: {seen:?}"
                )),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = node.child.wait().expect("wait for the node");
                    node.fail(&format!(
                        "exited {status} before it was ready; stdout: {seen:?}"
                    ))
                }
            }
        }
        node.wait_healthy(deadline);
        node
    }

    fn wait_healthy(&mut self, deadline: Instant) {
        let client = client();
        loop {
            if let Ok(r) = client.get(format!("{}/health", self.base)).send()
                && r.status() == StatusCode::OK
                && r.json::<Value>()
                    .ok()
                    .and_then(|v| v["status"].as_str().map(str::to_owned))
                    == Some("ok".to_owned())
            {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("poll the node") {
                self.fail(&format!("exited {status} before /health was ok"));
            }
            if Instant::now() > deadline {
                self.fail("/health not ok before the deadline");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// SIGKILL, then reap.
    fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL the node");
        self.child.wait().expect("reap the node");
    }

    /// Sends SIGTERM (through `kill(1)`: this crate forbids unsafe code).
    fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid()])
            .status()
            .expect("run kill(1)")
            .success();
        assert!(ok, "kill -TERM {} failed", self.pid());
    }

    /// Waits for the process to exit, at most `limit`.
    fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().expect("poll the node") {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM and a clean exit within the deadline.
    fn stop(mut self) {
        self.sigterm();
        match self.wait_exit(EXIT_DEADLINE) {
            Some(s) if s.success() => {}
            Some(s) => self.fail(&format!("exited {s} after SIGTERM")),
            None => self.fail("did not exit after SIGTERM"),
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn fail(&mut self, what: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!(
            "node {}: {what}\n--- node log ({}) ---\n{}",
            self.base,
            self.log.display(),
            self.log_tail()
        );
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs the binary to completion (offline commands).
fn run_cli(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("LINLI_DATA_DIR")
        .env("NO_COLOR", "1")
        .output()
        .expect("run linli-edge")
}

// ---------------------------------------------------------------------------
// the API as a till sees it
// ---------------------------------------------------------------------------

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(20))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .expect("build the HTTP client")
}

/// Logs in and returns `(status, body)`.
fn try_login(client: &Client, base: &str, name: &str, pin: &str) -> (StatusCode, Value) {
    let r = client
        .post(format!("{base}/api/v1/login"))
        .json(&json!({ "name": name, "pin": pin }))
        .send()
        .expect("send login");
    let status = r.status();
    (status, r.json().unwrap_or(Value::Null))
}

fn login(client: &Client, base: &str, name: &str, pin: &str) -> String {
    let (status, body) = try_login(client, base, name, pin);
    assert_eq!(status, StatusCode::OK, "login {name}: {body}");
    body["token"]
        .as_str()
        .expect("token in login answer")
        .to_owned()
}

/// A response: status, whether it was an idempotent replay, body.
#[derive(Debug, Clone)]
struct Resp {
    status: StatusCode,
    replayed: bool,
    body: Value,
}

fn post_sale(
    client: &Client,
    base: &str,
    token: &str,
    key: &str,
    body: &Value,
) -> Result<Resp, reqwest::Error> {
    let r = client
        .post(format!("{base}/api/v1/sales"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()?;
    let status = r.status();
    let replayed = r
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    // a body cut off by the crash is a transport error too
    let body = r.json::<Value>()?;
    Ok(Resp {
        status,
        replayed,
        body,
    })
}

fn get_json(client: &Client, base: &str, token: &str, path: &str) -> (StatusCode, Value) {
    let r = client
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .expect("send GET");
    let status = r.status();
    (status, r.json().unwrap_or(Value::Null))
}

/// A sale that varies with the till and its counter (so totals differ): an
/// `each` product by barcode, a weighed one by SKU, paid in cash with change.
fn sale_body(till: usize, n: usize) -> Value {
    let each = ["6942215277577", "P00007", "P00010", "P00021"][till % 4];
    let each_line = if each.starts_with('P') {
        json!({ "sku": each, "qty": 1 + n % 3 })
    } else {
        json!({ "barcode": each, "qty": 1 + n % 3 })
    };
    json!({
        "lines": [each_line, { "sku": "P00003", "qty": 250 + 50 * (n % 5) }],
        "payments": [{ "method": "cash", "amount_fen": 100_000 }],
    })
}

#[derive(Debug, Clone)]
enum Outcome {
    /// Any HTTP response (201 or otherwise).
    Answered(Resp),
    /// The connection failed or was cut before a whole response arrived.
    NoResponse(String),
}

/// One sale attempt by one till.
#[derive(Debug, Clone)]
struct Attempt {
    key: String,
    body: Value,
    sent: Instant,
    done: Instant,
    outcome: Outcome,
}

impl Attempt {
    fn created(&self) -> Option<&Value> {
        match &self.outcome {
            Outcome::Answered(r) if r.status == StatusCode::CREATED => Some(&r.body),
            _ => None,
        }
    }
}

/// The innermost cause of a transport error ("connection reset by peer",
/// "connection closed before message completed", ...).
fn root_cause(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

/// Tills posting sales back to back, each with fresh Idempotency-Keys.
struct Tills {
    handles: Vec<JoinHandle<Vec<Attempt>>>,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
}

impl Tills {
    /// A till stops at `stop` or at its first transport error (its node is
    /// gone), after recording that attempt.
    fn start(n: usize, base: &str, token: &str, tag: &str) -> Tills {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicUsize::new(0));
        let handles = (0..n)
            .map(|till| {
                let (base, token, tag) = (base.to_owned(), token.to_owned(), tag.to_owned());
                let (stop, acked) = (stop.clone(), acked.clone());
                thread::spawn(move || {
                    let client = client();
                    let mut out = Vec::new();
                    let mut i = 0;
                    while !stop.load(Ordering::SeqCst) {
                        let key = format!("{tag}-till{till}-{i}");
                        let body = sale_body(till, i);
                        let sent = Instant::now();
                        let outcome = match post_sale(&client, &base, &token, &key, &body) {
                            Ok(r) => {
                                if r.status == StatusCode::CREATED {
                                    acked.fetch_add(1, Ordering::SeqCst);
                                }
                                Outcome::Answered(r)
                            }
                            Err(e) => Outcome::NoResponse(root_cause(&e)),
                        };
                        let gone = matches!(outcome, Outcome::NoResponse(_));
                        out.push(Attempt {
                            key,
                            body,
                            sent,
                            done: Instant::now(),
                            outcome,
                        });
                        if gone {
                            break;
                        }
                        i += 1;
                    }
                    out
                })
            })
            .collect();
        Tills {
            handles,
            stop,
            acked,
        }
    }

    /// Waits until `n` sales were acknowledged.
    fn wait_acked(&self, n: usize, node: &mut NodeProc) {
        let deadline = Instant::now() + LOAD_DEADLINE;
        while self.acked.load(Ordering::SeqCst) < n {
            if self.handles.iter().all(JoinHandle::is_finished) {
                node.fail(&format!(
                    "all tills stopped after {} acknowledged sales",
                    self.acked.load(Ordering::SeqCst)
                ));
            }
            if Instant::now() > deadline {
                node.fail(&format!(
                    "only {} of {n} sales acknowledged before the deadline",
                    self.acked.load(Ordering::SeqCst)
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the tills and returns every attempt.
    fn finish(self) -> Vec<Attempt> {
        self.stop.store(true, Ordering::SeqCst);
        self.handles
            .into_iter()
            .flat_map(|h| h.join().expect("till thread panicked"))
            .collect()
    }
}

/// The `NNNN` of `STORE-YYYYMMDD-NNNN`.
fn ticket_seq(ticket_no: &str) -> u32 {
    ticket_no
        .rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("ticket number {ticket_no} does not end in a sequence"))
}

/// Lists a business day's sales.
fn sales_of_day(client: &Client, base: &str, token: &str, day: &str) -> Vec<Value> {
    let (status, body) = get_json(client, base, token, &format!("/api/v1/sales?day={day}"));
    assert_eq!(status, StatusCode::OK, "list of {day}: {body}");
    body.as_array().expect("a list").clone()
}

/// Asserts a day's list has tickets `1..=n` in order, each once.
fn assert_gapless(day: &str, list: &[Value]) {
    let seqs: Vec<u32> = list
        .iter()
        .map(|s| ticket_seq(s["ticket_no"].as_str().expect("ticket_no")))
        .collect();
    let expected: Vec<u32> = (1..=list.len() as u32).collect();
    if seqs != expected {
        let missing: Vec<u32> = expected
            .iter()
            .filter(|s| !seqs.contains(s))
            .copied()
            .collect();
        panic!(
            "tickets of {day} are not gapless 1..={}: missing {missing:?}, got {} tickets",
            list.len(),
            seqs.len()
        );
    }
}

/// Starts a node on `dir/data` (`demo` the first time, to load the sample
/// catalog), lets `tills` tills sell until `acked` sales were acknowledged,
/// then SIGKILLs it mid-traffic. Returns every attempt and the tills' token.
fn sell_then_kill9(dir: &Path, round: usize, tills: usize, acked: usize) -> (Vec<Attempt>, String) {
    let mode = if round == 1 { Mode::Demo } else { Mode::Serve };
    let log = dir.join(format!("node-{round}.log"));
    let mut node = NodeProc::start(mode, &dir.join("data"), &log);
    let token = login(&client(), &node.base, "cashier", "1234");
    let t = Tills::start(tills, &node.base, &token, &format!("k9r{round}"));
    t.wait_acked(acked, &mut node);
    // the tills are still sending: each has a request on the wire
    node.kill9();
    let attempts = t.finish();
    // before the kill, every answer was a 201
    for a in &attempts {
        if let Outcome::Answered(r) = &a.outcome {
            assert_eq!(r.status, StatusCode::CREATED, "{}: {}", a.key, r.body);
        }
    }
    (attempts, token)
}

/// What the unanswered attempts saw, for the test's summary line.
fn transport_errors(attempts: &[Attempt]) -> BTreeSet<String> {
    attempts
        .iter()
        .filter_map(|a| match &a.outcome {
            Outcome::NoResponse(e) => Some(e.clone()),
            Outcome::Answered(_) => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------
// tests
// ---------------------------------------------------------------------------

#[test]
fn acknowledged_sales_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    // three crashes in a row: each restart recovers a WAL left by a kill
    let mut attempts = Vec::new();
    for round in 1..=3 {
        attempts.extend(sell_then_kill9(dir.path(), round, 4, 150).0);
    }
    let acked: Vec<&Value> = attempts.iter().filter_map(Attempt::created).collect();
    let unanswered = attempts.len() - acked.len();
    assert!(acked.len() >= 450);

    let node = NodeProc::start(
        Mode::Serve,
        &dir.path().join("data"),
        &dir.path().join("node-4.log"),
    );
    let client = client();
    let token = login(&client, &node.base, "cashier", "1234");

    // every acknowledged sale is there, as it was acknowledged
    for r in &acked {
        let id = r["sale_id"].as_str().unwrap();
        let (status, got) = get_json(&client, &node.base, &token, &format!("/api/v1/sales/{id}"));
        assert_eq!(
            status,
            StatusCode::OK,
            "acknowledged sale {id} lost after kill -9: {got}"
        );
        assert_eq!(got["total_fen"], r["total_fen"], "sale {id}");
        assert_eq!(got["ticket_no"], r["ticket_no"], "sale {id}");
        assert_eq!(got["lines"], r["lines"], "sale {id}");
        assert_eq!(got["payments"], r["payments"], "sale {id}");
    }

    // per business day: tickets 1..n, each acknowledged ticket among them,
    // and nothing beyond what was acknowledged or in flight
    let mut by_day: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for r in &acked {
        by_day
            .entry(r["business_day"].as_str().unwrap().to_owned())
            .or_default()
            .push(r);
    }
    let mut listed = 0;
    for (day, acked_that_day) in &by_day {
        let list = sales_of_day(&client, &node.base, &token, day);
        assert_gapless(day, &list);
        let tickets: HashMap<&str, &Value> = list
            .iter()
            .map(|s| (s["ticket_no"].as_str().unwrap(), s))
            .collect();
        for r in acked_that_day {
            let t = r["ticket_no"].as_str().unwrap();
            let s = tickets
                .get(t)
                .unwrap_or_else(|| panic!("ticket {t} missing from the list of {day}"));
            assert_eq!(s["sale_id"], r["sale_id"]);
            assert_eq!(s["total_fen"], r["total_fen"]);
        }
        listed += list.len();
    }
    assert!(
        listed <= acked.len() + unanswered,
        "{listed} sales listed but only {} acknowledged and {unanswered} unanswered",
        acked.len()
    );
    eprintln!(
        "kill -9 x3: {} acknowledged, {unanswered} unanswered, {listed} on file after restart; \
         unanswered saw {:?}",
        acked.len(),
        transport_errors(&attempts)
    );
    node.stop();
}

#[test]
fn retry_after_kill_returns_same_sale() {
    let dir = tempfile::tempdir().unwrap();
    let (attempts, token) = sell_then_kill9(dir.path(), 1, 4, 200);
    let unanswered: Vec<&Attempt> = attempts.iter().filter(|a| a.created().is_none()).collect();
    assert!(
        !unanswered.is_empty(),
        "no request was in flight at the kill; the test did not exercise a retry"
    );

    let node = NodeProc::start(
        Mode::Serve,
        &dir.path().join("data"),
        &dir.path().join("node-2.log"),
    );
    let client = client();

    // retry every key, acknowledged or not, with the same body, as the tills
    // would: with the session they had before the crash
    let mut final_ids: BTreeMap<String, String> = BTreeMap::new();
    let mut days = BTreeSet::new();
    let mut committed_unanswered = 0;
    for a in &attempts {
        let r = post_sale(&client, &node.base, &token, &a.key, &a.body).unwrap();
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "retry of {}: {}",
            a.key,
            r.body
        );
        match a.created() {
            Some(first) => {
                assert!(
                    r.replayed,
                    "retry of acknowledged {} was not a replay",
                    a.key
                );
                assert_eq!(
                    &r.body, first,
                    "replay of {} differs from the first answer",
                    a.key
                );
            }
            None if r.replayed => committed_unanswered += 1,
            None => {}
        }
        days.insert(r.body["business_day"].as_str().unwrap().to_owned());
        let id = r.body["sale_id"].as_str().unwrap().to_owned();
        assert!(
            final_ids.insert(a.key.clone(), id).is_none(),
            "key {} used twice by the test",
            a.key
        );
    }

    // a second retry of the unanswered ones is a replay of what the first
    // retry got
    for a in &unanswered {
        let r = post_sale(&client, &node.base, &token, &a.key, &a.body).unwrap();
        assert_eq!(r.status, StatusCode::CREATED);
        assert!(r.replayed, "second retry of {} was not a replay", a.key);
        assert_eq!(r.body["sale_id"].as_str().unwrap(), final_ids[&a.key]);
    }

    // one sale per distinct key: nothing doubled, nothing lost
    let mut on_file = BTreeSet::new();
    for day in &days {
        let list = sales_of_day(&client, &node.base, &token, day);
        assert_gapless(day, &list);
        for s in list {
            assert!(
                on_file.insert(s["sale_id"].as_str().unwrap().to_owned()),
                "sale listed twice"
            );
        }
    }
    let expected: BTreeSet<String> = final_ids.values().cloned().collect();
    assert_eq!(
        expected.len(),
        final_ids.len(),
        "two keys got the same sale"
    );
    assert_eq!(
        on_file.len(),
        final_ids.len(),
        "{} sales on file for {} distinct keys",
        on_file.len(),
        final_ids.len()
    );
    assert_eq!(on_file, expected);
    eprintln!(
        "retry: {} keys, {} unanswered at the kill ({committed_unanswered} of them had committed); \
         unanswered saw {:?}",
        final_ids.len(),
        unanswered.len(),
        transport_errors(&attempts)
    );
    node.stop();
}

#[test]
fn sigterm_finishes_in_flight_and_closes_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut node = NodeProc::start(Mode::Demo, &data, &dir.path().join("node-1.log"));
    let token = login(&client(), &node.base, "cashier", "1234");
    let tills = Tills::start(4, &node.base, &token, "term");
    tills.wait_acked(50, &mut node);
    let signalled = Instant::now();
    node.sigterm();
    let status = node.wait_exit(EXIT_DEADLINE);
    let attempts = tills.finish();
    match status {
        Some(s) if s.success() => {}
        Some(s) => node.fail(&format!("exited {s} after SIGTERM")),
        None => node.fail("did not exit within the deadline after SIGTERM"),
    }

    // every answer is a 201 or a clean 503
    let mut acked = Vec::new();
    for a in &attempts {
        if let Outcome::Answered(r) = &a.outcome {
            match r.status {
                StatusCode::CREATED => acked.push(&r.body),
                StatusCode::SERVICE_UNAVAILABLE => {
                    assert_eq!(r.body["error"]["code"], "unavailable", "{}", r.body)
                }
                s => panic!("{}: unexpected {s} during shutdown: {}", a.key, r.body),
            }
        }
    }
    // the tills were mid-request when the signal went out; those requests
    // were finished and answered, not cut off
    let in_flight_answered = attempts
        .iter()
        .filter(|a| a.sent < signalled && a.done > signalled && a.created().is_some())
        .count();
    assert!(
        in_flight_answered >= 1,
        "no request in flight at SIGTERM was answered: {:?}",
        transport_errors(&attempts)
    );

    // the writer checkpointed with TRUNCATE at close
    let wal = data.join("store.db-wal");
    if let Ok(meta) = std::fs::metadata(&wal) {
        assert_eq!(
            meta.len(),
            0,
            "{} is {} bytes after a clean stop",
            wal.display(),
            meta.len()
        );
    }

    let node = NodeProc::start(Mode::Serve, &data, &dir.path().join("node-2.log"));
    let client = client();
    let token = login(&client, &node.base, "cashier", "1234");
    let mut days = BTreeSet::new();
    for r in &acked {
        let id = r["sale_id"].as_str().unwrap();
        let (status, got) = get_json(&client, &node.base, &token, &format!("/api/v1/sales/{id}"));
        assert_eq!(
            status,
            StatusCode::OK,
            "acknowledged sale {id} missing: {got}"
        );
        assert_eq!(got["total_fen"], r["total_fen"]);
        days.insert(r["business_day"].as_str().unwrap().to_owned());
    }
    // a graceful stop answers what it commits: no sale on file that its
    // till did not hear about
    let mut on_file = 0;
    for day in &days {
        let list = sales_of_day(&client, &node.base, &token, day);
        assert_gapless(day, &list);
        on_file += list.len();
    }
    assert_eq!(
        on_file,
        acked.len(),
        "{on_file} sales on file but {} acknowledged",
        acked.len()
    );
    eprintln!(
        "sigterm: {} acknowledged ({in_flight_answered} in flight at the signal), \
         {} attempts without an answer: {:?}",
        acked.len(),
        attempts
            .iter()
            .filter(|a| matches!(a.outcome, Outcome::NoResponse(_)))
            .count(),
        transport_errors(&attempts)
    );
    node.stop();
}

#[test]
fn staff_add_cli_then_login() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let add = [
        "staff",
        "add",
        "--data-dir",
        data_arg,
        "--name",
        "wang",
        "--role",
        "manager",
        "--pin",
        "246810",
    ];
    let out = run_cli(&add);
    assert!(
        out.status.success(),
        "staff add failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("added manager wang"));

    let node = NodeProc::start(Mode::Serve, &data, &dir.path().join("node-1.log"));
    let client = client();
    let (status, body) = try_login(&client, &node.base, "wang", "246810");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["role"], "manager");
    assert_eq!(body["name"], "wang");
    let token = body["token"].as_str().unwrap();
    let (status, body) = get_json(&client, &node.base, token, "/api/v1/sales");
    assert_eq!(status, StatusCode::OK, "the token opens the API: {body}");

    let (status, body) = try_login(&client, &node.base, "wang", "135790");
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "invalid_credentials");
    node.stop();

    let out = run_cli(&add);
    assert!(
        !out.status.success(),
        "adding wang twice succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("wang"),
        "the refusal names the staff member: {err}"
    );
}
