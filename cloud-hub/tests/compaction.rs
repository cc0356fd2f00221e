//! The hub compacts its documents off the writer (issue 11): a day's
//! orders document whose chunks outgrow its snapshot is saved whole on the
//! compactor thread, and the snapshot replaces only the chunks it holds;
//! after a restart the document still holds every order.

#![allow(clippy::unwrap_used)] // test code

mod common;

use std::time::{Duration, Instant};

use automerge::ReadDoc;
use axum::http::StatusCode;
use linli_shared::docs::DocId;
use serde_json::json;

/// (snapshots, incremental chunks) of `doc` in the hub's database.
fn chunks(db: &std::path::Path, doc: &str) -> (i64, i64) {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row(
        "SELECT count(*) FILTER (WHERE kind = 'snapshot'), count(*) FILTER (WHERE kind = 'incremental')
         FROM doc_chunks WHERE doc_id = ?1",
        [doc],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_orders_document_is_compacted_off_the_writer_and_keeps_every_order() {
    let h = common::hub().await;
    common::lend(&h.hub, "S001", &[("P00001", 100_000)]).await;
    let mut placed = Vec::new();
    let mut doc: Option<String> = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    // orders until the compactor has written a snapshot of the document
    loop {
        assert!(
            Instant::now() < deadline,
            "no snapshot after {} orders",
            placed.len()
        );
        if let Some(d) = &doc
            && chunks(&h.db_path(), d).0 > 0
        {
            break;
        }
        if placed.len() >= 600 {
            // enough written: the compactor has its copy, wait for it
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        for _ in 0..10 {
            let n = placed.len();
            let body = json!({"channel": "miniapp", "customer": {"phone": format!("139{n:08}")},
                "fulfilment": "pickup", "store_id": "S001", "lines": [{"sku": "P00001", "qty": 1}]});
            let (s, v) = h
                .post_keyed("/api/v1/orders", &h.admin, &format!("c-{n}"), body)
                .await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
            placed.push(v["order_id"].as_str().unwrap().to_owned());
        }
        if doc.is_none() {
            let c = rusqlite::Connection::open(h.db_path()).unwrap();
            doc = c
                .query_row(
                    "SELECT doc_id FROM docs WHERE doc_id LIKE 'hub/S001/orders/%'",
                    [],
                    |r| r.get(0),
                )
                .ok();
        }
    }
    let doc = doc.unwrap();
    let (snapshots, incremental) = chunks(&h.db_path(), &doc);
    assert_eq!(snapshots, 1);
    assert!(
        (incremental as usize) < placed.len() / 10,
        "{incremental} chunks left beside the snapshot after {} orders",
        placed.len()
    );

    // one more order after the snapshot, then a restart: every order is in
    // the document read back from the snapshot and the chunks after it
    let body = json!({"channel": "miniapp", "customer": {"phone": "13800000000"},
        "fulfilment": "pickup", "store_id": "S001", "lines": [{"sku": "P00001", "qty": 1}]});
    let (s, v) = h
        .post_keyed("/api/v1/orders", &h.admin, "c-last", body)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    placed.push(v["order_id"].as_str().unwrap().to_owned());
    let h = h.reopen().await;
    let id = DocId::parse(&doc).unwrap();
    let mut held: Vec<String> = h
        .hub
        .with_docs(move |c, docs| {
            Ok(docs
                .read(c, &id, |d| match d.get(automerge::ROOT, "orders") {
                    Ok(Some((_, orders))) => d.keys(&orders).collect(),
                    _ => Vec::new(),
                })?
                .unwrap_or_default())
        })
        .await
        .unwrap();
    held.sort();
    placed.sort();
    assert_eq!(held, placed);
}
