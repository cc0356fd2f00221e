//! Paid group-buy commitments against real servers on port 0: a hub
//! (`HubServer`) and the payment simulator (`linli_pay::sim::serve`) behind
//! a gate that can hold refund requests (a slowed provider), each with its
//! own temp dir. An online commitment counts only once paid; an unpaid one
//! holds the customer's limit until its time to pay ends, then is
//! cancelled; a failed campaign refunds every paid commitment exactly once
//! with the customer told why, across a hub stopped in the middle of the
//! mass refund (with requests in flight) and reopened on the same SQLite
//! file; a customer who cancels a paid commitment is refunded in full
//! exactly once however often the cancel is retried (and not again when
//! the campaign later fails), and one who cancels an unpaid commitment
//! gets the limit back with nothing to refund. No sleeps as synchronisation: every wait is for a condition, with
//! a deadline.

#![allow(clippy::unwrap_used)] // test code

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use chrono::Utc;
use linli_hub::auth::Role;
use linli_hub::hub::{Hub, HubPaths, add_user, open_conn};
use linli_hub::server::HubServer;
use linli_hub::settings::OrderSettings;
use linli_hub::settings::PaySettings;
use linli_pay::sim::{Limits, SimPay};
use linli_pay::wire::Faults;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const KEY: &str = "test-merchant-key";
const PRICE: i64 = 3990;

/// A proxy in front of the simulator that lets `allow` refund requests
/// through and holds the next ones until [`Gate::open`]: a provider that
/// has gone slow in the middle of a mass refund.
#[derive(Clone)]
struct Gate {
    sim_url: String,
    allow: Arc<AtomicUsize>,
    held: Arc<AtomicUsize>,
    opened: CancellationToken,
    http: reqwest::Client,
}

impl Gate {
    fn open(&self) {
        self.opened.cancel();
    }
}

async fn forward(State(g): State<Gate>, req: Request) -> Response {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    if path.starts_with("/v3/refund/")
        && g.allow
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_err()
    {
        g.held.fetch_add(1, Ordering::SeqCst);
        g.opened.cancelled().await;
    }
    let method = req.method().clone();
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .unwrap();
    let mut out = g
        .http
        .request(method, format!("{}{path}", g.sim_url))
        .body(body);
    for (k, v) in &headers {
        if k != "host" && k != "content-length" {
            out = out.header(k, v);
        }
    }
    let resp = out.send().await.unwrap();
    let mut back = Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        back = back.header(k, v);
    }
    back.body(Body::from(resp.bytes().await.unwrap())).unwrap()
}

struct Env {
    dir: tempfile::TempDir,
    sim: SimPay,
    sim_url: String,
    gate: Gate,
    gate_url: String,
    cancel: CancellationToken,
    tasks: tokio::task::JoinSet<()>,
    server: Option<HubServer>,
    http: reqwest::Client,
}

fn settings(pay_url: &str) -> OrderSettings {
    let mut pay = PaySettings::new(linli_pay::HttpPay::new(pay_url, KEY).unwrap(), KEY);
    pay.refund_limits.spacing = chrono::Duration::milliseconds(50);
    pay.backoff.base = chrono::Duration::milliseconds(10);
    pay.backoff.cap = chrono::Duration::milliseconds(200);
    pay.refund_tick = Duration::from_millis(20);
    // the unpaid sweeper stays out of the way: tests drive the timeout
    pay.sweep_every = Duration::from_secs(3600);
    OrderSettings {
        payment: Some(pay),
        ..OrderSettings::default()
    }
}

impl Env {
    /// The simulator, the gate letting `allow` refunds through, and a hub
    /// with the catalog and stores imported.
    async fn start(allow: usize) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let sim = SimPay::new(KEY)
            .with_limits(Limits {
                max_refunds: 50,
                spacing: chrono::Duration::milliseconds(40),
            })
            .with_notify_retry(Duration::from_millis(50));
        let cancel = CancellationToken::new();
        let mut tasks = tokio::task::JoinSet::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sim_url = format!("http://{}", listener.local_addr().unwrap());
        let (s, c) = (sim.clone(), cancel.clone());
        tasks.spawn(async move { linli_pay::sim::serve(listener, s, c).await.unwrap() });
        let gate = Gate {
            sim_url: sim_url.clone(),
            allow: Arc::new(AtomicUsize::new(allow)),
            held: Arc::new(AtomicUsize::new(0)),
            opened: CancellationToken::new(),
            http: reqwest::Client::new(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gate_url = format!("http://{}", listener.local_addr().unwrap());
        let (g, c) = (gate.clone(), cancel.clone());
        tasks.spawn(async move {
            let app = axum::Router::new().fallback(forward).with_state(g);
            axum::serve(listener, app)
                .with_graceful_shutdown(c.cancelled_owned())
                .await
                .unwrap();
        });
        let paths = HubPaths {
            data_dir: dir.path().to_owned(),
        };
        add_user(
            &open_conn(&paths.db()).unwrap(),
            "admin",
            Role::Admin,
            "admin-password",
        )
        .unwrap();
        let mut env = Env {
            dir,
            sim,
            sim_url,
            gate,
            gate_url,
            cancel,
            tasks,
            server: None,
            http: reqwest::Client::new(),
        };
        env.start_hub().await;
        let admin = env.hub().login("admin", "admin-password").await.unwrap();
        for (uri, file) in [
            ("/api/v1/catalog/import", "products.csv"),
            ("/api/v1/stores/import", "stores.csv"),
        ] {
            let body =
                std::fs::read(format!("{}/../data/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
            let r = env
                .http
                .post(env.url(uri))
                .bearer_auth(&admin)
                .header("content-type", "text/csv")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{uri}");
        }
        env
    }

    async fn start_hub(&mut self) {
        let paths = HubPaths {
            data_dir: self.dir.path().to_owned(),
        };
        let server = HubServer::start_with(
            &paths,
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
            &[],
            settings(&self.gate_url),
        )
        .await
        .unwrap();
        self.server = Some(server);
    }

    fn hub(&self) -> &Hub {
        &self.server.as_ref().unwrap().hub
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.as_ref().unwrap().http_addr)
    }

    async fn admin(&self) -> String {
        self.hub().login("admin", "admin-password").await.unwrap()
    }

    /// A customer's session (made at the hub directly: the HTTP route
    /// limits sessions per address, and 200 come from one here).
    async fn customer(&self, phone: &str) -> String {
        let (token, _) = self
            .hub()
            .customer_session_from(Some(phone.to_owned()), None, None)
            .await
            .unwrap();
        token
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self
            .http
            .request(method.parse().unwrap(), self.url(path))
            .bearer_auth(token)
            .header("idempotency-key", ulid::Ulid::new().to_string());
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let s = resp.status().as_u16();
        (s, resp.json().await.unwrap_or(Value::Null))
    }

    /// A campaign of P00009 at S001 and S002 needing `count` participants,
    /// closing in an hour.
    async fn campaign(&self, count: u32) -> String {
        let deadline = Utc::now() + chrono::Duration::hours(1);
        let (s, v) = self
            .call(
                "POST",
                "/api/v1/group-buys",
                &self.admin().await,
                Some(json!({
                    "sku": "P00009", "price_fen": PRICE,
                    "threshold": {"kind": "participants", "count": count},
                    "deadline": deadline.to_rfc3339(),
                    "pickup_date": (deadline + chrono::Duration::days(2)).date_naive().to_string(),
                    "per_customer_limit": 2, "store_ids": ["S001", "S002"],
                })),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        v["group_buy_id"].as_str().unwrap().to_owned()
    }

    async fn commit(&self, token: &str, gid: &str, store: &str, qty: i64) -> (u16, Value) {
        self.call(
            "POST",
            &format!("/api/v1/group-buys/{gid}/commitments"),
            token,
            Some(json!({"store_id": store, "qty": qty})),
        )
        .await
    }

    /// Pays a commitment at the simulator's cashier (the notification goes
    /// to the hub on its own).
    async fn pay(&self, token: &str, gid: &str, cid: &str) {
        let (s, prepay) = self
            .call(
                "POST",
                &format!("/api/v1/group-buys/{gid}/commitments/{cid}/pay"),
                token,
                None,
            )
            .await;
        assert_eq!(s, 200, "{prepay}");
        assert_eq!(prepay["state"], "awaiting_payment");
        let r = self
            .http
            .post(format!(
                "{}/v3/sim/confirm/{}",
                self.sim_url,
                prepay["prepay_id"].as_str().unwrap()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    async fn group_buy(&self, gid: &str) -> Value {
        let r = self
            .http
            .get(self.url(&format!("/api/v1/group-buys/{gid}")))
            .send()
            .await
            .unwrap();
        r.json().await.unwrap()
    }

    async fn mine(&self, token: &str) -> Value {
        let (s, v) = self
            .call("GET", "/api/v1/customer/group-buys", token, None)
            .await;
        assert_eq!(s, 200, "{v}");
        v
    }

    async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
        self.gate.open();
        self.cancel.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Waits until `f` gives a value, or fails saying `what`.
async fn until<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_commitment_counts_once_paid_and_an_unpaid_one_expires() {
    let env = Env::start(usize::MAX).await;
    let gid = env.campaign(2).await;
    let (a, b) = (
        env.customer("13800139001").await,
        env.customer("13800139002").await,
    );
    let (s, v) = env.commit(&a, &gid, "S001", 1).await;
    assert_eq!(s, 201, "{v}");
    let acid = v["commitment"]["commitment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(v["commitment"]["status"], "awaiting_payment");
    assert_eq!(v["commitment"]["payment"]["amount_fen"], PRICE);
    assert_eq!(
        (
            v["group_buy"]["participants"].as_u64(),
            v["group_buy"]["qty"].as_i64()
        ),
        (Some(0), Some(0)),
        "unpaid counts for nothing"
    );
    // another customer cannot pay it; an unknown one is not found
    let (s, e) = env
        .call(
            "POST",
            &format!("/api/v1/group-buys/{gid}/commitments/{acid}/pay"),
            &b,
            None,
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (404, Some("commitment_not_found"))
    );
    env.pay(&a, &gid, &acid).await;
    until("A's commitment to count", || async {
        let g = env.group_buy(&gid).await;
        (g["participants"] == 1).then_some(())
    })
    .await;
    let mine = env.mine(&a).await;
    assert_eq!(mine[0]["commitment"]["status"], "active");
    assert_eq!(mine[0]["commitment"]["payment"]["state"], "paid");
    // paying again is the same prepay, already paid
    let (s, again) = env
        .call(
            "POST",
            &format!("/api/v1/group-buys/{gid}/commitments/{acid}/pay"),
            &a,
            None,
        )
        .await;
    assert_eq!((s, again["state"].as_str()), (200, Some("paid")));

    // B commits 2 and does not pay: the limit is held, nothing counts
    let (s, v) = env.commit(&b, &gid, "S002", 2).await;
    assert_eq!(s, 201, "{v}");
    let (s, e) = env.commit(&b, &gid, "S002", 1).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("per_customer_limit"))
    );
    let now = Utc::now();
    assert_eq!(
        env.hub()
            .expire_unpaid(now + chrono::Duration::minutes(14))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        env.hub()
            .expire_unpaid(now + chrono::Duration::minutes(16))
            .await
            .unwrap(),
        1
    );
    let mine = env.mine(&b).await;
    assert_eq!(mine[0]["commitment"]["status"], "cancelled");
    assert_eq!(mine[0]["commitment"]["cancel_reason"], "unpaid");
    assert_eq!(mine[0]["commitment"]["payment"]["state"], "closed");
    assert!(
        mine[0]["commitment"]["failure_reason"]
            .as_str()
            .unwrap()
            .starts_with("未在付款期限内付款")
    );
    // the limit is free again; paying the new one reaches the campaign
    let (s, v) = env.commit(&b, &gid, "S002", 2).await;
    assert_eq!(s, 201, "{v}");
    let bcid = v["commitment"]["commitment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    env.pay(&b, &gid, &bcid).await;
    let g = until("the campaign to reach its threshold", || async {
        let g = env.group_buy(&gid).await;
        (g["state"] == "reached").then_some(g)
    })
    .await;
    assert_eq!(
        (g["participants"].as_u64(), g["qty"].as_i64()),
        (Some(2), Some(3))
    );
    assert!(env.hub().group_buy_totals_agree(&gid).await.unwrap());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_group_buy_refunds_every_paid_commitment_once_across_a_hub_restart() {
    const N: usize = 200;
    const ALLOWED: usize = 60;
    let mut env = Env::start(ALLOWED).await;
    let gid = env.campaign(1_000).await;
    let mut who = Vec::with_capacity(N);
    for i in 0..N {
        let token = env.customer(&format!("1390000{i:04}")).await;
        let qty = 1 + (i % 2) as i64;
        let store = if i % 3 == 0 { "S002" } else { "S001" };
        let (s, v) = env.commit(&token, &gid, store, qty).await;
        assert_eq!(s, 201, "{v}");
        let cid = v["commitment"]["commitment_id"]
            .as_str()
            .unwrap()
            .to_owned();
        env.pay(&token, &gid, &cid).await;
        who.push((token, cid, qty));
    }
    until("every commitment paid and counted", || async {
        let g = env.group_buy(&gid).await;
        (g["participants"] == N).then_some(())
    })
    .await;
    // the provider answers some refunds with errors, some after applying
    // them (the answer lost)
    env.sim.set_faults(
        Faults {
            refund_fail_rate: 0.3,
            notification_copies: 1,
        },
        11,
    );

    // the deadline and the grace have passed: failed, every paid
    // commitment queued for its refund in that transaction
    let later = Utc::now() + chrono::Duration::hours(3);
    assert_eq!(env.hub().settle_group_buys(later).await.unwrap(), 1);
    assert_eq!(env.hub().settle_group_buys(later).await.unwrap(), 0);
    // the provider goes slow: the hub has refund requests in flight that
    // will not be answered, then it stops
    until("refund requests held by the slow provider", || async {
        (env.gate.held.load(Ordering::SeqCst) > 0).then_some(())
    })
    .await;
    let part = env.hub().refund_summary().await.unwrap();
    assert_eq!(
        part.pending + part.succeeded + part.failed,
        N as i64,
        "{part:?}"
    );
    assert!(part.succeeded < N as i64, "stopped mid-refund: {part:?}");
    env.server.take().unwrap().shutdown().await;
    // the requests the stopped hub left behind may reach the provider
    // now, applied with nobody to hear the answer
    env.gate.open();
    env.start_hub().await;

    // settling again (the server also does every 5 s) queues nothing more
    assert_eq!(env.hub().settle_group_buys(later).await.unwrap(), 0);
    let done = until("every refund accepted", || async {
        let s = env.hub().refund_summary().await.unwrap();
        (s.succeeded == N as i64).then_some(s)
    })
    .await;
    assert_eq!((done.pending, done.failed), (0, 0));

    let refunds = env.sim.refunds();
    assert_eq!(refunds.len(), N, "one refund per commitment, no second");
    for (_, cid, qty) in &who {
        let r: Vec<_> = refunds.iter().filter(|r| &r.out_trade_no == cid).collect();
        assert_eq!(r.len(), 1, "{cid}");
        assert_eq!(r[0].out_refund_no, format!("GBF-{cid}"));
        assert_eq!(r[0].amount, PRICE * qty, "the full amount");
    }
    let stats = env.sim.stats();
    assert!(stats.injected_failures > 0, "{stats:?}");
    assert!(
        refunds.iter().any(|r| r.requests > 1),
        "retries were the same requests"
    );
    // each customer sees the refund and why
    for (token, cid, _) in who.iter().step_by(40) {
        let mine = env.mine(token).await;
        let k = &mine[0]["commitment"];
        assert_eq!(&k["commitment_id"], cid);
        assert_eq!(k["status"], "cancelled");
        assert_eq!(k["cancel_reason"], "group_buy_failed");
        assert_eq!(k["refund"]["state"], "succeeded", "{k}");
        assert!(
            k["failure_reason"]
                .as_str()
                .unwrap()
                .starts_with("截止时参团人数未达到 1000 人"),
            "{k}"
        );
    }
    let g = env.group_buy(&gid).await;
    assert_eq!(
        (g["state"].as_str(), g["participants"].as_u64()),
        (Some("failed"), Some(0))
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_paid_commitment_is_refunded_once_however_often_it_is_cancelled() {
    let env = Env::start(usize::MAX).await;
    let gid = env.campaign(3).await;
    let (a, b) = (
        env.customer("13800139101").await,
        env.customer("13800139102").await,
    );
    let (s, v) = env.commit(&a, &gid, "S001", 2).await;
    assert_eq!(s, 201, "{v}");
    let acid = v["commitment"]["commitment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    env.pay(&a, &gid, &acid).await;
    until("A's commitment to count", || async {
        let g = env.group_buy(&gid).await;
        (g["participants"] == 1).then_some(())
    })
    .await;

    // the customer presses cancel several times at once (a flaky network)
    let path = format!("/api/v1/group-buys/{gid}/commitments/{acid}/cancel");
    let (r1, r2, r3, r4) = tokio::join!(
        env.call("POST", &path, &a, None),
        env.call("POST", &path, &a, None),
        env.call("POST", &path, &a, None),
        env.call("POST", &path, &a, None),
    );
    let answers = [r1, r2, r3, r4];
    let refund_id = format!("GBC-{acid}");
    for (s, v) in &answers {
        assert_eq!(*s, 200, "{v}");
        let k = &v["commitment"];
        assert_eq!(k["status"], "cancelled");
        assert_eq!(k["cancel_reason"], "customer_cancelled");
        assert_eq!(k["refund"]["refund_id"], refund_id.as_str(), "{k}");
        assert_eq!(k["refund"]["amount_fen"], PRICE * 2);
        assert_eq!(
            (
                v["group_buy"]["participants"].as_u64(),
                v["group_buy"]["qty"].as_i64()
            ),
            (Some(0), Some(0)),
            "it no longer counts"
        );
    }
    assert!(env.hub().group_buy_totals_agree(&gid).await.unwrap());
    let k = until("the refund accepted", || async {
        let mine = env.mine(&a).await;
        let k = mine[0]["commitment"].clone();
        (k["refund"]["state"] == "succeeded").then_some(k)
    })
    .await;
    assert!(
        k["failure_reason"]
            .as_str()
            .unwrap()
            .starts_with("顾客取消"),
        "{k}"
    );
    assert_eq!(k["payment"]["state"], "paid", "paid, then refunded");
    // and once more after the refund went through: the same, nothing new
    let (s, again) = env.call("POST", &path, &a, None).await;
    assert_eq!((s, &again["commitment"]["refund"]), (200, &k["refund"]));

    // B's unpaid one: cancelled, its payment closed, nothing to refund,
    // and the limit free for a new one
    let (s, v) = env.commit(&b, &gid, "S002", 2).await;
    assert_eq!(s, 201, "{v}");
    let bcid = v["commitment"]["commitment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, v) = env
        .call(
            "POST",
            &format!("/api/v1/group-buys/{gid}/commitments/{bcid}/cancel"),
            &b,
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["commitment"]["status"], "cancelled");
    assert_eq!(v["commitment"]["payment"]["state"], "closed");
    assert!(v["commitment"].get("refund").is_none(), "{v}");
    let (s, v) = env.commit(&b, &gid, "S002", 2).await;
    assert_eq!(s, 201, "the limit is free again: {v}");

    // the campaign later fails: the cancelled commitment is not refunded
    // a second time
    let later = Utc::now() + chrono::Duration::hours(3);
    assert_eq!(env.hub().settle_group_buys(later).await.unwrap(), 1);
    let refunds = env.sim.refunds();
    let of_a: Vec<_> = refunds.iter().filter(|r| r.out_trade_no == acid).collect();
    assert_eq!(of_a.len(), 1, "{refunds:?}");
    assert_eq!(
        (of_a[0].out_refund_no.as_str(), of_a[0].amount),
        (refund_id.as_str(), PRICE * 2)
    );
    assert_eq!(refunds.len(), 1, "nobody else had paid: {refunds:?}");
    let summary = env.hub().refund_summary().await.unwrap();
    assert_eq!(
        (summary.pending, summary.succeeded, summary.failed),
        (0, 1, 0)
    );
    env.stop().await;
}
