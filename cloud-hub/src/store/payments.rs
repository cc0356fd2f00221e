//! The hub's payment tables, behind typed operations: `payments` (one row
//! per order or group-buy commitment that must be paid, `Subject`) and `refund_queue` (one row per refund,
//! keyed by the order or commitment it pays back and its refund id), and
//! what a notification did to a payment ([`Notified`]).
//!
//! Every function runs on the caller's connection, inside the caller's
//! transaction: a cancellation and the refund it causes commit together,
//! and so do a notification and the order it releases to its store.

use chrono::{DateTime, Utc};
use linli_shared::payment::{PaymentState, RefundState};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::StoreError;
use super::json_rows::rows;
use crate::time::ts;

/// An order's payment, as `GET /api/v1/orders/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PaymentView {
    /// `awaiting_payment`, `paid` or `closed`.
    pub state: String,
    /// What the customer pays, fen (the order's total).
    pub amount_fen: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prepay_id: Option<String>,
    /// The provider's transaction id, once paid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<String>,
    /// An unpaid order is cancelled at this time.
    pub pay_by: String,
}

/// One refund of an order, as the order shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RefundView {
    /// The merchant refund id (`out_refund_no`), fixed for life.
    pub refund_id: String,
    pub amount_fen: i64,
    /// `pending`, `succeeded` or `failed`.
    pub state: String,
    /// Requests sent to the provider so far.
    pub attempts: i64,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub done_at: Option<String>,
}

/// What a payment pays for: its id (the provider's `out_trade_no`) is an
/// order id or a group-buy commitment id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subject {
    Order,
    Commitment,
}

impl Subject {
    fn as_str(self) -> &'static str {
        match self {
            Subject::Order => "order",
            Subject::Commitment => "commitment",
        }
    }

    fn parse(s: &str) -> Subject {
        if s == "commitment" {
            Subject::Commitment
        } else {
            Subject::Order
        }
    }
}

/// A payment row.
#[derive(Debug, Clone)]
pub(crate) struct Payment {
    pub subject: Subject,
    pub state: PaymentState,
    pub amount_fen: i64,
    pub prepay_id: Option<String>,
    pub transaction_id: Option<String>,
    pub paid_at: Option<String>,
    pub pay_by: String,
}

/// Opens the payment of a new order or commitment (`subject`), awaiting
/// payment until `pay_by`.
pub(crate) fn open(
    c: &Connection,
    subject: Subject,
    id: &str,
    amount_fen: i64,
    placed_at: DateTime<Utc>,
    pay_by: DateTime<Utc>,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO payments(order_id, subject, state, amount_fen, placed_at, pay_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        id,
        subject.as_str(),
        PaymentState::AwaitingPayment.as_str(),
        amount_fen,
        ts(placed_at),
        ts(pay_by)
    ])?;
    Ok(())
}

pub(crate) fn get(c: &Connection, order_id: &str) -> Result<Option<Payment>, StoreError> {
    Ok(c
        .prepare_cached(
            "SELECT state, amount_fen, prepay_id, transaction_id, paid_at, pay_by, subject FROM payments WHERE order_id = ?1",
        )?
        .query_row([order_id], |r| {
            Ok(Payment {
                subject: Subject::parse(&r.get::<_, String>(6)?),
                state: PaymentState::parse(&r.get::<_, String>(0)?)
                    .unwrap_or(PaymentState::Closed),
                amount_fen: r.get(1)?,
                prepay_id: r.get(2)?,
                transaction_id: r.get(3)?,
                paid_at: r.get(4)?,
                pay_by: r.get(5)?,
            })
        })
        .optional()?)
}

/// Whether the order stays at the hub (must be paid and is not): its store
/// does not see it.
pub(crate) fn held(c: &Connection, order_id: &str) -> Result<bool, StoreError> {
    Ok(get(c, order_id)?.is_some_and(|p| !p.state.released_to_store()))
}

/// Keeps the first prepay id given for an order.
pub(crate) fn set_prepay(
    c: &Connection,
    order_id: &str,
    prepay_id: &str,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "UPDATE payments SET prepay_id = coalesce(prepay_id, ?2) WHERE order_id = ?1",
    )?
    .execute(params![order_id, prepay_id])?;
    Ok(())
}

/// Records the transaction that paid the order, moving it to `state`.
pub(crate) fn record_paid(
    c: &Connection,
    order_id: &str,
    state: PaymentState,
    transaction_id: &str,
    paid_at: &str,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "UPDATE payments SET state = ?2, transaction_id = ?3, paid_at = ?4 WHERE order_id = ?1",
    )?
    .execute(params![order_id, state.as_str(), transaction_id, paid_at])?;
    Ok(())
}

/// Closes an unpaid payment; a paid or closed one is left alone.
pub(crate) fn close(
    c: &Connection,
    order_id: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let n = c
        .prepare_cached(
            "UPDATE payments SET state = ?2, closed_at = ?3 WHERE order_id = ?1 AND state = ?4",
        )?
        .execute(params![
            order_id,
            PaymentState::Closed.as_str(),
            ts(now),
            PaymentState::AwaitingPayment.as_str()
        ])?;
    Ok(n > 0)
}

/// Unpaid orders and commitments whose time to pay ended by `now`.
pub(crate) fn overdue(
    c: &Connection,
    now: DateTime<Utc>,
) -> Result<Vec<(String, Subject)>, StoreError> {
    Ok(c.prepare_cached(
        "SELECT order_id, subject FROM payments WHERE state = ?1 AND pay_by <= ?2 ORDER BY pay_by LIMIT 500",
    )?
    .query_map(
        params![PaymentState::AwaitingPayment.as_str(), ts(now)],
        |r| Ok((r.get(0)?, Subject::parse(&r.get::<_, String>(1)?))),
    )?
    .collect::<Result<_, _>>()?)
}

/// Whether the refund `refund_id` of the payment `subject_id` is queued
/// (in any state).
pub(crate) fn refund_queued(
    c: &Connection,
    subject_id: &str,
    refund_id: &str,
) -> Result<bool, StoreError> {
    Ok(c.prepare_cached(
        "SELECT EXISTS(SELECT 1 FROM refund_queue WHERE subject_id = ?1 AND refund_id = ?2)",
    )?
    .query_row(params![subject_id, refund_id], |r| r.get(0))?)
}

/// The amounts of the payment `subject_id`'s queued refunds that did not
/// fail (what the payer's refund limits count).
pub(crate) fn standing_refunds(c: &Connection, subject_id: &str) -> Result<Vec<i64>, StoreError> {
    Ok(c.prepare_cached(
        "SELECT amount_fen FROM refund_queue WHERE subject_id = ?1 AND state != ?2",
    )?
    .query_map(params![subject_id, RefundState::Failed.as_str()], |r| {
        r.get(0)
    })?
    .collect::<Result<_, _>>()?)
}

/// A refund to queue: `amount_fen` of the payment `subject_id` (an order
/// id or a group-buy commitment id) of `total_fen`, under `refund_id`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewRefund<'a> {
    pub subject_id: &'a str,
    pub refund_id: &'a str,
    pub amount_fen: i64,
    pub total_fen: i64,
    pub reason: &'a str,
}

/// Queues a refund, pending and due at `now` (the use case checked that
/// it is not queued yet and that the payer's limits admit it).
pub(crate) fn queue_refund(
    c: &Connection,
    r: &NewRefund<'_>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO refund_queue(subject_id, refund_id, amount_fen, total_fen, reason, state, next_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
    )?
    .execute(params![
        r.subject_id,
        r.refund_id,
        r.amount_fen,
        r.total_fen,
        r.reason,
        RefundState::Pending.as_str(),
        ts(now)
    ])?;
    Ok(())
}

/// A queued refund the worker sends.
#[derive(Debug, Clone)]
pub(crate) struct QueuedRefund {
    pub subject_id: String,
    pub refund_id: String,
    pub amount_fen: i64,
    pub total_fen: i64,
    pub reason: String,
    pub failures: u32,
}

/// Pending refunds due by `now`, oldest due first.
pub(crate) fn due(
    c: &Connection,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<QueuedRefund>, StoreError> {
    Ok(c.prepare_cached(
        "SELECT subject_id, refund_id, amount_fen, total_fen, reason, failures FROM refund_queue
             WHERE state = ?1 AND next_at <= ?2 ORDER BY next_at, subject_id, refund_id LIMIT ?3",
    )?
    .query_map(
        params![RefundState::Pending.as_str(), ts(now), limit as i64],
        |r| {
            Ok(QueuedRefund {
                subject_id: r.get(0)?,
                refund_id: r.get(1)?,
                amount_fen: r.get(2)?,
                total_fen: r.get(3)?,
                reason: r.get(4)?,
                failures: r.get(5)?,
            })
        },
    )?
    .collect::<Result<_, _>>()?)
}

/// When the next pending refund is due, if any.
/// Closes the payments still awaited of a failing campaign's unpaid
/// commitments (at `now`): money arriving later is refunded as paid after
/// close. The statement reads `group_buy_commitments` but writes
/// payments, so it is here.
pub(crate) fn close_unpaid_of_group_buy(
    c: &Connection,
    group_buy_id: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "UPDATE payments SET state = ?2, closed_at = ?3
         WHERE state = ?4 AND order_id IN (SELECT commitment_id FROM group_buy_commitments
                                            WHERE group_buy_id = ?1 AND status = 'awaiting_payment')",
    )?
    .execute(params![
        group_buy_id,
        PaymentState::Closed.as_str(),
        ts(now),
        PaymentState::AwaitingPayment.as_str()
    ])?;
    Ok(())
}

pub(crate) fn next_due(c: &Connection) -> Result<Option<DateTime<Utc>>, StoreError> {
    let s: Option<String> = c
        .prepare_cached("SELECT min(next_at) FROM refund_queue WHERE state = ?1")?
        .query_row([RefundState::Pending.as_str()], |r| r.get(0))?;
    Ok(s.and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
        .map(|t| t.with_timezone(&Utc)))
}

/// The last time another refund of `subject_id` than `refund_id` was sent.
/// A retry of one refund is the same refund to the payer (its id was seen
/// or never reached it), so only other refunds space it out.
pub(crate) fn last_sent_other(
    c: &Connection,
    subject_id: &str,
    refund_id: &str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let s: Option<String> = c
        .prepare_cached(
            "SELECT max(last_sent_at) FROM refund_queue WHERE subject_id = ?1 AND refund_id != ?2",
        )?
        .query_row([subject_id, refund_id], |r| r.get(0))?;
    Ok(s.and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
        .map(|t| t.with_timezone(&Utc)))
}

/// Defers a refund (the subject's spacing is not over).
pub(crate) fn defer(
    c: &Connection,
    subject_id: &str,
    refund_id: &str,
    until: DateTime<Utc>,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "UPDATE refund_queue SET next_at = ?3 WHERE subject_id = ?1 AND refund_id = ?2",
    )?
    .execute(params![subject_id, refund_id, ts(until)])?;
    Ok(())
}

/// Records that a request is about to be sent: committed before sending,
/// so the spacing holds and the attempt counts even if the hub stops
/// before the answer.
pub(crate) fn mark_sending(
    c: &Connection,
    subject_id: &str,
    refund_id: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "UPDATE refund_queue SET attempts = attempts + 1, last_sent_at = ?3 WHERE subject_id = ?1 AND refund_id = ?2",
    )?
    .execute(params![subject_id, refund_id, ts(now)])?;
    Ok(())
}

/// Final: the provider accepted (`provider_id`) or refused the refund.
pub(crate) fn finish(
    c: &Connection,
    subject_id: &str,
    refund_id: &str,
    state: RefundState,
    provider_id: Option<&str>,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "UPDATE refund_queue SET state = ?3, provider_refund_id = ?4, last_error = coalesce(?5, last_error), done_at = ?6
         WHERE subject_id = ?1 AND refund_id = ?2",
    )?
    .execute(params![subject_id, refund_id, state.as_str(), provider_id, error, ts(now)])?;
    Ok(())
}

/// Not this time: try again at `next_at`; `failed` counts toward the backoff.
pub(crate) fn retry_later(
    c: &Connection,
    subject_id: &str,
    refund_id: &str,
    next_at: DateTime<Utc>,
    failed: bool,
    error: &str,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "UPDATE refund_queue SET next_at = ?3, failures = failures + ?4, last_error = ?5
         WHERE subject_id = ?1 AND refund_id = ?2",
    )?
    .execute(params![
        subject_id,
        refund_id,
        ts(next_at),
        i64::from(failed),
        error
    ])?;
    Ok(())
}

/// The refunds of a subject, oldest first.
pub(crate) fn refunds_of(c: &Connection, subject_id: &str) -> Result<Vec<RefundView>, StoreError> {
    Ok(c
        .prepare_cached(
            "SELECT refund_id, amount_fen, state, attempts, reason, last_error, done_at FROM refund_queue
             WHERE subject_id = ?1 ORDER BY created_at, refund_id",
        )?
        .query_map([subject_id], |r| {
            Ok(RefundView {
                refund_id: r.get(0)?,
                amount_fen: r.get(1)?,
                state: r.get(2)?,
                attempts: r.get(3)?,
                reason: r.get(4)?,
                last_error: r.get(5)?,
                done_at: r.get(6)?,
            })
        })?
        .collect::<Result<_, _>>()?)
}

/// The payment of a subject as the table holds it (column → value): a
/// person's export.
pub(crate) fn payment_rows_of(c: &Connection, subject_id: &str) -> Result<Vec<Value>, StoreError> {
    rows(
        c,
        "SELECT * FROM payments WHERE order_id = ?1",
        &[&subject_id],
    )
}

/// The refunds of a subject as the table holds them, oldest first: a
/// person's export.
pub(crate) fn refund_rows_of(c: &Connection, subject_id: &str) -> Result<Vec<Value>, StoreError> {
    rows(
        c,
        "SELECT * FROM refund_queue WHERE subject_id = ?1 ORDER BY created_at",
        &[&subject_id],
    )
}

/// How many refunds are in each state (`pending`, `succeeded`, `failed`).
pub(crate) fn counts(c: &Connection) -> Result<(i64, i64, i64), StoreError> {
    Ok(c.prepare_cached(
        "SELECT coalesce(sum(state = 'pending'), 0), coalesce(sum(state = 'succeeded'), 0),
                    coalesce(sum(state = 'failed'), 0) FROM refund_queue",
    )?
    .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?)
}

/// The payment and refunds an order shows.
pub(crate) fn views(
    c: &Connection,
    order_id: &str,
) -> Result<(Option<PaymentView>, Vec<RefundView>), StoreError> {
    let p = get(c, order_id)?.map(|p| PaymentView {
        state: p.state.as_str().to_owned(),
        amount_fen: p.amount_fen,
        prepay_id: p.prepay_id,
        transaction_id: p.transaction_id,
        paid_at: p.paid_at,
        pay_by: p.pay_by,
    });
    Ok((p, refunds_of(c, order_id)?))
}

/// What a payment notification did (`Hub::pay_notified`), for tests and
/// logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notified {
    Paid,
    Duplicate,
    Refunding,
}
