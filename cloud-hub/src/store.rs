//! The hub's storage below its use cases: tables that several features
//! read and write, behind typed functions on the caller's connection (and
//! so inside the caller's transaction).
//!
//! - [`orders`]: the online orders' records (`online_orders`, and the
//!   store's orders document of an order that is not held for payment);
//! - [`payments`]: payments and the refund queue.

pub mod orders;
pub mod payments;
