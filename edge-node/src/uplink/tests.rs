//! The store's index against writes in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use linli_sync::session::SyncHost;

use linli_shared::docs::DocId;

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

fn manager() -> crate::app::Actor {
    crate::app::Actor {
        name: "mei".into(),
        role: crate::app::Role::Manager,
    }
}

/// The reference catalog's first product, imported by the manager.
async fn import_one_product(app: &App) {
    let csv = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../data/products.csv"))
        .unwrap();
    let one: String = csv.lines().take(2).map(|l| format!("{l}\n")).collect();
    app.import_catalog(&manager(), one.into_bytes())
        .await
        .unwrap();
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
    let manager = manager();
    import_one_product(&app).await;
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

/// The hub's side of a recovery, as plain automerge: each document's copy
/// (the old PC's, or none) and this session's sync state with the store.
struct HubCopies {
    docs: std::collections::BTreeMap<DocId, (automerge::AutoCommit, automerge::sync::State)>,
}

impl HubCopies {
    fn copy(&mut self, doc: &DocId) -> &mut (automerge::AutoCommit, automerge::sync::State) {
        self.docs
            .entry(doc.clone())
            .or_insert_with(|| (automerge::AutoCommit::new(), automerge::sync::State::new()))
    }

    /// A new session: what each side has acknowledged stays (the shared
    /// heads are what the hub persists), the rest of the state goes.
    fn new_session(&mut self) {
        for (_, state) in self.docs.values_mut() {
            *state = automerge::sync::State::decode(&state.encode()).unwrap();
        }
    }

    /// Messages back and forth about `doc` until neither side has more,
    /// starting with the store's (a round the store opens).
    async fn round(&mut self, host: &EdgeHost, doc: &DocId) {
        use automerge::sync::SyncDoc;
        loop {
            let mut moved = false;
            if let Some(m) = host.generate(doc.clone()).await.unwrap() {
                let (d, state) = self.copy(doc);
                let m = automerge::sync::Message::decode(&m).unwrap();
                d.sync().receive_sync_message(state, m).unwrap();
                moved = true;
            }
            let (d, state) = self.copy(doc);
            if let Some(m) = d.sync().generate_sync_message(state) {
                host.receive(doc.clone(), m.encode()).await.unwrap();
                moved = true;
            }
            if !moved {
                return;
            }
        }
    }
}

/// A new PC recovering its store's documents asks for a day's ledger part
/// by part: each part that arrives whole asks for the next. A session that
/// ends mid-recovery leaves parts here whole; the next session's first
/// round brings the hub's answer about such a part before it is asked
/// again, and once asked no round opens for it (its heads are the same on
/// both sides, and the hub's index leaves out what the store
/// acknowledged). The hub's word in that answer must settle it: without
/// it the recovery waited for good (`linli-sim` seed 30007, 5 stores ×
/// 1,000 steps, a replaced PC whose sessions broke four times).
#[tokio::test]
async fn a_part_the_hub_answered_before_it_was_asked_settles_once_asked() {
    let t0 = DateTime::parse_from_rfc3339("2026-12-04T02:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    // the old PC: a sale in part 0 of the day's ledger, one in part 1
    let (_old_dir, old, _) = open_at(t0).await;
    let manager = manager();
    import_one_product(&old).await;
    for key in ["sale-a", "sale-b"] {
        let req = crate::app::sales::SaleRequest {
            lines: vec![crate::app::sales::SaleLineRequest {
                sku: Some("P00001".into()),
                qty: Some(1),
                barcode: None,
            }],
            payments: vec![crate::app::sales::PaymentRequest {
                method: linli_shared::sale::PaymentMethod::Cash,
                amount_fen: 5_000,
            }],
            member_phone: None,
            coupon: None,
        };
        old.record_sale(
            &manager,
            crate::app::idempotency::IdempotencyKey::parse(key).unwrap(),
            req,
        )
        .await
        .unwrap();
        old.drain_outbox().await.unwrap();
        old.sync_ctx().roll_parts();
    }
    let store_id = old.settings().store_id.clone();
    let today = old.business_day(t0);
    let ledger = DocId::store_ledger(&store_id, today);
    let (p0, p1) = (ledger.part(0), ledger.part(1));
    // the hub holds what the old PC sent
    let mut hub = HubCopies {
        docs: Default::default(),
    };
    let sync = old.sync_ctx().clone();
    let copies = old
        .store()
        .read(move |c| {
            sync.with_docs(c, |docs| {
                let mut out = Vec::new();
                for (id, _) in docs
                    .parts(c, &DocId::store_ledger(&store_id, today))?
                    .into_iter()
                    .chain(docs.parts(c, &DocId::store_stock(&store_id, today))?)
                {
                    let bytes = docs.read(c, &id, |d| d.clone().save())?.unwrap();
                    out.push((id, bytes));
                }
                Ok(out)
            })
        })
        .await
        .unwrap();
    assert!(copies.iter().any(|(id, _)| *id == p1), "{copies:?}");
    for (id, bytes) in copies {
        hub.docs.insert(
            id,
            (
                automerge::AutoCommit::load(&bytes).unwrap(),
                automerge::sync::State::new(),
            ),
        );
    }
    old.store().shutdown().await;

    // the new PC: its first session brings parts 0 and 1, then ends
    let (_dir, app, _) = open_at(t0).await;
    assert!(app.init_recovery().await.unwrap());
    let first = EdgeHost::new(app.clone(), Arc::new(SyncStatus::new(None)));
    first.index().await.unwrap();
    hub.round(&first, &p0).await;
    hub.round(&first, &p1).await;
    first.session_ended().await;
    hub.new_session();
    assert!(app.sync_ctx().recovering());

    // the next session: the store lists both parts (today's), the hub
    // neither (acknowledged); its answer about part 1 comes first
    let host = EdgeHost::new(app.clone(), Arc::new(SyncStatus::new(None)));
    host.index().await.unwrap();
    hub.round(&host, &p1).await;
    hub.round(&host, &p0).await;
    // part 0 settled and asked for part 1: a round opens for nothing new
    hub.round(&host, &p1).await;
    // everything else, the hub answering what it holds (nothing, mostly)
    let mut asked = crate::app::recovery::wanted(&app.settings().store_id, today);
    asked.extend((1..4).flat_map(|n| {
        [
            ledger.part(n),
            DocId::store_stock(&app.settings().store_id, today).part(n),
        ]
    }));
    for doc in &asked {
        hub.round(&host, doc).await;
    }
    assert!(
        !app.sync_ctx().recovering(),
        "still recovering with every document at the hub's heads"
    );
    let sales: i64 = app
        .store()
        .read(|c| {
            c.query_row("SELECT count(*) FROM sales", [], |r| r.get(0))
                .map_err(StoreError::from)
        })
        .await
        .unwrap();
    assert_eq!(sales, 2);
    app.store().shutdown().await;
}
