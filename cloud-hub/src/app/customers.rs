//! One customer across channels, at the hub (issue 12; DESIGN.md §8).
//!
//! The channels' source records (till, member card, community, live stream,
//! mini-program) are imported as CSV and kept in `identity_records`; after
//! every import or unmerge the hub resolves **all** its records again with
//! [`linli_shared::identity::resolve`] and gives each customer its id with
//! [`linli_shared::identity::assign_ids`], so the partition never depends on
//! the order files came in, and ids stay put: a re-import of the same file
//! changes nothing, a merge keeps the id of its larger part, and an id once
//! given is never given to someone else (`identity_customers` remembers
//! retired ones). Why each customer is one is in `identity_merges` (the rule,
//! the shared value, the two records). An unmerge writes never-merge pairs
//! (`identity_never_merge`), so a later import cannot join the parts again.
//!
//! Everything runs in one writer transaction: a failed import or unmerge
//! leaves the tables as they were. Resolving all records holds the writer
//! for the resolver's time (0.53 s per 100,000 records in release on a busy
//! 2-core machine, `shared/benches/identity_bench.rs`) plus the writes of
//! every record's customer id; past a few hundred thousand records this
//! wants an incremental resolve of the groups a file touches.
//!
//! A customer is its records, why they are one, and its profile
//! ([`profile`]): which channel rows are the customer's is decided in one
//! place, [`crate::people`]. The tables are read and written through
//! [`crate::store::customers::CustomerRecords`].

use std::collections::{BTreeMap, BTreeSet};

use linli_shared::identity::{SourceRecord, assign_ids, parse_identities_csv, resolve, split_off};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::auth::{Role, User};
use crate::error::HubError;
use crate::hub::Hub;
use crate::store::customers::CustomerRecords;

pub mod erasure;
pub mod export;
pub mod profile;

use crate::people;
pub use export::CustomerExport;
pub use profile::Profile;

/// A record's customer after an import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecordCustomer {
    pub record_id: String,
    pub customer_id: String,
}

/// What an import did.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// Rows of this file stored (new or updated).
    pub imported: usize,
    /// Distinct customers the file's records belong to.
    pub customers: usize,
    /// Each of the file's records with its customer, in file order.
    pub records: Vec<RecordCustomer>,
}

/// A source record as the hub holds it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IdentityRecord {
    pub record_id: String,
    pub source: String,
    pub phone: String,
    pub openid: String,
    pub unionid: String,
    pub member_card: String,
    pub nickname: String,
    pub store_id: String,
}

/// Why two records are one customer.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MergeReason {
    /// `unionid`, `openid`, `member_card`, `phone`, `name_on_shared_phone`
    /// or `name_at_store`.
    pub rule: String,
    /// The shared identifier (a phone normalised to 11 digits).
    pub value: String,
    pub record_a: String,
    pub record_b: String,
}

/// A customer: its records, why they are one, and its profile. A customer
/// known only from online sessions has no records.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CustomerView {
    pub customer_id: String,
    pub records: Vec<IdentityRecord>,
    pub merges: Vec<MergeReason>,
    pub profile: Profile,
}

/// One part of an unmerged customer.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CustomerPart {
    pub customer_id: String,
    pub record_ids: Vec<String>,
}

/// What an unmerge did: the customers the records now belong to (the part
/// with the most records keeps the old id).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UnmergeReport {
    pub customer_id: String,
    pub parts: Vec<CustomerPart>,
}

impl Hub {
    /// Imports an identities CSV (admin). A file with any unreadable row is
    /// refused whole, with every bad line: a half-imported file would
    /// resolve customers from half their records.
    pub async fn import_identities(
        &self,
        user: &User,
        csv: Vec<u8>,
    ) -> Result<ImportReport, HubError> {
        admin(user)?;
        let parsed = parse_identities_csv(&csv)?;
        if !parsed.rejected.is_empty() {
            return Err(HubError::IdentityRows(parsed.rejected));
        }
        let records: Vec<SourceRecord> = parsed.rows.into_iter().map(|r| r.record).collect();
        let now = self.now().to_rfc3339();
        self.store
            .write(move |c| {
                c.put_identity_records(&records, &now)?;
                let of = reresolve(c, &now)?;
                let out: Vec<RecordCustomer> = records
                    .iter()
                    .map(|r| RecordCustomer {
                        record_id: r.record_id.clone(),
                        customer_id: of.get(&r.record_id).cloned().unwrap_or_default(),
                    })
                    .collect();
                let customers = out
                    .iter()
                    .map(|r| r.customer_id.as_str())
                    .collect::<BTreeSet<_>>()
                    .len();
                Ok(ImportReport {
                    imported: records.len(),
                    customers,
                    records: out,
                })
            })
            .await
    }

    /// A customer's records, merges and profile (admin: these are personal
    /// data). `id` is an identity customer's id or an online customer's;
    /// the answer names the customer the id belongs to.
    pub async fn customer(&self, user: &User, id: &str) -> Result<CustomerView, HubError> {
        let scope = staff_scope(self, user)?;
        let id = id.to_owned();
        let key = self.member_key.clone();
        let offset = self.order_settings.utc_offset;
        let today = self.now().with_timezone(&offset).date_naive();
        self.store
            .read(move |c| {
                let (person, records, merges, profile) =
                    person_in_scope(c, &key, &scope, &id, offset, today)?;
                Ok(CustomerView {
                    customer_id: person.id,
                    records,
                    merges,
                    profile,
                })
            })
            .await
    }

    /// Everything the hub holds about a customer (PIPL Art. 45; admin).
    pub async fn export_customer(&self, user: &User, id: &str) -> Result<CustomerExport, HubError> {
        let scope = staff_scope(self, user)?;
        let id = id.to_owned();
        let key = self.member_key.clone();
        let offset = self.order_settings.utc_offset;
        let now = self.now();
        let today = now.with_timezone(&offset).date_naive();
        self.store
            .read(move |c| {
                let (person, records, merges, profile) =
                    person_in_scope(c, &key, &scope, &id, offset, today)?;
                export::export(c, &person, records, merges, profile, &crate::time::ts(now))
            })
            .await
    }

    /// Splits `record_ids` off customer `id` (admin): they become their own
    /// customer(s), kept apart from the rest by never-merge pairs from now on.
    pub async fn unmerge(
        &self,
        user: &User,
        id: &str,
        record_ids: Vec<String>,
    ) -> Result<UnmergeReport, HubError> {
        admin(user)?;
        let by = user.name.clone();
        let id = id.to_owned();
        let now = self.now().to_rfc3339();
        self.store
            .write(move |c| {
                let members: Vec<String> =
                    records_of(c, &id)?.into_iter().map(|r| r.record_id).collect();
                if members.is_empty() {
                    return Err(HubError::CustomerNotFound(id));
                }
                let split: BTreeSet<&String> = record_ids.iter().collect();
                if split.is_empty() {
                    return Err(HubError::Invalid(
                        "record_ids 不能为空 (name at least one record to split off)".into(),
                    ));
                }
                if let Some(stranger) = split.iter().find(|r| !members.contains(r)) {
                    return Err(HubError::Invalid(format!(
                        "记录 {stranger} 不属于顾客 {id} (record {stranger} is not one of customer {id}'s)"
                    )));
                }
                if split.len() == members.len() {
                    return Err(HubError::Invalid(
                        "不能拆出顾客的全部记录 (splitting off every record leaves nothing to split from)"
                            .into(),
                    ));
                }
                let split: Vec<String> = split.into_iter().cloned().collect();
                c.add_never_merge(&split_off(&members, &split), &by, &now)?;
                let of = reresolve(c, &now)?;
                let mut parts: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for r in &members {
                    if let Some(cid) = of.get(r) {
                        parts.entry(cid.clone()).or_default().push(r.clone());
                    }
                }
                Ok(UnmergeReport {
                    customer_id: id,
                    parts: parts
                        .into_iter()
                        .map(|(customer_id, record_ids)| CustomerPart {
                            customer_id,
                            record_ids,
                        })
                        .collect(),
                })
            })
            .await
    }
}

/// Why `id` names nobody: erased, or never known.
fn not_found(c: &Connection, id: String) -> Result<HubError, HubError> {
    Ok(match c.erased_as(&id)? {
        Some(erasure_id) => HubError::CustomerErased {
            customer_id: id,
            erasure_id,
        },
        None => HubError::CustomerNotFound(id),
    })
}

/// Who may read a customer: the chain admin any, a regional manager those
/// whose home store (most purchases) or, without purchases, whose
/// community is in their region.
fn staff_scope(hub: &Hub, user: &User) -> Result<crate::scope::Scope, HubError> {
    match user.role {
        Role::Admin | Role::Regional => Ok(hub.scope(user)),
        Role::Manager => Err(HubError::Forbidden),
    }
}

/// The person `id` names, with their records, merges and profile, if
/// `scope` may see them.
fn person_in_scope(
    c: &Connection,
    key: &[u8; 32],
    scope: &crate::scope::Scope,
    id: &str,
    offset: chrono::FixedOffset,
    today: chrono::NaiveDate,
) -> Result<
    (
        people::Person,
        Vec<IdentityRecord>,
        Vec<MergeReason>,
        profile::Profile,
    ),
    HubError,
> {
    let people = people::people(c, key)?;
    let Some(person) = people.get(id) else {
        return Err(not_found(c, id.to_owned())?);
    };
    let records = records_of(c, &person.id)?;
    let merges = merges_of(c, &person.id)?;
    let profile = profile::profile(c, &people, person, offset, today)?;
    in_scope(scope, &profile)?;
    Ok((person.clone(), records, merges, profile))
}

fn in_scope(scope: &crate::scope::Scope, p: &profile::Profile) -> Result<(), HubError> {
    if *scope == crate::scope::Scope::Chain {
        return Ok(());
    }
    match p.summary.home_store.as_deref().or(p.community.as_deref()) {
        Some(store) => scope.check_store(store),
        None => Err(HubError::NotYourRegion("该顾客".into())),
    }
}

fn admin(user: &User) -> Result<(), HubError> {
    if user.role == Role::Admin {
        Ok(())
    } else {
        Err(HubError::Forbidden)
    }
}

/// The customer's records, as the API gives them.
fn records_of(c: &Connection, customer_id: &str) -> Result<Vec<IdentityRecord>, HubError> {
    Ok(c.identity_records_of(customer_id)?
        .into_iter()
        .map(|r| IdentityRecord {
            record_id: r.record_id,
            source: r.source,
            phone: r.phone,
            openid: r.openid,
            unionid: r.unionid,
            member_card: r.member_card,
            nickname: r.nickname,
            store_id: r.store_id,
        })
        .collect())
}

/// Why the customer's records are one, as the API gives it.
fn merges_of(c: &Connection, customer_id: &str) -> Result<Vec<MergeReason>, HubError> {
    Ok(c.merges_of(customer_id)?
        .into_iter()
        .map(|m| MergeReason {
            rule: m.rule,
            value: m.value,
            record_a: m.record_a,
            record_b: m.record_b,
        })
        .collect())
}

/// Resolves every record the hub holds again and stores the customers, the
/// ids and the merges. Returns record id → customer id.
fn reresolve(c: &Connection, now: &str) -> Result<BTreeMap<String, String>, HubError> {
    let mut records = Vec::new();
    let mut previous = BTreeMap::new();
    for (rec, cid) in c.all_identity_records()? {
        if let Some(cid) = cid {
            previous.insert(rec.record_id.clone(), cid);
        }
        records.push(rec);
    }
    let never = c.never_merge_pairs()?;
    let retired = c.retired_customer_ids()?;
    let resolution = resolve(&records, &never).map_err(|e| HubError::Invalid(e.to_string()))?;
    let ids = assign_ids(&resolution.clusters, &previous, &retired);
    c.save_customers(&resolution.clusters, &ids, now)?;
    Ok(resolution
        .clusters
        .iter()
        .zip(&ids)
        .flat_map(|(cl, id)| cl.records.iter().map(move |r| (r.clone(), id.clone())))
        .collect())
}
