//! KPI queries over a simulated year, next to a raw read baseline measured
//! in the same run:
//!
//! - the tables are filled through the ledger projection's own functions
//!   (`projection::project_sales`, `projection::project_refunds`,
//!   `kpis::project_write_offs`), in bulk, one transaction per store;
//! - 20 stores (regions of 5) with `KPI_BENCH_SALES` sales a store a day
//!   (default 120), and 1,000 stores (regions of 50) with a tenth of that;
//! - per query kind, p50/p99 of `Hub::kpis`: one store's month, a region's
//!   month (the goal: p99 < 100 ms), a region's year by month, the whole
//!   chain's month;
//! - the baseline: the same region's month of sales read raw
//!   (`SELECT total_fen, lines … WHERE store_id = ? AND day BETWEEN`),
//!   no parsing, no formulas.
//!
//! The reference identities (`data/identities.csv`) are imported, so each
//! query ties purchases to people as a hub with customers does.
//!
//! Online orders are not filled (their rows are written with the hub's
//! documents, not a bulk function); their load per query is of the same
//! kind as the sales'. Run with `cargo bench -p linli-hub --bench kpi_bench`.

#![allow(clippy::unwrap_used)] // a bench: a failed setup step should stop it

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use chrono::{Days, FixedOffset, NaiveDate, Utc};
use linli_hub::app::kpis::{KpiScope, project_write_offs};
use linli_hub::app::projection::{project_refunds, project_sales};
use linli_hub::auth::{Role, User};
use linli_hub::hub::{Hub, HubPaths, open_conn};
use linli_shared::docs::ledger::{MovementFact, RefundFact, SaleFact, SaleLineFact};
use linli_shared::kpi::{By, Period};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SKUS: [(&str, i64); 4] = [
    ("P00001", 1950),
    ("P00007", 890),
    ("P00009", 450),
    ("P00010", 1280),
];

fn ts(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Fills a year of `stores` stores with `per_day` sales each a day.
fn fill(paths: &HubPaths, stores: usize, per_day: usize, year: NaiveDate) -> Duration {
    let mut c = open_conn(&paths.db()).unwrap();
    let cst = FixedOffset::east_opt(8 * 3600).unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let started = Instant::now();
    for s in 0..stores {
        let store = format!("S{:04}", s + 1);
        let tx = c.transaction().unwrap();
        for d in 0..365u64 {
            let day = year + Days::new(d);
            let open = day
                .and_hms_opt(8, 0, 0)
                .unwrap()
                .and_local_timezone(cst)
                .unwrap()
                .to_utc();
            let mut sales = Vec::with_capacity(per_day);
            let mut refunds = Vec::new();
            for n in 0..per_day {
                let at = open + chrono::Duration::seconds((n * 40_000 / per_day.max(1)) as i64);
                let (sku, price) = SKUS[rng.gen_range(0..SKUS.len())];
                let qty = rng.gen_range(1..4);
                let id = format!("{store}-{d}-{n}");
                if rng.gen_bool(0.03) {
                    refunds.push(RefundFact {
                        refund_id: format!("R{id}"),
                        sale_id: id.clone(),
                        amount_fen: price,
                        staff: "manager".into(),
                        at: ts(at),
                        ..RefundFact::default()
                    });
                }
                sales.push(SaleFact {
                    sale_id: id.clone(),
                    ticket_no: id,
                    created_at: ts(at),
                    cashier: format!("c{}", n % 3),
                    total_fen: qty * price,
                    lines: vec![SaleLineFact {
                        sku: sku.into(),
                        qty,
                        total_fen: qty * price,
                        unit_price_fen: price,
                    }],
                    member_hash: if rng.gen_bool(0.5) {
                        format!("h{}", rng.gen_range(0..2000))
                    } else {
                        String::new()
                    },
                    ..SaleFact::default()
                });
            }
            let waste = vec![MovementFact {
                movement_id: format!("W{store}-{d}"),
                sku: "P00007".into(),
                kind: "waste".into(),
                delta: -2,
                reason: "expired".into(),
                ref_id: String::new(),
                staff: "c0".into(),
                at: ts(open + chrono::Duration::hours(13)),
            }];
            let day = day.to_string();
            project_sales(&tx, &store, &day, &sales).unwrap();
            project_refunds(&tx, &store, &refunds).unwrap();
            project_write_offs(&tx, &store, &day, &waste).unwrap();
        }
        tx.commit().unwrap();
    }
    started.elapsed()
}

fn stores(from: usize, n: usize) -> Vec<String> {
    (from..from + n).map(|s| format!("S{:04}", s + 1)).collect()
}

fn run(
    rt: &tokio::runtime::Runtime,
    n_stores: usize,
    region: usize,
    per_day: usize,
    rounds: usize,
) {
    let dir = tempfile::tempdir().unwrap();
    let paths = HubPaths {
        data_dir: dir.path().to_owned(),
    };
    linli_sync::db::create_private_dir(&paths.data_dir).unwrap();
    let year = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    let filled = fill(&paths, n_stores, per_day, year);
    let rows = n_stores * per_day * 365;
    println!(
        "{n_stores} stores, {per_day} sales/store/day: {rows} sales filled in {:.1} s ({:.0} rows/s)",
        filled.as_secs_f64(),
        rows as f64 / filled.as_secs_f64()
    );
    let hub = rt.block_on(async { Hub::open(&paths).unwrap() });
    // the reference identities, as a hub holds its customers: every query
    // ties purchases to people through them
    let admin = User {
        name: "admin".into(),
        role: Role::Admin,
        store_id: None,
        region: None,
    };
    rt.block_on(hub.import_identities(&admin, common::data("identities.csv")))
        .unwrap();
    let offset = FixedOffset::east_opt(8 * 3600).unwrap();
    let nov = Period::new(
        NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
        NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
        offset,
    );
    let whole = Period::new(year, NaiveDate::from_ymd_opt(2026, 12, 31).unwrap(), offset);
    let kinds: Vec<(&str, Vec<String>, Period, Option<By>)> = vec![
        ("one store, a month", stores(0, 1), nov, None),
        ("a region, a month", stores(0, region), nov, Some(By::Day)),
        (
            "a region, a year by month",
            stores(0, region),
            whole,
            Some(By::Month),
        ),
        ("the chain, a month", stores(0, n_stores), nov, None),
    ];
    // the baseline: the region's month of sales rows read raw
    let region_ids = stores(0, region);
    let mut base = Vec::new();
    for _ in 0..rounds {
        let ids = region_ids.clone();
        let t = Instant::now();
        let n: usize = rt.block_on(async {
            hub.store
                .read(move |c| {
                    let mut n = 0;
                    for s in &ids {
                        let mut stmt = c.prepare_cached(
                            "SELECT total_fen, lines FROM hub_sales WHERE store_id = ?1 AND day >= ?2 AND day <= ?3",
                        )?;
                        let mut rows = stmt.query(rusqlite::params![s, "2026-11-01", "2026-11-30"])?;
                        while let Some(r) = rows.next()? {
                            let _: i64 = r.get(0)?;
                            let _: String = r.get(1)?;
                            n += 1;
                        }
                    }
                    Ok::<_, linli_sync::db::StoreError>(n)
                })
                .await
                .unwrap()
        });
        assert!(n > 0);
        base.push(t.elapsed());
    }
    println!(
        "  baseline, a region's month of sales read raw: p50 {:.1} ms, p99 {:.1} ms",
        common::pct(&mut base, 0.5),
        common::pct(&mut base, 0.99)
    );
    for (name, ids, period, by) in kinds {
        let rounds = if ids.len() > 100 || period.days() > 60 {
            rounds.min(5)
        } else {
            rounds
        };
        let mut lat = Vec::new();
        let mut gmv = 0;
        for _ in 0..rounds {
            let t = Instant::now();
            let r = rt
                .block_on(hub.kpis(ids.clone(), KpiScope::default(), period, by, Utc::now()))
                .unwrap();
            lat.push(t.elapsed());
            gmv = r.totals.gmv_fen;
        }
        println!(
            "  {name} ({} stores, {} rounds): p50 {:.1} ms, p99 {:.1} ms (GMV {} yuan)",
            ids.len(),
            rounds,
            common::pct(&mut lat, 0.5),
            common::pct(&mut lat, 0.99),
            gmv / 100
        );
    }
}

fn main() {
    let per_day: usize = std::env::var("KPI_BENCH_SALES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    run(&rt, 20, 5, per_day, 30);
    run(&rt, 1000, 50, (per_day / 10).max(1), 10);
}
