//! Linli cloud hub: the centre the stores sync with (DESIGN.md §2–4).
//!
//! - [`hub`]: the hub's state: its SQLite database (documents, query tables,
//!   users) on one writer thread, the hub's own documents (the catalog), and
//!   the status of every store's link;
//! - [`projection`]: what a store's sync message brought, written into the
//!   query tables in the message's transaction (above the features it
//!   projects into);
//! - [`error`], [`auth`], [`settings`], [`directory`], [`store`] and the
//!   other small modules below the features: the error type, who is
//!   calling, the chain's settings, the store directory, shared tables;
//! - [`ingest`]: the QUIC server; each store connects with its certificate,
//!   its id is read from that certificate, and a sync session applies only
//!   what that store owns;
//! - [`customers`]: one customer across channels: imported source records
//!   resolved into customers with stable ids (identity tables);
//! - [`payment`]: online payment of orders (held at the hub until paid),
//!   the provider's signed notifications and the refund queue;
//! - [`http`]: the hub's JSON API (login, catalog import, what the hub has
//!   received from each store).

pub mod auth;
pub mod communities;
pub mod coupons;
pub mod customers;
pub mod directory;
pub mod error;
pub mod exceptions;
pub mod groupbuys;
pub mod http;
pub mod hub;
pub mod idempotency;
pub mod ingest;
pub mod kpis;
pub mod live;
pub mod markdowns;
pub mod members;
pub mod online;
pub mod orders;
pub mod payment;
pub mod people;
pub mod projection;
pub mod rights;
pub mod schema;
pub mod scope;
pub mod server;
pub mod settings;
pub mod shop;
pub mod signing;
pub mod store;
pub mod time;
