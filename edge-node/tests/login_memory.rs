//! A flood of logins does not pin memory: argon2 holds ~19 MiB per check,
//! and only two checks run at once, so the node's resident memory after 100
//! simultaneous wrong logins stays near where it was. One test in its own
//! binary, so no other test's memory is counted.

#![allow(clippy::unwrap_used)] // test helpers panic on setup failure by design

use linli_edge::app::{Role, system_clock};
use linli_edge::config::{Config, database_path};
use linli_edge::metrics::Metrics;

/// Resident memory of this process, in KiB (Linux).
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_100_logins_leaves_memory_flat() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = linli_edge::store::open_writer_conn(&database_path(dir.path())).unwrap();
        linli_edge::app::staff::add_staff(&conn, "ana", Role::Cashier, "1234").unwrap();
    }
    let app = linli_edge::node::open_app(
        &Config::default(),
        dir.path().to_owned(),
        system_clock(),
        &Metrics::new(),
    )
    .await
    .unwrap();
    // one login first, so what the first check sets up once is counted before
    app.login("ana", "1234").await.unwrap();
    let Some(before) = rss_kib() else {
        eprintln!("no /proc/self/status here; nothing to measure");
        return;
    };
    let mut set = tokio::task::JoinSet::new();
    for i in 0..100 {
        let app = app.clone();
        // different names, so the lockout does not cut the flood short
        set.spawn(async move { app.login(&format!("guess{i}"), "0000").await.is_err() });
    }
    while let Some(r) = set.join_next().await {
        assert!(r.unwrap());
    }
    let after = rss_kib().unwrap();
    let grown_mib = after.saturating_sub(before) / 1024;
    println!(
        "store node RSS: {} MiB before, {} MiB after 100 simultaneous logins (+{grown_mib} MiB)",
        before / 1024,
        after / 1024
    );
    assert!(
        grown_mib < 96,
        "RSS grew by {grown_mib} MiB: {before} KiB -> {after} KiB"
    );
}
