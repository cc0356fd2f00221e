//! A group-buy of 5,000 commitments from 50 stores closing, next to a raw
//! SQLite baseline measured in the same run:
//!
//! - raw SQLite: single-row durable commits (WAL, synchronous=FULL);
//! - 5,000 customers commit online (`Hub::commit`, one durable commit
//!   each, the decision in the same transaction), 100 at each of 50 stores,
//!   the last one reaching the threshold: time to reached, and commit
//!   latency p50/p99 for the first and the last 500 (the cost of deciding
//!   as the campaign fills);
//! - the goods arrive: each store's 100 pickup orders reach the hub in the
//!   store's ledger (one sync per store): time until the campaign is
//!   fulfilled;
//! - a second campaign of 5,000 commitments that misses its threshold:
//!   time to decide failure and cancel every commitment;
//! - time to all refunds on failure: a hub that takes payment
//!   (`HubServer` with its refund worker, the payment simulator in-process
//!   over HTTP on loopback), a third campaign of 5,000 commitments, each
//!   paid (the simulator records the payment, the hub gets the signed
//!   notification through `Hub::pay_notified`), missing its threshold:
//!   the time from deciding failure (which queues the 5,000 refunds in its
//!   transaction) until the simulator has accepted every refund, sent by
//!   the real refund queue (8 payments at a time, each attempt recorded
//!   durably before it is sent and settled durably after).
//!
//! Run with `cargo bench -p linli-hub --bench groupbuy_bench`.

#![allow(clippy::unwrap_used)] // a bench: a failed setup step should stop it

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use automerge::sync::{self, SyncDoc};
use chrono::{NaiveDate, Utc};
use linli_hub::app::groupbuys::NewGroupBuy;
use linli_hub::auth::Caller;
use linli_hub::auth::Role;
use linli_hub::hub::{Hub, HubPaths, add_user, open_conn};
use linli_hub::server::HubServer;
use linli_hub::settings::OrderSettings;
use linli_hub::settings::PaySettings;
use linli_pay::sim::SimPay;
use linli_pay::wire::{Amount, Notification, PrepayRequest, Resource};
use linli_shared::docs::ledger::{OrderDetail, OrderFact, OrderLineFact, put_order};
use linli_shared::docs::{DocId, Owner, new_doc};
use linli_shared::groupbuy::{State, Threshold, order_id_of};

const STORES: usize = 50;
const PER_STORE: usize = 100;

/// The 20 reference stores and 30 more around them (S021-S050).
fn stores_csv() -> Vec<u8> {
    let mut csv = String::from_utf8(common::data("stores.csv")).unwrap();
    for i in 21..=STORES {
        let (lat, lon) = (30.20 + (i as f64) * 0.004, 120.05 + (i as f64) * 0.005);
        csv.push_str(&format!(
            "S{i:03},绿源生活·测试{i}店,西湖区,{lat:.6},{lon:.6},3,07:00,22:00,Lvyuan Test {i},杭州西区\n"
        ));
    }
    csv.into_bytes()
}

fn campaign(count: u32, stores: &[String]) -> NewGroupBuy {
    let deadline = Utc::now() + chrono::Duration::hours(1);
    NewGroupBuy {
        sku: "P00009".into(),
        price_fen: 3990,
        threshold: Threshold::Participants { count },
        deadline,
        pickup_date: deadline.date_naive() + chrono::Days::new(2),
        per_customer_limit: 2,
        store_ids: stores.to_vec(),
        grace_minutes: Some(0),
        counter_allotment: Some(0),
    }
}

/// 5,000 customers (one session each) commit 1 unit, 100 per store;
/// returns the latencies in order.
async fn fill(hub: &Hub, id: &str, stores: &[String], customers: &[Caller]) -> Vec<Duration> {
    let mut lat = Vec::with_capacity(customers.len());
    for (i, who) in customers.iter().enumerate() {
        let store = &stores[i / PER_STORE];
        let t = Instant::now();
        hub.commit(who, format!("{id}-{i}"), id, store, 1)
            .await
            .unwrap();
        lat.push(t.elapsed());
    }
    lat
}

const PAY_KEY: &str = "bench-merchant-key";

/// The hub's notification of a payment the simulator holds, signed as the
/// provider signs it.
fn notification(t: &linli_pay::wire::Transaction) -> (String, String, String, Vec<u8>) {
    let n = Notification {
        id: ulid::Ulid::new().to_string(),
        create_time: Utc::now().to_rfc3339(),
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
    let (ts, nonce) = (
        Utc::now().timestamp().to_string(),
        ulid::Ulid::new().to_string(),
    );
    let sig = linli_pay::sign::sign(PAY_KEY.as_bytes(), &ts, &nonce, &body);
    (ts, nonce, sig, body)
}

/// A failed campaign of `n` paid commitments at a hub that takes payment:
/// returns how long paying took and the time from deciding failure to the
/// simulator holding every refund.
async fn refunds_on_failure(
    dir: &std::path::Path,
    stores: &[String],
    n: usize,
) -> (Duration, Duration) {
    let sim = SimPay::new(PAY_KEY);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim_url = format!("http://{}", listener.local_addr().unwrap());
    let cancel = tokio_util::sync::CancellationToken::new();
    let (s, c) = (sim.clone(), cancel.clone());
    let sim_task =
        tokio::spawn(async move { linli_pay::sim::serve(listener, s, c).await.unwrap() });
    let paths = HubPaths {
        data_dir: dir.to_owned(),
    };
    std::fs::create_dir_all(dir).unwrap();
    add_user(
        &open_conn(&paths.db()).unwrap(),
        "admin",
        Role::Admin,
        "admin-password",
    )
    .unwrap();
    let mut pay = PaySettings::new(linli_pay::HttpPay::new(&sim_url, PAY_KEY).unwrap(), PAY_KEY);
    pay.sweep_every = Duration::from_secs(3600);
    let server = HubServer::start_with(
        &paths,
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        &[],
        OrderSettings {
            payment: Some(pay),
            ..OrderSettings::default()
        },
    )
    .await
    .unwrap();
    let hub = server.hub.clone();
    let admin = linli_hub::auth::User {
        name: "admin".into(),
        role: Role::Admin,
        store_id: None,
        region: None,
    };
    hub.import_catalog(&admin, common::data("products.csv"))
        .await
        .unwrap();
    hub.import_stores(&admin, stores_csv()).await.unwrap();
    let g = hub
        .create_group_buy(&admin, campaign(n as u32 + 1, stores))
        .await
        .unwrap();
    let started = Instant::now();
    for i in 0..n {
        let (token, _) = hub
            .customer_session_from(Some(format!("137{i:08}")), None, None)
            .await
            .unwrap();
        let who = hub.authenticate_customer(&token).await.unwrap();
        let (k, _) = hub
            .commit(
                &who,
                format!("pay-{i}"),
                &g.group_buy_id,
                &stores[i / PER_STORE],
                1,
            )
            .await
            .unwrap();
        let t = sim
            .pay_directly(PrepayRequest {
                appid: String::new(),
                mchid: String::new(),
                description: "团购".into(),
                out_trade_no: k.commitment.commitment_id.clone(),
                notify_url: "http://127.0.0.1:9/unused".into(),
                amount: Amount {
                    total: k.commitment.amount_fen,
                    currency: "CNY".into(),
                },
            })
            .unwrap();
        let (ts, nonce, sig, body) = notification(&t);
        let header = |name: &str| {
            use linli_pay::wire::{HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP};
            [
                (HEADER_TIMESTAMP, &ts),
                (HEADER_NONCE, &nonce),
                (HEADER_SIGNATURE, &sig),
            ]
            .into_iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
        };
        hub.pay_notified(header, &body).await.unwrap();
    }
    let paying = started.elapsed();
    assert_eq!(
        hub.group_buy(&g.group_buy_id).await.unwrap().participants as usize,
        n
    );
    let started = Instant::now();
    let moved = hub
        .settle_group_buys(Utc::now() + chrono::Duration::hours(2))
        .await
        .unwrap();
    assert_eq!(moved, 1);
    loop {
        let s = hub.refund_summary().await.unwrap();
        assert_eq!(s.failed, 0);
        if s.succeeded == n as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let to_refunded = started.elapsed();
    assert_eq!(sim.refunds().len(), n);
    server.shutdown().await;
    cancel.cancel();
    sim_task.await.unwrap();
    (paying, to_refunded)
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let baseline = common::raw_sqlite(tmp.path(), 2_000, 300);
    rt.block_on(async {
        let (hub, admin) = common::open_hub(&tmp.path().join("hub"), stores_csv()).await;
        let stores: Vec<String> = (1..=STORES).map(|i| format!("S{i:03}")).collect();
        let n = STORES * PER_STORE;
        let mut customers = Vec::with_capacity(n);
        for i in 0..n {
            let (token, _) = hub
                .customer_session_from(Some(format!("139{i:08}")), None, None)
                .await
                .unwrap();
            customers.push(hub.authenticate_customer(&token).await.unwrap());
        }

        // reached at the last commitment
        let g = hub.create_group_buy(&admin, campaign(n as u32, &stores)).await.unwrap();
        let started = Instant::now();
        let lat = fill(&hub, &g.group_buy_id, &stores, &customers).await;
        let to_reached = started.elapsed();
        let view = hub.group_buy(&g.group_buy_id).await.unwrap();
        assert_eq!(view.state, State::Reached);
        assert!(hub.group_buy_totals_agree(&g.group_buy_id).await.unwrap());
        let (mut first, mut last) = (lat[..500].to_vec(), lat[n - 500..].to_vec());

        // the stores' pickup orders arrive, one ledger sync per store
        let day = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
        let mine: Vec<(String, String)> = hub
            .store
            .read(|c| {
                let mut st = c.prepare("SELECT store_id, commitment_id FROM group_buy_commitments ORDER BY store_id")?;
                let rows = st
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok::<_, linli_sync::db::StoreError>(rows)
            })
            .await
            .unwrap();
        let started = Instant::now();
        for s in &stores {
            let id = DocId::store_ledger(s, day);
            let mut doc = new_doc(&id, Owner::Store(s.clone()).actor(rand::random())).unwrap();
            for (i, (_, cid)) in mine.iter().filter(|(st, _)| st == s).enumerate() {
                put_order(
                    &mut doc,
                    &OrderFact {
                        order_id: order_id_of(cid),
                        status: "placed".into(),
                        total_fen: 3990,
                        created_at: Utc::now().to_rfc3339(),
                        detail: Some(OrderDetail {
                            channel: "community".into(),
                            fulfilment: "pickup".into(),
                            customer_hash: String::new(),
                            customer_masked: String::new(),
                            customer_phone: String::new(),
                            pickup_code: format!("{:06}", i),
                            created_by: "manager".into(),
                            expires_at: String::new(),
                            closed_at: String::new(),
                            closed_by: String::new(),
                            lines: vec![OrderLineFact {
                                sku: "P00009".into(),
                                qty: 1,
                                unit_price_fen: 3990,
                                total_fen: 3990,
                            }],
                        }),
                        ..Default::default()
                    },
                )
                .unwrap();
            }
            doc.commit();
            let mut state = sync::State::new();
            for _ in 0..20 {
                let Some(msg) = doc.sync().generate_sync_message(&mut state) else {
                    break;
                };
                hub.receive_from(s, id.clone(), msg.encode()).await.unwrap();
                let (st, i) = (s.clone(), id.clone());
                let reply = hub
                    .with_docs(move |c, docs| Ok(docs.generate(c, &i, &st)?))
                    .await
                    .unwrap();
                if let Some(r) = reply {
                    doc.sync()
                        .receive_sync_message(&mut state, sync::Message::decode(&r).unwrap())
                        .unwrap();
                }
            }
        }
        let to_fulfilled = started.elapsed();
        assert_eq!(hub.group_buy(&g.group_buy_id).await.unwrap().state, State::Fulfilled);

        // a second campaign that misses its threshold by one
        let g2 = hub.create_group_buy(&admin, campaign(n as u32 + 1, &stores)).await.unwrap();
        let started = Instant::now();
        fill(&hub, &g2.group_buy_id, &stores, &customers).await;
        let fill2 = started.elapsed();
        let started = Instant::now();
        let moved = hub
            .settle_group_buys(Utc::now() + chrono::Duration::hours(2))
            .await
            .unwrap();
        let to_failed = started.elapsed();
        assert_eq!(moved, 1);
        let v2 = hub.group_buy(&g2.group_buy_id).await.unwrap();
        assert_eq!((v2.state, v2.participants), (State::Failed, 0));

        let (paying, to_refunded) = refunds_on_failure(&tmp.path().join("hub-pay"), &stores, n).await;

        println!("group-buy of {n} commitments from {STORES} stores (hub in-process, one commitment per durable commit)");
        println!("  raw SQLite durable single-row commits: {baseline:.0}/s");
        println!(
            "  commit online: first 500 p50 {:.2} ms p99 {:.2} ms; last 500 p50 {:.2} ms p99 {:.2} ms",
            common::pct(&mut first, 0.5),
            common::pct(&mut first, 0.99),
            common::pct(&mut last, 0.5),
            common::pct(&mut last, 0.99)
        );
        println!(
            "  time to reached (all {n} commitments, sequential): {:.2} s = {:.0} commitments/s ({:.0}% of raw commits)",
            to_reached.as_secs_f64(),
            n as f64 / to_reached.as_secs_f64(),
            100.0 * n as f64 / to_reached.as_secs_f64() / baseline
        );
        println!(
            "  time to fulfilled ({STORES} stores' ledgers with {n} pickup orders synced in): {:.2} s",
            to_fulfilled.as_secs_f64()
        );
        println!(
            "  failed campaign: filled in {:.2} s; decided failed and {n} commitments cancelled in {:.1} ms",
            fill2.as_secs_f64(),
            to_failed.as_secs_f64() * 1e3
        );
        println!(
            "  time to all refunds on failure ({n} paid commitments, refund queue to the simulator over HTTP): {:.2} s = {:.0} refunds/s (paying them took {:.2} s)",
            to_refunded.as_secs_f64(),
            n as f64 / to_refunded.as_secs_f64(),
            paying.as_secs_f64()
        );
    });
}
