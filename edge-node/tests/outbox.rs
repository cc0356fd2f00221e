//! The transactional outbox (issue 9): a sale's facts commit with the sale
//! and reach the store's documents later, in one change for many facts,
//! exactly once — also when the node stopped before writing them.

#![allow(clippy::unwrap_used)] // test helpers panic on setup failure by design

use automerge::ReadDoc;
use linli_edge::app::idempotency::IdempotencyKey;
use linli_edge::app::sales::{PaymentRequest, SaleLineRequest, SaleRequest};
use linli_edge::app::stock::{ReceiptRequest, StockLineRequest};
use linli_edge::app::{Actor, App, Role};
use linli_edge::config::Config;
use linli_edge::metrics::Metrics;
use linli_edge::store::StoreError;
use linli_shared::docs::DocId;
use linli_shared::docs::ledger::read_sales;
use linli_shared::sale::PaymentMethod;

async fn open(dir: &std::path::Path) -> App {
    open_with_parts(dir, linli_shared::docs::PART_CHANGES).await
}

async fn open_with_parts(dir: &std::path::Path, part_changes: u64) -> App {
    let config = Config {
        max_change_fen: 10_000_000,
        part_changes,
        ..Config::default()
    };
    linli_edge::node::open_app(
        &config,
        dir.to_owned(),
        linli_edge::app::system_clock(),
        &Metrics::new(),
    )
    .await
    .unwrap()
}

fn cashier() -> Actor {
    Actor {
        name: "ana".into(),
        role: Role::Cashier,
    }
}

async fn sell(app: &App, key: &str, sku: &str) -> String {
    let req = SaleRequest {
        lines: vec![SaleLineRequest {
            sku: Some(sku.into()),
            qty: Some(1),
            barcode: None,
        }],
        payments: vec![PaymentRequest {
            method: PaymentMethod::Cash,
            amount_fen: 10_000_000,
        }],
        member_phone: None,
        coupon: None,
    };
    let (receipt, replayed) = app
        .record_sale(&cashier(), IdempotencyKey::parse(key).unwrap(), req)
        .await
        .unwrap();
    assert!(!replayed);
    receipt.sale_id
}

/// Rows waiting in the outbox.
async fn outbox_rows(app: &App) -> i64 {
    app.store()
        .read(|c| {
            c.query_row("SELECT count(*) FROM doc_outbox", [], |r| r.get(0))
                .map_err(StoreError::from)
        })
        .await
        .unwrap()
}

/// The sale ids in today's ledger (every part), the records counted towards
/// its parts' limits, and the operations in the newest change of its last part.
async fn ledger(app: &App) -> (Vec<String>, u64, usize) {
    let sync = app.sync_ctx().clone();
    let base = DocId::store_ledger(&app.settings().store_id, app.business_day(app.now()));
    app.store()
        .write(move |c| {
            sync.with_docs(c, |docs| {
                let (mut sales, mut counted, mut newest) = (Vec::new(), 0, 0);
                for (id, n) in docs.parts(c, &base)? {
                    // the stored heads: one 32-byte hash after a change
                    let heads: Vec<u8> = c
                        .query_row(
                            "SELECT heads FROM docs WHERE doc_id = ?1",
                            [id.as_str()],
                            |r| r.get(0),
                        )
                        .map_err(StoreError::from)?;
                    let (s, ops) = docs
                        .read(c, &id, |d| {
                            let ops = match <[u8; 32]>::try_from(heads.as_slice()) {
                                Ok(h) => d
                                    .get_change_by_hash(&automerge::ChangeHash(h))
                                    .map_or(0, |c| c.len()),
                                Err(_) => 0,
                            };
                            (read_sales(d), ops)
                        })?
                        .unwrap_or_default();
                    sales.extend(s.into_iter().map(|s| s.sale_id));
                    counted += n;
                    newest = ops;
                }
                Ok((sales, counted, newest))
            })
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn facts_wait_in_the_outbox_and_reach_the_documents_once_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path()).await;
    linli_edge::demo::seed(&app).await.unwrap();
    // seeding drained nothing: its facts wait too
    app.drain_outbox().await.unwrap();
    let (before, counted_before, _) = ledger(&app).await;

    let mut sold = Vec::new();
    for i in 0..5 {
        sold.push(sell(&app, &format!("outbox-{i}"), "P00001").await);
    }
    // acknowledged and durable, not yet in the documents
    assert!(outbox_rows(&app).await >= 5);
    let (now, _, _) = ledger(&app).await;
    assert_eq!(now, before, "nothing reaches the documents before a drain");

    // the node stops before its drainer ran
    app.store().shutdown().await;
    drop(app);
    let app = open(dir.path()).await;
    assert!(outbox_rows(&app).await >= 5, "the outbox survives a stop");

    let drained = app.drain_outbox().await.unwrap();
    assert!(drained >= 5, "{drained} rows drained");
    assert_eq!(outbox_rows(&app).await, 0);
    let (after, counted_after, newest_ops) = ledger(&app).await;
    for id in &sold {
        assert_eq!(
            after.iter().filter(|s| *s == id).count(),
            1,
            "sale {id} in the ledger once"
        );
    }
    // one change holds the five sales, and counts five towards the part
    assert!(newest_ops >= 5, "the newest change has {newest_ops} ops");
    assert_eq!(counted_after, counted_before + 5);

    // draining again writes nothing
    assert_eq!(app.drain_outbox().await.unwrap(), 0);
    assert_eq!(ledger(&app).await, (after, counted_after, newest_ops));
    app.store().shutdown().await;
}

/// A drain of more facts than the open part takes fills it to its limit
/// and goes on in the next part, so no part outgrows the limit (a part
/// written while the link was down then goes to the hub whole).
#[tokio::test]
async fn a_drain_fills_the_open_part_and_goes_on_in_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let app = open_with_parts(dir.path(), 4).await;
    // one product, its stock in: one movement in the ledger
    let manager = Actor {
        name: "mei".into(),
        role: Role::Manager,
    };
    let csv = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../data/products.csv"))
        .unwrap();
    let two_lines: String = csv.lines().take(2).map(|l| format!("{l}\n")).collect();
    app.import_catalog(&manager, two_lines.into_bytes())
        .await
        .unwrap();
    app.receive_stock(
        &manager,
        None,
        ReceiptRequest {
            lines: vec![StockLineRequest {
                sku: "P00001".into(),
                qty: 40,
            }],
            note: None,
        },
    )
    .await
    .unwrap();
    app.drain_outbox().await.unwrap();
    let parts_before = ledger_parts(&app).await;
    let mut sold = Vec::new();
    for i in 0..9 {
        sold.push(sell(&app, &format!("parts-{i}"), "P00001").await);
    }
    app.drain_outbox().await.unwrap();
    let parts = ledger_parts(&app).await;
    // one movement, then nine sales in one drain: parts of 4, 4 and 2
    // records, none more
    assert_eq!(
        parts_before.iter().map(|p| p.1).collect::<Vec<_>>(),
        [1],
        "{parts_before:?}"
    );
    assert_eq!(
        parts.iter().map(|p| p.1).collect::<Vec<_>>(),
        [4, 4, 2],
        "{parts:?}"
    );
    let (all, _, _) = ledger(&app).await;
    for id in &sold {
        assert_eq!(all.iter().filter(|s| *s == id).count(), 1, "sale {id} once");
    }
    app.store().shutdown().await;
}

/// The day's ledger parts and the records each took.
async fn ledger_parts(app: &App) -> Vec<(String, u64)> {
    let sync = app.sync_ctx().clone();
    let base = DocId::store_ledger(&app.settings().store_id, app.business_day(app.now()));
    app.store()
        .write(move |c| {
            sync.with_docs(c, |docs| {
                Ok(docs
                    .parts(c, &base)?
                    .into_iter()
                    .map(|(id, n)| (id.as_str().to_owned(), n))
                    .collect())
            })
        })
        .await
        .unwrap()
}

/// Once the link went down, the next drain starts new parts: the hub holds
/// some of the open part, and the outage's facts go to it as whole parts.
#[tokio::test]
async fn after_the_link_went_down_the_next_drain_starts_new_parts() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path()).await;
    linli_edge::demo::seed(&app).await.unwrap();
    sell(&app, "before-cut", "P00001").await;
    app.drain_outbox().await.unwrap();
    let before = ledger_parts(&app).await;
    app.sync_ctx().roll_parts();
    sell(&app, "after-cut-1", "P00001").await;
    app.drain_outbox().await.unwrap();
    sell(&app, "after-cut-2", "P00001").await;
    app.drain_outbox().await.unwrap();
    let after = ledger_parts(&app).await;
    assert_eq!(after.len(), before.len() + 1, "{before:?} -> {after:?}");
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "the open part is not written again"
    );
    assert_eq!(
        after.last().map(|p| p.1),
        Some(2),
        "both sales in the new part"
    );
    app.store().shutdown().await;
}

/// `/health` tells what waits in the outbox: a store with a hub that has
/// not yet confirmed its database after a start holds its facts (saved,
/// not in any document, so not in `pending_docs`) and says so; once
/// confirmed they drain and the count is 0. A store without a hub never
/// holds.
#[tokio::test]
async fn health_shows_facts_held_in_the_outbox_until_the_hub_confirms() {
    use linli_edge::uplink::SyncStatus;

    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path()).await;
    linli_edge::demo::seed(&app).await.unwrap();
    app.drain_outbox().await.unwrap();
    let status = SyncStatus::new(Some("127.0.0.1:1".parse().unwrap()));
    let docs_before = status.health(&app).await.pending_docs;
    app.sync_ctx().await_confirmation();
    sell(&app, "k-1", "P00001").await;
    sell(&app, "k-2", "P00001").await;
    assert_eq!(app.drain_outbox().await.unwrap(), 0, "held: nothing drains");
    let h = status.health(&app).await;
    assert_eq!(
        (h.outbox_facts, h.outbox_held, h.pending_docs),
        (outbox_rows(&app).await, true, docs_before),
        "{h:?}"
    );
    assert!(h.outbox_facts >= 2, "{h:?}");

    app.sync_ctx().confirm();
    assert!(app.drain_outbox().await.unwrap() >= 2);
    let h = status.health(&app).await;
    assert_eq!((h.outbox_facts, h.outbox_held), (0, false), "{h:?}");

    let standalone = SyncStatus::new(None);
    assert!(!standalone.health(&app).await.outbox_held);
}
