//! A failed campaign's counter commitments (issue 11): their customers
//! paid cash at a store's counter, so the hub's refund queue cannot pay
//! them back; the store's counter does. The hub tells each participating
//! store the campaign failed ([`tell_stores`], its orders document, section
//! `group_buy_failed`, written once in the deciding transaction), and each
//! counter refund comes back in the store's ledger as a cancel fact with
//! reason `group_buy_failed` ([`super::project_counter_cancels`] keeps it
//! once by commitment id). The campaign's view shows per store how many
//! counter refunds are done and how many still owed ([`counter_refunds`]):
//! owed is every counter commitment of the campaign its store has given
//! back nothing for yet, whatever order the facts arrived in.
//!
//! A campaign that failed before the hub told stores (`stores_told_at` is
//! NULL) is told by the next sweep, in that day's orders documents
//! ([`tell_the_untold`]): its counter commitments would otherwise be owed
//! for ever, since no counter refunds one without the word.

use chrono::{DateTime, Utc};
use linli_shared::docs::DocId;
use linli_shared::docs::json::put_record;
use linli_shared::groupbuy::CounterFailure;
use linli_sync::doc_store::Docs;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use super::{CommitmentView, Row};
use crate::error::HubError;
use crate::store::groupbuys::{GroupBuyRecords, StoreSum};

/// A failed campaign's counter refunds, done and still owed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CounterRefunds {
    /// Counter commitments given back at their counter as failed (as the
    /// stores' ledgers have told the hub so far), and how much, fen.
    pub done: i64,
    pub done_fen: i64,
    /// Counter commitments their store has not refunded yet (as far as the
    /// hub knows), and how much, fen.
    pub owed: i64,
    pub owed_fen: i64,
    /// Per store, every store with a counter commitment in the campaign.
    pub stores: Vec<StoreCounterRefunds>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoreCounterRefunds {
    pub store_id: String,
    pub done: i64,
    pub done_fen: i64,
    pub owed: i64,
    pub owed_fen: i64,
}

/// Writes the failure into each participating store's orders document of
/// `day` (in the deciding transaction); returns the documents written.
pub(super) fn tell_stores(
    c: &Connection,
    docs: &mut Docs,
    row: &Row,
    decided_at: &str,
    reason: &str,
    day: chrono::NaiveDate,
) -> Result<Vec<DocId>, HubError> {
    let notice = CounterFailure {
        group_buy_id: row.id.clone(),
        decided_at: decided_at.to_owned(),
        reason: reason.to_owned(),
    };
    let mut touched = Vec::with_capacity(row.store_ids.len());
    for s in &row.store_ids {
        let id = DocId::hub_orders(s, day);
        let changed = docs.change(c, &id, |d| {
            put_record(d, "group_buy_failed", &row.id, &notice)?;
            Ok(())
        })?;
        if changed {
            touched.push(id);
        }
    }
    Ok(touched)
}

/// Marks a failed campaign's stores as told (in the deciding transaction).
pub(super) fn mark_told(c: &Connection, id: &str, now: DateTime<Utc>) -> Result<(), HubError> {
    c.mark_stores_told(id, now)?;
    Ok(())
}

/// Failed campaigns whose stores were never told.
pub(super) fn untold(c: &Connection) -> Result<Vec<Row>, HubError> {
    Ok(c.untold_failed_group_buys()?)
}

/// Tells the stores of a campaign failed before stores were told, if it
/// has counter commitments (nothing else needs a store's counter), and
/// marks it told either way; returns the documents written.
pub(super) fn tell_the_untold(
    c: &Connection,
    docs: &mut Docs,
    row: &Row,
    decided_at: &str,
    reason: &str,
    day: chrono::NaiveDate,
    now: DateTime<Utc>,
) -> Result<Vec<DocId>, HubError> {
    let counter = c.has_counter_commitments(&row.id)?;
    let touched = if counter {
        tell_stores(c, docs, row, decided_at, reason, day)?
    } else {
        Vec::new()
    };
    mark_told(c, &row.id, now)?;
    if counter {
        tracing::info!(group_buy = %row.id, stores = row.store_ids.len(), "stores told of a campaign that failed before failures were sent");
    }
    Ok(touched)
}

/// The counter refunds of a campaign (failed campaigns only; `None` else).
pub(super) fn counter_refunds(
    c: &Connection,
    row: &Row,
) -> Result<Option<CounterRefunds>, HubError> {
    if row.state != linli_shared::groupbuy::State::Failed {
        return Ok(None);
    }
    let mut per: std::collections::BTreeMap<String, StoreCounterRefunds> = Default::default();
    for StoreSum {
        store_id: s,
        count: n,
        fen,
    } in c.counter_refunds_done(&row.id)?
    {
        let e = per.entry(s.clone()).or_default();
        (e.store_id, e.done, e.done_fen) = (s, n, fen);
    }
    // every counter commitment its store has given nothing back for (a
    // cancel's refund, or a failed one's, however late it came)
    for StoreSum {
        store_id: s,
        count: n,
        fen,
    } in c.counter_refunds_owed(&row.id)?
    {
        let e = per.entry(s.clone()).or_default();
        (e.store_id, e.owed, e.owed_fen) = (s, n, fen);
    }
    let stores: Vec<StoreCounterRefunds> = per.into_values().collect();
    Ok(Some(CounterRefunds {
        done: stores.iter().map(|s| s.done).sum(),
        done_fen: stores.iter().map(|s| s.done_fen).sum(),
        owed: stores.iter().map(|s| s.owed).sum(),
        owed_fen: stores.iter().map(|s| s.owed_fen).sum(),
        stores,
    }))
}

/// What the customer is told of a failed campaign's counter commitment:
/// refunded at the counter once its store's refund has arrived, else to
/// collect the money there (`None` for any other commitment).
pub(super) fn counter_refund_text(
    c: &Connection,
    k: &CommitmentView,
) -> Result<Option<String>, HubError> {
    if k.source != "counter" || k.cancel_reason.as_deref() != Some("group_buy_failed") {
        return Ok(None);
    }
    let refunded = c.counter_cancel_recorded(&k.commitment_id)?;
    Ok(Some(
        if refunded {
            "拼团未成团，已在门店柜台退款 (the group-buy did not go ahead; the money was given back at the store's counter)"
        } else {
            "拼团未成团，请到参团的门店柜台退款 (the group-buy did not go ahead; collect the money at the store's counter where you committed)"
        }
        .to_owned(),
    ))
}
