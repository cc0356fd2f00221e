//! The store's index against writes in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use linli_sync::session::SyncHost;

use super::{EdgeHost, SyncStatus};
use crate::app::App;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::StoreError;

/// A store on a fresh database whose clock reads `t0` plus the
/// milliseconds in the returned counter.
async fn open_at(t0: DateTime<Utc>) -> (tempfile::TempDir, App, Arc<AtomicI64>) {
    let dir = tempfile::tempdir().unwrap();
    let ms = Arc::new(AtomicI64::new(t0.timestamp_millis()));
    let m = ms.clone();
    let app = crate::node::open_app(
        &Config::default(),
        dir.path().to_owned(),
        Arc::new(move || DateTime::from_timestamp_millis(m.load(Ordering::Relaxed)).unwrap()),
        &Metrics::new(),
    )
    .await
    .unwrap();
    (dir, app, ms)
}

/// A fact is stamped before it commits, and its write may wait for the
/// writer behind others (milliseconds on a busy counter). An index taken
/// meanwhile neither lists it nor counts it as waiting, so it must report
/// up to before its stamp: otherwise the hub would take the index as the
/// store's report past that time (a group-buy deadline, say) without the
/// fact, and decide without it. Fails when the index says its clock's
/// time (`sent_at = now`): it reported 10 s past the stamp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_reports_up_to_before_a_write_still_waiting_for_the_writer() {
    let t0 = DateTime::parse_from_rfc3339("2026-12-04T02:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let (_dir, app, ms) = open_at(t0).await;
    let host = EdgeHost::new(app.clone(), Arc::new(SyncStatus::new(None)));
    // a first index opens the documents (a write); later ones only read
    let first = host.index().await.unwrap();
    assert_eq!(first.sent_at, Some(t0 - TimeDelta::milliseconds(1)));

    // the writer held by a long write, and a fact stamped now behind it
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let held = {
        let app = app.clone();
        tokio::spawn(async move {
            app.store()
                .write(move |_| {
                    let _ = started_tx.send(());
                    let _ = release_rx.recv();
                    Ok::<_, StoreError>(())
                })
                .await
        })
    };
    started_rx.await.unwrap();
    let fact = {
        let app = app.clone();
        tokio::spawn(async move { app.rebalance_rights().await })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.timeline.in_flight() == 0 {
        assert!(Instant::now() < deadline, "the write never took its stamp");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    // ten seconds on, the index still reports only up to before the stamp
    ms.fetch_add(10_000, Ordering::Relaxed);
    let during = host.index().await.unwrap();
    assert_eq!(during.sent_at, Some(t0 - TimeDelta::milliseconds(1)));

    // once the write committed, up to now
    release_tx.send(()).unwrap();
    held.await.unwrap().unwrap();
    fact.await.unwrap().unwrap();
    assert_eq!(app.timeline.in_flight(), 0);
    let after = host.index().await.unwrap();
    assert_eq!(
        after.sent_at,
        Some(t0 + TimeDelta::milliseconds(10_000 - 1))
    );
    app.store().shutdown().await;
}

/// A fact committed but not yet written to the documents (it waits in the
/// outbox) is not listed by an index: the index reports up to before the
/// fact's stamp, in the store's own time. The hub's reading, arrival less
/// the facts' wait, is later by the index's time in transit: `linli-sim`
/// seed 3375 had a store's index arrive 546 ms after it was sent, with a
/// counter commitment stamped 33 ms before a group-buy's deadline still
/// waiting, and the hub failed the campaign without it (7 customers of 7
/// needed). Fails when the index says its clock's time: 10 s past.
#[tokio::test]
async fn an_index_reports_up_to_before_the_oldest_fact_waiting() {
    let t0 = DateTime::parse_from_rfc3339("2026-12-04T02:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let (_dir, app, ms) = open_at(t0).await;
    let manager = crate::app::Actor {
        name: "mei".into(),
        role: crate::app::Role::Manager,
    };
    let csv = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../data/products.csv"))
        .unwrap();
    let one: String = csv.lines().take(2).map(|l| format!("{l}\n")).collect();
    app.import_catalog(&manager, one.into_bytes())
        .await
        .unwrap();
    app.drain_outbox().await.unwrap();
    let host = EdgeHost::new(app.clone(), Arc::new(SyncStatus::new(None)));
    ms.fetch_add(1_000, Ordering::Relaxed);
    assert_eq!(
        host.index().await.unwrap().sent_at,
        Some(t0 + TimeDelta::milliseconds(999))
    );

    // goods in at t0 + 1 s: its level waits in the outbox (nothing drains)
    let t1 = t0 + TimeDelta::seconds(1);
    app.receive_stock(
        &manager,
        None,
        crate::app::stock::ReceiptRequest {
            lines: vec![crate::app::stock::StockLineRequest {
                sku: "P00001".into(),
                qty: 40,
            }],
            note: None,
        },
    )
    .await
    .unwrap();
    ms.fetch_add(10_000, Ordering::Relaxed);
    let index = host.index().await.unwrap();
    assert_eq!(index.sent_at, Some(t1 - TimeDelta::milliseconds(1)));
    assert_eq!(index.facts_waiting, Duration::from_secs(10));

    // written to the documents, it is listed: up to now
    app.drain_outbox().await.unwrap();
    let index = host.index().await.unwrap();
    assert_eq!(
        index.sent_at,
        Some(t1 + TimeDelta::milliseconds(10_000 - 1))
    );
    assert_eq!(index.facts_waiting, Duration::ZERO);
    app.store().shutdown().await;
}
