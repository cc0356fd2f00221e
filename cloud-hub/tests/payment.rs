//! Online payment against real servers on port 0: a hub (`HubServer`) and
//! the payment simulator (`linli_pay::sim::serve`), in this process, each
//! with its own temp dir. An order reaches its store only once paid; forged
//! and repeated notifications change nothing; an unpaid order is cancelled
//! after the timeout (driven by an injected `now`) and its rights return; a
//! paid order cancelled by its customer is refunded once; 200 queued
//! refunds with injected provider failures complete exactly once across a
//! hub restart; the payer's limits hold. No sleeps: every wait is for a
//! condition, with a deadline.

#![allow(clippy::unwrap_used)] // test code

mod common;

use common::sync_in;

use std::time::Duration;

use linli_hub::auth::{Role, User};
use linli_hub::hub::{Hub, HubPaths, add_user, open_conn};
use linli_hub::server::HubServer;
use linli_hub::settings::OrderSettings;
use linli_hub::settings::PaySettings;
use linli_pay::sim::{Limits, SimPay};
use linli_pay::wire::{Amount, Faults, Notification, PrepayRequest, Resource, Transaction};
use linli_shared::docs::stock::set_rights;
use linli_shared::docs::{DocId, Owner, new_doc};
use linli_shared::online::HubOrderFact;
use linli_shared::rights::StoreRights;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const KEY: &str = "test-merchant-key";

struct Sim {
    sim: SimPay,
    url: String,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Sim {
    async fn start(spacing_ms: i64) -> Sim {
        let sim = SimPay::new(KEY)
            .with_limits(Limits {
                max_refunds: 50,
                spacing: chrono::Duration::milliseconds(spacing_ms),
            })
            .with_notify_retry(Duration::from_millis(50));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let cancel = CancellationToken::new();
        let (s, c) = (sim.clone(), cancel.clone());
        let task = tokio::spawn(async move {
            linli_pay::sim::serve(listener, s, c).await.unwrap();
        });
        Sim {
            sim,
            url,
            cancel,
            task,
        }
    }

    async fn stop(self) {
        self.cancel.cancel();
        self.task.await.unwrap();
    }
}

struct Env {
    dir: tempfile::TempDir,
    sim: Sim,
    server: Option<HubServer>,
    http: reqwest::Client,
    hub_spacing_ms: i64,
}

fn settings(sim_url: &str, spacing_ms: i64) -> OrderSettings {
    let mut pay = PaySettings::new(linli_pay::HttpPay::new(sim_url, KEY).unwrap(), KEY);
    pay.refund_limits.spacing = chrono::Duration::milliseconds(spacing_ms);
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

fn admin() -> User {
    User {
        name: "admin".into(),
        role: Role::Admin,
        store_id: None,
        region: None,
    }
}

impl Env {
    async fn start(hub_spacing_ms: i64, sim_spacing_ms: i64) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let sim = Sim::start(sim_spacing_ms).await;
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
            server: None,
            http: reqwest::Client::new(),
            hub_spacing_ms,
        };
        env.start_hub().await;
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
            settings(&self.sim.url, self.hub_spacing_ms),
        )
        .await
        .unwrap();
        self.server = Some(server);
    }

    async fn restart_hub(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
        self.start_hub().await;
    }

    fn hub(&self) -> &Hub {
        &self.server.as_ref().unwrap().hub
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.as_ref().unwrap().http_addr)
    }

    /// The catalog, the stores, and S001 lending the hub 10 of P00001.
    async fn stock_s001(&self) {
        let data =
            |f: &str| std::fs::read(format!("{}/../data/{f}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        self.hub()
            .import_catalog(&admin(), data("products.csv"))
            .await
            .unwrap();
        self.hub()
            .import_stores(&admin(), data("stores.csv"))
            .await
            .unwrap();
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let id = DocId::store_stock("S001", day);
        let mut doc = new_doc(&id, Owner::Store("S001".into()).actor([7; 8])).unwrap();
        set_rights(
            &mut doc,
            "P00001",
            &StoreRights {
                lent: 10,
                ..Default::default()
            },
        )
        .unwrap();
        doc.commit();
        sync_in(self.hub(), "S001", &id, &mut doc).await;
        assert_eq!(self.sellable().await, 10);
    }

    async fn sellable(&self) -> i64 {
        self.hub()
            .sellable("P00001")
            .await
            .unwrap()
            .into_iter()
            .find(|s| s.store_id == "S001")
            .map(|s| s.sellable)
            .unwrap()
    }

    async fn customer(&self, phone: &str) -> String {
        let v: Value = self
            .http
            .post(self.url("/api/v1/customer/session"))
            .json(&json!({ "phone": phone }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["token"].as_str().unwrap().to_owned()
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

    /// A pickup order of 3 × P00001 at S001.
    async fn place(&self, token: &str, phone: &str) -> Value {
        let (s, v) = self
            .call(
                "POST",
                "/api/v1/orders",
                token,
                Some(json!({"channel": "community", "customer": {"phone": phone},
                    "fulfilment": "pickup", "store_id": "S001",
                    "lines": [{"sku": "P00001", "qty": 3}]})),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        v
    }

    async fn order(&self, token: &str, id: &str) -> Value {
        let (s, v) = self
            .call("GET", &format!("/api/v1/orders/{id}"), token, None)
            .await;
        assert_eq!(s, 200, "{v}");
        v
    }

    /// Waits until `f` of the order holds.
    async fn wait_order(
        &self,
        token: &str,
        id: &str,
        what: &str,
        f: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let v = self.order(token, id).await;
            if f(&v) {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: {v}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether the order is in its store's orders document at the hub.
    async fn in_store_doc(&self, order_id: &str) -> bool {
        let oid = order_id.to_owned();
        let day = chrono::Utc::now()
            .with_timezone(&OrderSettings::default().utc_offset)
            .date_naive();
        self.hub()
            .with_docs(move |c, docs| {
                let id = DocId::hub_orders("S001", day);
                Ok(docs
                    .read(c, &id, |d| {
                        linli_shared::docs::json::records_of::<HubOrderFact>(d, "orders", [&oid])
                    })?
                    .is_some_and(|r| !r.is_empty()))
            })
            .await
            .unwrap()
    }

    async fn confirm(&self, prepay_id: &str) {
        let r = self
            .http
            .post(format!("{}/v3/sim/confirm/{prepay_id}", self.sim.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
        self.sim.stop().await;
    }
}

/// A notification as the provider would send it, signed with `key`.
fn notification(key: &str, t: &Transaction) -> (Vec<(&'static str, String)>, Vec<u8>) {
    let n = Notification {
        id: ulid::Ulid::new().to_string(),
        create_time: "2026-12-01T10:00:00+08:00".into(),
        event_type: "TRANSACTION.SUCCESS".into(),
        resource_type: "encrypt-resource".into(),
        summary: "支付成功".into(),
        resource: Resource {
            algorithm: "NONE".into(),
            original_type: "transaction".into(),
            ciphertext: serde_json::to_string(t).unwrap(),
            associated_data: String::new(),
            nonce: String::new(),
        },
    };
    let body = serde_json::to_vec(&n).unwrap();
    let (ts, nonce) = ("1764583200".to_owned(), "n1".to_owned());
    let sig = linli_pay::sign::sign(key.as_bytes(), &ts, &nonce, &body);
    (
        vec![
            ("wechatpay-timestamp", ts),
            ("wechatpay-nonce", nonce),
            ("wechatpay-signature", sig),
        ],
        body,
    )
}

async fn post_notification(env: &Env, headers: &[(&str, String)], body: Vec<u8>) -> (u16, Value) {
    let mut r = env
        .http
        .post(env.url("/api/v1/pay/notify"))
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in headers {
        r = r.header(*k, v);
    }
    let resp = r.send().await.unwrap();
    let s = resp.status().as_u16();
    (s, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_reaches_its_store_only_once_paid() {
    let env = Env::start(60_000, 60_000).await;
    env.stock_s001().await;
    let token = env.customer("13800000001").await;
    let order = env.place(&token, "13800000001").await;
    let id = order["order_id"].as_str().unwrap();
    assert_eq!(order["payment"]["state"], "awaiting_payment");
    assert_eq!(order["payment"]["amount_fen"], order["total_fen"]);
    // rights are taken at placement, the store does not see it yet
    assert_eq!(env.sellable().await, 7);
    assert!(!env.in_store_doc(id).await);

    let (s, first) = env
        .call("POST", &format!("/api/v1/orders/{id}/pay"), &token, None)
        .await;
    assert_eq!(s, 200, "{first}");
    let (_, again) = env
        .call("POST", &format!("/api/v1/orders/{id}/pay"), &token, None)
        .await;
    assert_eq!(
        first["prepay_id"], again["prepay_id"],
        "paying twice is one prepay"
    );
    // someone else's order is not theirs to pay
    let other = env.customer("13800000002").await;
    let (s, _) = env
        .call("POST", &format!("/api/v1/orders/{id}/pay"), &other, None)
        .await;
    assert_eq!(s, 404);

    env.confirm(first["prepay_id"].as_str().unwrap()).await;
    let paid = env
        .wait_order(&token, id, "paid", |v| v["payment"]["state"] == "paid")
        .await;
    assert!(
        paid["payment"]["transaction_id"]
            .as_str()
            .unwrap()
            .starts_with("4200")
    );
    assert!(paid["payment"]["paid_at"].is_string());
    assert!(env.in_store_doc(id).await);
    assert_eq!(env.sellable().await, 7);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_repeated_notifications_change_nothing() {
    let env = Env::start(60_000, 60_000).await;
    env.stock_s001().await;
    env.sim.sim.set_faults(
        Faults {
            refund_fail_rate: 0.0,
            notification_copies: 3,
        },
        1,
    );
    let token = env.customer("13800000001").await;
    let order = env.place(&token, "13800000001").await;
    let id = order["order_id"].as_str().unwrap().to_owned();
    let total = order["total_fen"].as_i64().unwrap();
    let paid = Transaction {
        out_trade_no: id.clone(),
        transaction_id: Some("4200FORGED".into()),
        trade_state: "SUCCESS".into(),
        trade_state_desc: "支付成功".into(),
        success_time: Some("2026-12-01T10:00:00+08:00".into()),
        amount: linli_pay::wire::TransactionAmount {
            total,
            payer_total: total,
            currency: "CNY".into(),
        },
    };
    // forged: signed with another key, or not signed at all
    let (h, body) = notification("not-the-key", &paid);
    let (s, v) = post_notification(&env, &h, body.clone()).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("invalid_signature"))
    );
    let (s, _) = post_notification(&env, &[], body).await;
    assert_eq!(s, 401);
    // signed, but not the order's amount
    let mut short = paid.clone();
    short.amount.payer_total = 1;
    let (h, body) = notification(KEY, &short);
    let (s, v) = post_notification(&env, &h, body).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (422, Some("amount_mismatch"))
    );
    let v = env.order(&token, &id).await;
    assert_eq!(v["payment"]["state"], "awaiting_payment");
    assert!(!env.in_store_doc(&id).await);

    // the real payment, whose notification comes three times per attempt
    let (_, prepay) = env
        .call("POST", &format!("/api/v1/orders/{id}/pay"), &token, None)
        .await;
    env.confirm(prepay["prepay_id"].as_str().unwrap()).await;
    let first = env
        .wait_order(&token, &id, "paid", |v| v["payment"]["state"] == "paid")
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while env.sim.sim.stats().notifications_sent < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "duplicates not sent"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // and once more by hand, exactly as the provider signed it
    let real = env.sim.sim.transaction(&id).unwrap();
    let (h, body) = notification(KEY, &real);
    let (s, v) = post_notification(&env, &h, body).await;
    assert_eq!((s, v["code"].as_str()), (200, Some("SUCCESS")));
    let after = env.order(&token, &id).await;
    assert_eq!(
        after["payment"], first["payment"],
        "a repeat changes nothing"
    );
    assert_eq!(after["refunds"], json!([]));
    // a forged "paid by another transaction" does not refund anything either
    let (h, body) = notification("not-the-key", &paid);
    assert_eq!(post_notification(&env, &h, body).await.0, 401);
    assert_eq!(env.order(&token, &id).await["refunds"], json!([]));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpaid_order_is_cancelled_after_the_timeout_and_its_rights_return() {
    let env = Env::start(60_000, 60_000).await;
    env.stock_s001().await;
    let token = env.customer("13800000001").await;
    let order = env.place(&token, "13800000001").await;
    let id = order["order_id"].as_str().unwrap().to_owned();
    let (s, _) = env
        .call("POST", &format!("/api/v1/orders/{id}/pay"), &token, None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(env.sellable().await, 7);

    let now = chrono::Utc::now();
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
    let v = env.order(&token, &id).await;
    assert_eq!(v["status"], "cancelled");
    assert_eq!(v["cancel_reason"], "unpaid");
    assert_eq!(v["payment"]["state"], "closed");
    assert_eq!(env.sellable().await, 10, "the rights came back");
    assert!(!env.in_store_doc(&id).await, "the store never saw it");
    // closed at the provider too, and no longer payable here
    assert_eq!(env.sim.sim.transaction(&id).unwrap().trade_state, "CLOSED");
    let (s, v) = env
        .call("POST", &format!("/api/v1/orders/{id}/pay"), &token, None)
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("payment_closed"))
    );
    assert_eq!(
        env.hub()
            .expire_unpaid(now + chrono::Duration::minutes(30))
            .await
            .unwrap(),
        0
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_order_cancelled_by_its_customer_is_refunded_once() {
    let env = Env::start(60_000, 60_000).await;
    env.stock_s001().await;
    let token = env.customer("13800000001").await;
    let order = env.place(&token, "13800000001").await;
    let id = order["order_id"].as_str().unwrap().to_owned();
    let total = order["total_fen"].as_i64().unwrap();
    let (_, prepay) = env
        .call("POST", &format!("/api/v1/orders/{id}/pay"), &token, None)
        .await;
    env.confirm(prepay["prepay_id"].as_str().unwrap()).await;
    env.wait_order(&token, &id, "paid", |v| v["payment"]["state"] == "paid")
        .await;

    let (s, v) = env
        .call("POST", &format!("/api/v1/orders/{id}/cancel"), &token, None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["refunds"][0]["amount_fen"], total);
    let done = env
        .wait_order(&token, &id, "refunded", |v| {
            v["refunds"][0]["state"] == "succeeded"
        })
        .await;
    assert_eq!(done["refunds"].as_array().unwrap().len(), 1);
    assert_eq!(env.sellable().await, 10);
    // cancelling again refunds nothing more
    let (s, _) = env
        .call("POST", &format!("/api/v1/orders/{id}/cancel"), &token, None)
        .await;
    assert_eq!(s, 200);
    let refunds = env.sim.sim.refunds();
    assert_eq!(refunds.len(), 1);
    assert_eq!(
        (refunds[0].out_trade_no.as_str(), refunds[0].amount),
        (id.as_str(), total)
    );
    assert_eq!(env.sim.sim.transaction(&id).unwrap().trade_state, "REFUND");
    env.stop().await;
}

/// Waits until at least `min` refunds succeeded.
async fn succeeded_at_least(hub: &Hub, min: i64) -> linli_hub::app::payment::RefundSummary {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let s = hub.refund_summary().await.unwrap();
        if s.succeeded >= min {
            return s;
        }
        assert!(tokio::time::Instant::now() < deadline, "stuck at {s:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_refunds_complete_exactly_once_across_a_hub_restart() {
    let mut env = Env::start(60_000, 60_000).await;
    env.sim.sim.set_faults(
        Faults {
            refund_fail_rate: 0.3,
            notification_copies: 1,
        },
        7,
    );
    // 200 payments (stand-ins for a failed group-buy's commitments)
    for i in 0..200 {
        env.sim
            .sim
            .pay_directly(PrepayRequest {
                appid: String::new(),
                mchid: String::new(),
                description: "团购".into(),
                out_trade_no: format!("GB{i:06}"),
                notify_url: "http://127.0.0.1:9/unused".into(),
                amount: Amount {
                    total: 1000 + i,
                    currency: "CNY".into(),
                },
            })
            .unwrap();
    }
    for i in 0..200 {
        let queued = env
            .hub()
            .queue_refund(
                &format!("GB{i:06}"),
                &format!("GB{i:06}-fail"),
                1000 + i,
                1000 + i,
                "groupbuy_failed",
            )
            .await
            .unwrap();
        assert!(queued);
    }
    // queuing the same item again adds nothing
    assert!(
        !env.hub()
            .queue_refund("GB000000", "GB000000-fail", 1000, 1000, "groupbuy_failed")
            .await
            .unwrap()
    );

    let part = succeeded_at_least(env.hub(), 40).await;
    assert!(
        part.succeeded < 200,
        "the restart should come mid-queue: {part:?}"
    );
    env.restart_hub().await;
    let done = succeeded_at_least(env.hub(), 200).await;
    assert_eq!((done.pending, done.failed), (0, 0));

    let refunds = env.sim.sim.refunds();
    assert_eq!(
        refunds.len(),
        200,
        "one refund per item, never a second refund id"
    );
    let mut subjects: Vec<&str> = refunds.iter().map(|r| r.out_trade_no.as_str()).collect();
    subjects.dedup();
    assert_eq!(subjects.len(), 200);
    for r in &refunds {
        let i: i64 = r.out_trade_no[2..].parse().unwrap();
        assert_eq!(r.amount, 1000 + i);
        assert_eq!(r.out_refund_no, format!("{}-fail", r.out_trade_no));
    }
    let stats = env.sim.sim.stats();
    assert!(stats.injected_failures > 0, "{stats:?}");
    // the retries were the same requests: some refund ids were seen more than once
    assert!(refunds.iter().any(|r| r.requests > 1));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payers_refund_limits_hold() {
    // the hub spaces refunds of one payment 50 ms apart; the simulator
    // refuses anything closer than 40 ms
    let env = Env::start(50, 40).await;
    env.sim
        .sim
        .pay_directly(PrepayRequest {
            appid: String::new(),
            mchid: String::new(),
            description: "partial".into(),
            out_trade_no: "PARTIAL001".into(),
            notify_url: "http://127.0.0.1:9/unused".into(),
            amount: Amount {
                total: 100_000,
                currency: "CNY".into(),
            },
        })
        .unwrap();
    for i in 0..50 {
        assert!(
            env.hub()
                .queue_refund("PARTIAL001", &format!("P-{i:02}"), 10, 100_000, "partial")
                .await
                .unwrap()
        );
    }
    let e = env
        .hub()
        .queue_refund("PARTIAL001", "P-50", 10, 100_000, "partial")
        .await
        .unwrap_err();
    assert!(
        matches!(e, linli_hub::error::HubError::RefundRefused(_)),
        "{e}"
    );
    // above what was paid is refused too
    let env2_refused = env
        .hub()
        .queue_refund("OTHER00001", "O-1", 11, 10, "too much")
        .await
        .unwrap_err();
    assert!(matches!(
        env2_refused,
        linli_hub::error::HubError::RefundRefused(_)
    ));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let s = env.hub().refund_summary().await.unwrap();
        if s.succeeded == 50 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "stuck at {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(env.sim.sim.refunds().len(), 50);
    // every send of this payment's refunds was at least the spacing apart
    let sent: Vec<String> = env
        .hub()
        .store
        .read(|c| {
            c.prepare("SELECT last_sent_at FROM refund_queue WHERE subject_id = 'PARTIAL001' ORDER BY last_sent_at")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()
                .map_err(linli_sync::db::StoreError::from)
        })
        .await
        .unwrap();
    let times: Vec<chrono::DateTime<chrono::Utc>> = sent
        .iter()
        .map(|s| chrono::DateTime::parse_from_rfc3339(s).unwrap().into())
        .collect();
    for w in times.windows(2) {
        assert!(w[1] - w[0] >= chrono::Duration::milliseconds(50), "{w:?}");
    }
    env.stop().await;
}
