//! The whole chain on one machine, for a newcomer's first ten minutes: a
//! hub, three store nodes with the reference data, the courier simulator,
//! and a simulated day running in the background (counter sales, online
//! orders, a pickup, a delivery the courier's rider delivers, goods written
//! off, S001's live session with its orders, a
//! poll and a group-buy, a markdown and coupons, one store cut off for a
//! while and back).
//!
//! Everything runs in one process on the real parts (SQLite files, QUIC
//! with mutual TLS between the stores and the hub, real HTTP servers); only
//! the courier is a simulator, since it stands for a third party. The data
//! lives in one folder that a second run reuses.

mod calls;
pub mod chain;
mod community_day;
pub mod day;
pub mod link;
mod live_day;
mod promo_day;
