//! The hub's cost per store sale, early and late in a store's day, side by
//! side (issue 9: it must not grow with the day's history).
//!
//! One store (S001) writes its documents as a store does — a ledger change
//! (`ledger::record_sale`, 3 lines) and a stock change (`stock::set_level`
//! of the 3 SKUs) per sale, with a store actor, into a day that opened with
//! the levels and rights of 1,500 SKUs, each document rolled on to a new
//! part every `PART_CHANGES` changes (`docs::part_to_write`) — and each sale is synced into a real
//! hub (`Hub::receive_from`: automerge sync, ownership checks, projection
//! of what the message touched, settlement, durable commit), answered as
//! the hub answers a store (`Docs::generate`).
//!
//! Per sale the bench reads the CPU time of the hub's SQLite writer thread
//! (where all of that runs) before and after, with a probe job that reads
//! `/proc/thread-self/schedstat` on that thread (ns); and the wall time (which adds
//! the commit's fsync). Early: sales 1–200 of the day. Late: 200 sales after
//! 5,000 more were synced in batches of 100 (as after an outage). Baseline
//! in the same run: one durable single-row SQLite commit.
//!
//! Run with `cargo bench -p linli-hub --bench hub_sale_bench`.

#![allow(clippy::unwrap_used)] // a bench: a failed setup step should stop it

#[path = "common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use automerge::AutoCommit;
use automerge::sync::{self, SyncDoc};
use chrono::NaiveDate;
use linli_hub::hub::Hub;
use linli_shared::docs::ledger::{PaymentFact, SaleFact, SaleLineFact, record_sale};
use linli_shared::docs::stock::{Level, set_level, set_rights};
use linli_shared::docs::{DocId, Owner, PART_CHANGES, new_doc, part_to_write};
use linli_shared::rights::StoreRights;

const EARLY: usize = 200;
const FILL: usize = 5_000;
/// Sales per sync while filling the day (`FILL_BATCH=5000`: one catch-up).
fn fill_batch() -> usize {
    std::env::var("FILL_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| (1..=FILL).contains(n))
        .unwrap_or(100)
}
const LATE: usize = 200;
const STORE: &str = "S001";

fn pct(lat: &[Duration], p: f64) -> f64 {
    let mut lat = lat.to_vec();
    lat.sort();
    let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
    lat[i].as_secs_f64() * 1e3
}

/// Milliseconds per durable single-row commit (WAL, synchronous=FULL).
fn raw_commit_ms(dir: &Path, n: usize) -> f64 {
    let conn = rusqlite::Connection::open(dir.join("raw.db")).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
        .unwrap();
    let payload = "x".repeat(600);
    let started = Instant::now();
    for _ in 0..n {
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        conn.execute("INSERT INTO t (payload) VALUES (?1)", [&payload])
            .unwrap();
        conn.execute_batch("COMMIT").unwrap();
    }
    started.elapsed().as_secs_f64() * 1e3 / n as f64
}

/// CPU time of the calling thread, in nanoseconds from the scheduler
/// (`/proc/thread-self/schedstat`, Linux; 0 elsewhere).
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// CPU time the hub's writer thread has used so far.
async fn writer_cpu(hub: &Hub) -> Duration {
    hub.with_docs(|_, _| Ok(thread_cpu())).await.unwrap()
}

fn sale(i: usize, skus: &[String]) -> SaleFact {
    SaleFact {
        sale_id: format!("01BENCH{i:019}"),
        ticket_no: format!("{STORE}-20261130-{:04}", i + 1),
        created_at: "2026-11-30T02:00:00.000Z".into(),
        cashier: "ana".into(),
        total_fen: 1_000 + i as i64,
        lines: (0..3)
            .map(|l| SaleLineFact {
                sku: skus[(i * 3 + l) % skus.len()].clone(),
                qty: 1,
                total_fen: 300 + l as i64,
                unit_price_fen: 300 + l as i64,
            })
            .collect(),
        payments: vec![PaymentFact {
            method: "cash".into(),
            amount_fen: 1_000 + i as i64,
        }],
        ..Default::default()
    }
}

/// One part of a day's document as the store holds it, with the hub's
/// sync state.
struct Part {
    id: DocId,
    doc: AutoCommit,
    state: sync::State,
    changes: u64,
    dirty: bool,
}

/// One store's documents of the day: the parts of its ledger and stock,
/// rolled exactly as the store rolls them (`docs::part_to_write`).
struct StoreSide {
    actor: automerge::ActorId,
    skus: Vec<String>,
    ledger: Vec<Part>,
    stock: Vec<Part>,
    on_hand: Vec<i64>,
    /// Sync message bytes, store to hub and back.
    bytes: u64,
}

/// Changes per part: the store's `PART_CHANGES`, or `PART_CHANGES=<n>` in
/// the environment to compare part sizes.
fn part_changes() -> u64 {
    std::env::var("PART_CHANGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(PART_CHANGES)
}

/// The part to write next: a new one when the store would roll on.
fn part_for<'a>(
    parts: &'a mut Vec<Part>,
    base: &DocId,
    actor: &automerge::ActorId,
) -> &'a mut Part {
    let have: Vec<(u32, u64)> = parts.iter().map(|p| (p.id.part_no(), p.changes)).collect();
    let n = part_to_write(base.kind(), &have, part_changes());
    if !parts.iter().any(|p| p.id.part_no() == n) {
        let id = base.part(n);
        let doc = new_doc(&id, actor.clone()).unwrap();
        parts.push(Part {
            id,
            doc,
            state: sync::State::new(),
            changes: 0,
            dirty: true,
        });
    }
    parts.iter_mut().find(|p| p.id.part_no() == n).unwrap()
}

impl StoreSide {
    fn open(day: NaiveDate, skus: Vec<String>) -> StoreSide {
        let actor = Owner::Store(STORE.into()).actor(rand::random());
        let mut side = StoreSide {
            actor,
            skus,
            ledger: Vec::new(),
            stock: Vec::new(),
            on_hand: Vec::new(),
            bytes: 0,
        };
        // the day opens with every level and right of the books (part 0)
        let base = DocId::store_stock(STORE, day);
        let part = part_for(&mut side.stock, &base, &side.actor);
        for sku in &side.skus {
            set_level(
                &mut part.doc,
                sku,
                Level {
                    on_hand: 100_000,
                    reserved: 0,
                },
            )
            .unwrap();
            set_rights(
                &mut part.doc,
                sku,
                &StoreRights {
                    lent: 10,
                    ..Default::default()
                },
            )
            .unwrap();
        }
        part.doc.commit();
        part.changes += 1;
        side.on_hand = vec![100_000; side.skus.len()];
        side
    }

    /// Records sale `i` as the store does: one change to the current part
    /// of the ledger, one to the current moving part of the stock.
    fn record(&mut self, day: NaiveDate, i: usize) {
        let s = sale(i, &self.skus);
        let part = part_for(
            &mut self.ledger,
            &DocId::store_ledger(STORE, day),
            &self.actor,
        );
        record_sale(&mut part.doc, &s).unwrap();
        part.doc.commit();
        part.changes += 1;
        part.dirty = true;
        let part = part_for(
            &mut self.stock,
            &DocId::store_stock(STORE, day),
            &self.actor,
        );
        for l in 0..3 {
            let k = (i * 3 + l) % self.skus.len();
            self.on_hand[k] -= 1;
            set_level(
                &mut part.doc,
                &self.skus[k],
                Level {
                    on_hand: self.on_hand[k],
                    reserved: 0,
                },
            )
            .unwrap();
        }
        part.doc.commit();
        part.changes += 1;
        part.dirty = true;
    }

    /// Syncs every part with changes into the hub until neither side has
    /// more to say, as a hub session does: each message is applied, then
    /// its document answered.
    async fn sync(&mut self, hub: &Hub) {
        for part in self.ledger.iter_mut().chain(self.stock.iter_mut()) {
            if !part.dirty {
                continue;
            }
            part.dirty = false;
            for _ in 0..50 {
                let Some(msg) = part.doc.sync().generate_sync_message(&mut part.state) else {
                    break;
                };
                let msg = msg.encode();
                self.bytes += msg.len() as u64;
                hub.receive_from(STORE, part.id.clone(), msg).await.unwrap();
                let i = part.id.clone();
                let reply = hub
                    .with_docs(move |c, docs| Ok(docs.generate(c, &i, STORE)?))
                    .await
                    .unwrap();
                if let Some(r) = reply {
                    self.bytes += r.len() as u64;
                    part.doc
                        .sync()
                        .receive_sync_message(&mut part.state, sync::Message::decode(&r).unwrap())
                        .unwrap();
                }
            }
        }
    }
}

/// Sales `from..from + n`, each recorded and synced on its own: the hub
/// writer's CPU and the wall time per sale.
async fn one_by_one(
    hub: &Hub,
    store: &mut StoreSide,
    day: NaiveDate,
    from: usize,
    n: usize,
) -> (Vec<Duration>, Vec<Duration>) {
    let (mut cpu, mut wall) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in from..from + n {
        store.record(day, i);
        let c0 = writer_cpu(hub).await;
        let t = Instant::now();
        store.sync(hub).await;
        wall.push(t.elapsed());
        cpu.push(writer_cpu(hub).await.saturating_sub(c0));
    }
    (cpu, wall)
}

async fn hub_sales(hub: &Hub) -> i64 {
    hub.with_docs(|c, _| {
        Ok(c.query_row(
            "SELECT count(*) FROM hub_sales WHERE store_id = ?1",
            [STORE],
            |r| r.get::<_, i64>(0),
        )?)
    })
    .await
    .unwrap()
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let baseline = raw_commit_ms(tmp.path(), 1_000);
    rt.block_on(async {
        let (hub, _) = common::open_hub(&tmp.path().join("hub"), common::data("stores.csv")).await;
        let skus: Vec<String> = hub.directory().products.keys().cloned().collect();
        let day = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let mut store = StoreSide::open(day, skus.clone());
        store.sync(&hub).await;

        eprintln!("[hub_sale_bench] early sales, one at a time");
        let (early_cpu, early_wall) = one_by_one(&hub, &mut store, day, 0, EARLY).await;
        let batch = fill_batch();
        eprintln!("[hub_sale_bench] {FILL} sales in batches of {batch}");
        let fill_started = Instant::now();
        let c0 = writer_cpu(&hub).await;
        let bytes0 = store.bytes;
        for b in 0..FILL / batch {
            for i in 0..batch {
                store.record(day, EARLY + b * batch + i);
            }
            store.sync(&hub).await;
        }
        let fill_cpu = writer_cpu(&hub).await.saturating_sub(c0);
        let fill_wall = fill_started.elapsed();
        let fill_bytes = store.bytes - bytes0;
        eprintln!("[hub_sale_bench] late sales, one at a time");
        let (late_cpu, late_wall) = one_by_one(&hub, &mut store, day, EARLY + FILL, LATE).await;
        let total = hub_sales(&hub).await;
        assert_eq!(total as usize, EARLY + FILL + LATE, "the hub holds every sale");

        println!();
        println!(
            "Linli hub cost per store sale: one store, {} SKUs stocked, 3-line sales, release build",
            skus.len()
        );
        println!(
            "(hub CPU = the hub's SQLite writer thread, where apply, projection, settlement and commit run)"
        );
        println!();
        println!(
            "{:<44} {:>12} {:>14} {:>8} {:>10}",
            "figure", "~20 sales", "~5,200 sales", "ratio", "goal"
        );
        println!("{}", "-".repeat(92));
        let row = |name: &str, a: f64, b: f64, goal: &str| {
            println!(
                "{:<44} {:>9.3} ms {:>11.3} ms {:>7.2}x {:>10}",
                name,
                a,
                b,
                b / a,
                goal
            );
        };
        row(
            "hub CPU per sale, p50",
            pct(&early_cpu, 0.5),
            pct(&late_cpu, 0.5),
            "≤ 1 ms",
        );
        row(
            "hub CPU per sale, p99",
            pct(&early_cpu, 0.99),
            pct(&late_cpu, 0.99),
            "≤ 3 ms",
        );
        row(
            "hub wall time per sale (with fsync), p50",
            pct(&early_wall, 0.5),
            pct(&late_wall, 0.5),
            "",
        );
        row(
            "hub wall time per sale (with fsync), p99",
            pct(&early_wall, 0.99),
            pct(&late_wall, 0.99),
            "",
        );
        println!();
        println!(
            "baseline, same run: one durable single-row SQLite commit {:.3} ms; hub CPU p50 late = {:.1}x that",
            baseline,
            pct(&late_cpu, 0.5) / baseline
        );
        println!(
            "batched (catch-up shape, {} sales in batches of {}): hub CPU {:.3} ms/sale, wall {:.3} ms/sale, sync {:.1} B/sale",
            FILL,
            batch,
            fill_cpu.as_secs_f64() * 1e3 / FILL as f64,
            fill_wall.as_secs_f64() * 1e3 / FILL as f64,
            fill_bytes as f64 / FILL as f64
        );
        println!(
            "hub holds {total} sales of {STORE}; the store wrote {} ledger and {} stock parts of ≤ {} changes",
            store.ledger.len(),
            store.stock.len(),
            part_changes()
        );
        hub.store.shutdown().await;
    });
}
