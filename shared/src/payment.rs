//! Payment of online orders and the refund queue's rules (DESIGN.md §6),
//! without IO or clock: callers pass `now`.
//!
//! An online order is held at the hub, [`PaymentState::AwaitingPayment`],
//! until a verified notification says it is paid; only then does it reach
//! its store. The invariants kept here:
//!
//! - a notification moves a payment at most once: a repeated one is a
//!   [`NotifyOutcome::Duplicate`], and one for a different amount than the
//!   order's total changes nothing ([`NotifyOutcome::AmountMismatch`]);
//! - money that arrives for an order already closed (unpaid too long,
//!   cancelled) is given back: [`NotifyOutcome::RefundPaidAfterClose`];
//! - refunds of one payment never sum above what was paid, number at most
//!   [`RefundLimits::max_refunds`] (WeChat Pay: 50) and are sent at least
//!   [`RefundLimits::spacing`] apart (WeChat Pay: one minute);
//! - a refund item keeps its refund id for life, so retries after errors or
//!   restarts are the same request and the provider applies it once.

use chrono::{DateTime, Duration, Utc};

/// Where an order's payment stands at the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentState {
    /// Placed, rights taken, not paid yet; the store does not see the order.
    AwaitingPayment,
    /// Paid (a verified notification or a query said so); the order went to
    /// its store.
    Paid,
    /// Closed unpaid: the customer cancelled or the unpaid timeout passed.
    /// Final; money arriving later is refunded.
    Closed,
}

impl PaymentState {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentState::AwaitingPayment => "awaiting_payment",
            PaymentState::Paid => "paid",
            PaymentState::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<PaymentState> {
        match s {
            "awaiting_payment" => Some(PaymentState::AwaitingPayment),
            "paid" => Some(PaymentState::Paid),
            "closed" => Some(PaymentState::Closed),
            _ => None,
        }
    }

    /// Whether the order is visible to its store: unpaid orders stay at the
    /// hub, so a store never picks goods nobody paid for.
    pub fn released_to_store(self) -> bool {
        self == PaymentState::Paid
    }
}

/// What a verified "payment succeeded" notification does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyOutcome {
    /// The payment is now paid; the order goes to its store.
    MarkPaid,
    /// Already paid by this very transaction: nothing changes (providers
    /// repeat notifications until acknowledged).
    Duplicate,
    /// The order was closed before the money came: record the payment and
    /// refund it in full.
    RefundPaidAfterClose,
    /// The notified amount is not the order's total: nothing changes and a
    /// person looks at it.
    AmountMismatch { expected: i64, got: i64 },
    /// Paid already by another transaction (the customer paid twice): the
    /// second one is refunded in full.
    RefundSecondPayment,
}

/// Decides what a verified success notification for `transaction_id` of
/// `paid_fen` does to a payment in `state` of an order of `total_fen`.
/// `known_transaction` is the transaction the payment was marked paid with.
pub fn on_success(
    state: PaymentState,
    total_fen: i64,
    paid_fen: i64,
    transaction_id: &str,
    known_transaction: Option<&str>,
) -> NotifyOutcome {
    if paid_fen != total_fen {
        return NotifyOutcome::AmountMismatch {
            expected: total_fen,
            got: paid_fen,
        };
    }
    match state {
        PaymentState::AwaitingPayment => NotifyOutcome::MarkPaid,
        PaymentState::Paid if known_transaction == Some(transaction_id) => NotifyOutcome::Duplicate,
        PaymentState::Paid => NotifyOutcome::RefundSecondPayment,
        PaymentState::Closed if known_transaction == Some(transaction_id) => {
            NotifyOutcome::Duplicate
        }
        PaymentState::Closed => NotifyOutcome::RefundPaidAfterClose,
    }
}

/// Whether an order placed at `placed_at` and still unpaid at `now` has
/// waited too long (the chain's setting, 15 minutes by default).
pub fn unpaid_expired(placed_at: DateTime<Utc>, timeout: Duration, now: DateTime<Utc>) -> bool {
    now >= placed_at + timeout
}

/// A payer's limits on refunds of one payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefundLimits {
    /// Most refunds of one payment (WeChat Pay: 50 partial refunds).
    pub max_refunds: usize,
    /// Least time between two refund requests of one payment (WeChat Pay:
    /// one minute; `FREQUENCY_LIMITED` otherwise).
    pub spacing: Duration,
}

impl Default for RefundLimits {
    fn default() -> Self {
        RefundLimits {
            max_refunds: 50,
            spacing: Duration::minutes(1),
        }
    }
}

/// Why a refund cannot be queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefundRefusal {
    /// The amount is zero or negative.
    #[error("退款金额须大于 0 (a refund must be more than 0 fen)")]
    NotPositive,
    /// The payment already has the most refunds the payer allows.
    #[error(
        "该笔支付已有 {max} 笔退款，已达上限 (this payment already has {max} refunds, the most allowed)"
    )]
    TooMany { max: usize },
    /// Refunds would sum above what was paid.
    #[error(
        "退款合计不能超过实付 {paid} 分：已退 {refunded} 分，本次 {asked} 分 (refunds may not exceed the {paid} fen paid: {refunded} refunded, {asked} asked)"
    )]
    AbovePaid {
        paid: i64,
        refunded: i64,
        asked: i64,
    },
}

/// Checks a new refund of `amount` against the `prior` refunds' amounts of a
/// payment of `paid` fen.
pub fn admit_refund(
    limits: &RefundLimits,
    prior: &[i64],
    paid: i64,
    amount: i64,
) -> Result<(), RefundRefusal> {
    if amount <= 0 {
        return Err(RefundRefusal::NotPositive);
    }
    if prior.len() >= limits.max_refunds {
        return Err(RefundRefusal::TooMany {
            max: limits.max_refunds,
        });
    }
    let refunded: i64 = prior.iter().sum();
    if refunded.saturating_add(amount) > paid {
        return Err(RefundRefusal::AbovePaid {
            paid,
            refunded,
            asked: amount,
        });
    }
    Ok(())
}

/// Where a queued refund stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundState {
    /// Queued or being retried.
    Pending,
    /// The payer accepted it (final).
    Succeeded,
    /// The payer refused it for good (final; raised for a person).
    Failed,
}

impl RefundState {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundState::Pending => "pending",
            RefundState::Succeeded => "succeeded",
            RefundState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<RefundState> {
        match s {
            "pending" => Some(RefundState::Pending),
            "succeeded" => Some(RefundState::Succeeded),
            "failed" => Some(RefundState::Failed),
            _ => None,
        }
    }
}

/// What one attempt to send a refund came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Accepted (or already accepted under this refund id).
    Accepted,
    /// Too soon after another refund of the same payment.
    FrequencyLimited,
    /// Unreachable, timed out or a server error: try again later.
    Retryable,
    /// Refused for good (e.g. amount above what is left).
    Refused,
}

/// The retry schedule after errors: `base`, doubling per failed attempt,
/// at most `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::seconds(5),
            cap: Duration::minutes(10),
        }
    }
}

impl Backoff {
    /// The wait after the `failures`-th failure in a row (1-based).
    pub fn after(&self, failures: u32) -> Duration {
        let shift = failures.saturating_sub(1).min(30);
        let base_ms = self.base.num_milliseconds().max(1);
        let ms = base_ms.saturating_mul(1i64 << shift);
        Duration::milliseconds(ms.min(self.cap.num_milliseconds().max(base_ms)))
    }
}

/// The queue's decision after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Mark the item final in this state.
    Done(RefundState),
    /// Try again, with the same refund id, not before this time.
    RetryAt(DateTime<Utc>),
}

/// What the queue does after attempt number `attempts` (1-based, this one
/// included) of an item ended in `outcome` at `now`. A frequency limit is
/// not the item's fault: it waits the spacing, not the growing backoff.
pub fn after_attempt(
    outcome: Attempt,
    failures: u32,
    now: DateTime<Utc>,
    limits: &RefundLimits,
    backoff: &Backoff,
) -> Next {
    match outcome {
        Attempt::Accepted => Next::Done(RefundState::Succeeded),
        Attempt::Refused => Next::Done(RefundState::Failed),
        Attempt::FrequencyLimited => Next::RetryAt(now + limits.spacing),
        Attempt::Retryable => Next::RetryAt(now + backoff.after(failures)),
    }
}

/// The earliest time a refund of a payment may be sent, given the last
/// request sent for any other refund of that payment (a retry of the same
/// refund id is the same refund to the payer and is not spaced out).
pub fn earliest_send(
    last_sent_for_payment: Option<DateTime<Utc>>,
    limits: &RefundLimits,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    match last_sent_for_payment {
        Some(t) => now.max(t + limits.spacing),
        None => now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
    }

    #[test]
    fn a_repeated_notification_changes_nothing() {
        let first = on_success(PaymentState::AwaitingPayment, 1000, 1000, "T1", None);
        assert_eq!(first, NotifyOutcome::MarkPaid);
        let again = on_success(PaymentState::Paid, 1000, 1000, "T1", Some("T1"));
        assert_eq!(again, NotifyOutcome::Duplicate);
        let other = on_success(PaymentState::Paid, 1000, 1000, "T2", Some("T1"));
        assert_eq!(other, NotifyOutcome::RefundSecondPayment);
    }

    #[test]
    fn a_wrong_amount_changes_nothing() {
        assert_eq!(
            on_success(PaymentState::AwaitingPayment, 1000, 1, "T1", None),
            NotifyOutcome::AmountMismatch {
                expected: 1000,
                got: 1
            }
        );
    }

    #[test]
    fn money_after_close_goes_back() {
        assert_eq!(
            on_success(PaymentState::Closed, 500, 500, "T9", None),
            NotifyOutcome::RefundPaidAfterClose
        );
    }

    #[test]
    fn the_51st_refund_is_refused() {
        let l = RefundLimits::default();
        let prior = vec![1; 50];
        assert_eq!(
            admit_refund(&l, &prior, 1000, 1),
            Err(RefundRefusal::TooMany { max: 50 })
        );
        assert_eq!(admit_refund(&l, &prior[..49], 1000, 1), Ok(()));
    }

    #[test]
    fn spacing_is_kept_per_payment() {
        let l = RefundLimits::default();
        assert_eq!(earliest_send(None, &l, t0()), t0());
        let last = t0() - Duration::seconds(20);
        assert_eq!(
            earliest_send(Some(last), &l, t0()),
            t0() + Duration::seconds(40)
        );
    }

    #[test]
    fn frequency_limit_waits_the_spacing_not_the_backoff() {
        let l = RefundLimits::default();
        let b = Backoff::default();
        assert_eq!(
            after_attempt(Attempt::FrequencyLimited, 7, t0(), &l, &b),
            Next::RetryAt(t0() + Duration::minutes(1))
        );
    }

    #[test]
    fn unpaid_timeout() {
        let to = Duration::minutes(15);
        assert!(!unpaid_expired(t0(), to, t0() + Duration::minutes(14)));
        assert!(unpaid_expired(t0(), to, t0() + Duration::minutes(15)));
    }

    proptest! {
        /// Whatever is asked, admitted refunds never sum above what was paid
        /// and never number more than the limit.
        #[test]
        fn admitted_refunds_stay_within_limits(paid in 0i64..100_000, asks in proptest::collection::vec(-10i64..5_000, 0..120)) {
            let l = RefundLimits::default();
            let mut admitted: Vec<i64> = Vec::new();
            for a in asks {
                if admit_refund(&l, &admitted, paid, a).is_ok() {
                    admitted.push(a);
                }
            }
            prop_assert!(admitted.iter().sum::<i64>() <= paid);
            prop_assert!(admitted.len() <= l.max_refunds);
            prop_assert!(admitted.iter().all(|a| *a > 0));
        }

        /// The backoff grows and never passes its cap.
        #[test]
        fn backoff_is_monotone_and_capped(n in 1u32..200) {
            let b = Backoff::default();
            prop_assert!(b.after(n) <= b.cap);
            prop_assert!(b.after(n) <= b.after(n + 1));
            prop_assert!(b.after(n) >= b.base);
        }

        /// A notification applied twice leaves the state it left after once.
        #[test]
        fn notification_is_idempotent(total in 1i64..100_000, paid in 1i64..100_000) {
            let first = on_success(PaymentState::AwaitingPayment, total, paid, "T", None);
            let state = if first == NotifyOutcome::MarkPaid { PaymentState::Paid } else { PaymentState::AwaitingPayment };
            let known = (state == PaymentState::Paid).then_some("T");
            let second = on_success(state, total, paid, "T", known);
            prop_assert!(second == NotifyOutcome::Duplicate || second == first);
        }
    }
}
