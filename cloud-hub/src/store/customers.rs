//! The records of the hub's customers: the channels' source records
//! (`identity_records`), why records are one customer (`identity_merges`),
//! the pairs never to merge (`identity_never_merge`), every customer id
//! ever given (`identity_customers`), the online accounts (`customers`,
//! `customer_sessions`) and the erasures (`erasures`, `erasure_stores`),
//! behind the [`CustomerRecords`] trait.
//!
//! The trait is every question and every write the customer use cases put
//! to these tables, in domain types: no SQL and no database type in its
//! signatures, so a PostgreSQL hub implements the same trait. The SQLite
//! implementation (`sqlite`) is for the caller's `rusqlite::Connection`:
//! the writer's transaction or a read connection, so an import's records,
//! ids and merges commit together, and an erasure with every row it
//! changes. The rules (who is one customer, which ids are kept, what an
//! erasure removes and what it keeps) are [`linli_shared::identity`] and
//! the use cases': these methods only read and write what they are told.
//!
//! A person's counter sales (`hub_sales`, `hub_refunds`) are the counter's
//! ledger ([`super::sales::SaleRecords`]), but the export's rows of them
//! and the erasure's unhashing are asked here, by the member hash that
//! ties them to the person.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use linli_shared::identity::{Cluster, NeverMerge, SourceRecord};
use serde_json::Value;

use super::StoreError;

mod sqlite;

/// An online account's session as `customer_sessions` holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub customer_id: String,
    /// The account's phone, if it has one (`customers`).
    pub phone: Option<String>,
    /// When the session ends; `None` if the stored time does not read.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Why two records are one customer, as `identity_merges` holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeRecord {
    /// The rule's name (`unionid`, `phone`, ...).
    pub rule: String,
    pub value: String,
    pub record_a: String,
    pub record_b: String,
}

/// An erasure to record.
#[derive(Debug, Clone)]
pub struct NewErasure<'a> {
    pub erasure_id: &'a str,
    pub customer_id: &'a str,
    /// The person's online accounts, erased with them.
    pub aliases: &'a [&'a str],
    pub tombstone: &'a str,
    pub requested_by: &'a str,
    pub requested_at: DateTime<Utc>,
    /// Rows changed at the hub.
    pub hub_rows: i64,
}

/// An erasure as `erasures` holds it (its aliases are not read back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureRecord {
    pub customer_id: String,
    pub tombstone: String,
    pub requested_by: String,
    /// RFC 3339, as stored.
    pub requested_at: String,
    pub hub_rows: i64,
}

/// A store's part of an erasure, as `erasure_stores` holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureStoreRecord {
    pub store_id: String,
    /// When its confirmation was recorded (none: not yet).
    pub confirmed_at: Option<String>,
    /// Rows the store changed.
    pub rows: Option<i64>,
}

/// Every read and write of the customer tables. Times passed as `&str`
/// are written as given; the others as RFC 3339 text (`crate::time::ts`).
pub trait CustomerRecords {
    /// Writes the records (new, or replacing those with their ids),
    /// imported at `now`.
    fn put_identity_records(&self, records: &[SourceRecord], now: &str) -> Result<(), StoreError>;

    /// The customer's records, by record id.
    fn identity_records_of(&self, customer_id: &str) -> Result<Vec<SourceRecord>, StoreError>;

    /// Why the customer's records are one, in the order they were written.
    fn merges_of(&self, customer_id: &str) -> Result<Vec<MergeRecord>, StoreError>;

    /// Every record, with the customer it was given last (none: not
    /// resolved yet).
    fn all_identity_records(&self) -> Result<Vec<(SourceRecord, Option<String>)>, StoreError>;

    /// Every pair of records never to merge.
    fn never_merge_pairs(&self) -> Result<Vec<NeverMerge>, StoreError>;

    /// Every customer id retired (never to be given again).
    fn retired_customer_ids(&self) -> Result<BTreeSet<String>, StoreError>;

    /// Writes a resolution: the `i`-th cluster is customer `ids[i]` (the id
    /// recorded at `now` if new), its records get that id and its merges
    /// replace every merge written before; ids no record holds any more
    /// are retired at `now`.
    fn save_customers(
        &self,
        clusters: &[Cluster],
        ids: &[String],
        now: &str,
    ) -> Result<(), StoreError>;

    /// Records pairs never to merge (each once), by `by` at `now`.
    fn add_never_merge(&self, pairs: &[NeverMerge], by: &str, now: &str) -> Result<(), StoreError>;

    /// The ids of the customer's records.
    fn identity_record_ids_of(&self, customer_id: &str) -> Result<Vec<String>, StoreError>;

    /// Deletes the never-merge pairs naming the record; the rows deleted.
    fn delete_never_merge_of(&self, record_id: &str) -> Result<usize, StoreError>;

    /// Deletes the customer's records; the rows deleted.
    fn delete_identity_records_of(&self, customer_id: &str) -> Result<usize, StoreError>;

    /// Deletes the customer's merges; the rows deleted.
    fn delete_merges_of(&self, customer_id: &str) -> Result<usize, StoreError>;

    /// Retires the customer id at `now` (unless it was retired before).
    fn retire_customer_id(&self, customer_id: &str, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// Opens a session of the online account under the token's hash,
    /// good until `expires_at`.
    fn add_session(
        &self,
        token_hash: &str,
        account: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The session under the token's hash, with its account's phone.
    fn session(&self, token_hash: &str) -> Result<Option<Session>, StoreError>;

    /// Deletes the online account's sessions; the rows deleted.
    fn delete_sessions_of(&self, account: &str) -> Result<usize, StoreError>;

    /// Deletes the online account; the rows deleted.
    fn delete_account(&self, account: &str) -> Result<usize, StoreError>;

    /// The online account as `customers` holds it (column → value): a
    /// person's export.
    fn account_rows(&self, account: &str) -> Result<Vec<Value>, StoreError>;

    /// The counter sales carrying the member hash, oldest first, as the
    /// table holds them: a person's export.
    fn counter_sale_rows_of_member(&self, member_hash: &str) -> Result<Vec<Value>, StoreError>;

    /// The counter refunds of those sales, oldest first, as the table
    /// holds them: a person's export.
    fn counter_refund_rows_of_member(&self, member_hash: &str) -> Result<Vec<Value>, StoreError>;

    /// Takes the member hash off every counter sale carrying it; the rows
    /// changed.
    fn forget_member_hash(&self, member_hash: &str) -> Result<usize, StoreError>;

    /// The erasure that erased the customer or online account `id`, if
    /// any.
    fn erased_as(&self, id: &str) -> Result<Option<String>, StoreError>;

    /// Records an erasure.
    fn add_erasure(&self, erasure: &NewErasure<'_>) -> Result<(), StoreError>;

    /// Records that `store_id` is to confirm the erasure.
    fn add_erasure_store(&self, erasure_id: &str, store_id: &str) -> Result<(), StoreError>;

    /// Records a store's confirmation unless one was recorded before.
    fn confirm_erasure(
        &self,
        erasure_id: &str,
        store_id: &str,
        at: &str,
        rows: i64,
    ) -> Result<(), StoreError>;

    /// An erasure.
    fn erasure(&self, erasure_id: &str) -> Result<Option<ErasureRecord>, StoreError>;

    /// The stores of an erasure, by store id.
    fn erasure_stores(&self, erasure_id: &str) -> Result<Vec<ErasureStoreRecord>, StoreError>;
}
