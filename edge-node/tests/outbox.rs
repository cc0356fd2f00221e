//! The transactional outbox (issue 9): a sale's facts commit with the sale
//! and reach the store's documents later, in one change for many facts,
//! exactly once — also when the node stopped before writing them.

#![allow(clippy::unwrap_used)] // test helpers panic on setup failure by design

use linli_edge::app::idempotency::IdempotencyKey;
use linli_edge::app::sales::{PaymentRequest, SaleLineRequest, SaleRequest};
use linli_edge::app::{Actor, App, Role};
use linli_edge::config::Config;
use linli_edge::metrics::Metrics;
use linli_edge::store::StoreError;
use linli_shared::docs::DocId;
use linli_shared::docs::ledger::read_sales;
use linli_shared::sale::PaymentMethod;

async fn open(dir: &std::path::Path) -> App {
    let config = Config {
        max_change_fen: 10_000_000,
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

/// The sale ids in today's ledger (every part) and the ledger's changes.
async fn ledger(app: &App) -> (Vec<String>, u64) {
    let sync = app.sync_ctx().clone();
    let base = DocId::store_ledger(&app.settings().store_id, app.business_day(app.now()));
    app.store()
        .write(move |c| {
            sync.with_docs(c, |docs| {
                let (mut sales, mut changes) = (Vec::new(), 0);
                for (id, n) in docs.parts(c, &base)? {
                    let s = docs.read(c, &id, read_sales)?.unwrap_or_default();
                    sales.extend(s.into_iter().map(|s| s.sale_id));
                    changes += n;
                }
                Ok((sales, changes))
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
    let (before, changes_before) = ledger(&app).await;

    let mut sold = Vec::new();
    for i in 0..5 {
        sold.push(sell(&app, &format!("outbox-{i}"), "P00001").await);
    }
    // acknowledged and durable, not yet in the documents
    assert!(outbox_rows(&app).await >= 5);
    let (now, _) = ledger(&app).await;
    assert_eq!(now, before, "nothing reaches the documents before a drain");

    // the node stops before its drainer ran
    app.store().shutdown().await;
    drop(app);
    let app = open(dir.path()).await;
    assert!(outbox_rows(&app).await >= 5, "the outbox survives a stop");

    let drained = app.drain_outbox().await.unwrap();
    assert!(drained >= 5, "{drained} rows drained");
    assert_eq!(outbox_rows(&app).await, 0);
    let (after, changes_after) = ledger(&app).await;
    for id in &sold {
        assert_eq!(
            after.iter().filter(|s| *s == id).count(),
            1,
            "sale {id} in the ledger once"
        );
    }
    assert_eq!(
        changes_after,
        changes_before + 1,
        "five sales, one change of the ledger"
    );

    // draining again writes nothing
    assert_eq!(app.drain_outbox().await.unwrap(), 0);
    assert_eq!(ledger(&app).await, (after, changes_after));
    app.store().shutdown().await;
}
