//! A customer's erasure (PIPL Art. 47; DESIGN.md §8): at the hub, and at
//! every store, each store confirming.
//!
//! **At the hub**, in one writer transaction:
//! - the person's identity records, merges and never-merge pairs are
//!   deleted and the customer id retired (never given again);
//! - each of the person's online accounts is deleted (`customers`: phone,
//!   openid; its sessions and its community membership), and every row that
//!   named it names a **tombstone** instead (`erased-<erasure id>`): online
//!   orders (whose record also loses the masked phone and the delivery
//!   address, the drop-off point becoming the store's), community joins,
//!   poll votes, group-buy commitments, coupon claims. Amounts, ids, dates
//!   and stores stay: the books, refunds, campaign counts and KPIs need
//!   them, and without the person they are no longer personal data;
//! - counter sales lose their member hash;
//! - idempotency replays made by the person or holding a phone of theirs
//!   are deleted.
//!
//! **At the stores**: the hub writes an [`ErasureNotice`] into every store's
//! orders document of the day (section `erasures`). It names the person by
//! the keyed hashes of the phones only they hold and by order and commitment
//! ids, never by phone. Each store erases what matches and confirms in its
//! ledger ([`linli_shared::erasure::ErasureConfirmation`]); the hub projects
//! the confirmations into `erasure_stores`, so [`ErasureView`] lists the
//! stores that have not yet confirmed. A store offline during the erasure
//! receives the notice and confirms when its link is back.
//!
//! What is not erased: the history of the chain's automerge documents
//! (hub and stores) keeps what earlier changes wrote (member hashes and
//! masked phones; in documents written before 2026-12-02 a counter join's
//! or group-buy commitment's phone; a delivery address) until those day
//! documents are retired; see docs/DECISIONS.md.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use linli_shared::docs::DocId;
use linli_shared::docs::json::put_record;
use linli_shared::erasure::{ErasureConfirmation, ErasureNotice};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use super::admin;
use crate::auth::User;
use crate::error::HubError;
use crate::hub::Hub;
use crate::people::{self, Person};
use crate::store::communities::CommunityRecords;
use crate::store::coupons::CouponRecords;
use crate::store::customers::{CustomerRecords, NewErasure};
use crate::store::groupbuys::GroupBuyRecords;
use crate::store::idempotency;
use crate::store::orders::OrderRecords;
use crate::time::ts;

/// One store's part of an erasure.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErasureStore {
    pub store_id: String,
    /// When the store's confirmation reached the hub's tables (none yet:
    /// the store has not confirmed).
    pub confirmed_at: Option<String>,
    /// Rows the store changed.
    pub rows: Option<i64>,
}

/// An erasure and where it stands.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErasureView {
    pub erasure_id: String,
    /// The erased customer's id (retired; it now names nobody).
    pub customer_id: String,
    /// The id rows that named the customer carry now.
    pub tombstone: String,
    pub requested_by: String,
    pub requested_at: String,
    /// Rows changed at the hub.
    pub hub_rows: i64,
    pub stores: Vec<ErasureStore>,
    /// Stores that have not yet confirmed.
    pub pending_stores: Vec<String>,
    /// Every store has confirmed.
    pub complete: bool,
}

impl Hub {
    /// Erases a customer (admin; `key` is the request's Idempotency-Key).
    /// Returns the erasure and whether it was made now (`false`: a retry,
    /// or the customer was erased before).
    pub async fn erase_customer(
        &self,
        user: &User,
        id: &str,
        key: String,
    ) -> Result<(ErasureView, bool), HubError> {
        admin(user)?;
        let (id, by) = (id.to_owned(), user.name.clone());
        let member_key = self.member_key.clone();
        let now = self.now();
        let day = now
            .with_timezone(&self.order_settings.utc_offset)
            .date_naive();
        let (view, fresh, touched) = self
            .with_docs(move |c, docs| {
                let record_key = format!("staff:{by}\u{1f}{key}");
                let fingerprint = format!("erase\u{1f}{id}");
                if let Some((h, erasure_id)) = idempotency::replay(c, &record_key)? {
                    if h != fingerprint {
                        return Err(HubError::IdempotencyKeyReused(key));
                    }
                    return Ok((view(c, &erasure_id)?, false, Vec::new()));
                }
                if let Some(done) = c.erased_as(&id)? {
                    return Ok((view(c, &done)?, false, Vec::new()));
                }
                let people = people::people(c, &member_key)?;
                let person = people
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| HubError::CustomerNotFound(id.clone()))?;
                let erasure_id = format!("E{}", linli_sync::ids::ulid());
                let notice = notice_of(c, &person, &erasure_id, &ts(now))?;
                let tomb = format!("erased-{erasure_id}");
                let rows = scrub(c, &person, &tomb, now)?;
                let aliases: Vec<&str> = person.online_ids.iter().map(String::as_str).collect();
                c.add_erasure(&NewErasure {
                    erasure_id: &erasure_id,
                    customer_id: &person.id,
                    aliases: &aliases,
                    tombstone: &tomb,
                    requested_by: &by,
                    requested_at: now,
                    hub_rows: rows as i64,
                })?;
                let stores = c.known_store_ids()?;
                let mut touched = Vec::new();
                for s in &stores {
                    c.add_erasure_store(&erasure_id, s)?;
                    let doc = DocId::hub_orders(s, day);
                    docs.change(c, &doc, |d| {
                        put_record(d, "erasures", &erasure_id, &notice)?;
                        Ok(())
                    })?;
                    touched.push(doc);
                }
                idempotency::record(c, &record_key, &fingerprint, &erasure_id, now)?;
                tracing::info!(%erasure_id, stores = stores.len(), hub_rows = rows, "customer erased at the hub");
                Ok((view(c, &erasure_id)?, true, touched))
            })
            .await?;
        self.announce(touched);
        Ok((view, fresh))
    }

    /// An erasure and which stores have not yet confirmed it (admin).
    pub async fn erasure(&self, user: &User, erasure_id: &str) -> Result<ErasureView, HubError> {
        admin(user)?;
        let id = erasure_id.to_owned();
        self.store.read(move |c| view(c, &id)).await
    }
}

/// What each store is asked to erase.
fn notice_of(
    c: &Connection,
    p: &Person,
    erasure_id: &str,
    now: &str,
) -> Result<ErasureNotice, HubError> {
    let mut order_ids = BTreeSet::new();
    let mut commitment_ids = BTreeSet::new();
    for o in &p.online_ids {
        order_ids.extend(c.order_ids_of_customer(o)?);
        commitment_ids.extend(c.commitment_ids_of_customer(o)?);
    }
    Ok(ErasureNotice {
        erasure_id: erasure_id.to_owned(),
        member_hashes: p.member_hashes.iter().cloned().collect(),
        order_ids: order_ids.into_iter().collect(),
        commitment_ids: commitment_ids.into_iter().collect(),
        requested_at: now.to_owned(),
    })
}

/// Removes the person's personal data from the hub's tables (at `now`);
/// returns the rows changed.
fn scrub(c: &Connection, p: &Person, tomb: &str, now: DateTime<Utc>) -> Result<usize, HubError> {
    let mut n = 0;
    for r in &c.identity_record_ids_of(&p.id)? {
        n += c.delete_never_merge_of(r)?;
    }
    n += c.delete_identity_records_of(&p.id)?;
    n += c.delete_merges_of(&p.id)?;
    c.retire_customer_id(&p.id, now)?;
    for o in &p.online_ids {
        n += c.erase_customer_from_orders(o, tomb)?;
        n += c.erase_customer_from_joins(o, tomb)?;
        n += c.erase_customer_from_votes(o, tomb)?;
        n += c.erase_customer_from_commitments(o, tomb)?;
        n += c.erase_customer_from_claims(o, tomb)?;
        // a second vote in one poll by another of the person's accounts
        n += c.delete_votes_of(o)?;
        n += c.delete_member(o)?;
        n += c.delete_sessions_of(o)?;
        n += c.delete_account(o)?;
        // the person's own request replays (orders with the masked phone)
        n += idempotency::delete_keyed(c, &format!("customer:{o}\u{1f}"))?;
    }
    for h in &p.member_hashes {
        n += c.forget_member_hash(h)?;
    }
    // replays of staff requests that carried a phone or openid of theirs
    for v in p.phones.iter().chain(&p.openids) {
        n += idempotency::delete_holding(c, v)?;
    }
    Ok(n)
}

/// Records stores' confirmations from their ledgers (idempotent: the first
/// confirmation of a store stands).
pub(crate) fn project_confirmations(
    c: &Connection,
    store: &str,
    facts: &[(String, ErasureConfirmation)],
) -> Result<(), HubError> {
    for (_, f) in facts {
        c.confirm_erasure(&f.erasure_id, store, &f.at, f.rows)?;
    }
    Ok(())
}

fn view(c: &Connection, erasure_id: &str) -> Result<ErasureView, HubError> {
    let Some(e) = c.erasure(erasure_id)? else {
        return Err(HubError::ErasureNotFound(erasure_id.to_owned()));
    };
    let stores: Vec<ErasureStore> = c
        .erasure_stores(erasure_id)?
        .into_iter()
        .map(|s| ErasureStore {
            store_id: s.store_id,
            confirmed_at: s.confirmed_at,
            rows: s.rows,
        })
        .collect();
    let pending_stores: Vec<String> = stores
        .iter()
        .filter(|s| s.confirmed_at.is_none())
        .map(|s| s.store_id.clone())
        .collect();
    Ok(ErasureView {
        erasure_id: erasure_id.to_owned(),
        customer_id: e.customer_id,
        tombstone: e.tombstone,
        requested_by: e.requested_by,
        requested_at: e.requested_at,
        hub_rows: e.hub_rows,
        complete: pending_stores.is_empty(),
        pending_stores,
        stores,
    })
}
