//! What a hub user may see: the chain, a region, or one store.
//!
//! A chain admin sees every store; a regional manager (`user add --role
//! regional --region 杭州西区`) sees the stores whose `region` in the store
//! directory (the `region` column of `stores.csv`) is theirs; a store
//! manager sees their own store. Everything a regional manager reads that is
//! about a store (its figures, its customers, its exceptions) is filtered
//! through [`Scope::allows_store`]. A regional user without a region (only
//! possible in a database from before regions) sees no store.

use linli_shared::geo::StoreIndex;

use crate::auth::{Role, User};
use crate::error::HubError;

/// The stores a user may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every store of the chain.
    Chain,
    /// The stores of one region (`store_ids` as the directory had them
    /// when the scope was taken, sorted).
    Region {
        region: String,
        store_ids: Vec<String>,
    },
    /// One store.
    Store(String),
}

impl Scope {
    /// The scope of `user` over the store directory `stores`.
    pub fn of(user: &User, stores: &StoreIndex) -> Scope {
        match user.role {
            Role::Admin => Scope::Chain,
            Role::Regional => {
                let region = user.region.clone().unwrap_or_default();
                let store_ids = stores
                    .sites()
                    .filter(|s| !region.is_empty() && s.region.as_deref() == Some(region.as_str()))
                    .map(|s| s.store_id.clone())
                    .collect();
                Scope::Region { region, store_ids }
            }
            Role::Manager => Scope::Store(user.store_id.clone().unwrap_or_default()),
        }
    }

    /// Whether a user of this scope may see `store_id`.
    pub fn allows_store(&self, store_id: &str) -> bool {
        match self {
            Scope::Chain => true,
            Scope::Region { store_ids, .. } => store_ids
                .binary_search_by(|s| s.as_str().cmp(store_id))
                .is_ok(),
            Scope::Store(s) => s == store_id,
        }
    }

    /// Whether a user of this scope may see the region `region`.
    pub fn allows_region(&self, region: &str) -> bool {
        match self {
            Scope::Chain => true,
            Scope::Region { region: r, .. } => r == region,
            Scope::Store(_) => false,
        }
    }

    /// The directory's stores in scope, sorted by id.
    pub fn store_ids(&self, stores: &StoreIndex) -> Vec<String> {
        match self {
            Scope::Chain => stores.sites().map(|s| s.store_id.clone()).collect(),
            Scope::Region { store_ids, .. } => store_ids.clone(),
            Scope::Store(s) => vec![s.clone()],
        }
    }

    /// The region of a regional scope.
    pub fn region(&self) -> Option<&str> {
        match self {
            Scope::Region { region, .. } => Some(region),
            _ => None,
        }
    }

    /// `Ok` when `store_id` is in scope, else the refusal a person reads.
    pub fn check_store(&self, store_id: &str) -> Result<(), HubError> {
        if self.allows_store(store_id) {
            Ok(())
        } else {
            Err(HubError::NotYourRegion(store_id.to_owned()))
        }
    }
}
