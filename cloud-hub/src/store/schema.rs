//! The hub's schema migrations (see `linli_sync::db::migrate`).
//!
//! `hub_sales`, `hub_refunds` and `hub_stock` are query tables over the stores' documents,
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
    // 3: online orders, stock rights, stores and customers (DESIGN.md §5-6)
    r#"
CREATE TABLE stores (
    store_id   TEXT PRIMARY KEY,
    site       TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE store_rights (
    store_id   TEXT NOT NULL,
    sku        TEXT NOT NULL,
    lent       INTEGER NOT NULL DEFAULT 0,
    recalled   INTEGER NOT NULL DEFAULT 0,
    overdraft  INTEGER NOT NULL DEFAULT 0,
    delivered  INTEGER NOT NULL DEFAULT 0,
    wanted_met INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (store_id, sku)
);
CREATE TABLE hub_rights (
    store_id TEXT NOT NULL,
    sku      TEXT NOT NULL,
    consumed INTEGER NOT NULL DEFAULT 0,
    released INTEGER NOT NULL DEFAULT 0,
    returned INTEGER NOT NULL DEFAULT 0,
    wanted   INTEGER NOT NULL DEFAULT 0,
    recall_answered INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (store_id, sku)
);
CREATE TABLE online_orders (
    order_id    TEXT PRIMARY KEY,
    store_id    TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    status      TEXT NOT NULL,
    placed_at   TEXT NOT NULL,
    pickup_code TEXT,
    fact        TEXT NOT NULL,
    fulfilment  TEXT,
    conflict    TEXT
);
CREATE INDEX online_orders_by_store ON online_orders(store_id, status);
CREATE INDEX online_orders_by_customer ON online_orders(customer_id, placed_at);
CREATE TABLE customers (
    customer_id TEXT PRIMARY KEY,
    phone       TEXT UNIQUE,
    openid      TEXT UNIQUE,
    created_at  TEXT NOT NULL
);
CREATE TABLE customer_sessions (
    token_hash  TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers(customer_id),
    expires_at  TEXT NOT NULL
);
CREATE TABLE exceptions (
    id         INTEGER PRIMARY KEY,
    store_id   TEXT NOT NULL,
    order_id   TEXT NOT NULL,
    kind       TEXT NOT NULL,
    detail     TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE idempotency (
    key          TEXT PRIMARY KEY,
    request_hash TEXT NOT NULL,
    response     TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
"#,
    // 4: refunds, so a day's net sales at the hub equal the store's (issue 8 item 12)
    r#"
CREATE TABLE hub_refunds (
    store_id   TEXT NOT NULL,
    refund_id  TEXT NOT NULL,
    sale_id    TEXT NOT NULL,
    amount_fen INTEGER NOT NULL,
    at         TEXT NOT NULL,
    PRIMARY KEY (store_id, refund_id)
);
CREATE INDEX hub_refunds_by_sale ON hub_refunds(store_id, sale_id);
"#,
    // 5: one customer across channels (issue 12): the channels' source
    // records, the customer each resolves to, why (the merges), the ids ever
    // given (never reused) and the never-merge pairs staff asked for
    r#"
CREATE TABLE identity_records (
    record_id   TEXT PRIMARY KEY,
    source      TEXT NOT NULL,
    phone       TEXT NOT NULL,
    openid      TEXT NOT NULL,
    unionid     TEXT NOT NULL,
    member_card TEXT NOT NULL,
    nickname    TEXT NOT NULL,
    store_id    TEXT NOT NULL,
    customer_id TEXT,
    imported_at TEXT NOT NULL
);
CREATE INDEX identity_records_by_customer ON identity_records(customer_id);
CREATE TABLE identity_customers (
    customer_id TEXT PRIMARY KEY,
    created_at  TEXT NOT NULL,
    retired_at  TEXT
);
CREATE TABLE identity_merges (
    customer_id TEXT NOT NULL,
    rule        TEXT NOT NULL,
    value       TEXT NOT NULL,
    record_a    TEXT NOT NULL,
    record_b    TEXT NOT NULL
);
CREATE INDEX identity_merges_by_customer ON identity_merges(customer_id);
CREATE TABLE identity_never_merge (
    record_a   TEXT NOT NULL,
    record_b   TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (record_a, record_b)
);
"#,
    // a store's day of stock comes in parts (issue 9): a level from a later
    // part of the same day wins
    r#"
ALTER TABLE hub_stock ADD COLUMN part INTEGER NOT NULL DEFAULT 0;
"#,
    // communities and polls (issue 11): one community per store with its
    // join code; each customer's membership now, every join ever made (moves
    // included), polls and their votes (one per member)
    r#"
CREATE TABLE communities (
    store_id   TEXT PRIMARY KEY,
    join_code  TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE community_members (
    customer_id    TEXT PRIMARY KEY,
    store_id       TEXT NOT NULL,
    since          TEXT NOT NULL,
    via            TEXT NOT NULL,
    latest_at      TEXT NOT NULL,
    latest_join_id TEXT NOT NULL
);
CREATE INDEX community_members_by_store ON community_members(store_id);
CREATE TABLE community_joins (
    join_id     TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    store_id    TEXT NOT NULL,
    via         TEXT NOT NULL,
    at          TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    moved_from  TEXT,
    recorded_at TEXT NOT NULL
);
CREATE INDEX community_joins_by_customer ON community_joins(customer_id, at);
CREATE INDEX community_joins_by_store ON community_joins(store_id, at);
CREATE TABLE polls (
    poll_id    TEXT PRIMARY KEY,
    store_id   TEXT NOT NULL,
    question   TEXT NOT NULL,
    options    TEXT NOT NULL,
    closes_at  TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX polls_by_store ON polls(store_id, created_at);
CREATE TABLE poll_votes (
    poll_id     TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    option_no   INTEGER NOT NULL,
    at          TEXT NOT NULL,
    PRIMARY KEY (poll_id, customer_id)
);
CREATE INDEX poll_votes_by_customer ON poll_votes(customer_id, at);
-- what a member did and when, from every channel the hub sees: the input
-- of the community's monthly-active figure
CREATE VIEW member_activity AS
    SELECT customer_id, store_id, 'join' AS kind, join_id AS ref_id, at FROM community_joins
    UNION ALL
    SELECT v.customer_id, p.store_id, 'vote', v.poll_id, v.at
      FROM poll_votes v JOIN polls p ON p.poll_id = v.poll_id
    UNION ALL
    SELECT customer_id, store_id,
           CASE json_extract(fact, '$.channel') WHEN 'live' THEN 'live_order' ELSE 'order' END,
           order_id, placed_at
      FROM online_orders;
"#,
    // group-buy presales (issue 11): campaigns and their commitments
    r#"
CREATE TABLE group_buys (
    group_buy_id       TEXT PRIMARY KEY,
    sku                TEXT NOT NULL,
    price_fen          INTEGER NOT NULL,
    threshold          TEXT NOT NULL,
    deadline           TEXT NOT NULL,
    pickup_date        TEXT NOT NULL,
    per_customer_limit INTEGER NOT NULL,
    store_ids          TEXT NOT NULL,
    grace_minutes      INTEGER NOT NULL,
    counter_allotment  INTEGER NOT NULL,
    participants       INTEGER NOT NULL DEFAULT 0,
    qty                INTEGER NOT NULL DEFAULT 0,
    state              TEXT NOT NULL CHECK (state IN ('open', 'reached', 'failed', 'fulfilled')),
    reached_at         TEXT,
    decided_at         TEXT,
    created_by         TEXT NOT NULL,
    created_at         TEXT NOT NULL
);
CREATE INDEX group_buys_by_state ON group_buys(state);
CREATE TABLE group_buy_commitments (
    commitment_id TEXT PRIMARY KEY,
    group_buy_id  TEXT NOT NULL REFERENCES group_buys(group_buy_id),
    store_id      TEXT NOT NULL,
    customer_id   TEXT NOT NULL,
    qty           INTEGER NOT NULL CHECK (qty > 0),
    amount_fen    INTEGER NOT NULL,
    at            TEXT NOT NULL,
    source        TEXT NOT NULL CHECK (source IN ('online', 'counter')),
    status        TEXT NOT NULL CHECK (status IN ('active', 'cancelled')),
    cancel_reason TEXT,
    cancelled_at  TEXT,
    recorded_at   TEXT NOT NULL,
    pickup_order_id TEXT,
    pickup_code     TEXT,
    pickup_status   TEXT
);
CREATE INDEX group_buy_commitments_by_campaign ON group_buy_commitments(group_buy_id, status);
CREATE INDEX group_buy_commitments_by_customer ON group_buy_commitments(customer_id, group_buy_id, status, store_id);
-- running totals of the counting commitments, per store (the campaign's
-- own are in group_buys), so a commitment costs the same however many
-- came before it
CREATE TABLE group_buy_progress (
    group_buy_id TEXT NOT NULL,
    store_id     TEXT NOT NULL,
    participants INTEGER NOT NULL,
    qty          INTEGER NOT NULL,
    PRIMARY KEY (group_buy_id, store_id)
);
"#,
    // online payment (issue 11): an order that must be paid is held at the
    // hub until it is; refunds wait in a queue that survives restarts, each
    // with its refund id fixed for life (the provider's idempotency key).
    // Times are RFC 3339 UTC with milliseconds, so they sort as text.
    r#"
CREATE TABLE payments (
    order_id       TEXT PRIMARY KEY,
    state          TEXT NOT NULL,
    amount_fen     INTEGER NOT NULL,
    prepay_id      TEXT,
    transaction_id TEXT,
    paid_at        TEXT,
    placed_at      TEXT NOT NULL,
    pay_by         TEXT NOT NULL,
    closed_at      TEXT
);
CREATE INDEX payments_unpaid ON payments(state, pay_by);
CREATE TABLE refund_queue (
    subject_id         TEXT NOT NULL,
    refund_id          TEXT NOT NULL UNIQUE,
    amount_fen         INTEGER NOT NULL,
    total_fen          INTEGER NOT NULL,
    reason             TEXT NOT NULL,
    state              TEXT NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0,
    failures           INTEGER NOT NULL DEFAULT 0,
    next_at            TEXT NOT NULL,
    last_sent_at       TEXT,
    last_error         TEXT,
    provider_refund_id TEXT,
    created_at         TEXT NOT NULL,
    done_at            TEXT,
    PRIMARY KEY (subject_id, refund_id)
);
CREATE INDEX refund_queue_due ON refund_queue(state, next_at);
"#,
    // live sessions (issue 11): a store manager is a hub user bound to one
    // store (the users table is rebuilt for the new role, which logs every
    // hub user out once); each session is one row holding the session as
    // JSON (`linli_shared::live::LiveSession`); `live_orders` lists the
    // orders the session ran for, written with the order
    r#"
DELETE FROM sessions;
CREATE TABLE users_new (
    name       TEXT PRIMARY KEY,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'regional', 'manager')),
    pw_hash    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    store_id   TEXT,
    CHECK ((role = 'manager') = (store_id IS NOT NULL))
);
INSERT INTO users_new(name, role, pw_hash, created_at) SELECT name, role, pw_hash, created_at FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;
CREATE TABLE live_sessions (
    session_id TEXT PRIMARY KEY,
    store_id   TEXT NOT NULL,
    status     TEXT NOT NULL,
    starts_at  TEXT NOT NULL,
    session    TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX live_sessions_by_store ON live_sessions(store_id, status, starts_at);
CREATE TABLE live_orders (
    session_id TEXT NOT NULL,
    order_id   TEXT NOT NULL,
    PRIMARY KEY (session_id, order_id)
);
"#,
    // promotions (issue 11): coupon campaigns with their budget, the
    // counters' allotments, customers' claims and every redemption (voided
    // once on a cancel or refund: the coupon and its money come back);
    // each store's markdowns with their version
    r#"
CREATE TABLE coupons (
    coupon_id        TEXT PRIMARY KEY,
    terms            TEXT NOT NULL,
    budget_fen       INTEGER NOT NULL CHECK (budget_fen > 0),
    store_ids        TEXT NOT NULL,
    counter_step_fen INTEGER NOT NULL,
    created_by       TEXT NOT NULL,
    created_at       TEXT NOT NULL
);
CREATE TABLE coupon_allotments (
    coupon_id    TEXT NOT NULL,
    store_id     TEXT NOT NULL,
    allotted_fen INTEGER NOT NULL,
    PRIMARY KEY (coupon_id, store_id)
);
CREATE TABLE coupon_claims (
    claim_id    TEXT PRIMARY KEY,
    coupon_id   TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    redeem_at   TEXT NOT NULL,
    code        TEXT,
    expires_at  TEXT NOT NULL,
    claimed_at  TEXT NOT NULL
);
CREATE INDEX coupon_claims_by_customer ON coupon_claims(customer_id, coupon_id);
CREATE TABLE coupon_redemptions (
    redemption_id TEXT PRIMARY KEY,
    claim_id      TEXT NOT NULL,
    coupon_id     TEXT NOT NULL,
    channel       TEXT NOT NULL CHECK (channel IN ('online', 'counter')),
    store_id      TEXT,
    subject_id    TEXT NOT NULL,
    discount_fen  INTEGER NOT NULL CHECK (discount_fen >= 0),
    version       INTEGER NOT NULL,
    redeemed_at   TEXT NOT NULL,
    voided_at     TEXT
);
CREATE UNIQUE INDEX coupon_redemptions_active ON coupon_redemptions(claim_id) WHERE voided_at IS NULL;
CREATE INDEX coupon_redemptions_by_subject ON coupon_redemptions(subject_id);
CREATE INDEX coupon_redemptions_by_coupon ON coupon_redemptions(coupon_id, channel);
CREATE TABLE markdowns (
    store_id   TEXT PRIMARY KEY,
    version    INTEGER NOT NULL,
    markdowns  TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"#,
    // live bursts (issue 11): drawing a free pickup code looked the code up
    // among all of the store's open orders through `online_orders_by_store`
    // and read every row (a third of the hub's writer time at 8,000 orders
    // of the day, growing with each); by store and code it is one probe
    r#"
CREATE INDEX online_orders_by_code ON online_orders(store_id, pickup_code);
"#,
    // paid group-buy commitments (issue 11): at a hub that takes payment an
    // online commitment waits for it (`awaiting_payment`: it holds the
    // customer's limit and does not count); its payment is a `payments` row
    // keyed by the commitment id, `subject` saying which kind of id it is.
    // The commitments table is rebuilt for the new status.
    r#"
ALTER TABLE payments ADD COLUMN subject TEXT NOT NULL DEFAULT 'order';
CREATE TABLE group_buy_commitments_new (
    commitment_id TEXT PRIMARY KEY,
    group_buy_id  TEXT NOT NULL REFERENCES group_buys(group_buy_id),
    store_id      TEXT NOT NULL,
    customer_id   TEXT NOT NULL,
    qty           INTEGER NOT NULL CHECK (qty > 0),
    amount_fen    INTEGER NOT NULL,
    at            TEXT NOT NULL,
    source        TEXT NOT NULL CHECK (source IN ('online', 'counter')),
    status        TEXT NOT NULL CHECK (status IN ('awaiting_payment', 'active', 'cancelled')),
    cancel_reason TEXT,
    cancelled_at  TEXT,
    recorded_at   TEXT NOT NULL,
    pickup_order_id TEXT,
    pickup_code     TEXT,
    pickup_status   TEXT
);
INSERT INTO group_buy_commitments_new SELECT * FROM group_buy_commitments;
DROP TABLE group_buy_commitments;
ALTER TABLE group_buy_commitments_new RENAME TO group_buy_commitments;
CREATE INDEX group_buy_commitments_by_campaign ON group_buy_commitments(group_buy_id, status);
CREATE INDEX group_buy_commitments_by_customer ON group_buy_commitments(customer_id, group_buy_id, status, store_id);
"#,
    // regions: a regional manager sees the stores of one region (the
    // store directory's `region`); see `scope.rs`
    r#"
ALTER TABLE users ADD COLUMN region TEXT;
"#,
    // one customer across channels (issue 12): a counter sale keeps the
    // member's phone hash (under the chain's member key), so the hub can
    // tie it to a customer
    r#"
ALTER TABLE hub_sales ADD COLUMN member_hash TEXT;
CREATE INDEX hub_sales_by_member ON hub_sales(member_hash) WHERE member_hash IS NOT NULL;
"#,
    // customers' erasures (issue 12, PIPL Art. 47): what was erased (the
    // retired customer id, its online account ids, the tombstone rows carry
    // now) and each store's confirmation from its ledger
    r#"
CREATE TABLE erasures (
    erasure_id   TEXT PRIMARY KEY,
    customer_id  TEXT NOT NULL,
    aliases      TEXT NOT NULL,
    tombstone    TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    hub_rows     INTEGER NOT NULL
);
CREATE INDEX erasures_by_customer ON erasures(customer_id);
CREATE TABLE erasure_stores (
    erasure_id   TEXT NOT NULL,
    store_id     TEXT NOT NULL,
    confirmed_at TEXT,
    rows         INTEGER,
    PRIMARY KEY (erasure_id, store_id)
);
"#,
    // the numbers (issue 12): (the counter sale's member hash came with
    // the migration above) goods written off reach the hub (waste rate: the
    // store's waste movements, a refunded line thrown away among them),
    // and the KPI queries read refunds and online orders by store and time
    r#"
CREATE TABLE hub_write_offs (
    store_id    TEXT NOT NULL,
    movement_id TEXT NOT NULL,
    day         TEXT NOT NULL,
    sku         TEXT NOT NULL,
    qty         INTEGER NOT NULL,
    staff       TEXT NOT NULL,
    at          TEXT NOT NULL,
    PRIMARY KEY (store_id, movement_id)
);
CREATE INDEX hub_write_offs_by_day ON hub_write_offs(store_id, day);
CREATE INDEX hub_refunds_by_at ON hub_refunds(store_id, at);
CREATE INDEX online_orders_by_placed ON online_orders(store_id, placed_at);
CREATE INDEX exceptions_by_store ON exceptions(store_id, created_at);
"#,
    // stores keep no phones (issue 12): a customer is found by the chain's
    // member hash of the phone (the one a counter join or commitment
    // carries) and shown by the masked phone; a customer a counter named
    // before the hub knew the phone has only these two, and gets the phone
    // when it logs in or orders online. Customers created before are
    // hashed in Rust at open (`store::members::backfill_member_hashes`).
    r#"
ALTER TABLE customers ADD COLUMN member_hash TEXT;
ALTER TABLE customers ADD COLUMN masked_phone TEXT;
CREATE UNIQUE INDEX customers_by_member ON customers(member_hash) WHERE member_hash IS NOT NULL;
"#,
    // which persons there are (`people`) changes only when an
    // identity record or a customer's identifiers do: these triggers count
    // those changes, so a KPI query reuses the persons it read last while
    // the count stands (reading them cost a region's month of figures
    // about half its time with the reference identities)
    r#"
CREATE TABLE people_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    v  INTEGER NOT NULL
);
INSERT INTO people_version(id, v) VALUES (1, 0);
CREATE TRIGGER people_records_added AFTER INSERT ON identity_records
    BEGIN UPDATE people_version SET v = v + 1; END;
CREATE TRIGGER people_records_changed
    AFTER UPDATE OF phone, openid, unionid, customer_id ON identity_records
    BEGIN UPDATE people_version SET v = v + 1; END;
CREATE TRIGGER people_records_removed AFTER DELETE ON identity_records
    BEGIN UPDATE people_version SET v = v + 1; END;
CREATE TRIGGER people_customers_added AFTER INSERT ON customers
    BEGIN UPDATE people_version SET v = v + 1; END;
CREATE TRIGGER people_customers_changed
    AFTER UPDATE OF customer_id, phone, openid, member_hash ON customers
    BEGIN UPDATE people_version SET v = v + 1; END;
CREATE TRIGGER people_customers_removed AFTER DELETE ON customers
    BEGIN UPDATE people_version SET v = v + 1; END;
"#,
    // a recalled coupon allotment: asked for at `recalled_at`, and what
    // the store's counter has given back so far (counted when seen)
    r#"
ALTER TABLE coupon_allotments ADD COLUMN recalled_at TEXT;
ALTER TABLE coupon_allotments ADD COLUMN returned_fen INTEGER NOT NULL DEFAULT 0;
"#,
    // counter commitments cancelled at their store's counter (issue 11),
    // from its ledger (section `commitment_cancels`): each once by
    // commitment id ('<store>/<id>', as in group_buy_commitments), kept
    // even when it arrives before its commitment, which then arrives
    // cancelled; `counts`: made before the deadline
    r#"
CREATE TABLE group_buy_counter_cancels (
    commitment_id TEXT PRIMARY KEY,
    store_id      TEXT NOT NULL,
    group_buy_id  TEXT NOT NULL,
    refund_id     TEXT NOT NULL,
    refund_fen    INTEGER NOT NULL,
    at            TEXT NOT NULL,
    staff         TEXT NOT NULL,
    counts        INTEGER NOT NULL,
    recorded_at   TEXT NOT NULL
);
"#,
    // a failed campaign's counter commitments refunded at their counter
    // (issue 11): the same fact with a reason, `counter_cancelled` (a
    // cancel while open, as before) or `group_buy_failed` (never counts)
    r#"
ALTER TABLE group_buy_counter_cancels ADD COLUMN reason TEXT NOT NULL DEFAULT 'counter_cancelled';
CREATE INDEX group_buy_counter_cancels_by_campaign ON group_buy_counter_cancels(group_buy_id, reason);
"#,
    // why a campaign failed, written when it is decided: the counts it
    // names are the ones at the deadline (failing zeroes them)
    r#"
ALTER TABLE group_buys ADD COLUMN failure_reason TEXT;
"#,
    // when the stores were told a failed campaign failed: NULL for every
    // campaign failed before this column, which the next sweep tells
    // (`groupbuys::failed::tell_the_untold`; telling again changes nothing
    // at a store)
    r#"
ALTER TABLE group_buys ADD COLUMN stores_told_at TEXT;
"#,
    // the KPIs' group-buy money at each store's counter, by time
    r#"
CREATE INDEX group_buy_commitments_counter_by_store ON group_buy_commitments(store_id, at)
    WHERE source = 'counter';
CREATE INDEX group_buy_counter_cancels_by_store ON group_buy_counter_cancels(store_id, at);
"#,
    // the voids counters reported, kept as reported: a void can reach the
    // hub before its redemption (they are in different ledger parts), and
    // a counter redemption's `voided_at` is decided from these
    // (`coupons::settle_counter_claim`)
    r#"
CREATE TABLE coupon_counter_voids (
    redemption_id TEXT PRIMARY KEY,
    store_id      TEXT NOT NULL,
    at            TEXT NOT NULL
);
CREATE INDEX coupon_redemptions_by_claim ON coupon_redemptions(claim_id, channel, store_id);
"#,
];

pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    linli_sync::db::migrate(conn, MIGRATIONS)
}
