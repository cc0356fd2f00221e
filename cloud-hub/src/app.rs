//! The hub's use cases: what a customer, a store's manager, a regional
//! manager, an admin or a store's sync session can do at the hub, and the
//! rules that decide whether they may.
//!
//! A use case module here is one feature: `impl Hub` blocks (the entry
//! points the HTTP handlers and the sync sessions call; every write runs
//! as one closure on the hub's writer thread, so it commits whole or leaves
//! nothing behind) and the functions on the caller's `&Connection` that
//! they share. The decisions themselves are pure and live in
//! `linli_shared`; the tables several features share are behind
//! [`crate::store`]. The HTTP handlers (`http`) hold no business rules.
//!
//! - [`projection`]: a store's sync message written into the query tables,
//!   and the orders and group-buys it changed settled, as explicit steps in
//!   the message's transaction;
//! - [`orders`]: online orders: routing, pricing, pickup codes,
//!   cancellation, status, and the settlement of overdrafts;
//! - [`online`]: the online-order use cases customers and staff call
//!   (sessions, placing, following and cancelling orders, sellable stock);
//! - [`payment`]: payment of online orders and group-buy commitments, the
//!   provider's notifications, the unpaid timeout and the refund queue;
//! - [`refunds`]: a refund queued, checked against the payer's limits (a
//!   leaf the refunding use cases share);
//! - [`shop`]: what the phone-first shop reads beyond placing orders;
//! - [`customers`]: one customer across channels (identity records,
//!   profile, export and erasure);
//! - [`communities`]: each store's community, its joins and polls;
//! - [`coupons`]: coupon campaigns, claims and redemptions;
//! - [`groupbuys`]: group-buy presales (campaigns, commitments, the
//!   decision, cancellation and the supplier order);
//! - [`live`]: live sessions and their bursts of orders;
//! - [`markdowns`]: each store's daily markdowns;
//! - [`kpis`]: the chain's numbers over the facts the stores and the hub
//!   hold.

pub mod communities;
pub mod coupons;
pub mod customers;
pub mod groupbuys;
pub mod kpis;
pub mod live;
pub mod markdowns;
pub mod online;
pub mod orders;
pub mod payment;
pub mod projection;
pub mod refunds;
pub mod shop;
