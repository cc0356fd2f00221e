//! The hub's view of the chain's stores and products ([`Directory`]),
//! rebuilt on every catalog or store import, for routing and pricing.

use std::collections::BTreeMap;

use linli_shared::Product;
use linli_shared::geo::StoreIndex;

/// The hub's view of the chain's stores and products, for routing and pricing.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub stores: std::sync::Arc<StoreIndex>,
    pub products: std::sync::Arc<BTreeMap<String, Product>>,
}
