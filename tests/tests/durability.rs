//! Durability is asserted, not assumed: `kill -9` alone cannot tell a
//! missing fsync (the OS still holds the pages), so this reads the pragmas
//! that make a commit durable from the connection that commits — the
//! writer thread's own — of the store node and of the hub, each opened the
//! way its binary opens it. WAL with `synchronous=FULL`: `COMMIT` returns
//! only once the WAL is on disk.

#![allow(clippy::unwrap_used)] // test code: a failed setup step should panic

use linli_edge::config::Config;
use linli_edge::node::Node;
use linli_hub::hub::HubPaths;
use linli_hub::server::HubServer;
use linli_sync::db::{Store, StoreError};
use tokio_util::sync::CancellationToken;

/// `synchronous = FULL` as SQLite reports it.
const FULL: i64 = 2;

/// `journal_mode` and `synchronous` as the writer thread's connection has them.
async fn writer_pragmas(store: &Store) -> (String, i64) {
    store
        .write(|c| {
            let mode: String = c.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
            let sync: i64 = c.pragma_query_value(None, "synchronous", |r| r.get(0))?;
            Ok::<_, StoreError>((mode, sync))
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_and_the_hub_commit_with_wal_and_synchronous_full() {
    let dir = tempfile::tempdir().unwrap();

    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    let node = Node::start(config, dir.path().join("store"), CancellationToken::new())
        .await
        .unwrap();
    let (mode, sync) = writer_pragmas(node.app.store()).await;
    assert_eq!(
        (mode.to_lowercase().as_str(), sync),
        ("wal", FULL),
        "the store's writer"
    );
    node.shutdown().await;

    let paths = HubPaths {
        data_dir: dir.path().join("hub"),
    };
    let hub = HubServer::start(
        &paths,
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        &[],
    )
    .await
    .unwrap();
    let (mode, sync) = writer_pragmas(&hub.hub.store).await;
    assert_eq!(
        (mode.to_lowercase().as_str(), sync),
        ("wal", FULL),
        "the hub's writer"
    );
    hub.shutdown().await;
}
