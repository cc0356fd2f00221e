//! The transactional outbox (issue 9): a sale's facts commit with the sale
//! and reach the store's documents later, in one change for many facts,
//! exactly once — also when the node stopped before writing them.

#![allow(clippy::unwrap_used)] // test helpers panic on setup failure by design

use automerge::ReadDoc;
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
