//! Linli's domain core: the rules every part of the chain agrees on, with no IO.
//!
//! Money is integer fen ([`Fen`]), weights are integer grams ([`Qty`] of a `kg`
//! product), barcodes are checked EAN-13 codes, and scale labels carry the
//! weight of a weighed item (`2 IIIII WWWWWW C`). Sales, stock movements and
//! pickup orders are validated here, so the edge node, the hub and their tests
//! share one definition of "a valid sale" and one way to price it.
//!
//! This crate knows no HTTP, QUIC, SQLite or async runtime (DESIGN.md §2). It
//! derives `utoipa::ToSchema` on its wire types only so the API documents are
//! generated from the very types the servers deserialize.

pub mod api_doc;
pub mod barcode;
pub mod catalog;
pub mod community;
pub mod coupon;
mod csv_lines;
pub mod docs;
pub mod erasure;
pub mod geo;
pub mod groupbuy;
pub mod identity;
pub mod kpi;
pub mod live;
pub mod login_guard;
pub mod member;
pub mod money;
pub mod online;
pub mod order;
pub mod payment;
pub mod pickup;
pub mod pricing;
pub mod qty;
pub mod rfm;
pub mod rights;
pub mod sale;
pub mod search;
pub mod stock;
pub mod sync;
pub mod ticket;

pub use barcode::{BarcodeError, Ean13, ScaleLabel, Scan};
pub use catalog::{Product, ProductError, Sku, SkuError};
pub use money::Fen;
pub use qty::{Qty, QtyError, Unit};
