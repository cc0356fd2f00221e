//! How long a store node with a year of history takes to open and to get
//! ready to sync: 365 day-ledgers (200 sales a day, one change per sale,
//! stored compacted as the doc store leaves them) and 365 stock documents.
//!
//! Prints: generation time, database size, time to open and migrate, time
//! to build the sync index over every document, and time to load today's
//! and an old document. Run: `cargo bench -p linli-sync --bench year_load`.

use std::time::Instant;

use chrono::{Duration, NaiveDate};
use linli_shared::docs::ledger::{SaleFact, SaleLineFact, record_sale};
use linli_shared::docs::stock::{Level, set_level};
use linli_shared::docs::{DocId, Owner, new_doc};
use linli_sync::doc_store::{Docs, MIGRATION};
use rusqlite::{Connection, params};

const DAYS: i64 = 365;
const SALES_PER_DAY: usize = 200;

fn migrate(c: &mut Connection) -> rusqlite::Result<()> {
    linli_sync::db::migrate(c, &[MIGRATION])
}

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("year.db");
    let owner = Owner::Store("S001".into());
    let first = NaiveDate::from_ymd_opt(2025, 11, 26).ok_or_else(|| anyhow::anyhow!("date"))?;
    let started = Instant::now();
    {
        let mut conn = linli_sync::db::open_writer_conn(&path, migrate)?;
        let tx = conn.transaction()?;
        let actor = owner.actor([1; 8]);
        for d in 0..DAYS {
            let day = first + Duration::days(d);
            let id = DocId::store_ledger("S001", day);
            let mut doc = new_doc(&id, actor.clone())?;
            doc.commit();
            for i in 0..SALES_PER_DAY {
                record_sale(
                    &mut doc,
                    &SaleFact {
                        sale_id: format!("{day}-{i:05}"),
                        ticket_no: format!("S001-{}-{:04}", day.format("%Y%m%d"), i + 1),
                        created_at: format!("{day}T10:00:00.000Z"),
                        cashier: "ana".into(),
                        total_fen: 1000 + i as i64,
                        lines: (0..3)
                            .map(|l| SaleLineFact {
                                sku: format!("P{:05}", (i * 3 + l) % 1500 + 1),
                                qty: 1,
                                total_fen: 300,
                                unit_price_fen: 0,
                            })
                            .collect(),
                        payments: vec![],
                        member: false,
                        ..Default::default()
                    },
                )?;
                doc.commit();
            }
            let stock_id = DocId::store_stock("S001", day);
            let mut stock = new_doc(&stock_id, actor.clone())?;
            for s in 0..1500 {
                set_level(
                    &mut stock,
                    &format!("P{:05}", s + 1),
                    Level {
                        on_hand: 40,
                        reserved: 0,
                    },
                )?;
            }
            stock.commit();
            for (id, mut doc) in [(id, doc), (stock_id, stock)] {
                let bytes = doc.save();
                let heads: Vec<u8> = doc.get_heads().iter().flat_map(|h| h.0).collect();
                tx.execute(
                    "INSERT INTO doc_chunks(doc_id, kind, bytes) VALUES (?1, 'snapshot', ?2)",
                    params![id.as_str(), bytes],
                )?;
                tx.execute(
                    "INSERT INTO docs(doc_id, heads, changes, snapshot_bytes) VALUES (?1, ?2, ?3, ?4)",
                    params![id.as_str(), heads, SALES_PER_DAY as i64, bytes.len() as i64],
                )?;
            }
        }
        tx.commit()?;
    }
    let generated = started.elapsed();
    let size = std::fs::metadata(&path)?.len();

    let t = Instant::now();
    let conn = linli_sync::db::open_writer_conn(&path, migrate)?;
    let mut docs = Docs::open(&conn, owner)?;
    let open = t.elapsed();

    let t = Instant::now();
    // as the store's session reads it: the scope's key ranges, each
    // document with whether the hub acknowledged it
    let index = docs.scope_index(&conn, "S001", "hub")?;
    let open_docs = index.iter().filter(|(_, acked)| !acked).count();
    let index_time = t.elapsed();

    let today = first + Duration::days(DAYS - 1);
    let t = Instant::now();
    let n_today = docs
        .read(&conn, &DocId::store_ledger("S001", today), |d| {
            linli_shared::docs::ledger::read_sales(d).len()
        })?
        .unwrap_or(0);
    let load_today = t.elapsed();
    let t = Instant::now();
    docs.change(&conn, &DocId::store_ledger("S001", today), |d| {
        record_sale(
            d,
            &SaleFact {
                sale_id: "new".into(),
                ticket_no: "S001-x-9999".into(),
                created_at: String::new(),
                cashier: "ana".into(),
                total_fen: 1,
                lines: vec![],
                payments: vec![],
                member: false,
                ..Default::default()
            },
        )
    })?;
    let first_write = t.elapsed();

    println!(
        "year of history: {DAYS} days x {SALES_PER_DAY} sales = {} changes in {} documents",
        DAYS as usize * SALES_PER_DAY,
        index.len()
    );
    println!("  generated in              {:>10.2?}", generated);
    println!("  database size             {:>10.1} MB", size as f64 / 1e6);
    println!("  open + migrate + actor    {:>10.2?}", open);
    println!(
        "  sync index over all docs  {:>10.2?}  ({} not acknowledged by the hub)",
        index_time, open_docs
    );
    println!(
        "  load today's ledger       {:>10.2?}  ({} sales)",
        load_today, n_today
    );
    println!("  first write after load    {:>10.2?}", first_write);
    println!(
        "  ready to sell and sync    {:>10.2?}  (open + index + today's ledger)",
        open + index_time + load_today
    );
    Ok(())
}
