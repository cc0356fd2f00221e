//! A failed campaign's counter commitments, refunded at the counter that
//! took them (issue 11). The customer paid cash there, so the hub's refund
//! queue (which pays online commitments back the way they came) cannot
//! reach them: the store's counter gives the money back, once, when it
//! knows the hub decided the campaign failed.
//!
//! One refund per commitment, whatever its reason: a commitment cancelled
//! while the campaign was open was refunded then (`GBC-`) and is not
//! refunded again as failed; one refunded as failed (`GBF-`) is refunded
//! once however often the cashier presses.

use serde::{Deserialize, Serialize};

use super::State;

/// Why the counter gave a commitment's money back (the ledger's cancel
/// fact carries it; facts written before 2026-12-03 are cancels).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefundReason {
    /// Cancelled at the counter while the campaign was open (`GBC-`).
    #[default]
    CounterCancelled,
    /// The campaign failed (`GBF-`).
    GroupBuyFailed,
}

impl RefundReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundReason::CounterCancelled => "counter_cancelled",
            RefundReason::GroupBuyFailed => "group_buy_failed",
        }
    }

    pub fn parse(s: &str) -> RefundReason {
        match s {
            "group_buy_failed" => RefundReason::GroupBuyFailed,
            _ => RefundReason::CounterCancelled,
        }
    }

    /// What the cashier and the customer are told, Chinese first.
    pub fn text(self) -> &'static str {
        match self {
            RefundReason::CounterCancelled => {
                "顾客取消参团，已在柜台退款 (cancelled by the customer; refunded at the counter)"
            }
            RefundReason::GroupBuyFailed => {
                "拼团未成团，已在柜台退款 (the group-buy did not go ahead; refunded at the counter)"
            }
        }
    }
}

/// The refund id of a failed campaign's commitment (`GBF-<commitment>`),
/// as the hub names an online one's.
pub fn failed_refund_id(commitment_id: &str) -> String {
    format!("GBF-{commitment_id}")
}

/// What the counter has already given back for a commitment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refunded {
    Nothing,
    /// Cancelled while open, refunded then.
    Cancelled,
    /// Refunded as the campaign failed.
    Failed,
}

/// What a failed-campaign refund does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundOutcome {
    /// Nothing: refunded already; answer with that refund.
    AlreadyRefunded,
    /// Refund it now, in full.
    Refund,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefundError {
    /// The campaign has not failed as this desk knows it (open, reached,
    /// fulfilled): a commitment leaves an open campaign by cancel.
    #[error(
        "团购{}，不能按未成团退款 (the group-buy has not failed; a commitment is refunded as failed only once the hub says it failed)",
        state_word(*.0)
    )]
    NotFailed(State),
    /// Cancelled while open and refunded then: nothing more to give back.
    #[error(
        "该参团已在截止前取消并退款，不能再退 (this commitment was cancelled and refunded before; nothing more to refund)"
    )]
    Cancelled,
}

fn state_word(s: State) -> &'static str {
    match s {
        State::Open => "尚未结束",
        State::Reached => "已成团",
        State::Fulfilled => "已完成",
        State::Failed => "已失败",
    }
}

impl RefundError {
    /// The stable machine-readable code (HTTP 409).
    pub fn code(&self) -> &'static str {
        match self {
            RefundError::NotFailed(_) => "group_buy_not_failed",
            RefundError::Cancelled => "commitment_cancelled",
        }
    }
}

/// Whether a counter commitment, with what was `refunded` of it, is
/// refunded now as its campaign (in `state` as the desk knows it) failed.
pub fn check_failed_refund(refunded: Refunded, state: State) -> Result<RefundOutcome, RefundError> {
    match refunded {
        Refunded::Failed => return Ok(RefundOutcome::AlreadyRefunded),
        Refunded::Cancelled => return Err(RefundError::Cancelled),
        Refunded::Nothing => {}
    }
    match state {
        State::Failed => Ok(RefundOutcome::Refund),
        s => Err(RefundError::NotFailed(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_failed_campaign_refunds_and_each_commitment_once() {
        for s in [State::Open, State::Reached, State::Fulfilled] {
            assert_eq!(
                check_failed_refund(Refunded::Nothing, s).map_err(|e| e.code()),
                Err("group_buy_not_failed")
            );
        }
        assert_eq!(
            check_failed_refund(Refunded::Nothing, State::Failed),
            Ok(RefundOutcome::Refund)
        );
        for s in [State::Open, State::Reached, State::Failed, State::Fulfilled] {
            assert_eq!(
                check_failed_refund(Refunded::Failed, s),
                Ok(RefundOutcome::AlreadyRefunded)
            );
            assert_eq!(
                check_failed_refund(Refunded::Cancelled, s).map_err(|e| e.code()),
                Err("commitment_cancelled")
            );
        }
        assert_eq!(failed_refund_id("01J"), "GBF-01J");
        assert!(
            RefundError::NotFailed(State::Reached)
                .to_string()
                .starts_with("团购已成团")
        );
    }

    #[test]
    fn old_cancel_facts_read_as_cancels() {
        let f: super::super::CounterCancel = serde_json::from_str(
            r#"{"commitment_id":"k","group_buy_id":"g","refund_id":"GBC-k","refund_fen":1,"at":"t","staff":"s"}"#,
        )
        .unwrap();
        assert_eq!(f.reason, RefundReason::CounterCancelled);
    }
}
