//! Live-stream burst (issue 11): how many orders a second the hub accepts
//! for one running live session, from 16 clients at once, with the p50/p99
//! of each order, next to the same burst without a session (what the live
//! lookup and attribution cost) and a raw SQLite durable-commit baseline.
//!
//! One store (S001) lends the hub 1,000,000 units of the session's featured
//! SKUs through the real sync path; every order is a pickup at S001 with one
//! or two featured lines, placed through `Hub::place_order` (validation,
//! rights, live pricing and attribution, signed code, two documents, the
//! query tables, the idempotency record). Each order is one write job (its
//! own savepoint) and is answered after a durable commit; the writer groups
//! the jobs waiting in its queue into one transaction, and since issue 11's
//! grouping step the hub persists each document once per such batch (one
//! incremental save and one chunk for `hub/S001/orders/<day>` and one for
//! `hub/S001/stock/<day>`, written before the commit), not once per order.
//! The figures before and after, and what still grows with the day, are in
//! docs/DECISIONS.md ("Live bursts: one chunk per document per batch", and
//! "Live bursts: compaction off the writer, codes signed ahead, one orders
//! change per batch").
//!
//! Run with `cargo bench -p linli-hub --bench live_burst_bench`
//! (`BURST_ORDERS=<n>` per run, default 4,000; `BURST_CLIENTS`, default 16).

#![allow(clippy::unwrap_used)] // a bench: a failed setup step should stop it

#[path = "common/mod.rs"]
mod common;

use std::time::Instant;

use automerge::sync::{self, SyncDoc};
use linli_hub::app::live::{FeaturedLive, ScheduleLive};
use linli_hub::app::orders::{CustomerRef, LineRequest, PlaceOrder};
use linli_hub::auth::Caller;
use linli_hub::auth::User;
use linli_hub::hub::Hub;
use linli_shared::docs::stock::set_rights;
use linli_shared::docs::{DocId, Owner, new_doc};
use linli_shared::order::{Channel, Fulfilment};
use linli_shared::rights::StoreRights;

const FEATURED: [&str; 4] = ["P00001", "P00004", "P00005", "P00007"];

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// S001 lends `units` of each featured SKU through its stock document.
async fn lend(hub: &Hub, units: i64) {
    let day = chrono::Utc::now().date_naive();
    let id = DocId::store_stock("S001", day);
    let mut doc = new_doc(&id, Owner::Store("S001".into()).actor(rand::random())).unwrap();
    for sku in FEATURED {
        set_rights(
            &mut doc,
            sku,
            &StoreRights {
                lent: units,
                ..Default::default()
            },
        )
        .unwrap();
    }
    doc.commit();
    let mut state = sync::State::new();
    for _ in 0..20 {
        let Some(msg) = doc.sync().generate_sync_message(&mut state) else {
            return;
        };
        hub.receive_from("S001", id.clone(), msg.encode())
            .await
            .unwrap();
        let i = id.clone();
        let reply = hub
            .with_docs(move |c, docs| Ok(docs.generate(c, &i, "S001")?))
            .await
            .unwrap();
        if let Some(r) = reply {
            doc.sync()
                .receive_sync_message(&mut state, sync::Message::decode(&r).unwrap())
                .unwrap();
        }
    }
}

/// `orders` orders from `clients` tasks at once; returns orders/s, p50, p99.
async fn burst(
    hub: &Hub,
    admin: &User,
    session: Option<String>,
    tag: &str,
    orders: usize,
    clients: usize,
) -> (f64, f64, f64) {
    let per = orders / clients;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let (hub, admin, session, tag) =
            (hub.clone(), admin.clone(), session.clone(), tag.to_owned());
        tasks.spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for i in 0..per {
                let n = c * per + i;
                let mut lines = vec![LineRequest {
                    sku: FEATURED[n % FEATURED.len()].into(),
                    qty: 1,
                }];
                if n.is_multiple_of(3) {
                    lines.push(LineRequest {
                        sku: FEATURED[(n + 1) % FEATURED.len()].into(),
                        qty: 1,
                    });
                }
                let req = PlaceOrder {
                    channel: if session.is_some() {
                        Channel::Live
                    } else {
                        Channel::Miniapp
                    },
                    customer: CustomerRef {
                        // a viewer orders once or twice: the open-units cap
                        // (10 per SKU) is never the limit
                        phone: Some(format!("139{:08}", n)),
                        openid: None,
                    },
                    fulfilment: Fulfilment::Pickup,
                    store_id: Some("S001".into()),
                    location: None,
                    lines,
                    live_session_id: session.clone(),
                    delivery_slot: None,
                    address: None,
                    coupon: None,
                };
                let t = Instant::now();
                hub.place_order(&Caller::Staff(admin.clone()), format!("{tag}-{n}"), req)
                    .await
                    .unwrap();
                lat.push(t.elapsed());
            }
            lat
        });
    }
    let mut lat = Vec::with_capacity(orders);
    while let Some(l) = tasks.join_next().await {
        lat.extend(l.unwrap());
    }
    let rate = lat.len() as f64 / started.elapsed().as_secs_f64();
    (
        rate,
        common::pct(&mut lat, 0.5),
        common::pct(&mut lat, 0.99),
    )
}

fn main() {
    let orders = env_or("BURST_ORDERS", 4_000);
    let clients = env_or("BURST_CLIENTS", 16).max(1);
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let baseline = common::raw_sqlite(tmp.path(), 2_000, 600);
    rt.block_on(async {
        let (hub, admin) = common::open_hub(&tmp.path().join("hub"), common::data("stores.csv")).await;
        lend(&hub, 1_000_000).await;
        let now = chrono::Utc::now();
        let v = hub
            .schedule_live(
                &admin,
                ScheduleLive {
                    store_id: "S001".into(),
                    title: "burst".into(),
                    starts_at: now,
                    ends_at: now + chrono::Duration::hours(2),
                    grace_minutes: Some(10),
                    featured: FEATURED
                        .iter()
                        .map(|s| FeaturedLive {
                            sku: (*s).into(),
                            live_price_fen: None,
                            discount_pct: Some(88),
                        })
                        .collect(),
                },
            )
            .await
            .unwrap();
        hub.start_live(&admin, &v.session_id).await.unwrap();
        // warm-up, then the two bursts
        burst(&hub, &admin, None, "warm", clients * 20, clients).await;
        let (plain, p50p, p99p) = burst(&hub, &admin, None, "plain", orders, clients).await;
        let (live, p50, p99) =
            burst(&hub, &admin, Some(v.session_id.clone()), "live", orders, clients).await;
        let figures = hub.live_session(&admin, &v.session_id).await.unwrap();
        assert_eq!(figures.orders as usize, orders / clients * clients);

        println!();
        println!(
            "Linli live-stream burst: one session at S001, {clients} clients, {} orders per run, release build",
            orders / clients * clients
        );
        println!();
        println!("{:<58} {:>12}", "figure", "result");
        println!(
            "{:<58} {:>12.0}",
            "raw SQLite durable commits/s (baseline)", baseline
        );
        println!("{:<58} {:>12.0}", "live orders accepted/s", live);
        println!("{:<58} {:>9.2} ms", "  p50", p50);
        println!("{:<58} {:>9.2} ms", "  p99", p99);
        println!("{:<58} {:>12.0}", "same burst without a session, orders/s", plain);
        println!("{:<58} {:>9.2} ms", "  p50", p50p);
        println!("{:<58} {:>9.2} ms", "  p99", p99p);
        println!(
            "{:<58} {:>12}",
            "session figures count (orders)", figures.orders
        );
        hub.store.shutdown().await;
    });
}
