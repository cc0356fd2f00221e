//! The hub's schema migrations (see `linli_sync::db::migrate`).
//!
//! `hub_sales` and `hub_stock` are query tables over the stores' documents,
//! written in the same transaction as the chunks they come from; `(store_id,
//! sale_id)` is the key, so a sale arriving twice is recorded once.

use rusqlite::Connection;

pub const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE users (
    name       TEXT PRIMARY KEY,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'regional')),
    pw_hash    TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user       TEXT NOT NULL REFERENCES users(name),
    expires_at TEXT NOT NULL
);
CREATE TABLE hub_sales (
    store_id   TEXT NOT NULL,
    sale_id    TEXT NOT NULL,
    day        TEXT NOT NULL,
    ticket_no  TEXT NOT NULL,
    total_fen  INTEGER NOT NULL,
    cashier    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    lines      TEXT NOT NULL,
    PRIMARY KEY (store_id, sale_id)
);
CREATE INDEX hub_sales_by_day ON hub_sales(store_id, day);
CREATE TABLE hub_stock (
    store_id TEXT NOT NULL,
    sku      TEXT NOT NULL,
    on_hand  INTEGER NOT NULL,
    reserved INTEGER NOT NULL,
    day      TEXT NOT NULL,
    PRIMARY KEY (store_id, sku)
);
"#,
    linli_sync::doc_store::MIGRATION,
];

pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    linli_sync::db::migrate(conn, MIGRATIONS)
}
