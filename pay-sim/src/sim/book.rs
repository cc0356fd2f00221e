//! The simulator's transactions and refunds and their rules, without IO:
//! every operation takes the time from the caller.
//!
//! Invariants: one transaction per `out_trade_no`; a transaction moves
//! NOTPAY → SUCCESS or NOTPAY → CLOSED and never back; one refund per
//! `out_refund_no`; refunds of a transaction number at most
//! [`Limits::max_refunds`], sum at most its total and are at least
//! [`Limits::spacing`] apart.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, SecondsFormat, Utc};

use crate::wire::{
    PrepayRequest, Refund, RefundAmount, RefundRequest, SimRefundRow, Transaction,
    TransactionAmount,
};

/// The provider's refund limits (WeChat Pay's: 50, one minute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_refunds: usize,
    pub spacing: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_refunds: 50,
            spacing: Duration::minutes(1),
        }
    }
}

/// Why the simulator refused an operation; each has its WeChat Pay code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    ParamError(String),
    #[error("order {0} does not exist")]
    OrderNotExist(String),
    #[error("order {0} is closed")]
    OrderClosed(String),
    #[error("order {0} is paid and cannot be closed")]
    OrderPaid(String),
    #[error("refunds of order {0} less than the spacing apart")]
    FrequencyLimited(String),
    #[error("injected fault")]
    SystemError,
}

impl SimError {
    /// The WeChat Pay error code.
    pub fn code(&self) -> &'static str {
        match self {
            SimError::InvalidRequest(_) => "INVALID_REQUEST",
            SimError::ParamError(_) => "PARAM_ERROR",
            SimError::OrderNotExist(_) => "ORDER_NOT_EXIST",
            SimError::OrderClosed(_) => "ORDER_CLOSED",
            SimError::OrderPaid(_) => "ORDERPAID",
            SimError::FrequencyLimited(_) => "FREQUENCY_LIMITED",
            SimError::SystemError => "SYSTEM_ERROR",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TradeState {
    NotPay,
    Success,
    Closed,
}

#[derive(Debug, Clone)]
struct Txn {
    req: PrepayRequest,
    prepay_id: String,
    state: TradeState,
    transaction_id: Option<String>,
    success_time: Option<DateTime<Utc>>,
    refunds: Vec<String>,
    last_refund_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
struct RefundRec {
    refund: Refund,
    requests: u32,
}

/// A notification still to be delivered.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) out_trade_no: String,
    pub(crate) notify_url: String,
    pub(crate) transaction: Transaction,
    pub(crate) due: DateTime<Utc>,
    pub(crate) attempts: u32,
}

/// Everything the simulator holds.
#[derive(Debug, Default)]
pub(crate) struct Book {
    txns: BTreeMap<String, Txn>,
    by_prepay: HashMap<String, String>,
    refunds: BTreeMap<String, RefundRec>,
    pub(crate) pending: BTreeMap<String, Pending>,
    pub(crate) limits: Limits,
    pub(crate) stats: crate::wire::SimStats,
    seq: u64,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Book {
    #[cfg(test)]
    pub(crate) fn with_limits(limits: Limits) -> Book {
        Book {
            limits,
            ..Book::default()
        }
    }

    fn next(&mut self, prefix: &str) -> String {
        self.seq += 1;
        format!("{prefix}{:010}{}", self.seq, ulid::Ulid::new())
    }

    pub(crate) fn prepay(&mut self, req: PrepayRequest) -> Result<String, SimError> {
        let n = req.out_trade_no.len();
        if !(6..=32).contains(&n)
            || !req
                .out_trade_no
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-|*".contains(&b))
        {
            return Err(SimError::ParamError(
                "out_trade_no must be 6-32 letters, digits or _-|*".into(),
            ));
        }
        if req.amount.total < 1 {
            return Err(SimError::ParamError(
                "amount.total must be at least 1".into(),
            ));
        }
        if !(req.notify_url.starts_with("http://") || req.notify_url.starts_with("https://")) {
            return Err(SimError::ParamError("notify_url must be http(s)".into()));
        }
        if let Some(t) = self.txns.get(&req.out_trade_no) {
            if t.state == TradeState::Closed {
                return Err(SimError::OrderClosed(req.out_trade_no));
            }
            if t.req.amount.total != req.amount.total {
                return Err(SimError::InvalidRequest(format!(
                    "out_trade_no {} was used with another amount",
                    req.out_trade_no
                )));
            }
            return Ok(t.prepay_id.clone());
        }
        let prepay_id = self.next("wx");
        self.by_prepay
            .insert(prepay_id.clone(), req.out_trade_no.clone());
        self.txns.insert(
            req.out_trade_no.clone(),
            Txn {
                req,
                prepay_id: prepay_id.clone(),
                state: TradeState::NotPay,
                transaction_id: None,
                success_time: None,
                refunds: Vec::new(),
                last_refund_at: None,
            },
        );
        self.stats.transactions += 1;
        Ok(prepay_id)
    }

    /// What the cashier shows for a prepay: order number, description,
    /// amount and whether it is paid.
    pub(crate) fn prepay_info(&self, prepay_id: &str) -> Option<(String, String, i64, bool)> {
        let no = self.by_prepay.get(prepay_id)?;
        let t = self.txns.get(no)?;
        Some((
            no.clone(),
            t.req.description.clone(),
            t.req.amount.total,
            t.state == TradeState::Success,
        ))
    }

    /// The customer confirms: the transaction is paid and its notification
    /// queued. Confirming again changes nothing.
    pub(crate) fn confirm(
        &mut self,
        prepay_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Transaction, SimError> {
        let no = self
            .by_prepay
            .get(prepay_id)
            .cloned()
            .ok_or_else(|| SimError::OrderNotExist(prepay_id.to_owned()))?;
        let state = self.txns.get(&no).map(|t| t.state);
        match state {
            None => return Err(SimError::OrderNotExist(no)),
            Some(TradeState::Closed) => return Err(SimError::OrderClosed(no)),
            Some(TradeState::Success) => return self.query(&no),
            Some(TradeState::NotPay) => {}
        }
        let id = self.next("4200");
        if let Some(t) = self.txns.get_mut(&no) {
            t.state = TradeState::Success;
            t.transaction_id = Some(id);
            t.success_time = Some(now);
        }
        self.stats.paid += 1;
        let transaction = self.query(&no)?;
        let notify_url = self
            .txns
            .get(&no)
            .map(|t| t.req.notify_url.clone())
            .unwrap_or_default();
        self.pending.insert(
            no.clone(),
            Pending {
                out_trade_no: no,
                notify_url,
                transaction: transaction.clone(),
                due: now,
                attempts: 0,
            },
        );
        Ok(transaction)
    }

    pub(crate) fn query(&self, out_trade_no: &str) -> Result<Transaction, SimError> {
        let t = self
            .txns
            .get(out_trade_no)
            .ok_or_else(|| SimError::OrderNotExist(out_trade_no.to_owned()))?;
        let (state, desc) = match t.state {
            TradeState::NotPay => ("NOTPAY", "未支付"),
            TradeState::Closed => ("CLOSED", "已关闭"),
            TradeState::Success if !t.refunds.is_empty() => ("REFUND", "转入退款"),
            TradeState::Success => ("SUCCESS", "支付成功"),
        };
        Ok(Transaction {
            out_trade_no: out_trade_no.to_owned(),
            transaction_id: t.transaction_id.clone(),
            trade_state: state.into(),
            trade_state_desc: desc.into(),
            success_time: t.success_time.map(ts),
            amount: TransactionAmount {
                total: t.req.amount.total,
                payer_total: if t.state == TradeState::Success {
                    t.req.amount.total
                } else {
                    0
                },
                currency: "CNY".into(),
            },
        })
    }

    pub(crate) fn close(&mut self, out_trade_no: &str) -> Result<(), SimError> {
        let t = self
            .txns
            .get_mut(out_trade_no)
            .ok_or_else(|| SimError::OrderNotExist(out_trade_no.to_owned()))?;
        match t.state {
            TradeState::Success => Err(SimError::OrderPaid(out_trade_no.to_owned())),
            _ => {
                t.state = TradeState::Closed;
                Ok(())
            }
        }
    }

    /// Refund lookup by its id: the same id again is the same refund.
    fn replay(&mut self, req: &RefundRequest) -> Option<Result<Refund, SimError>> {
        let rec = self.refunds.get_mut(&req.out_refund_no)?;
        rec.requests += 1;
        Some(
            if rec.refund.out_trade_no == req.out_trade_no
                && rec.refund.amount.refund == req.amount.refund
            {
                Ok(rec.refund.clone())
            } else {
                Err(SimError::InvalidRequest(format!(
                    "out_refund_no {} was used for another refund",
                    req.out_refund_no
                )))
            },
        )
    }

    pub(crate) fn refund(
        &mut self,
        req: RefundRequest,
        now: DateTime<Utc>,
    ) -> Result<Refund, SimError> {
        self.stats.refund_requests += 1;
        if let Some(r) = self.replay(&req) {
            return r;
        }
        if req.out_refund_no.is_empty() || req.out_refund_no.len() > 64 {
            return Err(SimError::ParamError(
                "out_refund_no must be 1-64 characters".into(),
            ));
        }
        let limits = self.limits;
        let t = self
            .txns
            .get(&req.out_trade_no)
            .ok_or_else(|| SimError::OrderNotExist(req.out_trade_no.clone()))?;
        if t.state != TradeState::Success {
            return Err(SimError::InvalidRequest(format!(
                "order {} is not paid",
                req.out_trade_no
            )));
        }
        if req.amount.total != t.req.amount.total || req.amount.refund < 1 {
            return Err(SimError::ParamError(
                "amount.total must be the order's total and amount.refund at least 1".into(),
            ));
        }
        if t.refunds.len() >= limits.max_refunds {
            return Err(SimError::InvalidRequest(format!(
                "order {} already has {} refunds, the most allowed",
                req.out_trade_no, limits.max_refunds
            )));
        }
        let refunded: i64 = t
            .refunds
            .iter()
            .filter_map(|r| self.refunds.get(r))
            .map(|r| r.refund.amount.refund)
            .sum();
        if refunded + req.amount.refund > t.req.amount.total {
            return Err(SimError::InvalidRequest(format!(
                "申请退款金额超过订单可退金额 (refunds would exceed the paid {} fen)",
                t.req.amount.total
            )));
        }
        if let Some(last) = t.last_refund_at
            && now < last + limits.spacing
        {
            self.stats.frequency_limited += 1;
            return Err(SimError::FrequencyLimited(req.out_trade_no));
        }
        let transaction_id = t.transaction_id.clone().unwrap_or_default();
        let refund_id = self.next("5030");
        let refund = Refund {
            refund_id,
            out_refund_no: req.out_refund_no.clone(),
            out_trade_no: req.out_trade_no.clone(),
            transaction_id,
            status: "SUCCESS".into(),
            create_time: ts(now),
            amount: RefundAmount {
                refund: req.amount.refund,
                total: req.amount.total,
                currency: "CNY".into(),
            },
        };
        if let Some(t) = self.txns.get_mut(&req.out_trade_no) {
            t.refunds.push(req.out_refund_no.clone());
            t.last_refund_at = Some(now);
        }
        self.refunds.insert(
            req.out_refund_no,
            RefundRec {
                refund: refund.clone(),
                requests: 1,
            },
        );
        self.stats.refunds += 1;
        Ok(refund)
    }

    pub(crate) fn refund_rows(&self) -> Vec<SimRefundRow> {
        self.refunds
            .values()
            .map(|r| SimRefundRow {
                out_trade_no: r.refund.out_trade_no.clone(),
                out_refund_no: r.refund.out_refund_no.clone(),
                amount: r.refund.amount.refund,
                requests: r.requests,
            })
            .collect()
    }

    /// Test and demo shortcut: a paid transaction without a cashier step
    /// and without notification (e.g. to queue many refunds).
    pub(crate) fn paid_directly(
        &mut self,
        req: PrepayRequest,
        now: DateTime<Utc>,
    ) -> Result<Transaction, SimError> {
        let no = req.out_trade_no.clone();
        let prepay = self.prepay(req)?;
        let t = self.confirm(&prepay, now)?;
        self.pending.remove(&no);
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Amount;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
    }

    fn prepay(no: &str, total: i64) -> PrepayRequest {
        PrepayRequest {
            appid: String::new(),
            mchid: String::new(),
            description: "test".into(),
            out_trade_no: no.into(),
            notify_url: "http://127.0.0.1:1/notify".into(),
            amount: Amount {
                total,
                currency: "CNY".into(),
            },
        }
    }

    fn refund(no: &str, rid: &str, amount: i64, total: i64) -> RefundRequest {
        RefundRequest {
            out_trade_no: no.into(),
            out_refund_no: rid.into(),
            reason: String::new(),
            amount: RefundAmount {
                refund: amount,
                total,
                currency: "CNY".into(),
            },
        }
    }

    #[test]
    fn prepay_is_idempotent_on_the_order_number() -> Result<(), SimError> {
        let mut b = Book::default();
        let a = b.prepay(prepay("ORDER001", 100))?;
        assert_eq!(b.prepay(prepay("ORDER001", 100))?, a);
        assert!(matches!(
            b.prepay(prepay("ORDER001", 101)),
            Err(SimError::InvalidRequest(_))
        ));
        Ok(())
    }

    #[test]
    fn confirm_once_notifies_once_and_a_closed_order_cannot_be_paid() -> Result<(), SimError> {
        let mut b = Book::default();
        let p = b.prepay(prepay("ORDER001", 100))?;
        let first = b.confirm(&p, t0())?;
        let again = b.confirm(&p, t0())?;
        assert_eq!(first.transaction_id, again.transaction_id);
        assert_eq!(b.pending.len(), 1);
        let q = b.prepay(prepay("ORDER002", 100))?;
        b.close("ORDER002")?;
        assert_eq!(
            b.confirm(&q, t0()),
            Err(SimError::OrderClosed("ORDER002".into()))
        );
        assert_eq!(
            b.close("ORDER001"),
            Err(SimError::OrderPaid("ORDER001".into()))
        );
        Ok(())
    }

    #[test]
    fn refunds_keep_the_limits() -> Result<(), SimError> {
        let mut b = Book::with_limits(Limits {
            max_refunds: 50,
            spacing: Duration::minutes(1),
        });
        b.paid_directly(prepay("ORDER001", 1000), t0())?;
        let mut now = t0();
        for i in 0..50 {
            b.refund(refund("ORDER001", &format!("R{i}"), 1, 1000), now)?;
            // the same id again is the same refund, even too soon
            let again = b.refund(refund("ORDER001", &format!("R{i}"), 1, 1000), now)?;
            assert_eq!(again.out_refund_no, format!("R{i}"));
            if i < 49 {
                assert!(matches!(
                    b.refund(
                        refund("ORDER001", "soon", 1, 1000),
                        now + Duration::seconds(59)
                    ),
                    Err(SimError::FrequencyLimited(_))
                ));
            }
            now += Duration::minutes(1);
        }
        assert!(matches!(
            b.refund(refund("ORDER001", "R50", 1, 1000), now),
            Err(SimError::InvalidRequest(_))
        ));
        assert_eq!(b.refund_rows().len(), 50);
        Ok(())
    }

    #[test]
    fn refunds_never_exceed_the_paid_amount() -> Result<(), SimError> {
        let mut b = Book::default();
        b.paid_directly(prepay("ORDER001", 1000), t0())?;
        b.refund(refund("ORDER001", "A", 600, 1000), t0())?;
        let later = t0() + Duration::minutes(2);
        assert!(matches!(
            b.refund(refund("ORDER001", "B", 401, 1000), later),
            Err(SimError::InvalidRequest(_))
        ));
        b.refund(refund("ORDER001", "B", 400, 1000), later)?;
        Ok(())
    }
}
