//! Schema migrations, numbered by `PRAGMA user_version`.
//!
//! Each entry of [`MIGRATIONS`] moves the schema from version `i` to `i + 1`
//! and runs in its own transaction (`linli_sync::db::migrate`). Never edit a
//! released migration; append a new one.
//!
//! The tables are the store's query tables: stock levels are a cache of the
//! movement log (`stock.on_hand` = sum of `movements.delta`), always updated
//! in the same transaction as the movement, so they cannot disagree.

use rusqlite::Connection;

pub const MIGRATIONS: &[&str] = &[
    // 1: the store node's first schema
    r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE products (
    sku             TEXT PRIMARY KEY,
    barcode         TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    category        TEXT NOT NULL,
    unit            TEXT NOT NULL CHECK (unit IN ('each', 'kg')),
    price_fen       INTEGER NOT NULL CHECK (price_fen > 0),
    shelf_life_days INTEGER NOT NULL,
    updated_at      TEXT NOT NULL
);

CREATE TABLE stock (
    sku      TEXT PRIMARY KEY REFERENCES products(sku),
    on_hand  INTEGER NOT NULL DEFAULT 0,
    reserved INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0)
);

CREATE TABLE movements (
    seq         INTEGER PRIMARY KEY,
    movement_id TEXT NOT NULL UNIQUE,
    sku         TEXT NOT NULL REFERENCES products(sku),
    kind        TEXT NOT NULL,
    delta       INTEGER NOT NULL,
    reason      TEXT,
    ref_id      TEXT,
    staff       TEXT NOT NULL,
    at          TEXT NOT NULL
);
CREATE INDEX movements_by_sku ON movements(sku, seq);

CREATE TABLE staff (
    name       TEXT PRIMARY KEY,
    role       TEXT NOT NULL CHECK (role IN ('cashier', 'manager')),
    pin_hash   TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    staff      TEXT NOT NULL REFERENCES staff(name),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

CREATE TABLE ticket_counters (
    day      TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL
);

CREATE TABLE sales (
    sale_id           TEXT PRIMARY KEY,
    ticket_no         TEXT NOT NULL UNIQUE,
    day               TEXT NOT NULL,
    seq               INTEGER NOT NULL,
    total_fen         INTEGER NOT NULL,
    tendered_fen      INTEGER NOT NULL,
    change_fen        INTEGER NOT NULL,
    member_hash       TEXT,
    cashier           TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    UNIQUE (day, seq)
);

CREATE TABLE sale_lines (
    sale_id        TEXT NOT NULL REFERENCES sales(sale_id),
    line_no        INTEGER NOT NULL,
    sku            TEXT NOT NULL,
    barcode        TEXT NOT NULL,
    name           TEXT NOT NULL,
    unit           TEXT NOT NULL,
    qty            INTEGER NOT NULL CHECK (qty > 0),
    unit_price_fen INTEGER NOT NULL,
    total_fen      INTEGER NOT NULL,
    refunded_qty   INTEGER NOT NULL DEFAULT 0,
    refunded_fen   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sale_id, line_no),
    CHECK (refunded_qty <= qty AND refunded_fen <= total_fen)
);

CREATE TABLE sale_payments (
    sale_id    TEXT NOT NULL REFERENCES sales(sale_id),
    idx        INTEGER NOT NULL,
    method     TEXT NOT NULL,
    amount_fen INTEGER NOT NULL,
    PRIMARY KEY (sale_id, idx)
);

CREATE TABLE refunds (
    refund_id  TEXT PRIMARY KEY,
    sale_id    TEXT NOT NULL REFERENCES sales(sale_id),
    amount_fen INTEGER NOT NULL,
    reason     TEXT,
    staff      TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE refund_lines (
    refund_id   TEXT NOT NULL REFERENCES refunds(refund_id),
    line_no     INTEGER NOT NULL,
    qty         INTEGER NOT NULL,
    amount_fen  INTEGER NOT NULL,
    disposition TEXT NOT NULL CHECK (disposition IN ('restock', 'waste')),
    PRIMARY KEY (refund_id, line_no)
);

CREATE TABLE orders (
    order_id       TEXT PRIMARY KEY,
    channel        TEXT NOT NULL,
    fulfilment     TEXT NOT NULL,
    customer_phone TEXT NOT NULL,
    pickup_code    TEXT NOT NULL UNIQUE,
    status         TEXT NOT NULL,
    total_fen      INTEGER NOT NULL,
    created_at     TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    handed_over_at TEXT,
    handed_over_by TEXT,
    closed_at      TEXT,
    closed_by      TEXT
);
CREATE INDEX orders_open ON orders(status, expires_at);

CREATE TABLE order_lines (
    order_id       TEXT NOT NULL REFERENCES orders(order_id),
    line_no        INTEGER NOT NULL,
    sku            TEXT NOT NULL,
    name           TEXT NOT NULL,
    unit           TEXT NOT NULL,
    qty            INTEGER NOT NULL CHECK (qty > 0),
    unit_price_fen INTEGER NOT NULL,
    total_fen      INTEGER NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

-- One row per Idempotency-Key: the request's fingerprint and the response
-- that was sent, so a retry gets the same answer and writes nothing.
CREATE TABLE idempotency (
    key          TEXT PRIMARY KEY,
    scope        TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER NOT NULL,
    response     TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
"#,
    // 2: replicated documents (DESIGN.md §3), see linli_sync::doc_store
    linli_sync::doc_store::MIGRATION,
    // 3: stock rights (DESIGN.md §5) and online orders from the hub (§6)
    r#"
-- The store's grow-only rights totals per SKU (linli_shared::rights::StoreRights);
-- mirrored into store/<S>/stock/<day> in the same transaction.
CREATE TABLE rights (
    sku        TEXT PRIMARY KEY,
    lent       INTEGER NOT NULL DEFAULT 0,
    recalled   INTEGER NOT NULL DEFAULT 0,
    overdraft  INTEGER NOT NULL DEFAULT 0,
    delivered  INTEGER NOT NULL DEFAULT 0,
    wanted_met INTEGER NOT NULL DEFAULT 0
);
-- The hub's totals as last received from hub/<S>/stock/<day> (field-wise max).
CREATE TABLE hub_rights (
    sku      TEXT PRIMARY KEY,
    consumed INTEGER NOT NULL DEFAULT 0,
    released INTEGER NOT NULL DEFAULT 0,
    returned INTEGER NOT NULL DEFAULT 0,
    wanted   INTEGER NOT NULL DEFAULT 0,
    recall_answered INTEGER NOT NULL DEFAULT 0
);
-- Online orders routed here by the hub (hub/<S>/orders/<day>), as received.
CREATE TABLE online_orders (
    order_id    TEXT PRIMARY KEY,
    pickup_code TEXT,
    placed_at   TEXT NOT NULL,
    fact        TEXT NOT NULL
);
CREATE INDEX online_orders_by_code ON online_orders(pickup_code);
-- What the store did with online orders (store/<S>/fulfilment/<day>); a row
-- may exist before its order arrives (a signed QR handed over offline).
CREATE TABLE fulfilment (
    order_id   TEXT PRIMARY KEY,
    fact       TEXT NOT NULL,
    open       INTEGER NOT NULL DEFAULT 1,
    updated_at TEXT NOT NULL
);
CREATE TABLE riders (
    name       TEXT PRIMARY KEY,
    phone      TEXT NOT NULL,
    active     INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL
);
"#,
    // 4: English product names (the catalog's optional name_en column)
    "ALTER TABLE products ADD COLUMN name_en TEXT;",
    // 5: group-buys this store takes part in (terms and allotment, from the
    // hub) and the commitments its counter took (the phone only as the
    // member hash; the ledger carries it to the hub)
    r#"
CREATE TABLE group_buys (
    group_buy_id TEXT PRIMARY KEY,
    terms        TEXT NOT NULL,
    deadline     TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    goods_in     INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE group_buy_commitments (
    commitment_id TEXT PRIMARY KEY,
    group_buy_id  TEXT NOT NULL,
    member_hash   TEXT NOT NULL,
    qty           INTEGER NOT NULL,
    at            TEXT NOT NULL,
    staff         TEXT NOT NULL
);
CREATE INDEX group_buy_commitments_by_campaign ON group_buy_commitments(group_buy_id, member_hash);
CREATE TABLE group_buy_participants (
    commitment_id TEXT PRIMARY KEY,
    group_buy_id  TEXT NOT NULL,
    sku           TEXT NOT NULL,
    price_fen     INTEGER NOT NULL,
    phone         TEXT NOT NULL,
    qty           INTEGER NOT NULL
);
CREATE INDEX group_buy_participants_by_campaign ON group_buy_participants(group_buy_id);
"#,
    // 6: promotions: the store's markdowns and the coupon campaigns its
    // counter takes (terms and allotment, from the hub), the coupons it
    // redeemed (voided once on a full refund), and what priced each sale
    r#"
CREATE TABLE store_markdowns (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    version   INTEGER NOT NULL,
    markdowns TEXT NOT NULL
);
CREATE TABLE coupons (
    coupon_id     TEXT PRIMARY KEY,
    terms         TEXT NOT NULL,
    allotment_fen INTEGER NOT NULL
);
CREATE TABLE coupon_redemptions (
    redemption_id TEXT PRIMARY KEY,
    claim_id      TEXT NOT NULL,
    coupon_id     TEXT NOT NULL,
    sale_id       TEXT NOT NULL,
    discount_fen  INTEGER NOT NULL,
    at            TEXT NOT NULL,
    voided_at     TEXT
);
CREATE UNIQUE INDEX coupon_redemptions_active ON coupon_redemptions(claim_id) WHERE voided_at IS NULL;
CREATE INDEX coupon_redemptions_by_sale ON coupon_redemptions(sale_id);
ALTER TABLE sales ADD COLUMN pricing TEXT;
ALTER TABLE sale_lines ADD COLUMN coupon_fen INTEGER NOT NULL DEFAULT 0;
"#,
    // 7: customers' erasures from the hub (issue 12): each notice once, and
    // whether the store's ledger has confirmed it yet
    r#"
CREATE TABLE erasures (
    erasure_id   TEXT PRIMARY KEY,
    rows         INTEGER NOT NULL,
    erased_at    TEXT NOT NULL,
    confirmed_at TEXT
);
"#,
    // 8: customers' phones only as the chain's member hash and the masked
    // phone (issue 12): counter pickup orders and group-buy participants.
    // The masked phone is made here; the hash needs the member key, so
    // `app::phones::hide_plain_phones` hashes what is left in
    // `orders.customer_phone` and `group_buy_participants.phone` at start
    // and empties them (those two columns stay, always '', for old rows'
    // sake: SQLite cannot drop a column some index or view might name)
    r#"
ALTER TABLE orders ADD COLUMN customer_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE orders ADD COLUMN customer_masked TEXT NOT NULL DEFAULT '';
UPDATE orders SET customer_masked = CASE WHEN length(customer_phone) = 11
    THEN substr(customer_phone, 1, 3) || '****' || substr(customer_phone, 8) ELSE '' END;
CREATE INDEX orders_by_customer ON orders(customer_hash) WHERE customer_hash <> '';
ALTER TABLE group_buy_participants ADD COLUMN member_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE group_buy_participants ADD COLUMN masked_phone TEXT NOT NULL DEFAULT '';
UPDATE group_buy_participants SET masked_phone = CASE WHEN length(phone) = 11
    THEN substr(phone, 1, 3) || '****' || substr(phone, 8) ELSE '' END;
"#,
    // 9: a coupon allotment the hub recalled: the counter takes no more of
    // the campaign's coupons and has given back `returned_fen` in all
    r#"
ALTER TABLE coupons ADD COLUMN recalled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE coupons ADD COLUMN returned_fen INTEGER NOT NULL DEFAULT 0;
"#,
    // 10: counter commitments cancelled at the counter (issue 11): when and
    // by whom, what staff see of the customer (the masked phone; '' for
    // commitments taken before), what it took, and the refund the customer
    // was given back there, once per commitment
    r#"
ALTER TABLE group_buy_commitments ADD COLUMN masked_phone TEXT NOT NULL DEFAULT '';
ALTER TABLE group_buy_commitments ADD COLUMN amount_fen INTEGER;
ALTER TABLE group_buy_commitments ADD COLUMN cancelled_at TEXT;
ALTER TABLE group_buy_commitments ADD COLUMN cancelled_by TEXT;
CREATE TABLE group_buy_refunds (
    refund_id     TEXT PRIMARY KEY,
    commitment_id TEXT NOT NULL UNIQUE REFERENCES group_buy_commitments(commitment_id),
    group_buy_id  TEXT NOT NULL,
    amount_fen    INTEGER NOT NULL,
    staff         TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE INDEX group_buy_refunds_by_time ON group_buy_refunds(created_at);
"#,
    // 11: failed group-buys (issue 11): the hub's word that a campaign
    // failed (kept once, whenever it arrives, even before the terms), and
    // why each counter refund was given: cancelled while open (`GBC-`) or
    // the campaign failed (`GBF-`); still one refund per commitment
    r#"
CREATE TABLE group_buy_failures (
    group_buy_id TEXT PRIMARY KEY,
    decided_at   TEXT NOT NULL,
    reason       TEXT NOT NULL,
    received_at  TEXT NOT NULL
);
ALTER TABLE group_buy_refunds ADD COLUMN reason TEXT NOT NULL DEFAULT 'counter_cancelled';
"#,
    // 12: the transactional outbox (issue 9): facts committed with the use
    // case that made them, written to the documents later in batches
    // (`app::replication::prepare` and `persist`); `body` is the fact as JSON, or the SKU
    // whose level or rights go into the stock document
    r#"
CREATE TABLE doc_outbox (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    day  TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL
);
"#,
    // 13: how a counter commitment was paid (issue 11), for the drawer; a
    // refund of it is paid back the same way. Commitments taken before
    // were cash (the console offered nothing else)
    r#"
ALTER TABLE group_buy_commitments ADD COLUMN method TEXT NOT NULL DEFAULT 'cash';
"#,
    // 14: fewer pages a sale writes (issue 9; DECISIONS "A sale's pages"):
    // a sale's lines and payments are kept in their key's order with no
    // second b-tree for the key (WITHOUT ROWID), and the outbox's keys
    // need no `sqlite_sequence` row: a drain deletes `seq <= N`, N the
    // last row it read, and those rows stand until that delete, so every
    // row written meanwhile gets a key above N
    r#"
CREATE TABLE sale_lines_14 (
    sale_id        TEXT NOT NULL REFERENCES sales(sale_id),
    line_no        INTEGER NOT NULL,
    sku            TEXT NOT NULL,
    barcode        TEXT NOT NULL,
    name           TEXT NOT NULL,
    unit           TEXT NOT NULL,
    qty            INTEGER NOT NULL CHECK (qty > 0),
    unit_price_fen INTEGER NOT NULL,
    total_fen      INTEGER NOT NULL,
    refunded_qty   INTEGER NOT NULL DEFAULT 0,
    refunded_fen   INTEGER NOT NULL DEFAULT 0,
    coupon_fen     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sale_id, line_no),
    CHECK (refunded_qty <= qty AND refunded_fen <= total_fen)
) WITHOUT ROWID;
INSERT INTO sale_lines_14(sale_id, line_no, sku, barcode, name, unit, qty, unit_price_fen,
                          total_fen, refunded_qty, refunded_fen, coupon_fen)
    SELECT sale_id, line_no, sku, barcode, name, unit, qty, unit_price_fen,
           total_fen, refunded_qty, refunded_fen, coupon_fen FROM sale_lines;
DROP TABLE sale_lines;
ALTER TABLE sale_lines_14 RENAME TO sale_lines;

CREATE TABLE sale_payments_14 (
    sale_id    TEXT NOT NULL REFERENCES sales(sale_id),
    idx        INTEGER NOT NULL,
    method     TEXT NOT NULL,
    amount_fen INTEGER NOT NULL,
    PRIMARY KEY (sale_id, idx)
) WITHOUT ROWID;
INSERT INTO sale_payments_14(sale_id, idx, method, amount_fen)
    SELECT sale_id, idx, method, amount_fen FROM sale_payments;
DROP TABLE sale_payments;
ALTER TABLE sale_payments_14 RENAME TO sale_payments;

CREATE TABLE doc_outbox_14 (
    seq  INTEGER PRIMARY KEY,
    day  TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL
);
INSERT INTO doc_outbox_14(seq, day, kind, body) SELECT seq, day, kind, body FROM doc_outbox;
DROP TABLE doc_outbox;
ALTER TABLE doc_outbox_14 RENAME TO doc_outbox;
DELETE FROM sqlite_sequence WHERE name IN ('doc_outbox', 'doc_outbox_14');
"#,
    // 15: when each outbox row was committed (milliseconds since the epoch,
    // the store's clock), so an index tells the hub how long its oldest
    // fact not yet in a document has waited (`Index::facts_waiting`).
    // Rows from before read as waiting since 1970: conservative
    r#"
ALTER TABLE doc_outbox ADD COLUMN at_ms INTEGER NOT NULL DEFAULT 0;
"#,
];

/// Brings the schema up to date.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    linli_sync::db::migrate(conn, MIGRATIONS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let mut conn = Connection::open(&path).unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v as usize, MIGRATIONS.len());
        let fk: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(fk.contains(&"sales".to_string()));
        assert!(fk.contains(&"idempotency".to_string()));
    }

    /// Version 14 rebuilds the sale lines, the payments and the outbox: a
    /// database from before keeps every row, and the outbox's next key
    /// follows its last.
    #[test]
    fn rebuilt_tables_keep_their_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("m.db")).unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        linli_sync::db::migrate(&mut conn, &MIGRATIONS[..13]).unwrap();
        conn.execute_batch(
            "INSERT INTO sales(sale_id, ticket_no, day, seq, total_fen, tendered_fen, change_fen, cashier, created_at)
                 VALUES ('s1', 'S-20261204-0001', '2026-12-04', 1, 500, 500, 0, 'c', 't');
             INSERT INTO sale_lines(sale_id, line_no, sku, barcode, name, unit, qty, unit_price_fen, total_fen, refunded_qty, coupon_fen)
                 VALUES ('s1', 1, 'A', '1', 'a', 'each', 2, 250, 500, 1, 0);
             INSERT INTO sale_payments(sale_id, idx, method, amount_fen) VALUES ('s1', 0, 'cash', 500);
             INSERT INTO doc_outbox(day, kind, body) VALUES ('2026-12-04', 'fact', '{}');
             INSERT INTO doc_outbox(day, kind, body) VALUES ('2026-12-04', 'level', 'A');",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let line: (i64, i64) = conn
            .query_row(
                "SELECT qty, refunded_qty FROM sale_lines WHERE sale_id = 's1' AND line_no = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(line, (2, 1));
        let paid: i64 = conn
            .query_row(
                "SELECT amount_fen FROM sale_payments WHERE sale_id = 's1'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(paid, 500);
        conn.execute(
            "INSERT INTO doc_outbox(day, kind, body) VALUES ('2026-12-04', 'level', 'B')",
            [],
        )
        .unwrap();
        let seqs: Vec<i64> = conn
            .prepare("SELECT seq FROM doc_outbox ORDER BY seq")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(seqs, [1, 2, 3]);
        // a line still names its sale
        let orphan = conn.execute(
            "INSERT INTO sale_lines(sale_id, line_no, sku, barcode, name, unit, qty, unit_price_fen, total_fen)
                 VALUES ('nope', 1, 'A', '1', 'a', 'each', 1, 1, 1)",
            [],
        );
        assert!(orphan.is_err());
    }
}
