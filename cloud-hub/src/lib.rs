//! Linli cloud hub: the centre the stores sync with (DESIGN.md §2–4).
//!
//! Layered like the edge node: HTTP and ingest call the use cases, the use
//! cases call storage, and no layer imports one above it.
//!
//! - [`hub`]: the hub's state: its SQLite database (documents, query tables,
//!   users) on one writer thread, the hub's own documents (the catalog), the
//!   status of every store's link, users and logins, and opening it on an
//!   injected clock;
//! - [`app`]: the use cases, one module per feature (online orders,
//!   payment, customers, group-buys, coupons, live sessions, KPIs, ...),
//!   with projection and settlement as explicit steps
//!   ([`app::projection`]);
//! - [`store`]: storage below the use cases: the schema and the tables
//!   behind typed functions on the caller's connection;
//! - [`http`]: the hub's JSON API; handlers call the use cases and hold no
//!   business rules;
//! - [`ingest`]: the QUIC server; each store connects with its certificate,
//!   its id is read from that certificate, and a sync session applies only
//!   what that store owns;
//! - [`server`]: a running hub (HTTP and ingest, shut down in order);
//! - [`error`], [`auth`], [`time`], [`settings`], [`directory`], [`scope`],
//!   [`people`], [`signing`]: the small modules below the use cases: the
//!   error type, who is calling, the hub's timestamps, the chain's
//!   settings, the store directory, what a user may see, which rows belong
//!   to a customer, the pickup-code key.

pub mod app;
pub mod auth;
pub mod directory;
pub mod error;
pub mod http;
pub mod hub;
pub mod ingest;
pub mod people;
pub mod scope;
pub mod server;
pub mod settings;
pub mod signing;
pub mod store;
pub mod time;
