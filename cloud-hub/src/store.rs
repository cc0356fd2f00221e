//! The hub's storage below its use cases: its schema, and the tables that
//! only their own module writes, behind typed functions on the caller's
//! connection (and so inside the caller's transaction). Nothing here
//! calls a use case (the `app` layer).
//!
//! This is the layer a PostgreSQL implementation will replace later. Today
//! it is plain functions on a rusqlite `Connection`, not a trait, and most
//! of the hub's SQL still lives in the use cases themselves; each table
//! moved behind a function here is one fewer to port.
//!
//! - [`schema`]: the hub's migrations;
//! - [`orders`]: the online orders' records (`online_orders`, and the
//!   store's orders document of an order that is not held for payment);
//! - [`payments`]: payments and the refund queue;
//! - [`rights`]: the hub's half of the stock-rights scheme (`store_rights`,
//!   `hub_rights` and the `hub/<S>/stock/<day>` documents that carry them);
//! - [`members`]: customers as the hub knows them from its channels
//!   (`customers` lookups by phone, openid and member hash);
//! - [`exceptions`]: exceptions raised for the regional manager;
//! - [`idempotency`]: the key an `Idempotency-Key` is recorded under.

pub mod exceptions;
pub mod idempotency;
pub mod members;
pub mod orders;
pub mod payments;
pub mod rights;
pub mod schema;
