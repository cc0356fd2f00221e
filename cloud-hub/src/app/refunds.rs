//! A refund queued at the hub: the one rule between the use cases that
//! refund (a cancelled paid order, a second or late payment, a failed or
//! left group-buy commitment) and the refund queue's table. A leaf of the
//! use cases: `payment`, `orders` and `groupbuys` call it, it calls none
//! of them.

use chrono::{DateTime, Utc};
use linli_shared::payment::{RefundLimits, admit_refund};
use rusqlite::Connection;

use crate::error::HubError;
use crate::store::payments::{self, NewRefund};

/// Queues a refund unless it is queued already (then `false`). The
/// payer's limits are checked against the payment's other refunds that did
/// not fail; a refund they refuse is a refusal (`HubError::RefundRefused`,
/// HTTP 409 `refund_refused`) and nothing is queued. Runs in the caller's
/// transaction: a cancellation and the refund it causes commit together.
pub(crate) fn enqueue_refund(
    c: &Connection,
    limits: &RefundLimits,
    r: &NewRefund<'_>,
    now: DateTime<Utc>,
) -> Result<bool, HubError> {
    if payments::refund_queued(c, r.subject_id, r.refund_id)? {
        return Ok(false);
    }
    let standing = payments::standing_refunds(c, r.subject_id)?;
    admit_refund(limits, &standing, r.total_fen, r.amount_fen).map_err(HubError::RefundRefused)?;
    payments::queue_refund(c, r, now)?;
    Ok(true)
}
