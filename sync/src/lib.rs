//! Linli sync: the IO half of DESIGN.md §3–4.
//!
//! - [`background`]: the lowest scheduling priority, for threads whose work
//!   must never keep a sale or an order from a core.
//! - [`clock`]: where "now" comes from (the system, or a manual clock in
//!   tests and simulation).
//! - [`tls`]: the hub's CA, store and hub certificates, and the quinn
//!   endpoints with mutual TLS (the store id comes from the peer certificate).
//! - [`db`]: SQLite on one writer thread with grouped durable commits, shared
//!   by the edge node and the hub.
//! - [`doc_store`]: automerge documents stored as snapshot + incremental
//!   chunks, compacted, with persisted sync states per (document, peer).
//! - [`session`]: drives the sans-IO sync protocol of `linli_shared::sync`
//!   over one QUIC connection.

pub mod background;
pub mod clock;
pub mod db;
pub mod doc_store;
pub mod ids;
pub mod session;
pub mod tls;
