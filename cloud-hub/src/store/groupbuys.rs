//! The records of group-buy campaigns: `group_buys` (one row per campaign,
//! its terms, its state and its running totals), `group_buy_progress`
//! (the running totals per store), `group_buy_commitments` (one row per
//! commitment, online or at a counter) and `group_buy_counter_cancels`
//! (the cancels and refunds stores' counters made) behind the
//! [`GroupBuyRecords`] trait.
//!
//! The trait is every question and every write the use cases put to these
//! tables, in domain types: no SQL and no database type in its signatures,
//! so a PostgreSQL hub implements the same trait. The SQLite
//! implementation (`sqlite`) is for the caller's `rusqlite::Connection`:
//! the writer's transaction or a read connection, so a commitment commits
//! with its idempotency record, its payment and its documents.
//!
//! A statement that joins a group-buy table with another table belongs
//! here when it returns group-buy rows: the participants of a reached
//! campaign (commitments, with their customers' member hash and masked
//! phone from `customers`) are asked here.
//!
//! The rules (who counts, when a campaign is decided) are
//! [`linli_shared::groupbuy`] and the use cases': these methods only read
//! and write what they are told.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use linli_shared::groupbuy::{
    Commitment, CounterCancel, Participant, State, StoreProgress, Threshold,
};
use serde_json::Value;

use super::StoreError;

mod sqlite;

/// A campaign as `group_buys` holds it.
#[derive(Debug, Clone)]
pub struct GroupBuy {
    pub id: String,
    pub sku: String,
    pub price_fen: i64,
    pub threshold: Threshold,
    pub deadline: DateTime<Utc>,
    pub pickup_date: String,
    pub per_customer_limit: i64,
    pub store_ids: Vec<String>,
    pub grace_minutes: u32,
    pub counter_allotment: i64,
    pub state: State,
    pub reached_at: Option<String>,
    pub decided_at: Option<String>,
    /// Why it failed, as written when it was decided (campaigns decided
    /// before this was kept have none: their reason is rebuilt).
    pub failure_reason: Option<String>,
}

/// A campaign to open (state `open`, nothing counted yet).
#[derive(Debug, Clone)]
pub struct NewGroupBuy<'a> {
    pub id: &'a str,
    pub sku: &'a str,
    pub price_fen: i64,
    pub threshold: Threshold,
    pub deadline: DateTime<Utc>,
    pub pickup_date: String,
    pub per_customer_limit: i64,
    /// Sorted, each once.
    pub store_ids: &'a [String],
    pub grace_minutes: u32,
    pub counter_allotment: i64,
    /// The name of the user who opened it.
    pub created_by: &'a str,
    pub created_at: DateTime<Utc>,
}

/// A campaign's running totals: over every counting commitment, and per
/// store (stores with at least one participant, by store id).
#[derive(Debug, Clone, Default)]
pub struct RunningTotals {
    pub participants: i64,
    pub qty: i64,
    pub per_store: BTreeMap<String, StoreProgress>,
}

/// A change to a campaign's running totals: participants of the store,
/// participants of the campaign, units (each added, or taken away).
#[derive(Debug, Clone, Copy)]
pub struct TotalsChange {
    pub store_participants: i64,
    pub participants: i64,
    pub qty: i64,
}

/// A commitment made online, as its row is first written.
#[derive(Debug, Clone)]
pub struct NewOnlineCommitment<'a> {
    pub commitment_id: &'a str,
    pub group_buy_id: &'a str,
    pub store_id: &'a str,
    pub customer_id: &'a str,
    pub qty: i64,
    pub amount_fen: i64,
    /// When it was made (and recorded).
    pub at: DateTime<Utc>,
    /// `active` or `awaiting_payment`.
    pub status: &'a str,
}

/// A commitment a store's counter took, as the hub records it.
#[derive(Debug, Clone)]
pub struct NewCounterCommitment<'a> {
    /// `<store>/<the store's id>`.
    pub commitment_id: &'a str,
    pub group_buy_id: &'a str,
    pub store_id: &'a str,
    pub customer_id: &'a str,
    pub qty: i64,
    pub amount_fen: i64,
    /// When the store took it.
    pub at: DateTime<Utc>,
    /// Why it arrives cancelled (`None`: it is active).
    pub cancel_reason: Option<&'a str>,
    pub cancelled_at: Option<String>,
    pub recorded_at: DateTime<Utc>,
}

/// A commitment as its customer sees it (without its payment).
#[derive(Debug, Clone)]
pub struct CommitmentRecord {
    pub commitment_id: String,
    pub group_buy_id: String,
    pub store_id: String,
    pub qty: i64,
    pub amount_fen: i64,
    pub at: String,
    pub status: String,
    pub cancel_reason: Option<String>,
    pub pickup_code: Option<String>,
    pub source: String,
    pub cancelled_at: Option<String>,
}

/// Whose a commitment is and what it holds, as payment and counting need
/// it.
#[derive(Debug, Clone)]
pub struct CommitmentHolding {
    pub group_buy_id: String,
    pub store_id: String,
    pub customer_id: String,
    pub qty: i64,
    /// `active`, `awaiting_payment` or `cancelled`.
    pub status: String,
}

/// A commitment paid online, with the amount its payment took.
#[derive(Debug, Clone)]
pub struct PaidCommitment {
    pub commitment_id: String,
    pub amount_fen: i64,
}

/// A campaign decided (reached, fulfilled or failed), as the KPIs read
/// it.
#[derive(Debug, Clone)]
pub struct DecidedGroupBuy {
    pub group_buy_id: String,
    pub store_ids: Vec<String>,
    /// `reached`, `fulfilled` or `failed`.
    pub state: String,
    /// When it failed, or reached its threshold (RFC 3339 text).
    pub at: String,
}

/// A count of a store's counter commitments and their amount, fen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSum {
    pub store_id: String,
    pub count: i64,
    pub fen: i64,
}

/// The group-buy tables' operations, each on the implementor's
/// transaction. Times are written as RFC 3339 text (`crate::time::ts`);
/// the ones passed as `&str` are written as given.
pub trait GroupBuyRecords {
    /// The campaign `id`; `None` for one the hub does not have.
    fn group_buy(&self, id: &str) -> Result<Option<GroupBuy>, StoreError>;

    /// The newest 100 campaigns, newest first (ties: the later written
    /// first); `open_only`: only those open or reached.
    fn recent_group_buys(&self, open_only: bool) -> Result<Vec<GroupBuy>, StoreError>;

    /// Every campaign still open.
    fn open_group_buys(&self) -> Result<Vec<GroupBuy>, StoreError>;

    /// Failed campaigns whose stores were never told.
    fn untold_failed_group_buys(&self) -> Result<Vec<GroupBuy>, StoreError>;

    /// Writes a new campaign, open.
    fn insert_group_buy(&self, new: &NewGroupBuy<'_>) -> Result<(), StoreError>;

    /// Moves an open campaign to `reached` at `at`.
    fn mark_reached(&self, id: &str, at: &str) -> Result<(), StoreError>;

    /// Moves an open campaign to `failed` at `at`, with its reason.
    fn mark_failed(&self, id: &str, at: &str, reason: &str) -> Result<(), StoreError>;

    /// Moves a reached campaign to `fulfilled` at `now` if every active
    /// commitment of it has a pickup order.
    fn mark_fulfilled_if_collected(&self, id: &str, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// Records that a failed campaign's stores were told, at `now`.
    fn mark_stores_told(&self, id: &str, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// The campaign's running totals.
    fn running_totals(&self, id: &str) -> Result<RunningTotals, StoreError>;

    /// Adds to the campaign's running totals and to its store's.
    fn add_to_totals(&self, id: &str, store: &str, by: TotalsChange) -> Result<(), StoreError>;

    /// Takes from the campaign's running totals and from its store's.
    fn take_from_totals(&self, id: &str, store: &str, by: TotalsChange) -> Result<(), StoreError>;

    /// Sets the campaign's running totals, and every store's, to zero.
    fn zero_totals(&self, id: &str) -> Result<(), StoreError>;

    /// Every commitment of the campaign, as the rules count them (a
    /// commitment not `active` is cancelled).
    fn commitments_of(&self, id: &str) -> Result<Vec<Commitment>, StoreError>;

    /// Whether the customer has an `active` commitment in the campaign,
    /// at `store` or (`None`) anywhere.
    fn has_counting_commitment(
        &self,
        id: &str,
        customer: &str,
        store: Option<&str>,
    ) -> Result<bool, StoreError>;

    /// The units the customer holds in the campaign (active or awaiting
    /// payment).
    fn committed_qty(&self, id: &str, customer: &str) -> Result<i64, StoreError>;

    /// Writes an online commitment.
    fn insert_online_commitment(&self, new: &NewOnlineCommitment<'_>) -> Result<(), StoreError>;

    /// Writes a counter commitment unless one has its id; returns the rows
    /// written (0 or 1).
    fn insert_counter_commitment(
        &self,
        new: &NewCounterCommitment<'_>,
    ) -> Result<usize, StoreError>;

    /// Whether a commitment with this id is recorded.
    fn commitment_exists(&self, commitment_id: &str) -> Result<bool, StoreError>;

    /// The customer's newest 100 commitments, newest first.
    fn commitments_of_customer(&self, customer: &str) -> Result<Vec<CommitmentRecord>, StoreError>;

    /// Cancels every active or unpaid commitment of a failed campaign
    /// (`group_buy_failed`, at `at`).
    fn cancel_commitments_of_failed(&self, id: &str, at: &str) -> Result<(), StoreError>;

    /// Who collects what: the campaign's active commitments with their
    /// store, at `only` or (`None`) every store, by store, time and id
    /// (joined with `customers` for the member hash and masked phone; a
    /// phone is never given).
    fn active_participants(
        &self,
        id: &str,
        only: Option<&str>,
    ) -> Result<Vec<(String, Participant)>, StoreError>;

    /// Records the pickup order a store made for its commitment; returns
    /// the rows changed (0: not a commitment of that store).
    fn set_pickup_order(
        &self,
        commitment_id: &str,
        store: &str,
        order_id: &str,
        pickup_code: &str,
        pickup_status: &str,
    ) -> Result<usize, StoreError>;

    /// The campaign of a recorded commitment (an error if there is none).
    fn group_buy_of_commitment(&self, commitment_id: &str) -> Result<String, StoreError>;

    /// Whether the campaign has a commitment taken at a counter.
    fn has_counter_commitments(&self, id: &str) -> Result<bool, StoreError>;

    /// The campaign's counter commitments refunded at their counter as
    /// failed, per store (by store id).
    fn counter_refunds_done(&self, id: &str) -> Result<Vec<StoreSum>, StoreError>;

    /// The campaign's counter commitments their store has given nothing
    /// back for, per store (by store id).
    fn counter_refunds_owed(&self, id: &str) -> Result<Vec<StoreSum>, StoreError>;

    /// Whether a store's counter recorded a cancel or refund of this
    /// commitment.
    fn counter_cancel_recorded(&self, commitment_id: &str) -> Result<bool, StoreError>;

    /// A commitment with the account it is filed under; `None` for one
    /// the hub does not have.
    fn commitment_with_owner(
        &self,
        commitment_id: &str,
    ) -> Result<Option<(CommitmentRecord, String)>, StoreError>;

    /// A recorded commitment (an error if there is none).
    fn commitment(&self, commitment_id: &str) -> Result<CommitmentRecord, StoreError>;

    /// Whose a commitment is and what it holds; `None` for one the hub
    /// does not have.
    fn commitment_holding(
        &self,
        commitment_id: &str,
    ) -> Result<Option<CommitmentHolding>, StoreError>;

    /// The campaign's active commitments whose payment is paid, with the
    /// amount paid (joined with `payments`; the rows are commitments).
    fn paid_commitments_of(&self, id: &str) -> Result<Vec<PaidCommitment>, StoreError>;

    /// Makes an (unpaid, now paid) commitment count: `active`.
    fn activate_commitment(&self, commitment_id: &str) -> Result<(), StoreError>;

    /// Cancels a commitment still active or unpaid, at its customer's
    /// request (`customer_cancelled`, at `now`).
    fn cancel_by_customer(&self, commitment_id: &str, now: DateTime<Utc>)
    -> Result<(), StoreError>;

    /// Cancels a commitment still unpaid whose money came after its
    /// campaign closed (`group_buy_closed`, at `now`).
    fn cancel_paid_after_close(
        &self,
        commitment_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Cancels a commitment still unpaid whose payment was closed
    /// (`unpaid`, at `now`).
    fn cancel_unpaid(&self, commitment_id: &str, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// When the counter's cancel of this commitment was made, if it has
    /// arrived and counts.
    fn counting_counter_cancel_at(&self, commitment_id: &str)
    -> Result<Option<String>, StoreError>;

    /// Records a counter's cancel (or failed refund) of the commitment
    /// `commitment_id` of `store` once; returns the rows written (0: it
    /// was recorded before).
    fn insert_counter_cancel(
        &self,
        commitment_id: &str,
        store: &str,
        cancel: &CounterCancel,
        counts: bool,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError>;

    /// The campaign, customer and units of `store`'s counter commitment
    /// `commitment_id`; `None` if it has not arrived.
    fn counter_commitment_holding(
        &self,
        commitment_id: &str,
        store: &str,
    ) -> Result<Option<(String, String, i64)>, StoreError>;

    /// Cancels a counter commitment still active, as its counter did at
    /// `at` (`counter_cancelled`); returns the rows changed.
    fn cancel_at_counter(&self, commitment_id: &str, at: &str) -> Result<usize, StoreError>;

    /// Group-buy money at `store`'s counter in `[start, end)` (RFC 3339
    /// text): each counter commitment's amount, taken (positive), and each
    /// counter cancel's refund, given back (negative), as `(at, fen)`.
    fn counter_money_between(
        &self,
        store: &str,
        start: &str,
        end: &str,
    ) -> Result<Vec<(String, i64)>, StoreError>;

    /// Campaigns decided in `[start, end)` (RFC 3339 text).
    fn decided_between(&self, start: &str, end: &str) -> Result<Vec<DecidedGroupBuy>, StoreError>;

    /// The ids of every commitment of the account `customer_id`.
    fn commitment_ids_of_customer(&self, customer_id: &str) -> Result<Vec<String>, StoreError>;

    /// The account's commitments as the table holds them (column → value),
    /// oldest first: a person's export.
    fn commitment_rows_of_customer(&self, customer_id: &str) -> Result<Vec<Value>, StoreError>;

    /// Files the account's commitments under `tombstone`; returns the rows
    /// changed.
    fn erase_customer_from_commitments(
        &self,
        customer_id: &str,
        tombstone: &str,
    ) -> Result<usize, StoreError>;
}
