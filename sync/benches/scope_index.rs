//! What a session's index costs a hub that holds a chain's year: 1,000
//! stores x 365 days x 5 documents a day (the store's ledger, stock and
//! fulfilment, the hub's stock and orders for it), every one acknowledged by
//! its store but today's. A session's index lists the documents of one
//! store's scope its store has not acknowledged; each store sends one at
//! connect and about every 30 s.
//!
//! Prints, for one store: the index read as it was (the whole `docs` table
//! filtered, then two look-ups a document for its acknowledgement) and as
//! it is (`Docs::scope_index`: the scope's key ranges with the sync state
//! joined), p50 of several runs each, alternating, and checks they list the
//! same documents. Run: `cargo bench -p linli-sync --bench scope_index`.

use std::time::{Duration, Instant};

use anyhow::ensure;
use automerge::ChangeHash;
use chrono::NaiveDate;
use linli_shared::docs::{DocId, Owner};
use linli_sync::doc_store::{Docs, MIGRATION};
use rand::{Rng, SeedableRng};
use rusqlite::{Connection, params};

const STORES: usize = 1_000;
const DAYS: i64 = 365;
const RUNS: usize = 7;

fn migrate(c: &mut Connection) -> rusqlite::Result<()> {
    linli_sync::db::migrate(c, &[MIGRATION])
}

fn store_id(n: usize) -> String {
    format!("S{n:04}")
}

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("hub.db");
    let first = NaiveDate::from_ymd_opt(2025, 12, 5).ok_or_else(|| anyhow::anyhow!("date"))?;
    let today = first + chrono::Duration::days(DAYS - 1);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let started = Instant::now();
    {
        let mut conn = linli_sync::db::open_writer_conn(&path, migrate)?;
        let tx = conn.transaction()?;
        {
            let mut doc = tx.prepare("INSERT INTO docs(doc_id, heads) VALUES (?1, ?2)")?;
            let mut state =
                tx.prepare("INSERT INTO sync_states(doc_id, peer, state) VALUES (?1, ?2, ?3)")?;
            for n in 1..=STORES {
                let s = store_id(n);
                for d in 0..DAYS {
                    let day = first + chrono::Duration::days(d);
                    for id in [
                        DocId::store_ledger(&s, day),
                        DocId::store_stock(&s, day),
                        DocId::store_fulfilment(&s, day),
                        DocId::hub_stock(&s, day),
                        DocId::hub_orders(&s, day),
                    ] {
                        let heads: [u8; 32] = rng.r#gen();
                        doc.execute(params![id.as_str(), heads.to_vec()])?;
                        let mut shared = automerge::sync::State::new();
                        if day != today {
                            shared.shared_heads = vec![ChangeHash(heads)];
                        }
                        state.execute(params![id.as_str(), s, shared.encode()])?;
                    }
                }
            }
        }
        tx.commit()?;
    }
    let filled = started.elapsed();
    let size = std::fs::metadata(&path)?.len();

    let conn = linli_sync::db::open_writer_conn(&path, migrate)?;
    let docs = Docs::open(&conn, Owner::Hub)?;
    let store = store_id(STORES / 2);
    let whole_table = || -> anyhow::Result<Vec<DocId>> {
        let mut open = Vec::new();
        for e in docs.index(&conn, |d| d.in_scope_of(&store))? {
            if !docs.acknowledged(&conn, &e.doc, &store)? {
                open.push(e.doc);
            }
        }
        Ok(open)
    };
    let scoped = || -> anyhow::Result<Vec<DocId>> {
        Ok(docs
            .scope_index(&conn, &store, &store)?
            .into_iter()
            .filter(|(_, acked)| !acked)
            .map(|(e, _)| e.doc)
            .collect())
    };
    let (mut before, mut after) = (Vec::new(), Vec::new());
    let (mut listed_before, mut listed_after) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let t = Instant::now();
        listed_before = whole_table()?;
        before.push(t.elapsed());
        let t = Instant::now();
        listed_after = scoped()?;
        after.push(t.elapsed());
    }
    ensure!(
        listed_before == listed_after,
        "the two indexes differ: {} against {} documents",
        listed_before.len(),
        listed_after.len()
    );
    ensure!(
        listed_after.len() == 5,
        "the index lists {} documents, want today's 5",
        listed_after.len()
    );
    let p50 = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (b, a) = (p50(&mut before), p50(&mut after));
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "a hub holding {STORES} stores x {DAYS} days x 5 documents = {} documents ({:.0} MB), filled in {:.1} s",
        STORES * DAYS as usize * 5,
        size as f64 / 1e6,
        filled.as_secs_f64()
    );
    println!(
        "one store's index (its {} documents, {} not acknowledged), p50 of {RUNS}:",
        DAYS as usize * 5,
        listed_after.len()
    );
    println!(
        "  the whole table filtered, two look-ups a document (before): {:8.2} ms",
        ms(b)
    );
    println!(
        "  the scope's key ranges, the state joined (now):              {:8.2} ms  ({:.0}x faster)",
        ms(a),
        ms(b) / ms(a).max(1e-9)
    );
    println!(
        "  at one index per store every ~30 s, 1,000 stores: {:.0} % of a hub core before, {:.1} % now",
        ms(b) * STORES as f64 / 30.0 / 10.0,
        ms(a) * STORES as f64 / 30.0 / 10.0
    );
    Ok(())
}
