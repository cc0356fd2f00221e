//! The hub's online-order path, next to a raw SQLite baseline measured in
//! the same run:
//!
//! - raw SQLite: single-row durable commits (WAL, synchronous=FULL);
//! - placing an order (`Hub::place_order`): validate, route by rights among
//!   the 20 reference stores, consume rights, sign the pickup code, write the
//!   hub's two documents and the query tables, commit — sequential, p50/p99;
//! - applying one store sale's stock change (`Hub::receive_from`) to a day
//!   document of 1,500 SKUs: sync apply, projection of the touched SKU only,
//!   settlement — p50/p99.
//!
//! Stores lend their rights through the real sync path: each store's stock
//! document is built with the store's actor and synced into the hub.
//!
//! Run with `cargo bench -p linli-hub --bench orders_bench`.

#![allow(clippy::unwrap_used)] // a bench: a failed setup step should stop it

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use automerge::AutoCommit;
use automerge::sync::{self, SyncDoc};
use chrono::NaiveDate;
use linli_hub::app::orders::{CustomerRef, LineRequest, PlaceOrder};
use linli_hub::auth::Caller;
use linli_hub::hub::Hub;
use linli_shared::docs::stock::{Level, set_level, set_rights};
use linli_shared::docs::{DocId, Owner, new_doc};
use linli_shared::order::{Channel, Fulfilment};
use linli_shared::rights::StoreRights;

const ORDERS: usize = 2_000;
const STORE_CHANGES: usize = 300;
const SKUS: usize = 1_500;

/// Syncs a store-owned document into the hub until neither side has more
/// to say; returns the time the hub spent applying (and projecting) it.
async fn sync_in(
    hub: &Hub,
    store: &str,
    id: &DocId,
    doc: &mut AutoCommit,
    state: &mut sync::State,
) -> Duration {
    let mut in_hub = Duration::ZERO;
    for _ in 0..20 {
        let Some(msg) = doc.sync().generate_sync_message(state) else {
            return in_hub;
        };
        let t = Instant::now();
        let r = hub
            .receive_from(store, id.clone(), msg.encode())
            .await
            .unwrap();
        if r.new_changes > 0 {
            in_hub += t.elapsed();
        }
        let (s, i) = (store.to_owned(), id.clone());
        let reply = hub
            .with_docs(move |c, docs| Ok(docs.generate(c, &i, &s)?))
            .await
            .unwrap();
        if let Some(r) = reply {
            doc.sync()
                .receive_sync_message(state, sync::Message::decode(&r).unwrap())
                .unwrap();
        }
    }
    in_hub
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let baseline = common::raw_sqlite(tmp.path(), 2_000, 600);
    rt.block_on(async {
        let (hub, admin) =
            common::open_hub(&tmp.path().join("hub"), common::data("stores.csv")).await;
        let skus: Vec<String> = hub
            .directory()
            .products
            .keys()
            .take(SKUS)
            .cloned()
            .collect();
        let day = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();

        // every store lends 1,000 units of every SKU, through sync
        let stores: Vec<String> = hub
            .directory()
            .stores
            .sites()
            .map(|s| s.store_id.clone())
            .collect();
        let mut s001 = None;
        for s in &stores {
            let id = DocId::store_stock(s, day);
            let mut doc = new_doc(&id, Owner::Store(s.clone()).actor(rand::random())).unwrap();
            for sku in &skus {
                set_level(
                    &mut doc,
                    sku,
                    Level {
                        on_hand: 2_000,
                        reserved: 0,
                    },
                )
                .unwrap();
                set_rights(
                    &mut doc,
                    sku,
                    &StoreRights {
                        lent: 1_000,
                        ..Default::default()
                    },
                )
                .unwrap();
            }
            doc.commit();
            let mut state = sync::State::new();
            sync_in(&hub, s, &id, &mut doc, &mut state).await;
            if s == "S001" {
                s001 = Some((id, doc, state));
            }
        }

        // orders, one at a time, routed by location near S001
        let mut lat = Vec::with_capacity(ORDERS);
        let started = Instant::now();
        for i in 0..ORDERS {
            let req = PlaceOrder {
                channel: Channel::Miniapp,
                customer: CustomerRef {
                    phone: Some(format!("138{:08}", i % 5_000)),
                    openid: None,
                },
                fulfilment: if i % 2 == 0 {
                    Fulfilment::Pickup
                } else {
                    Fulfilment::Delivery
                },
                store_id: None,
                location: Some(linli_shared::geo::GeoPoint::new(30.3752, 120.1631).unwrap()),
                lines: vec![
                    LineRequest {
                        sku: skus[i % skus.len()].clone(),
                        qty: 1,
                    },
                    LineRequest {
                        sku: skus[(i * 7 + 3) % skus.len()].clone(),
                        qty: 2,
                    },
                ],
                live_session_id: None,
                delivery_slot: None,
                address: None,
                coupon: None,
            };
            let t = Instant::now();
            hub.place_order(&Caller::Staff(admin.clone()), format!("bench-{i}"), req)
                .await
                .unwrap();
            lat.push(t.elapsed());
        }
        let rate = ORDERS as f64 / started.elapsed().as_secs_f64();
        let (p50, p99) = (common::pct(&mut lat, 0.5), common::pct(&mut lat, 0.99));

        // one store sale at a time: a level and its rights change in the day document
        let (id, mut doc, mut state) = s001.unwrap();
        let mut lat2 = Vec::with_capacity(STORE_CHANGES);
        for i in 0..STORE_CHANGES {
            let sku = &skus[(i * 13) % skus.len()];
            set_level(
                &mut doc,
                sku,
                Level {
                    on_hand: 1_999 - i as i64,
                    reserved: 0,
                },
            )
            .unwrap();
            doc.commit();
            lat2.push(sync_in(&hub, "S001", &id, &mut doc, &mut state).await);
        }
        let (q50, q99) = (common::pct(&mut lat2, 0.5), common::pct(&mut lat2, 0.99));

        println!();
        println!(
            "Linli hub order bench: one process, {} stores, {} SKUs, release build",
            stores.len(),
            skus.len()
        );
        println!();
        println!("{:<58} {:>12}", "figure", "result");
        println!(
            "{:<58} {:>12.0}",
            "raw SQLite durable commits/s (baseline)", baseline
        );
        println!("{:<58} {:>12.0}", "orders placed/s (sequential)", rate);
        println!(
            "{:<58} {:>11.1}%",
            "  ratio to the baseline",
            100.0 * rate / baseline
        );
        println!("{:<58} {:>9.2} ms", "  place_order p50", p50);
        println!("{:<58} {:>9.2} ms", "  place_order p99", p99);
        println!(
            "{:<58} {:>9.2} ms",
            "hub applies one store sale's stock change, p50", q50
        );
        println!(
            "{:<58} {:>9.2} ms",
            "  p99 (apply, project the touched SKU, settle, commit)", q99
        );
        hub.store.shutdown().await;
    });
}
