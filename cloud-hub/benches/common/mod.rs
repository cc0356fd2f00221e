//! What the hub's benchmarks share: the reference data, a hub with the
//! catalog and stores imported, percentiles, and the raw SQLite baseline
//! each run measures beside its own figures.

#![allow(clippy::unwrap_used, dead_code)] // bench code; each bench uses a part

use std::path::Path;
use std::time::{Duration, Instant};

use linli_hub::auth::{Role, User};
use linli_hub::hub::{Hub, HubPaths, add_user, open_conn};

/// A file of the project's reference data (`data/<file>`).
pub(crate) fn data(file: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../data")
            .join(file),
    )
    .unwrap()
}

/// The `p` quantile of `lat`, in ms (sorts `lat`).
pub(crate) fn pct(lat: &mut [Duration], p: f64) -> f64 {
    lat.sort();
    let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
    lat[i].as_secs_f64() * 1e3
}

/// Single-row durable commits per second (WAL, synchronous=FULL) of a row
/// carrying `payload` bytes: the baseline measured in the same run.
pub(crate) fn raw_sqlite(dir: &Path, n: usize, payload: usize) -> f64 {
    let conn = rusqlite::Connection::open(dir.join("raw.db")).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)",
    )
    .unwrap();
    let payload = "x".repeat(payload);
    let started = Instant::now();
    for _ in 0..n {
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        conn.execute("INSERT INTO t (payload) VALUES (?1)", [&payload])
            .unwrap();
        conn.execute_batch("COMMIT").unwrap();
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// A hub in `dir` with an admin, the reference catalog and the stores of
/// `stores_csv` imported; returns it and the admin.
pub(crate) async fn open_hub(dir: &Path, stores_csv: Vec<u8>) -> (Hub, User) {
    let paths = HubPaths {
        data_dir: dir.to_owned(),
    };
    std::fs::create_dir_all(&paths.data_dir).unwrap();
    add_user(
        &open_conn(&paths.db()).unwrap(),
        "admin",
        Role::Admin,
        "admin-password",
    )
    .unwrap();
    let hub = Hub::open(&paths).unwrap();
    let admin = User {
        name: "admin".into(),
        role: Role::Admin,
        store_id: None,
        region: None,
    };
    hub.import_catalog(&admin, data("products.csv"))
        .await
        .unwrap();
    hub.import_stores(&admin, stores_csv).await.unwrap();
    (hub, admin)
}
