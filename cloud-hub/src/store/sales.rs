//! The counter's ledger as the hub keeps it: the stores' sales
//! (`hub_sales`), refunds (`hub_refunds`) and goods written off
//! (`hub_write_offs`), projected from the ledger documents they sync,
//! behind the [`SaleRecords`] trait.
//!
//! The trait is every write the projection puts to these tables, in the
//! ledger's own types ([`linli_shared::docs::ledger`]): no SQL and no
//! database type in its signatures, so a PostgreSQL hub implements the
//! same trait. The SQLite implementation (`sqlite`) is for the writer's
//! transaction the synced message is applied in. Each row is recorded
//! once: a fact seen before is kept as it was. What the KPIs read of them
//! is [`super::kpis::KpiFacts`]; a person's export and erasure ask
//! [`super::customers::CustomerRecords`], by member hash.

use linli_shared::docs::ledger::{MovementFact, RefundFact, SaleFact};

use super::StoreError;

mod sqlite;

/// The writes of the counter's ledger tables.
pub trait SaleRecords {
    /// Records the store's sales of business day `day` (a sale without a
    /// member hash is filed with none).
    fn add_sales(&self, store: &str, day: &str, sales: &[SaleFact]) -> Result<(), StoreError>;

    /// Records the store's refunds.
    fn add_refunds(&self, store: &str, refunds: &[RefundFact]) -> Result<(), StoreError>;

    /// Records the movements given as goods written off on business day
    /// `day` (the quantity is the movement's, negated); the caller picks
    /// the waste among a ledger's movements.
    fn add_write_offs(
        &self,
        store: &str,
        day: &str,
        waste: &[&MovementFact],
    ) -> Result<(), StoreError>;
}
