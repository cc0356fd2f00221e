//! The fact rows the KPIs read over a period, behind the [`KpiFacts`]
//! trait: a store's counter sales, refunds and write-offs (`hub_sales`,
//! `hub_refunds`, `hub_write_offs`), its community's members and their
//! activity (`community_members`, the `member_activity` view), its
//! oversold orders (`exceptions`) and its live sessions
//! (`live_sessions`). Online orders and group-buys are asked of their own
//! families ([`super::orders::OrderRecords`],
//! [`super::groupbuys::GroupBuyRecords`]).
//!
//! Unlike the other traits this one is not a family of tables but the
//! KPIs' read of several: the figures' queries are measured together
//! (docs/DECISIONS.md, "KPI queries: a timeline per answer"), so they sit
//! in one place, read-only, on the caller's read connection. The methods
//! return the facts as [`linli_shared::kpi`] has them; the formulas stay
//! with the use case. A row whose time does not read
//! ([`linli_shared::kpi::instant`]) is skipped.

use chrono::{DateTime, NaiveDate, Utc};
use linli_shared::kpi::{
    Activity, CounterRefund, CounterSale, LiveSessionInfo, Member, Oversell, WriteOff,
};

use super::StoreError;

mod sqlite;

/// The KPIs' reads of one store's fact rows.
pub trait KpiFacts {
    /// The store's counter sales of business days `from` to `to`
    /// (inclusive), with their lines' SKUs and quantities.
    fn counter_sales(
        &self,
        store: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<CounterSale>, StoreError>;

    /// The store's counter sales to a member of business days after
    /// `after` to `through` (inclusive), as the repurchase rate reads
    /// them: time and member hash only (no id, cashier, total or lines).
    fn member_purchases(
        &self,
        store: &str,
        after: NaiveDate,
        through: NaiveDate,
    ) -> Result<Vec<CounterSale>, StoreError>;

    /// The store's counter refunds in `[from, to)`.
    fn counter_refunds(
        &self,
        store: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<CounterRefund>, StoreError>;

    /// The store's write-offs of business days `from` to `to` (inclusive).
    fn write_offs(
        &self,
        store: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<WriteOff>, StoreError>;

    /// The store's community members now, with when each joined.
    fn community_members(&self, store: &str) -> Result<Vec<Member>, StoreError>;

    /// What the store's customers did in `[from, to)` (`member_activity`).
    fn member_activity(
        &self,
        store: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Activity>, StoreError>;

    /// The store's online orders raised in `[from, to)` as re-routed or
    /// refunded because the store had sold the goods at the counter.
    fn oversells(
        &self,
        store: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Oversell>, StoreError>;

    /// The store's live sessions (an untitled one has an empty title).
    fn live_sessions(&self, store: &str) -> Result<Vec<LiveSessionInfo>, StoreError>;

    /// The time of the newest sale, refund or write-off the hub holds from
    /// the store (RFC 3339, as stored), `None` if none.
    fn newest_fact_at(&self, store: &str) -> Result<Option<String>, StoreError>;
}
