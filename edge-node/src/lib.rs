//! Linli store node: the system of record of one store.
//!
//! It keeps POS sales, stock and local pickup orders in SQLite and serves a
//! JSON API to the store's tills and browsers. It needs no hub to sell: an
//! acknowledged sale is durably on disk before the response is sent.
//!
//! Layers, outermost first: [`http`] (axum) and the CLI call [`app`] (the use
//! cases and their rules, built on `linli_shared`), which runs its writes on
//! the [`store`] (one SQLite writer thread with grouped durable commits).
//! [`node`] wires them up and owns every task.

pub mod app;
pub mod config;
pub mod demo;
pub mod http;
pub mod metrics;
pub mod node;
pub mod store;
pub mod uplink;
