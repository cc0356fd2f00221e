//! A counter commitment cancelled at the counter that took it (DESIGN.md
//! §7, "cancel"; the rule is the hub's,
//! [`linli_shared::groupbuy::check_cancel_at`]): only while the campaign is
//! open as this store knows it (reached once the hub's participants list
//! for it has come) and before its deadline by this store's clock, so it
//! works offline.
//!
//! One transaction marks the commitment cancelled (its units go back to
//! the allotment and to the customer's limit at once), records the refund
//! the customer is given back at the counter (`group_buy_refunds`, refund
//! id `GBC-<commitment>`, the commitment's amount) and writes the cancel
//! into the day's ledger (section `commitment_cancels`), which carries it
//! to the hub as it carried the commitment. A second cancel finds it
//! cancelled and answers with it, writing nothing: the refund is recorded
//! once however often the cashier presses. A commitment this counter did
//! not take (another store's, or an online one) is not in its books: 404.

use linli_shared::groupbuy::{
    self, CancelOutcome, CounterCancel, CounterTerms, Desk, Held, RefundReason, check_cancel_at,
};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::super::replication::LedgerFact;
use super::{state_here, taken, terms_of};
use crate::app::{Actor, App, AppError, ts};

/// The refund a counter commitment was given back at the counter:
/// cancelled while open, or its campaign failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CounterRefundView {
    /// `GBC-<commitment_id>` (cancelled) or `GBF-<commitment_id>` (failed).
    pub refund_id: String,
    /// Paid back to the customer at the counter, fen.
    pub amount_fen: i64,
    pub at: String,
    pub staff: String,
    /// `counter_cancelled` or `group_buy_failed`.
    pub reason: RefundReason,
    /// Why, as the cashier tells the customer (Chinese first), e.g.
    /// 拼团未成团，已在柜台退款.
    pub reason_text: String,
}

/// A commitment this counter took, as staff see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CounterCommitmentView {
    pub commitment_id: String,
    pub group_buy_id: String,
    /// `138****1234` ("" for commitments taken before 2026-12-02).
    pub phone: String,
    pub qty: i64,
    pub amount_fen: i64,
    pub at: String,
    pub staff: String,
    /// `active`, `cancelled` (cancelled while open, refunded then) or
    /// `refunded` (its campaign failed; refunded at the counter).
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<String>,
    /// The refund given back at the counter (cancelled or refunded only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund: Option<CounterRefundView>,
    /// Units this counter may still commit of the campaign.
    pub allotment_left: i64,
}

/// One commitment row with its refund; `None` if this counter has no such
/// commitment in this campaign.
pub(super) fn view(
    c: &Connection,
    terms: &CounterTerms,
    commitment_id: &str,
) -> Result<Option<CounterCommitmentView>, AppError> {
    let row = c
        .prepare_cached(
            "SELECT k.commitment_id, k.masked_phone, k.qty, k.amount_fen, k.at, k.staff, k.cancelled_at,
                    r.refund_id, r.amount_fen, r.created_at, r.staff, r.reason
             FROM group_buy_commitments k LEFT JOIN group_buy_refunds r ON r.commitment_id = k.commitment_id
             WHERE k.commitment_id = ?1 AND k.group_buy_id = ?2",
        )?
        .query_row(params![commitment_id, terms.group_buy_id], |r| {
            let qty: i64 = r.get(2)?;
            let refund = match r.get::<_, Option<String>>(7)? {
                Some(refund_id) => {
                    let reason = RefundReason::parse(&r.get::<_, String>(11)?);
                    Some(CounterRefundView {
                        refund_id,
                        amount_fen: r.get(8)?,
                        at: r.get(9)?,
                        staff: r.get(10)?,
                        reason,
                        reason_text: reason.text().into(),
                    })
                }
                None => None,
            };
            let cancelled_at: Option<String> = r.get(6)?;
            Ok(CounterCommitmentView {
                commitment_id: r.get(0)?,
                group_buy_id: terms.group_buy_id.clone(),
                phone: r.get(1)?,
                qty,
                amount_fen: r
                    .get::<_, Option<i64>>(3)?
                    .unwrap_or(qty * terms.price_fen),
                at: r.get(4)?,
                staff: r.get(5)?,
                status: match (&cancelled_at, &refund) {
                    (Some(_), _) => "cancelled",
                    (None, Some(_)) => "refunded",
                    (None, None) => "active",
                }
                .into(),
                cancelled_at,
                refund,
                allotment_left: 0,
            })
        })
        .optional()?;
    match row {
        Some(mut v) => {
            v.allotment_left = terms.allotment - taken(c, &terms.group_buy_id, None)?;
            Ok(Some(v))
        }
        None => Ok(None),
    }
}

impl App {
    /// The commitments this counter took for a campaign, newest first
    /// (200 at most).
    pub async fn counter_commitments(
        &self,
        group_buy_id: &str,
    ) -> Result<Vec<CounterCommitmentView>, AppError> {
        let gid = group_buy_id.to_owned();
        self.store
            .read(move |c| {
                let terms =
                    terms_of(c, &gid)?.ok_or_else(|| AppError::GroupBuyNotFound(gid.clone()))?;
                let ids: Vec<String> = c
                    .prepare_cached(
                        "SELECT commitment_id FROM group_buy_commitments WHERE group_buy_id = ?1
                         ORDER BY at DESC, rowid DESC LIMIT 200",
                    )?
                    .query_map([&gid], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    out.extend(view(c, &terms, &id)?);
                }
                Ok::<_, AppError>(out)
            })
            .await
    }

    /// Cancels a commitment this counter took and records the refund the
    /// customer is given back here; cancelling it again answers with the
    /// same cancelled commitment and writes nothing. Any logged-in staff.
    pub async fn cancel_at_counter(
        &self,
        actor: &Actor,
        group_buy_id: &str,
        commitment_id: &str,
    ) -> Result<CounterCommitmentView, AppError> {
        let stamp = self.stamp();
        let now = stamp.at();
        let (staff, gid, cid) = (
            actor.name.clone(),
            group_buy_id.to_owned(),
            commitment_id.to_owned(),
        );
        self.write_published(stamp, move |c, p| {
            let terms = terms_of(c, &gid)?.ok_or_else(|| AppError::GroupBuyNotFound(gid.clone()))?;
            let k = view(c, &terms, &cid)?.ok_or_else(|| AppError::CommitmentNotFound(cid.clone()))?;
            // refunded as the campaign failed: the rule says over
            let held = if k.cancelled_at.is_some() {
                Held::Cancelled
            } else {
                Held::Counter
            };
            let deadline = chrono::DateTime::parse_from_rfc3339(&terms.deadline)
                .map(|t| t.with_timezone(&chrono::Utc))
                .unwrap_or_default();
            match check_cancel_at(Desk::Counter, held, state_here(c, &gid)?, deadline, now)
                .map_err(AppError::Cancel)?
            {
                CancelOutcome::AlreadyCancelled => return Ok(k),
                CancelOutcome::Cancel => {}
            }
            let at = ts(now);
            c.execute(
                "UPDATE group_buy_commitments SET cancelled_at = ?2, cancelled_by = ?3
                 WHERE commitment_id = ?1 AND cancelled_at IS NULL",
                params![cid, at, staff],
            )?;
            let refund_id = groupbuy::cancel_refund_id(&cid);
            c.execute(
                "INSERT INTO group_buy_refunds(refund_id, commitment_id, group_buy_id, amount_fen, staff, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![refund_id, cid, gid, k.amount_fen, staff, at],
            )?;
            p.fact(LedgerFact::Cancel(CounterCancel {
                commitment_id: cid.clone(),
                group_buy_id: gid.clone(),
                refund_id,
                refund_fen: k.amount_fen,
                at,
                staff: staff.clone(),
                reason: RefundReason::CounterCancelled,
            }));
            tracing::info!(commitment = %cid, group_buy = %gid, refund_fen = k.amount_fen, "counter commitment cancelled and refunded at the counter");
            view(c, &terms, &cid)?.ok_or_else(|| AppError::CommitmentNotFound(cid.clone()))
        })
        .await
    }
}
