//! The hub's storage below its use cases: its schema, and the tables that
//! only their own module writes, behind typed operations on the caller's
//! connection (and so inside the caller's transaction). Nothing here
//! calls a use case (the `app` layer).
//!
//! This is the layer a PostgreSQL implementation will replace later. Its
//! shape: one trait per family of tables, in domain types, implemented
//! for `rusqlite::Connection` (the writer's transaction or a read
//! connection); a PostgreSQL hub implements the same traits. The online
//! orders are there ([`orders::OrderRecords`], failing with
//! [`StoreError`]), and so are the group-buys
//! ([`groupbuys::GroupBuyRecords`]), the communities
//! ([`communities::CommunityRecords`]: every statement of the community
//! use cases and of a person's export and erasure), the customers
//! ([`customers::CustomerRecords`], with the online accounts' sessions),
//! the coupons ([`coupons::CouponRecords`]: every statement of the coupon
//! use cases and of a person's export and erasure), the live sessions
//! ([`live::LiveRecords`]), the markdowns ([`markdowns::MarkdownRecords`]),
//! the counter's ledger ([`sales::SaleRecords`]: what the projection
//! records of the stores' sales, refunds and write-offs) and the store
//! directory ([`sites::SiteRecords`]); the KPIs read their fact rows
//! through [`kpis::KpiFacts`], a read of several families (and the orders'
//! and group-buys' traits); the other modules are still
//! plain functions on a rusqlite `Connection`, failing with [`StoreError`]
//! too (a refund's limits, which can refuse it, are checked by the use
//! case, `app::refunds::enqueue_refund`, between `payments::refund_queued`,
//! `payments::standing_refunds` and `payments::queue_refund`). No use case
//! runs SQL of its own; each table behind a trait here is one fewer to
//! port.
//!
//! - [`error`]: the storage layer's error, [`StoreError`];
//! - [`communities`]: 一店一群's records (join codes, members, joins,
//!   polls and votes) behind [`communities::CommunityRecords`];
//! - [`customers`]: the customers' records (identity records, merges,
//!   never-merge pairs and ids, online accounts, erasures) behind
//!   [`customers::CustomerRecords`];
//! - `compactor`: the documents' snapshots, saved off the writer;
//! - [`coupons`]: the coupon campaigns' records (`coupons`,
//!   `coupon_allotments`, `coupon_claims` and `coupon_redemptions`)
//!   behind [`coupons::CouponRecords`];
//! - [`live`]: the live sessions' records (`live_sessions` and
//!   `live_orders`) behind [`live::LiveRecords`];
//! - [`markdowns`]: the stores' markdowns (`markdowns`) behind
//!   [`markdowns::MarkdownRecords`];
//! - [`orders`]: the online orders' records (`online_orders` behind
//!   [`orders::OrderRecords`], and the store's orders document of an order
//!   that is not held for payment);
//! - [`sales`]: the counter's ledger at the hub (`hub_sales`,
//!   `hub_refunds`, `hub_write_offs`) behind [`sales::SaleRecords`];
//! - [`kpis`]: the fact rows the KPIs read over a period behind
//!   [`kpis::KpiFacts`];
//! - [`sites`]: the store directory (`stores`) behind
//!   [`sites::SiteRecords`];
//! - [`groupbuys`]: the group-buy campaigns' records (`group_buys`,
//!   `group_buy_progress`, `group_buy_commitments` and
//!   `group_buy_counter_cancels` behind [`groupbuys::GroupBuyRecords`]);
//! - [`payments`]: payments and the refund queue;
//! - [`rights`]: the hub's half of the stock-rights scheme (`store_rights`,
//!   `hub_rights` and the `hub/<S>/stock/<day>` documents that carry them)
//!   and the stores' stock levels (`hub_stock`);
//! - [`members`]: customers as the hub knows them from its channels
//!   (`customers` lookups by phone, openid and member hash);
//! - [`exceptions`]: exceptions raised for the regional manager, and their
//!   list;
//! - [`idempotency`]: the key an `Idempotency-Key` is recorded under, and
//!   the replays recorded under it (read, written, and deleted by an
//!   erasure);
//! - [`json_rows`]: rows as the tables hold them, as JSON (a person's
//!   export).

pub mod communities;
pub(crate) mod compactor;
pub mod coupons;
pub mod customers;
pub mod error;
pub mod exceptions;
pub mod groupbuys;
pub mod idempotency;
pub mod json_rows;
pub mod kpis;
pub mod live;
pub mod markdowns;
pub mod members;
pub mod orders;
pub mod payments;
pub mod rights;
pub mod sales;
pub mod schema;
pub mod sites;

pub use error::StoreError;
