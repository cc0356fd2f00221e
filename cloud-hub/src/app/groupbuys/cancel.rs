//! A customer cancels their own online commitment (DESIGN.md §7, "cancel";
//! the rule is [`linli_shared::groupbuy::check_cancel`]: only while the
//! campaign is open and before its deadline, so "reached" stays monotone).
//!
//! Everything a cancel does happens in one transaction: the rule is checked
//! against the campaign as it stands there, the commitment is marked
//! cancelled (`customer_cancelled`), a counting one is taken out of the
//! running totals (so it frees the customer's limit and the count at
//! once), an unpaid payment is closed (money arriving later is refunded as
//! paid after close) and a paid one gets its full refund queued,
//! `GBC-<commitment>`. A crash leaves all of it or none of it; a second
//! cancel finds the commitment cancelled, writes nothing and answers with
//! it as it stands, so the refund is queued once however often the
//! customer presses.
//!
//! Another customer's commitment is answered like an unknown one (404
//! `commitment_not_found`), as paying it is: a customer learns nothing
//! about commitments that are not theirs.
//!
//! A counter commitment is cancelled at its store's counter, by the same
//! rule, and the cancel arrives in the store's ledger (section
//! `commitment_cancels`, [`project_counter_cancels`]). It is kept once by
//! commitment id (`group_buy_counter_cancels`); if it was made before the
//! deadline (the store's signed time, as for its commitments) the
//! commitment stops counting: marked cancelled (`counter_cancelled`) by a
//! guarded update and taken out of the totals only if that update changed
//! it, so a cancel arriving twice, or a ledger synced again, takes it out
//! once. A cancel arriving before its commitment waits in the table; the
//! commitment then arrives cancelled and is never counted in. "Reached"
//! stays reached: the totals drop, the state does not (as for an online
//! cancel, whose rule the store applied with what it knew).
//!
//! The same fact, with reason `group_buy_failed`, is a failed campaign's
//! counter commitment refunded at its counter (`failed.rs`): kept once the
//! same way, it never counts (nothing counts in a failed campaign).

use chrono::{DateTime, Utc};
use linli_shared::groupbuy::{
    CancelOutcome, CounterCancel, Held, RefundReason, State, check_cancel, counter_cancel_counts,
};
use linli_shared::payment::PaymentState;

use super::paid::refund_in_full;
use super::{CommitmentView, Committed, count_out, load, reason_text, with_payment};
use crate::auth::Caller;
use crate::error::HubError;
use crate::hub::Hub;
use crate::store::groupbuys::GroupBuyRecords;
use crate::store::payments;

impl Hub {
    /// Cancels the caller's own online commitment (customers only);
    /// cancelling it again answers with the same cancelled commitment.
    pub async fn cancel_commitment(
        &self,
        caller: &Caller,
        group_buy_id: &str,
        commitment_id: &str,
    ) -> Result<Committed, HubError> {
        self.cancel_commitment_at(caller, group_buy_id, commitment_id, self.now())
            .await
    }

    /// [`Hub::cancel_commitment`] as of `now` (tests ask at any time).
    pub async fn cancel_commitment_at(
        &self,
        caller: &Caller,
        group_buy_id: &str,
        commitment_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Committed, HubError> {
        let Caller::Customer { customer_id, .. } = caller else {
            return Err(HubError::Forbidden);
        };
        let limits = self.refund_limits();
        let clock_now = self.now();
        let (gid, cid, cu) = (
            group_buy_id.to_owned(),
            commitment_id.to_owned(),
            customer_id.clone(),
        );
        let (mut commitment, refund_queued) = self
            .store
            .write(move |c| {
                let not_found = || HubError::CommitmentNotFound(cid.clone());
                let found = c.commitment_with_owner(&cid)?;
                let k = match found {
                    Some((k, owner)) if k.group_buy_id == gid && owner == cu => {
                        CommitmentView::from(k)
                    }
                    _ => return Err(not_found()),
                };
                let row = load(c, &gid)?.ok_or_else(|| HubError::GroupBuyNotFound(gid.clone()))?;
                let held = match (k.status.as_str(), k.source.as_str()) {
                    ("cancelled", _) => Held::Cancelled,
                    (_, "counter") => Held::Counter,
                    _ => Held::Online,
                };
                let mut queued = false;
                match check_cancel(held, row.state, row.deadline, now)
                    .map_err(HubError::CancelCommitment)?
                {
                    CancelOutcome::AlreadyCancelled => {}
                    CancelOutcome::Cancel => {
                        c.cancel_by_customer(&cid, now)?;
                        // it counted: out of the totals, now that its row
                        // no longer says active
                        if k.status == "active" {
                            count_out(c, &gid, &k.store_id, &cu, k.qty)?;
                        }
                        match payments::get(c, &cid)? {
                            Some(p) if p.state == PaymentState::AwaitingPayment => {
                                payments::close(c, &cid, now)?;
                            }
                            Some(p) if p.state == PaymentState::Paid => {
                                queued = refund_in_full(
                                    c,
                                    &limits,
                                    &cid,
                                    p.amount_fen,
                                    "GBC",
                                    "customer_cancelled",
                                    now,
                                    clock_now,
                                )?;
                            }
                            Some(_) | None => {}
                        }
                    }
                }
                let mut k = CommitmentView::from(c.commitment(&cid)?);
                with_payment(c, &mut k)?;
                Ok::<_, HubError>((k, queued))
            })
            .await?;
        if refund_queued {
            tracing::info!(commitment = %commitment_id, "group-buy commitment cancelled by its customer; refund GBC queued");
            self.wake_refunds();
        }
        let group_buy = self.group_buy(group_buy_id).await?;
        commitment.failure_reason = reason_text(
            commitment.cancel_reason.as_deref(),
            group_buy.failure_reason.as_deref(),
        );
        Ok(Committed {
            commitment,
            group_buy,
        })
    }
}

/// When the counter cancelled this commitment (`<store>/<id>`), if its
/// cancel has arrived and counts.
pub(super) fn counting_cancel_of(
    c: &rusqlite::Connection,
    commitment_id: &str,
) -> Result<Option<String>, HubError> {
    Ok(c.counting_counter_cancel_at(commitment_id)?)
}

/// Projects the cancels a store's counter made (its ledger, section
/// `commitment_cancels`): each kept once; one made before the deadline
/// takes its commitment, if it has arrived and still counts, out of the
/// campaign. Returns the campaigns whose totals changed (to settle and,
/// once reached, to send the store its participants again).
pub(crate) fn project_counter_cancels(
    c: &rusqlite::Connection,
    store: &str,
    facts: &[(String, CounterCancel)],
    now: DateTime<Utc>,
) -> Result<Vec<String>, HubError> {
    let mut campaigns = Vec::new();
    for (id, f) in facts {
        let key = format!("{store}/{id}");
        let row = load(c, &f.group_buy_id)?;
        // an unreadable time is taken as now, as for a commitment
        let at = DateTime::parse_from_rfc3339(&f.at)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(now);
        // a failed campaign's refund changes no count (nothing counts any
        // more): it is kept, once, as done
        let failed_refund = f.reason == RefundReason::GroupBuyFailed;
        let counts = !failed_refund
            && row
                .as_ref()
                .is_some_and(|r| counter_cancel_counts(at, r.deadline));
        let new = c.insert_counter_cancel(&key, store, f, counts, now)?;
        if new == 0 {
            continue;
        }
        if failed_refund {
            if row.as_ref().is_none_or(|r| r.state != State::Failed) {
                tracing::warn!(store, commitment = %key, group_buy = %f.group_buy_id,
                    "counter refunded a commitment as failed, but the hub has not decided the campaign failed");
            }
            continue;
        }
        if !counts {
            tracing::warn!(store, commitment = %key, group_buy = %f.group_buy_id, at = %f.at,
                "counter cancel made at or after the deadline (or for an unknown group-buy) does not count");
            continue;
        }
        let found = c.counter_commitment_holding(&key, store)?;
        // not here yet: it arrives cancelled (project_counter_commitments)
        let Some((gid, customer, qty)) = found else {
            continue;
        };
        let changed = c.cancel_at_counter(&key, &f.at)?;
        if changed == 1 {
            count_out(c, &gid, store, &customer, qty)?;
            if !campaigns.contains(&gid) {
                campaigns.push(gid);
            }
        }
    }
    Ok(campaigns)
}
