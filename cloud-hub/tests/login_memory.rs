//! A flood of logins does not pin the hub's memory: argon2 holds ~19 MiB per
//! check and only two checks run at once, so resident memory after 100
//! simultaneous wrong logins stays near where it was. One test in its own
//! binary, so no other test's memory is counted.

#![allow(clippy::unwrap_used)] // test code

use linli_hub::auth::Role;
use linli_hub::hub::{Hub, HubPaths, add_user, open_conn};

/// Resident memory of this process, in KiB (Linux).
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_100_logins_leaves_memory_flat() {
    let dir = tempfile::tempdir().unwrap();
    let paths = HubPaths {
        data_dir: dir.path().to_owned(),
    };
    add_user(
        &open_conn(&paths.db()).unwrap(),
        "admin",
        Role::Admin,
        "admin-password",
    )
    .unwrap();
    let hub = Hub::open(&paths).unwrap();
    hub.login("admin", "admin-password").await.unwrap();
    let Some(before) = rss_kib() else {
        eprintln!("no /proc/self/status here; nothing to measure");
        return;
    };
    let mut set = tokio::task::JoinSet::new();
    for i in 0..100 {
        let hub = hub.clone();
        // different names, so the lockout does not cut the flood short
        set.spawn(async move { hub.login(&format!("guess{i}"), "wrong-pass").await.is_err() });
    }
    while let Some(r) = set.join_next().await {
        assert!(r.unwrap());
    }
    let after = rss_kib().unwrap();
    let grown_mib = after.saturating_sub(before) / 1024;
    println!(
        "hub RSS: {} MiB before, {} MiB after 100 simultaneous logins (+{grown_mib} MiB)",
        before / 1024,
        after / 1024
    );
    assert!(
        grown_mib < 96,
        "RSS grew by {grown_mib} MiB: {before} KiB -> {after} KiB"
    );
}
