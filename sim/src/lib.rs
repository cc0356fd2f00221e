//! A deterministic simulation of a hub and its stores (issue 9).
//!
//! One seed is one run: a hub and a few stores, each the real thing — the
//! store's application core (`linli_edge::app::App`) and the hub
//! (`linli_hub::hub::Hub`) on their own SQLite files, their real session
//! hosts, the real sans-IO sync session (`linli_shared::sync::session`),
//! the real document store, projection and idempotency — joined by a
//! virtual network ([`net`]) under a manual clock. Seeded steps sell at the
//! counters (retrying some sales whose answer was lost), take online
//! orders and hand them over, commit to a group-buy, redeem and give back
//! coupons at the counters and online, let virtual time pass, cut and heal
//! links, crash and restart stores and the hub, step the stores' clocks. After
//! every step the invariants are checked ([`check`]); at the end every link
//! heals and the chain must converge.
//!
//! Determinism: every choice comes from the seed, every step is carried
//! out to the end before the next (replies of the writer threads are
//! awaited in order), and time is the manual clock's. A failing seed is
//! reproduced by `cargo run -p linli-sim -- --seed N`.

pub mod check;
mod clock;
pub mod net;
mod template;
pub mod world;

pub use world::{Report, Settings, run};
