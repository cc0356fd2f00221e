//! A counter's group-buys, rebuilt from recovered documents: the terms,
//! failures and participant lists the hub sent (its orders documents,
//! sections `group_buys`, `group_buy_failed`, `group_buy_participants`)
//! and the commitments this counter took and gave back (its ledgers,
//! sections `commitments`, `commitment_cancels`), so a PC that takes over
//! counts the allotment, the customer's limit, the refunds owed and the
//! drawer as the PC that took them would have. Without it a restored store
//! could take commitments beyond its allotment (what it had taken was not
//! in its tables) and could not refund a failed campaign's commitments.
//!
//! Rows already in the tables stay; what the documents hold beyond them is
//! added. `goods_in` becomes at least the units received for the campaign
//! (the recovered movements that name it).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use linli_shared::docs::DocId;
use linli_shared::docs::json::records;
use linli_shared::groupbuy::{
    CounterCancel, CounterCommitment, CounterFailure, CounterTerms, ParticipantList, RefundReason,
};
use linli_sync::doc_store::Docs;
use rusqlite::{Connection, params};

use crate::app::{AppError, groupbuy};

/// What the rebuild added.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GroupBuysRebuilt {
    pub campaigns: usize,
    pub commitments: usize,
    pub refunds: usize,
}

/// Adds to the group-buy tables what the documents of `days` (oldest
/// first) hold; `now` stamps the terms as received.
pub(crate) fn restore(
    c: &Connection,
    docs: &mut Docs,
    store: &str,
    days: &[NaiveDate],
    now: DateTime<Utc>,
) -> Result<GroupBuysRebuilt, AppError> {
    let mut terms: BTreeMap<String, CounterTerms> = BTreeMap::new();
    let mut failures: BTreeMap<String, CounterFailure> = BTreeMap::new();
    let mut lists: BTreeMap<String, ParticipantList> = BTreeMap::new();
    let mut taken: BTreeMap<String, CounterCommitment> = BTreeMap::new();
    let mut given: BTreeMap<String, CounterCancel> = BTreeMap::new();
    for day in days {
        for (ledger, _) in docs.parts(c, &DocId::store_ledger(store, *day))? {
            if let Some((k, x)) = docs.read(c, &ledger, |d| {
                (
                    records::<CounterCommitment>(d, "commitments"),
                    records::<CounterCancel>(d, "commitment_cancels"),
                )
            })? {
                taken.extend(k);
                given.extend(x);
            }
        }
        // a later day's entry is the hub's later word
        if let Some((t, f, l)) = docs.read(c, &DocId::hub_orders(store, *day), |d| {
            (
                records::<CounterTerms>(d, "group_buys"),
                records::<CounterFailure>(d, "group_buy_failed"),
                records::<ParticipantList>(d, "group_buy_participants"),
            )
        })? {
            terms.extend(t);
            failures.extend(f);
            lists.extend(l);
        }
    }
    let mut out = GroupBuysRebuilt::default();
    let known = |sql: &str, id: &str| -> Result<bool, AppError> {
        Ok(c.prepare_cached(sql)?.exists([id])?)
    };
    for id in terms.keys() {
        if !known("SELECT 1 FROM group_buys WHERE group_buy_id = ?1", id)? {
            out.campaigns += 1;
        }
    }
    groupbuy::save_terms(c, &terms.into_iter().collect::<Vec<_>>(), now)?;
    groupbuy::save_failures(c, &failures.into_iter().collect::<Vec<_>>(), now)?;
    let key = crate::app::phones::stored_key(c)?;
    if let Some(key) = &key {
        groupbuy::save_participants(c, &lists.into_iter().collect::<Vec<_>>(), key)?;
    }
    for k in taken.values() {
        // the fact's hash; only a commitment written before issue 12
        // carries the phone instead, hashed under the stored key
        let member = match (&key, k.member_hash.is_empty()) {
            (_, false) => k.member_hash.clone(),
            (Some(key), true) => match k.hash(key) {
                Some(h) => h,
                None => continue,
            },
            (None, true) => continue,
        };
        let amount = c
            .prepare_cached(
                "SELECT json_extract(terms, '$.price_fen') * ?2 FROM group_buys WHERE group_buy_id = ?1",
            )?
            .query_row(params![k.group_buy_id, k.qty], |r| r.get::<_, Option<i64>>(0))
            .ok()
            .flatten();
        let method = k.method.unwrap_or(linli_shared::sale::PaymentMethod::Cash);
        out.commitments += c
            .prepare_cached(
                "INSERT OR IGNORE INTO group_buy_commitments(commitment_id, group_buy_id, member_hash, qty, at, staff,
                                                             masked_phone, amount_fen, method)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                k.commitment_id,
                k.group_buy_id,
                member,
                k.qty,
                k.at,
                k.staff,
                k.masked(),
                amount,
                method.as_str()
            ])?;
    }
    for x in given.values() {
        if !known(
            "SELECT 1 FROM group_buy_commitments WHERE commitment_id = ?1",
            &x.commitment_id,
        )? {
            continue;
        }
        if x.reason == RefundReason::CounterCancelled {
            c.prepare_cached(
                "UPDATE group_buy_commitments SET cancelled_at = ?2, cancelled_by = ?3
                 WHERE commitment_id = ?1 AND cancelled_at IS NULL",
            )?
            .execute(params![x.commitment_id, x.at, x.staff])?;
        }
        out.refunds += c
            .prepare_cached(
                "INSERT OR IGNORE INTO group_buy_refunds(refund_id, commitment_id, group_buy_id, amount_fen, staff,
                                                         created_at, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                x.refund_id,
                x.commitment_id,
                x.group_buy_id,
                x.refund_fen,
                x.staff,
                x.at,
                x.reason.as_str()
            ])?;
    }
    // the goods that came in for each campaign, as the movements name them
    c.execute(
        "UPDATE group_buys SET goods_in = max(goods_in, (
             SELECT coalesce(sum(m.delta), 0) FROM movements m
             WHERE m.kind = 'receipt' AND m.ref_id = group_buys.group_buy_id))",
        [],
    )?;
    Ok(out)
}
