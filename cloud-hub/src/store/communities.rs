//! The records of 一店一群: `communities` (each store's join code),
//! `community_members` (the community each customer belongs to now),
//! `community_joins` (every join with what it did) and the polls a store
//! runs (`polls`, `poll_votes`), behind the [`CommunityRecords`] trait.
//!
//! The trait is every question and every write the use cases put to these
//! tables, in domain types: no SQL and no database type in its signatures,
//! so a PostgreSQL hub implements the same trait. The SQLite
//! implementation (`sqlite`) is for the caller's `rusqlite::Connection`:
//! the writer's transaction or a read connection. The rules (which join
//! wins, who may vote) are [`linli_shared::community`] and the use
//! cases': these methods only read and write what they are told.
//!
//! The members list joins `customers` for the masked phone: it returns
//! members, so it is asked here; the monthly-active count reads the
//! `member_activity` view over every channel's tables for the same reason.
//! A person's export reads their rows here, and their erasure files their
//! joins and votes under a tombstone and deletes their membership here.

use chrono::{DateTime, Utc};
use linli_shared::community::{JoinVia, Membership};
use serde_json::Value;

use super::StoreError;

mod sqlite;

/// A join as `community_joins` holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRecord {
    pub join_id: String,
    pub customer_id: String,
    pub store_id: String,
    pub via: JoinVia,
    /// When the customer joined.
    pub at: DateTime<Utc>,
    /// `joined`, `moved`, `already` or `superseded`.
    pub outcome: String,
    pub moved_from: Option<String>,
    /// When the hub recorded it.
    pub recorded_at: DateTime<Utc>,
}

/// What a join recorded before did (its `via` and times are not read back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedJoin {
    pub customer_id: String,
    pub store_id: String,
    pub outcome: String,
    pub moved_from: Option<String>,
}

/// A customer's community as `community_members` holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub customer_id: String,
    pub store_id: String,
    /// When the customer joined this community (RFC 3339, as stored).
    pub since: String,
    /// How: `counter`, `code` or `location`.
    pub via: String,
    /// The customer's masked phone (`customers`), empty if none is known.
    pub masked_phone: String,
}

/// A poll as `polls` holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poll {
    pub poll_id: String,
    pub store_id: String,
    pub question: String,
    /// The options' SKUs, in the manager's order.
    pub options: Vec<String>,
    /// RFC 3339, as stored.
    pub closes_at: String,
}

/// A poll to record.
#[derive(Debug, Clone)]
pub struct NewPoll<'a> {
    pub poll_id: &'a str,
    pub store_id: &'a str,
    pub question: &'a str,
    pub options: &'a [String],
    pub closes_at: DateTime<Utc>,
    pub created_by: &'a str,
    pub created_at: DateTime<Utc>,
}

/// Every read and write of the community tables.
pub trait CommunityRecords {
    /// The store's join code, if it has one.
    fn join_code(&self, store_id: &str) -> Result<Option<String>, StoreError>;

    /// Gives the store `code` unless it has a code already or another
    /// store has this one; whether it was given.
    fn put_join_code(
        &self,
        store_id: &str,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// The community the customer belongs to, with its newest join.
    fn membership(&self, customer_id: &str) -> Result<Option<Membership>, StoreError>;

    /// The customer's community as members are listed.
    fn member(&self, customer_id: &str) -> Result<Option<Member>, StoreError>;

    /// The members of a store, newest first (`limit` at most).
    fn members_of(&self, store_id: &str, limit: u32) -> Result<Vec<Member>, StoreError>;

    /// A store's members, and how many of them did something at or after
    /// `since` (RFC 3339; the `member_activity` view).
    fn member_counts(&self, store_id: &str, since: &str) -> Result<(i64, i64), StoreError>;

    /// The customer belongs to `store_id` from `at`, by `join_id`.
    fn set_member(
        &self,
        customer_id: &str,
        store_id: &str,
        via: JoinVia,
        at: DateTime<Utc>,
        join_id: &str,
    ) -> Result<(), StoreError>;

    /// The customer's newest join into their own community is `join_id`.
    fn renew_member(
        &self,
        customer_id: &str,
        at: DateTime<Utc>,
        join_id: &str,
    ) -> Result<(), StoreError>;

    /// The join recorded under `join_id`, if any.
    fn recorded_join(&self, join_id: &str) -> Result<Option<RecordedJoin>, StoreError>;

    /// Files a join with what it did.
    fn add_join(&self, join: &JoinRecord) -> Result<(), StoreError>;

    /// A poll.
    fn poll(&self, poll_id: &str) -> Result<Option<Poll>, StoreError>;

    /// A store's newest polls' ids, newest first (`limit` at most).
    fn recent_polls(&self, store_id: &str, limit: u32) -> Result<Vec<String>, StoreError>;

    /// Records a poll.
    fn add_poll(&self, poll: &NewPoll<'_>) -> Result<(), StoreError>;

    /// The option each vote of a poll chose.
    fn votes(&self, poll_id: &str) -> Result<Vec<usize>, StoreError>;

    /// The option the customer chose in a poll, if they voted.
    fn vote_of(&self, poll_id: &str, customer_id: &str) -> Result<Option<usize>, StoreError>;

    /// Records the customer's vote unless they voted in this poll before;
    /// whether it was recorded.
    fn add_vote(
        &self,
        poll_id: &str,
        customer_id: &str,
        option: usize,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// The customer's membership as the table holds it (column → value):
    /// a person's export.
    fn member_rows_of_customer(&self, customer_id: &str) -> Result<Vec<Value>, StoreError>;

    /// The customer's joins as the table holds them, oldest first: a
    /// person's export.
    fn join_rows_of_customer(&self, customer_id: &str) -> Result<Vec<Value>, StoreError>;

    /// The customer's votes as the table holds them, oldest first: a
    /// person's export.
    fn vote_rows_of_customer(&self, customer_id: &str) -> Result<Vec<Value>, StoreError>;

    /// Files the customer's joins under `tombstone`; the rows changed.
    fn erase_customer_from_joins(
        &self,
        customer_id: &str,
        tombstone: &str,
    ) -> Result<usize, StoreError>;

    /// Files the customer's votes under `tombstone`, but for a vote in a
    /// poll the tombstone has voted in already; the rows changed.
    fn erase_customer_from_votes(
        &self,
        customer_id: &str,
        tombstone: &str,
    ) -> Result<usize, StoreError>;

    /// Deletes the customer's votes; the rows deleted.
    fn delete_votes_of(&self, customer_id: &str) -> Result<usize, StoreError>;

    /// Deletes the customer's membership; the rows deleted.
    fn delete_member(&self, customer_id: &str) -> Result<usize, StoreError>;
}
