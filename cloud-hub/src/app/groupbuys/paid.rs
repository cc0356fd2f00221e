//! Paid online commitments (DESIGN.md §7, "paid commitments"): at a hub
//! that takes payment, a customer's online commitment is a payment like an
//! order's, and a failed campaign pays every paid commitment back through
//! the refund queue.
//!
//! The invariants kept here:
//!
//! - only a paid commitment counts: it is written `awaiting_payment`
//!   (holding the customer's limit), and the verified notification (or the
//!   query at the timeout) counts it in, in one transaction with marking
//!   the payment paid, and decides the campaign there (it may reach it);
//! - an unpaid commitment is cancelled after the chain's time to pay (never
//!   later than the deadline) by the unpaid sweeper, like an order;
//! - failure queues one refund per paid commitment, refund id
//!   `GBF-<commitment>`, in the transaction that moves the campaign to
//!   `failed` (which happens once); the queue is idempotent on (subject,
//!   refund id) besides, so no run of settling queues twice;
//! - money arriving for a commitment that no longer counts (cancelled
//!   unpaid, or the campaign failed or was fulfilled meanwhile) is recorded
//!   and refunded in full, `GBL-<commitment>`; a second payment of one
//!   commitment is refunded, `GBD-<commitment>`;
//! - a paid commitment its customer cancels (`cancel.rs`) is refunded in
//!   full, `GBC-<commitment>`, in the cancel's transaction.
//!
//! Counter commitments are paid at the counter and have no payment here.

use chrono::{DateTime, Utc};
use linli_shared::docs::DocId;
use linli_shared::groupbuy::State;
use linli_shared::payment::{NotifyOutcome, PaymentState, RefundLimits, on_success};
use linli_sync::doc_store::Docs;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use super::{count_in, load};
use crate::auth::Caller;
use crate::error::HubError;
use crate::hub::Hub;
use crate::store::exceptions::raise;
use crate::store::groupbuys::{CommitmentHolding, GroupBuyRecords, PaidCommitment};
use crate::store::payments::Notified;
use crate::store::payments::{self, NewRefund, PaymentView, Subject};
use crate::time::ts;

/// `POST /api/v1/group-buys/{id}/commitments/{cid}/pay`: what the
/// customer's phone needs to pay a commitment.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CommitmentPrepayView {
    pub commitment_id: String,
    pub group_buy_id: String,
    /// The provider's prepay id (the phone's `wx.requestPayment` takes it).
    pub prepay_id: String,
    pub amount_fen: i64,
    /// `awaiting_payment`, or `paid` when it already is.
    pub state: String,
    /// The payment page (the simulator's cashier stands in for WeChat's).
    pub cashier_url: String,
    /// Unpaid by then, the commitment is cancelled.
    pub pay_by: String,
}

/// A commitment row, as payment needs it.
fn commitment(c: &Connection, id: &str) -> Result<Option<CommitmentHolding>, HubError> {
    Ok(c.commitment_holding(id)?)
}

/// The store a commitment is collected at (for exceptions about it).
pub(crate) fn store_of_commitment(c: &Connection, id: &str) -> Result<Option<String>, HubError> {
    Ok(commitment(c, id)?.map(|k| k.store_id))
}

/// Opens the payment of a new online commitment (in its transaction).
pub(super) fn open_payment(
    c: &Connection,
    id: &str,
    amount_fen: i64,
    now: DateTime<Utc>,
    pay_by: DateTime<Utc>,
) -> Result<PaymentView, HubError> {
    payments::open(c, Subject::Commitment, id, amount_fen, now, pay_by)?;
    Ok(PaymentView {
        state: PaymentState::AwaitingPayment.as_str().to_owned(),
        amount_fen,
        prepay_id: None,
        transaction_id: None,
        paid_at: None,
        pay_by: ts(pay_by),
    })
}

/// A failing campaign's payments, in the transaction that fails it: every
/// paid commitment that counted gets its full refund queued (`GBF-<id>`);
/// unpaid ones close (money arriving later is refunded as paid after
/// close). Returns how many refunds were queued. `now`: the time decided
/// for; `clock_now`: the hub's clock as it decides.
pub(super) fn on_failure(
    c: &Connection,
    group_buy_id: &str,
    limits: &RefundLimits,
    now: DateTime<Utc>,
    clock_now: DateTime<Utc>,
) -> Result<usize, HubError> {
    let paid = c.paid_commitments_of(group_buy_id)?;
    let mut queued = 0;
    for PaidCommitment {
        commitment_id: id,
        amount_fen: amount,
    } in &paid
    {
        if refund_in_full(
            c,
            limits,
            id,
            *amount,
            "GBF",
            "group_buy_failed",
            now,
            clock_now,
        )? {
            queued += 1;
        }
    }
    payments::close_unpaid_of_group_buy(c, group_buy_id, now)?;
    Ok(queued)
}

/// Queues the full refund of a paid commitment, refund id
/// `<prefix>-<commitment>` (in the caller's transaction, so the refund
/// commits with what causes it; queuing it again changes nothing).
/// Whether it was queued now. A refund beyond the payer's limits (money
/// already partly given back) is raised for a person to settle; what
/// caused it still happens. `now`: the time decided for; `clock_now`: the
/// hub's clock as it decides.
#[allow(clippy::too_many_arguments)]
pub(super) fn refund_in_full(
    c: &Connection,
    limits: &RefundLimits,
    id: &str,
    amount_fen: i64,
    prefix: &str,
    reason: &str,
    now: DateTime<Utc>,
    clock_now: DateTime<Utc>,
) -> Result<bool, HubError> {
    // due at once: refunds are sent by the hub's clock, whatever time the
    // decision was taken for (tests decide with a later `now`)
    let due = clock_now.min(now);
    let refund_id = format!("{prefix}-{id}");
    match crate::app::refunds::enqueue_refund(
        c,
        limits,
        &NewRefund {
            subject_id: id,
            refund_id: &refund_id,
            amount_fen,
            total_fen: amount_fen,
            reason,
        },
        due,
    ) {
        Ok(queued) => Ok(queued),
        Err(HubError::RefundRefused(why)) => {
            let store = store_of_commitment(c, id)?.unwrap_or_default();
            raise(
                c,
                &store,
                id,
                "refund_failed",
                &format!("group-buy refund {refund_id} refused: {why}"),
                now,
            )?;
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Why a commitment was cancelled, in the customer's words; a failed
/// campaign's reason is the campaign's own.
pub(super) fn reason_text(code: Option<&str>, campaign_failure: Option<&str>) -> Option<String> {
    let text = match code? {
        "group_buy_failed" => {
            return Some(campaign_failure.map_or_else(
                || {
                    "团购未成，款项原路退回 (the group-buy did not go ahead; payments are refunded)"
                        .to_owned()
                },
                str::to_owned,
            ));
        }
        "unpaid" => {
            "未在付款期限内付款，参团已取消 (not paid in time; the commitment was cancelled)"
        }
        "group_buy_closed" => {
            "付款到账时团购已结束，款项原路退回 (the payment came after the group-buy closed; it is refunded)"
        }
        "after_deadline" => {
            "截止后才参团，不计入 (committed after the deadline; it does not count)"
        }
        "store_not_in_group_buy" => {
            "该门店未参加这个团购 (this store does not take part in the group-buy)"
        }
        "customer_cancelled" => "顾客取消参团 (cancelled by the customer)",
        "counter_cancelled" => {
            "已在门店柜台取消参团，款项已在门店退还 (cancelled at the store's counter; the money was given back there)"
        }
        other => other,
    };
    Some(text.to_owned())
}

impl Hub {
    /// The prepay of a commitment (the customer who made it, or staff):
    /// created at the provider on first call, the same one after that.
    pub async fn pay_commitment(
        &self,
        caller: &Caller,
        group_buy_id: &str,
        commitment_id: &str,
    ) -> Result<CommitmentPrepayView, HubError> {
        let (gid, cid) = (group_buy_id.to_owned(), commitment_id.to_owned());
        let (row, payment, name) = self
            .store
            .read(move |c| {
                let k = commitment(c, &cid)?.filter(|k| k.group_buy_id == gid);
                let sku = load(c, &gid)?.map(|g| g.sku);
                Ok::<_, HubError>((k, payments::get(c, &cid)?, sku))
            })
            .await?;
        let not_found = || HubError::CommitmentNotFound(commitment_id.to_owned());
        let row = row.ok_or_else(not_found)?;
        match caller {
            Caller::Customer { customer_id, .. } if *customer_id != row.customer_id => {
                return Err(not_found());
            }
            Caller::Customer { .. } | Caller::Staff(_) => {}
        }
        self.pay()?;
        let payment = payment.ok_or_else(|| {
            HubError::PaymentNotRequired(format!(
                "参团 {commitment_id} 无需在线支付 (commitment {commitment_id} was made without online payment)"
            ))
        })?;
        let product = name
            .and_then(|sku| self.directory().products.get(&sku).map(|p| p.name.clone()))
            .unwrap_or_default();
        let description = format!("邻里团购 {product} ×{}", row.qty);
        let (prepay_id, state) = self.prepay_of(commitment_id, &payment, description).await?;
        Ok(CommitmentPrepayView {
            commitment_id: commitment_id.to_owned(),
            group_buy_id: group_buy_id.to_owned(),
            cashier_url: self.pay()?.provider.cashier_url(&prepay_id),
            prepay_id,
            amount_fen: payment.amount_fen,
            state: state.as_str().to_owned(),
            pay_by: payment.pay_by,
        })
    }

    /// A verified "paid" for a commitment (in the notification's
    /// transaction): it counts from now on and the campaign is decided at
    /// once, or, when it can no longer count, the money goes back.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn commitment_paid(
        &self,
        c: &Connection,
        docs: &mut Docs,
        id: &str,
        payment: &payments::Payment,
        txn: &str,
        paid_fen: i64,
        paid_at: &str,
        now: DateTime<Utc>,
    ) -> Result<(Result<Notified, HubError>, Vec<DocId>), HubError> {
        let k = commitment(c, id)?.ok_or_else(|| HubError::CommitmentNotFound(id.to_owned()))?;
        let limits = self.refund_limits();
        let refund = |c: &Connection, suffix: &str, reason: &str| -> Result<(), HubError> {
            crate::app::refunds::enqueue_refund(
                c,
                &limits,
                &NewRefund {
                    subject_id: id,
                    refund_id: &format!("{suffix}-{id}"),
                    amount_fen: paid_fen,
                    total_fen: payment.amount_fen,
                    reason,
                },
                now,
            )?;
            Ok(())
        };
        match on_success(
            payment.state,
            payment.amount_fen,
            paid_fen,
            txn,
            payment.transaction_id.as_deref(),
        ) {
            NotifyOutcome::MarkPaid => {
                let row = load(c, &k.group_buy_id)?
                    .ok_or_else(|| HubError::GroupBuyNotFound(k.group_buy_id.clone()))?;
                if k.status == "awaiting_payment"
                    && matches!(row.state, State::Open | State::Reached)
                {
                    payments::record_paid(c, id, PaymentState::Paid, txn, paid_at)?;
                    // counted before its status says so (count_in looks at
                    // the customer's other counting commitments)
                    count_in(c, &k.group_buy_id, &k.store_id, &k.customer_id, k.qty)?;
                    c.activate_commitment(id)?;
                    let (_, _, touched) =
                        self.settle(c, docs, row, now, Some(k.store_id.as_str()))?;
                    tracing::info!(commitment = %id, transaction_id = %txn, "group-buy commitment paid; it counts");
                    return Ok((Ok(Notified::Paid), touched));
                }
                // the campaign closed before the money came
                payments::record_paid(c, id, PaymentState::Closed, txn, paid_at)?;
                c.cancel_paid_after_close(id, now)?;
                refund(c, "GBL", "paid_after_close")?;
                Ok((Ok(Notified::Refunding), Vec::new()))
            }
            NotifyOutcome::Duplicate => Ok((Ok(Notified::Duplicate), Vec::new())),
            NotifyOutcome::RefundPaidAfterClose => {
                payments::record_paid(c, id, PaymentState::Closed, txn, paid_at)?;
                refund(c, "GBL", "paid_after_close")?;
                raise(
                    c,
                    &k.store_id,
                    id,
                    "paid_after_close",
                    &format!(
                        "paid {paid_fen} fen for a closed group-buy commitment; refunded in full"
                    ),
                    now,
                )?;
                Ok((Ok(Notified::Refunding), Vec::new()))
            }
            NotifyOutcome::RefundSecondPayment => {
                refund(c, "GBD", "second_payment")?;
                Ok((Ok(Notified::Refunding), Vec::new()))
            }
            NotifyOutcome::AmountMismatch { expected, got } => {
                raise(
                    c,
                    &k.store_id,
                    id,
                    "payment_amount_mismatch",
                    &format!("notified {got} fen for a commitment of {expected} fen"),
                    now,
                )?;
                Ok((Err(HubError::AmountMismatch { expected, got }), Vec::new()))
            }
        }
    }

    /// Cancels a commitment still unpaid (the provider was asked and closed
    /// it): it no longer holds the customer's limit. Whether it was.
    pub(crate) async fn cancel_unpaid_commitment(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, HubError> {
        let cid = id.to_owned();
        let done = self
            .store
            .write(move |c| {
                if !payments::close(c, &cid, now)? {
                    return Ok::<_, HubError>(false);
                }
                c.cancel_unpaid(&cid, now)?;
                Ok(true)
            })
            .await?;
        if done {
            tracing::info!(commitment = %id, "unpaid group-buy commitment cancelled");
        }
        Ok(done)
    }
}
