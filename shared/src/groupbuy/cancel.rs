//! A customer taking back their own commitment (DESIGN.md §7, "cancel").
//!
//! The rule keeps "reached" monotone: a commitment may be cancelled only
//! while its campaign is still `open` and before the deadline. Once the
//! campaign is reached the supplier order is being made from what was
//! committed, so nothing leaves it; after the deadline the count is what
//! decides the campaign, so nothing leaves it either. A cancelled
//! commitment no longer counts and no longer holds the customer's limit.
//! Cancelling what is already cancelled is the same cancel (idempotent),
//! whatever the campaign did since. A counter commitment was paid at the
//! counter, so it is taken back there, not online; an online one is taken
//! back online. The rule is the same at both desks ([`check_cancel_at`]):
//! the hub asks it of the campaign as it stands in its transaction, a
//! store's counter of the campaign as that store knows it (offline too:
//! reached once the hub's participants list has come, its own clock for
//! the deadline).

use chrono::{DateTime, Utc};

use super::State;

/// Where the commitment a customer wants to cancel stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// Already cancelled (by the customer, unpaid, failed...).
    Cancelled,
    /// Made online: `awaiting_payment` or `active`.
    Online,
    /// Taken at a store's counter.
    Counter,
}

/// Where the cancel is asked: a commitment is taken back where it was paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Desk {
    /// The hub's route, for the customer's own online commitment.
    Online,
    /// A store's counter, for a commitment that counter took.
    Counter,
}

/// What a cancel does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// Nothing: it already is cancelled; answer with it as it stands.
    AlreadyCancelled,
    /// Cancel it now.
    Cancel,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CancelError {
    /// The campaign is reached (or fulfilled): "reached" is never undone.
    #[error(
        "团购已成团，不能取消 (the group-buy has been reached; commitments can no longer be cancelled)"
    )]
    Reached,
    /// The campaign failed: every commitment is cancelled already.
    #[error("团购已结束，不能取消 (the group-buy is over; nothing to cancel)")]
    Over,
    /// The deadline has passed: what was committed decides the campaign.
    #[error(
        "团购已于 {0} 截止，不能再取消参团 (the group-buy closed at {0}; commitments can no longer be cancelled)"
    )]
    Closed(DateTime<Utc>),
    /// Taken at a store's counter and paid there.
    #[error(
        "在门店柜台参的团请到门店办理取消 (a commitment made at a store's counter is cancelled at that counter)"
    )]
    AtCounter,
    /// Made online and paid online: the store's counter does not hold it.
    #[error(
        "线上参的团请顾客在手机上取消 (an online commitment is cancelled by its customer online)"
    )]
    Online,
}

impl CancelError {
    /// The stable machine-readable code both the hub and the store answer
    /// with (HTTP 409).
    pub fn code(&self) -> &'static str {
        match self {
            CancelError::Reached => "group_buy_reached",
            CancelError::Over | CancelError::Closed(_) => "group_buy_closed",
            CancelError::AtCounter => "cancel_at_counter",
            CancelError::Online => "cancel_online",
        }
    }
}

/// Whether a customer may cancel online a commitment they hold in a
/// campaign in `state` closing at `deadline`, at `now`.
pub fn check_cancel(
    held: Held,
    state: State,
    deadline: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<CancelOutcome, CancelError> {
    check_cancel_at(Desk::Online, held, state, deadline, now)
}

/// Whether a commitment may be cancelled at `desk`: the same rule for both
/// channels (open and before the deadline), each desk taking back only
/// what was paid there.
pub fn check_cancel_at(
    desk: Desk,
    held: Held,
    state: State,
    deadline: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<CancelOutcome, CancelError> {
    match (desk, held) {
        (_, Held::Cancelled) => return Ok(CancelOutcome::AlreadyCancelled),
        (Desk::Online, Held::Counter) => return Err(CancelError::AtCounter),
        (Desk::Counter, Held::Online) => return Err(CancelError::Online),
        (Desk::Online, Held::Online) | (Desk::Counter, Held::Counter) => {}
    }
    match state {
        State::Reached | State::Fulfilled => return Err(CancelError::Reached),
        State::Failed => return Err(CancelError::Over),
        State::Open => {}
    }
    if now >= deadline {
        return Err(CancelError::Closed(deadline));
    }
    Ok(CancelOutcome::Cancel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn t(m: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap() + Duration::minutes(m)
    }

    #[test]
    fn only_an_open_campaign_before_its_deadline_lets_a_commitment_go() {
        let ok = |held, state, at| check_cancel(held, state, t(0), t(at));
        assert_eq!(ok(Held::Online, State::Open, -1), Ok(CancelOutcome::Cancel));
        assert_eq!(
            ok(Held::Online, State::Open, 0),
            Err(CancelError::Closed(t(0)))
        );
        assert_eq!(
            ok(Held::Online, State::Reached, -1),
            Err(CancelError::Reached)
        );
        assert_eq!(
            ok(Held::Online, State::Fulfilled, -1),
            Err(CancelError::Reached)
        );
        assert_eq!(ok(Held::Online, State::Failed, 5), Err(CancelError::Over));
        assert_eq!(
            ok(Held::Counter, State::Open, -1),
            Err(CancelError::AtCounter)
        );
    }

    #[test]
    fn cancelling_again_is_the_same_cancel_whatever_happened_since() {
        for desk in [Desk::Online, Desk::Counter] {
            for state in [State::Open, State::Reached, State::Failed, State::Fulfilled] {
                for at in [-1, 0, 60] {
                    assert_eq!(
                        check_cancel_at(desk, Held::Cancelled, state, t(0), t(at)),
                        Ok(CancelOutcome::AlreadyCancelled)
                    );
                }
            }
        }
    }

    /// The counter's rule is the hub's: whatever the campaign's state and
    /// the time, a counter commitment at its counter gets the answer an
    /// online one gets online, and each desk refuses the other's.
    #[test]
    fn the_counter_and_the_hub_apply_one_rule() {
        for state in [State::Open, State::Reached, State::Failed, State::Fulfilled] {
            for at in [-60, -1, 0, 1, 60] {
                let online = check_cancel(Held::Online, state, t(0), t(at));
                let counter = check_cancel_at(Desk::Counter, Held::Counter, state, t(0), t(at));
                assert_eq!(online, counter, "{state:?} at {at}");
                assert_eq!(
                    check_cancel_at(Desk::Counter, Held::Online, state, t(0), t(at)),
                    Err(CancelError::Online)
                );
            }
        }
        assert_eq!(
            check_cancel_at(Desk::Counter, Held::Counter, State::Open, t(0), t(-1)),
            Ok(CancelOutcome::Cancel)
        );
        assert_eq!(
            check_cancel_at(Desk::Counter, Held::Counter, State::Reached, t(0), t(-1))
                .map_err(|e| e.code()),
            Err("group_buy_reached")
        );
        assert_eq!(
            check_cancel_at(Desk::Counter, Held::Counter, State::Open, t(0), t(0))
                .map_err(|e| e.code()),
            Err("group_buy_closed")
        );
    }
}
