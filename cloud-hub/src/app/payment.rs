//! Payment of online orders at the hub (DESIGN.md §6 "Payment"): the
//! prepay, the provider's signed notification, the unpaid timeout and the
//! refund queue. The decisions are pure ([`linli_shared::payment`]); the
//! tables are behind [`payments`]; the provider is reached with
//! [`linli_pay::HttpPay`] (WeChat Pay v3's shape; `linli-pay-sim` locally).
//!
//! Without a provider configured ([`OrderSettings::payment`] `None`) orders
//! go straight to their store as before. With one, an order is placed with
//! its rights taken and held at the hub, `awaiting_payment`; a verified
//! notification (or a query at the timeout) marks it paid and writes it to
//! its store's orders document in the same transaction; an order still
//! unpaid after the timeout is cancelled and its rights released. A paid
//! order that is cancelled queues its refund in the same transaction as the
//! cancellation; the refund worker sends it with its fixed refund id until
//! the provider accepts it, so it happens once even across restarts.
//!
//! Online group-buy commitments are paid the same way (a `payments` row
//! keyed by the commitment id, `Subject::Commitment` of `crate::store::payments`); what a
//! payment does to a commitment is in `crate::app::groupbuys::paid`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use linli_pay::PayError;
use linli_pay::wire::{Notification, PrepayRequest, RefundAmount, RefundRequest};
use linli_shared::payment::{
    Attempt, Next, NotifyOutcome, PaymentState, RefundLimits, RefundState, after_attempt,
    earliest_send, on_success,
};
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::error::HubError;
use crate::hub::Hub;
use crate::settings::OrderSettings;
use crate::settings::PaySettings;
use crate::store::orders::{OrderRecords, save_order};
use crate::store::payments;
use crate::store::payments::{NewRefund, Notified};

use super::refunds::enqueue_refund;

/// `POST /api/v1/orders/{id}/pay`: what the customer's phone needs to pay.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PrepayView {
    pub order_id: String,
    /// The provider's prepay id (the phone's `wx.requestPayment` takes it).
    pub prepay_id: String,
    pub amount_fen: i64,
    /// `awaiting_payment`, or `paid` when it already is.
    pub state: String,
    /// The payment page (the simulator's cashier stands in for WeChat's).
    pub cashier_url: String,
    /// Unpaid by then, the order is cancelled.
    pub pay_by: String,
}

/// The acknowledgement the provider expects.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NotifyAck {
    /// `SUCCESS`.
    pub code: String,
    pub message: String,
}

/// The queue's counts (`GET /api/v1/refunds/summary`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RefundSummary {
    pub pending: i64,
    pub succeeded: i64,
    pub failed: i64,
}

fn pay_settings(s: &OrderSettings) -> Option<&PaySettings> {
    s.payment.as_ref()
}

fn unavailable(e: PayError) -> HubError {
    match e {
        PayError::Rejected { code, message } => {
            HubError::PaymentRefused(format!("{code}: {message}"))
        }
        other => HubError::PaymentUnavailable(other.to_string()),
    }
}

/// How many refunds of different payments are sent at once.
pub const SEND_AT_ONCE: usize = 8;

impl Hub {
    pub(crate) fn pay(&self) -> Result<&PaySettings, HubError> {
        pay_settings(&self.order_settings).ok_or_else(|| {
            HubError::PaymentNotRequired(
                "这个商店未接入在线支付 (this hub takes no online payment)".into(),
            )
        })
    }

    /// Whether orders (and online group-buy commitments) must be paid
    /// online.
    pub fn takes_payment(&self) -> bool {
        self.order_settings.payment.is_some()
    }

    /// The payer's refund limits (the defaults without a provider).
    pub(crate) fn refund_limits(&self) -> RefundLimits {
        self.order_settings
            .payment
            .as_ref()
            .map(|p| p.refund_limits)
            .unwrap_or_default()
    }

    /// The prepay of an order (the customer who owns it, or staff): created
    /// at the provider on first call, the same one after that.
    pub async fn pay_order(&self, caller: &Caller, id: &str) -> Result<PrepayView, HubError> {
        self.order(caller, id).await?;
        let pay = self.pay()?.clone();
        let oid = id.to_owned();
        let (payment, fact) = self
            .store
            .read(move |c| Ok::<_, HubError>((payments::get(c, &oid)?, c.order(&oid)?)))
            .await?;
        let payment = payment.ok_or_else(|| {
            HubError::PaymentNotRequired(format!(
                "订单 {id} 无需在线支付 (order {id} was placed without online payment)"
            ))
        })?;
        let description = fact
            .as_ref()
            .map(|(f, _)| {
                let first = f.lines.first().map(|l| l.name.as_str()).unwrap_or("");
                format!("邻里订单 {first} 等{}件", f.lines.len())
            })
            .unwrap_or_else(|| "邻里订单".into());
        let (prepay_id, state) = self.prepay_of(id, &payment, description).await?;
        Ok(PrepayView {
            order_id: id.to_owned(),
            cashier_url: pay.provider.cashier_url(&prepay_id),
            prepay_id,
            amount_fen: payment.amount_fen,
            state: state.as_str().to_owned(),
            pay_by: payment.pay_by.clone(),
        })
    }

    /// The prepay of the payment `id` (an order or a commitment): created at
    /// the provider on first call, the same one after that. Its id and the
    /// payment's state (`paid` with no prepay id when paid without one).
    pub(crate) async fn prepay_of(
        &self,
        id: &str,
        payment: &payments::Payment,
        description: String,
    ) -> Result<(String, PaymentState), HubError> {
        let pay = self.pay()?.clone();
        match (payment.state, &payment.prepay_id) {
            (PaymentState::Closed, _) => {
                return Err(HubError::PaymentClosed(id.to_owned()));
            }
            (state, Some(p)) => return Ok((p.clone(), state)),
            (PaymentState::Paid, None) => {
                return Ok((String::new(), PaymentState::Paid));
            }
            (PaymentState::AwaitingPayment, None) => {}
        }
        let notify_url = pay
            .notify_url
            .clone()
            .ok_or_else(|| HubError::PaymentUnavailable("no notify url configured".into()))?;
        let prepay = pay
            .provider
            .prepay(&PrepayRequest {
                appid: "wxlinli".into(),
                mchid: "linli".into(),
                description,
                out_trade_no: id.to_owned(),
                notify_url,
                amount: linli_pay::wire::Amount {
                    total: payment.amount_fen,
                    currency: "CNY".into(),
                },
            })
            .await
            .map_err(unavailable)?;
        let (oid, pid) = (id.to_owned(), prepay.prepay_id.clone());
        let stored = self
            .store
            .write(move |c| {
                payments::set_prepay(c, &oid, &pid)?;
                Ok::<_, HubError>(payments::get(c, &oid)?)
            })
            .await?;
        let stored = stored.ok_or_else(|| HubError::OrderNotFound(id.to_owned()))?;
        Ok((stored.prepay_id.unwrap_or(prepay.prepay_id), stored.state))
    }

    /// A notification from the provider: checked against the merchant key
    /// (forged → [`HubError::BadSignature`], nothing changes), then applied
    /// once (a repeat changes nothing). The amount must be the order's total.
    pub async fn pay_notified<'a>(
        &self,
        header: impl Fn(&str) -> Option<&'a str>,
        body: &[u8],
    ) -> Result<Notified, HubError> {
        let pay = self.pay()?;
        linli_pay::sign::verify_headers(pay.key.as_bytes(), header, body).map_err(|e| {
            tracing::warn!(error = %e, "payment notification with a bad signature refused");
            HubError::BadSignature
        })?;
        let n: Notification = serde_json::from_slice(body)
            .map_err(|e| HubError::InvalidNotification(e.to_string()))?;
        let t = n
            .transaction()
            .map_err(|e| HubError::InvalidNotification(e.to_string()))?;
        if n.event_type != "TRANSACTION.SUCCESS" || t.trade_state != "SUCCESS" {
            return Err(HubError::InvalidNotification(format!(
                "event {} with trade_state {} is not a payment",
                n.event_type, t.trade_state
            )));
        }
        let txn = t
            .transaction_id
            .clone()
            .ok_or_else(|| HubError::InvalidNotification("no transaction_id".into()))?;
        let paid_at = t
            .success_time
            .clone()
            .unwrap_or_else(|| crate::time::ts(self.now()));
        self.apply_success(t.out_trade_no, txn, t.amount.payer_total, paid_at)
            .await
    }

    /// Applies a verified "paid" (from a notification or a query).
    async fn apply_success(
        &self,
        order_id: String,
        txn: String,
        paid_fen: i64,
        paid_at: String,
    ) -> Result<Notified, HubError> {
        let settings = self.order_settings.clone();
        let this = self.clone();
        let now = self.now();
        let (outcome, touched) = self
            .with_docs(move |c, docs| {
                let payment = payments::get(c, &order_id)?
                    .ok_or_else(|| HubError::OrderNotFound(order_id.clone()))?;
                if payment.subject == payments::Subject::Commitment {
                    return this.commitment_paid(
                        c,
                        docs,
                        &order_id,
                        &payment,
                        &txn,
                        paid_fen,
                        &paid_at,
                        now,
                    );
                }
                let (fact, f) =
                    c.order(&order_id)?.ok_or_else(|| HubError::OrderNotFound(order_id.clone()))?;
                let limits = settings
                    .payment
                    .as_ref()
                    .map(|p| p.refund_limits)
                    .unwrap_or_default();
                // what was paid goes back whole, under the order's id and a suffix
                let refund_paid = |suffix: &str, reason: &str| {
                    let refund = NewRefund {
                        subject_id: &order_id,
                        refund_id: &format!("{order_id}-{suffix}"),
                        amount_fen: paid_fen,
                        total_fen: payment.amount_fen,
                        reason,
                    };
                    enqueue_refund(c, &limits, &refund, now)
                };
                match on_success(
                    payment.state,
                    payment.amount_fen,
                    paid_fen,
                    &txn,
                    payment.transaction_id.as_deref(),
                ) {
                    NotifyOutcome::MarkPaid => {
                        payments::record_paid(c, &order_id, PaymentState::Paid, &txn, &paid_at)?;
                        let day = now.with_timezone(&settings.utc_offset).date_naive();
                        let doc = save_order(c, &fact, f.as_ref(), day)?;
                        tracing::info!(%order_id, transaction_id = %txn, "order paid; released to its store");
                        Ok((Ok(Notified::Paid), doc.into_iter().collect::<Vec<_>>()))
                    }
                    NotifyOutcome::Duplicate => Ok((Ok(Notified::Duplicate), Vec::new())),
                    NotifyOutcome::RefundPaidAfterClose => {
                        payments::record_paid(c, &order_id, PaymentState::Closed, &txn, &paid_at)?;
                        refund_paid("late", "paid_after_close")?;
                        crate::store::exceptions::raise(
                            c,
                            &fact.store_id,
                            &order_id,
                            "paid_after_close",
                            &format!("paid {paid_fen} fen after the order closed; refunded in full"),
                            now,
                        )?;
                        Ok((Ok(Notified::Refunding), Vec::new()))
                    }
                    NotifyOutcome::RefundSecondPayment => {
                        refund_paid("dup", "second_payment")?;
                        Ok((Ok(Notified::Refunding), Vec::new()))
                    }
                    NotifyOutcome::AmountMismatch { expected, got } => {
                        // the exception is kept; the answer is a refusal
                        crate::store::exceptions::raise(
                            c,
                            &fact.store_id,
                            &order_id,
                            "payment_amount_mismatch",
                            &format!("notified {got} fen for an order of {expected} fen"),
                            now,
                        )?;
                        Ok((Err(HubError::AmountMismatch { expected, got }), Vec::new()))
                    }
                }
            })
            .await?;
        self.announce(touched);
        self.wake_refunds();
        outcome
    }

    /// Cancels orders and group-buy commitments unpaid past their time
    /// (asking the provider first, in case the notification is late),
    /// releasing an order's rights and a commitment's hold on the
    /// customer's limit. Returns how many were cancelled.
    pub async fn expire_unpaid(&self, now: DateTime<Utc>) -> Result<usize, HubError> {
        let pay = self.pay()?.clone();
        let overdue = self
            .store
            .read(move |c| Ok::<_, HubError>(payments::overdue(c, now)?))
            .await?;
        let mut n = 0;
        for (id, subject) in overdue {
            match pay.provider.query(&id).await {
                Ok(t) if t.trade_state == "SUCCESS" || t.trade_state == "REFUND" => {
                    if let Some(txn) = t.transaction_id {
                        let at = t.success_time.unwrap_or_else(|| crate::time::ts(now));
                        self.apply_success(id, txn, t.amount.payer_total, at)
                            .await?;
                        continue;
                    }
                }
                Ok(_) | Err(PayError::NotFound(_)) => {}
                Err(e) => {
                    // the provider may hold a payment we cannot see: wait
                    tracing::warn!(order_id = %id, error = %e, "cannot ask the provider; retry next sweep");
                    continue;
                }
            }
            if let Err(e) = pay.provider.close(&id).await
                && !matches!(e, PayError::NotFound(_))
            {
                // paid between the query and the close: the notification
                // will mark it paid; close anyway fails on a paid order
                tracing::info!(order_id = %id, error = %e, "provider did not close the order");
                if matches!(&e, PayError::Rejected { code, .. } if code == "ORDERPAID") {
                    continue;
                }
            }
            let cancelled = match subject {
                payments::Subject::Order => self.cancel_unpaid(&id, now).await?,
                payments::Subject::Commitment => self.cancel_unpaid_commitment(&id, now).await?,
            };
            if cancelled {
                n += 1;
            }
        }
        Ok(n)
    }

    async fn cancel_unpaid(&self, id: &str, now: DateTime<Utc>) -> Result<bool, HubError> {
        let (settings, oid) = (self.order_settings.clone(), id.to_owned());
        let (done, touched) = self
            .with_docs(move |c, _docs| {
                let Some(p) = payments::get(c, &oid)? else {
                    return Ok((false, Vec::new()));
                };
                if p.state != PaymentState::AwaitingPayment {
                    return Ok((false, Vec::new()));
                }
                let Some((mut fact, f)) = c.order(&oid)? else {
                    return Ok((false, Vec::new()));
                };
                let day = now.with_timezone(&settings.utc_offset).date_naive();
                let mut batch = crate::store::rights::HubRightsBatch::default();
                let mut touched: Vec<_> = crate::app::orders::cancel(
                    c,
                    &mut batch,
                    &mut fact,
                    f.as_ref(),
                    "unpaid",
                    now,
                    day,
                )?
                .into_iter()
                .collect();
                touched.extend(batch.flush(day));
                Ok((true, touched))
            })
            .await?;
        if done {
            tracing::info!(order_id = %id, "unpaid order cancelled; its rights are released");
        }
        self.announce(touched);
        Ok(done)
    }

    /// Queues a refund of `amount_fen` of the payment `subject_id` (an
    /// order id or a group-buy commitment id) of `total_fen` under
    /// `refund_id`. Idempotent on (subject, refund id); refused beyond the
    /// payer's limits.
    pub async fn queue_refund(
        &self,
        subject_id: &str,
        refund_id: &str,
        amount_fen: i64,
        total_fen: i64,
        reason: &str,
    ) -> Result<bool, HubError> {
        let limits = self.pay()?.refund_limits;
        let (s, r, why) = (
            subject_id.to_owned(),
            refund_id.to_owned(),
            reason.to_owned(),
        );
        let now = self.now();
        let queued = self
            .store
            .write(move |c| {
                enqueue_refund(
                    c,
                    &limits,
                    &NewRefund {
                        subject_id: &s,
                        refund_id: &r,
                        amount_fen,
                        total_fen,
                        reason: &why,
                    },
                    now,
                )
            })
            .await?;
        self.wake_refunds();
        Ok(queued)
    }

    /// Counts of the refund queue.
    pub async fn refund_summary(&self) -> Result<RefundSummary, HubError> {
        let (pending, succeeded, failed) = self
            .store
            .read(|c| Ok::<_, HubError>(payments::counts(c)?))
            .await?;
        Ok(RefundSummary {
            pending,
            succeeded,
            failed,
        })
    }

    /// The refunds of a subject (order or commitment).
    pub async fn refunds_of(
        &self,
        subject_id: &str,
    ) -> Result<Vec<payments::RefundView>, HubError> {
        let s = subject_id.to_owned();
        self.store
            .read(move |c| Ok::<_, HubError>(payments::refunds_of(c, &s)?))
            .await
    }

    pub(crate) fn wake_refunds(&self) {
        self.pay_wake.notify_one();
    }

    /// One attempt at one queued refund; whether it is now settled.
    async fn send_refund(
        &self,
        pay: &PaySettings,
        item: payments::QueuedRefund,
        now: DateTime<Utc>,
    ) -> Result<bool, HubError> {
        let now = self.now().max(now);
        let (limits, subject) = (pay.refund_limits, item.subject_id.clone());
        let rid = item.refund_id.clone();
        // the payer's spacing holds across refunds of one payment, and
        // the send is recorded before it happens (restart-safe)
        let go = self
            .store
            .write(move |c| {
                let earliest =
                    earliest_send(payments::last_sent_other(c, &subject, &rid)?, &limits, now);
                if earliest > now {
                    payments::defer(c, &subject, &rid, earliest)?;
                    return Ok::<_, HubError>(false);
                }
                payments::mark_sending(c, &subject, &rid, now)?;
                Ok(true)
            })
            .await?;
        if !go {
            return Ok(false);
        }
        let answer = pay
            .provider
            .refund(&RefundRequest {
                out_trade_no: item.subject_id.clone(),
                out_refund_no: item.refund_id.clone(),
                reason: item.reason.clone(),
                amount: RefundAmount {
                    refund: item.amount_fen,
                    total: item.total_fen,
                    currency: "CNY".into(),
                },
            })
            .await;
        let (attempt, provider_id, error) = match &answer {
            Ok(r) => (Attempt::Accepted, Some(r.refund_id.clone()), None),
            Err(PayError::FrequencyLimited(m)) => (
                Attempt::FrequencyLimited,
                None,
                Some(format!("FREQUENCY_LIMITED: {m}")),
            ),
            Err(e @ (PayError::Unavailable(_) | PayError::Protocol(_))) => {
                (Attempt::Retryable, None, Some(e.to_string()))
            }
            Err(e @ (PayError::Rejected { .. } | PayError::NotFound(_))) => {
                (Attempt::Refused, None, Some(e.to_string()))
            }
        };
        let failures = item.failures + u32::from(attempt == Attempt::Retryable);
        let answered = self.now();
        let next = after_attempt(
            attempt,
            failures,
            answered,
            &pay.refund_limits,
            &pay.backoff,
        );
        let (s, r) = (item.subject_id.clone(), item.refund_id.clone());
        self.store
            .write(move |c| {
                match next {
                    Next::Done(state) => {
                        payments::finish(
                            c,
                            &s,
                            &r,
                            state,
                            provider_id.as_deref(),
                            error.as_deref(),
                            answered,
                        )?;
                        if state == RefundState::Failed {
                            let store: String = match c.order(&s)? {
                                Some((f, _)) => f.store_id,
                                None => crate::app::groupbuys::store_of_commitment(c, &s)?
                                    .unwrap_or_default(),
                            };
                            crate::store::exceptions::raise(
                                c,
                                &store,
                                &s,
                                "refund_failed",
                                &format!(
                                    "refund {r} refused by the provider: {}",
                                    error.as_deref().unwrap_or("")
                                ),
                                answered,
                            )?;
                        }
                    }
                    Next::RetryAt(at) => payments::retry_later(
                        c,
                        &s,
                        &r,
                        at,
                        attempt == Attempt::Retryable,
                        error.as_deref().unwrap_or(""),
                    )?,
                }
                Ok::<_, HubError>(())
            })
            .await?;
        Ok(matches!(next, Next::Done(_)))
    }

    /// Sends the refunds due at `now`: up to [`SEND_AT_ONCE`] at a time, of
    /// different payments (refunds of one payment go one by one, the
    /// spacing apart). Returns how many were settled (accepted or refused
    /// for good) and when the next one is due.
    pub async fn drain_refunds(
        &self,
        now: DateTime<Utc>,
    ) -> Result<(usize, Option<DateTime<Utc>>), HubError> {
        let pay = self.pay()?.clone();
        let due = self
            .store
            .read(move |c| Ok::<_, HubError>(payments::due(c, now, 100)?))
            .await?;
        let mut subjects = std::collections::HashSet::new();
        let due: Vec<_> = due
            .into_iter()
            .filter(|i| subjects.insert(i.subject_id.clone()))
            .collect();
        let mut settled = 0;
        for chunk in due.chunks(SEND_AT_ONCE) {
            // owned here: dropping this pass (shutdown) aborts the sends,
            // which the next pass repeats with the same refund ids
            let mut sends = tokio::task::JoinSet::new();
            for item in chunk.iter().cloned() {
                let (hub, pay) = (self.clone(), pay.clone());
                sends.spawn(async move { hub.send_refund(&pay, item, now).await });
            }
            while let Some(joined) = sends.join_next().await {
                match joined {
                    Ok(Ok(true)) => settled += 1,
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "refund attempt not recorded; it will be retried")
                    }
                    Err(e) => tracing::warn!(error = %e, "refund send task failed"),
                }
            }
        }
        let next = self
            .store
            .read(|c| Ok::<_, HubError>(payments::next_due(c)?))
            .await?;
        Ok((settled, next))
    }
}

/// The unpaid-order sweeper: every `sweep_every`, orders past their time
/// to pay are cancelled. Owned by the hub's server (`HubServer`).
pub(crate) async fn unpaid_sweeper(hub: Hub, cancel: tokio_util::sync::CancellationToken) {
    let Some(every) = hub.order_settings.payment.as_ref().map(|p| p.sweep_every) else {
        return;
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => match hub.expire_unpaid(hub.now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(cancelled = n, "unpaid orders cancelled; their rights are released"),
                Err(e) => tracing::warn!(error = %e, "unpaid sweep failed"),
            },
        }
    }
}

/// The refund worker: sends due refunds, then sleeps until the next is due,
/// a refund is queued, or `refund_tick` passes. Owned by
/// the hub's server (`HubServer`); an attempt in flight at shutdown is sent
/// again (same refund id) after the restart.
pub(crate) async fn refund_worker(hub: Hub, cancel: tokio_util::sync::CancellationToken) {
    let Some(tick) = hub.order_settings.payment.as_ref().map(|p| p.refund_tick) else {
        return;
    };
    let wake: Arc<tokio::sync::Notify> = hub.pay_wake.clone();
    loop {
        // a pass stopped mid-request at shutdown is the crash case the queue
        // is built for: the item is sent again, same refund id, after restart
        let pass = tokio::select! {
            _ = cancel.cancelled() => return,
            pass = hub.drain_refunds(hub.now()) => pass,
        };
        let wait = match pass {
            Ok((_, Some(next))) => (next - hub.now()).to_std().unwrap_or_default().min(tick),
            Ok((_, None)) => tick,
            Err(e) => {
                tracing::warn!(error = %e, "refund queue pass failed");
                tick
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
