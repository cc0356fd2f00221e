//! A failed campaign's counter commitments refunded at the counter that
//! took them (issue 11; the rule is
//! [`linli_shared::groupbuy::check_failed_refund`]). The customer paid cash
//! here, so the money comes back here: only once this store has the hub's
//! word that the campaign failed (`group_buy_failures`, from its orders
//! document), and once per commitment.
//!
//! One transaction records the refund (`group_buy_refunds`, refund id
//! `GBF-<commitment>`, the commitment's full amount, reason
//! `group_buy_failed`) and writes it into the day's ledger as the cancel
//! fact with that reason (section `commitment_cancels`, keyed by
//! commitment: one fact per commitment whatever its reason). A second
//! refund finds it refunded and answers with it, writing nothing; a
//! commitment cancelled while the campaign was open was refunded then and
//! is refused (`commitment_cancelled`). The commitment row itself is left
//! as it was (not cancelled): the campaign is over, nothing counts.

use linli_shared::groupbuy::{
    CounterCancel, RefundOutcome, RefundReason, Refunded, check_failed_refund, failed_refund_id,
};
use rusqlite::params;

use super::super::replication::LedgerFact;
use super::cancel::view;
use super::{CounterCommitmentView, state_here, terms_of};
use crate::app::{Actor, App, AppError, ts};

impl App {
    /// Refunds at this counter a commitment it took in a campaign the hub
    /// says failed; refunding it again answers with the same refund and
    /// writes nothing. Any logged-in staff, like a cancel.
    pub async fn refund_failed_at_counter(
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
            let refunded = match (&k.cancelled_at, &k.refund) {
                (Some(_), _) => Refunded::Cancelled,
                (None, Some(r)) if r.reason == RefundReason::GroupBuyFailed => Refunded::Failed,
                (None, Some(_)) => Refunded::Cancelled,
                (None, None) => Refunded::Nothing,
            };
            match check_failed_refund(refunded, state_here(c, &gid)?)
                .map_err(AppError::FailedRefund)?
            {
                RefundOutcome::AlreadyRefunded => return Ok(k),
                RefundOutcome::Refund => {}
            }
            let (at, refund_id) = (ts(now), failed_refund_id(&cid));
            let reason = RefundReason::GroupBuyFailed;
            c.execute(
                "INSERT INTO group_buy_refunds(refund_id, commitment_id, group_buy_id, amount_fen, staff, created_at, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![refund_id, cid, gid, k.amount_fen, staff, at, reason.as_str()],
            )?;
            p.fact(LedgerFact::Cancel(CounterCancel {
                commitment_id: cid.clone(),
                group_buy_id: gid.clone(),
                refund_id,
                refund_fen: k.amount_fen,
                at,
                staff: staff.clone(),
                reason,
            }));
            tracing::info!(commitment = %cid, group_buy = %gid, refund_fen = k.amount_fen, "failed group-buy's counter commitment refunded at the counter");
            view(c, &terms, &cid)?.ok_or_else(|| AppError::CommitmentNotFound(cid.clone()))
        })
        .await
    }
}
