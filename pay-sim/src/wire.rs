//! The JSON bodies of the payment API (WeChat Pay v3 field names), shared
//! by [`crate::http`] and [`crate::sim`]. Amounts are integer fen.

use serde::{Deserialize, Serialize};

/// Header names of a signed notification.
pub const HEADER_TIMESTAMP: &str = "wechatpay-timestamp";
pub const HEADER_NONCE: &str = "wechatpay-nonce";
pub const HEADER_SIGNATURE: &str = "wechatpay-signature";
pub const HEADER_SERIAL: &str = "wechatpay-serial";

/// `amount` of a prepay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amount {
    /// Fen, at least 1.
    pub total: i64,
    #[serde(default = "cny")]
    pub currency: String,
}

fn cny() -> String {
    "CNY".into()
}

/// `POST /v3/pay/transactions/jsapi`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepayRequest {
    #[serde(default)]
    pub appid: String,
    #[serde(default)]
    pub mchid: String,
    pub description: String,
    /// The merchant's order number (Linli: the order id), 6-32 characters.
    pub out_trade_no: String,
    /// Where the success notification goes.
    pub notify_url: String,
    pub amount: Amount,
}

/// Answer to a prepay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepayResponse {
    pub prepay_id: String,
}

/// `amount` of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionAmount {
    pub total: i64,
    /// What the payer paid (0 until paid).
    pub payer_total: i64,
    pub currency: String,
}

/// A transaction as query and notification show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    pub out_trade_no: String,
    /// The provider's id, once paid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    /// `NOTPAY`, `SUCCESS`, `CLOSED` or `REFUND` (paid, some refunded).
    pub trade_state: String,
    pub trade_state_desc: String,
    /// RFC 3339, once paid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_time: Option<String>,
    pub amount: TransactionAmount,
}

/// `amount` of a refund request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundAmount {
    /// This refund, fen.
    pub refund: i64,
    /// The transaction's total, fen.
    pub total: i64,
    #[serde(default = "cny")]
    pub currency: String,
}

/// `POST /v3/refund/domestic/refunds`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRequest {
    pub out_trade_no: String,
    /// The merchant's refund id; the idempotency key of the refund.
    pub out_refund_no: String,
    #[serde(default)]
    pub reason: String,
    pub amount: RefundAmount,
}

/// A refund as the provider answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    /// The provider's id of the refund.
    pub refund_id: String,
    pub out_refund_no: String,
    pub out_trade_no: String,
    pub transaction_id: String,
    /// `SUCCESS` or `PROCESSING`.
    pub status: String,
    pub create_time: String,
    pub amount: RefundAmount,
}

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

/// The encrypted part of a notification (here in clear, `algorithm`
/// `NONE`: `ciphertext` is the [`Transaction`] as JSON text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    pub algorithm: String,
    pub original_type: String,
    pub ciphertext: String,
    #[serde(default)]
    pub associated_data: String,
    #[serde(default)]
    pub nonce: String,
}

/// The body POSTed to `notify_url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub id: String,
    pub create_time: String,
    /// `TRANSACTION.SUCCESS`.
    pub event_type: String,
    pub resource_type: String,
    pub summary: String,
    pub resource: Resource,
}

impl Notification {
    /// The transaction inside.
    pub fn transaction(&self) -> Result<Transaction, serde_json::Error> {
        serde_json::from_str(&self.resource.ciphertext)
    }
}

/// Body of the simulator's `POST /v3/sim/faults`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Faults {
    /// Share of refund requests (0.0-1.0) answered `500 SYSTEM_ERROR`;
    /// half of them after the refund was applied (the answer is lost).
    #[serde(default)]
    pub refund_fail_rate: f64,
    /// How many times each notification attempt is sent (1: once).
    #[serde(default)]
    pub notification_copies: u32,
}

/// One refund in the simulator's `GET /v3/sim/refunds` (for tests).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimRefundRow {
    pub out_trade_no: String,
    pub out_refund_no: String,
    pub amount: i64,
    /// Requests received under this `out_refund_no`, the first included.
    pub requests: u32,
}

/// The simulator's counters (`GET /v3/sim/stats`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SimStats {
    pub transactions: usize,
    pub paid: usize,
    pub refunds: usize,
    pub refund_requests: u64,
    pub frequency_limited: u64,
    pub injected_failures: u64,
    pub notifications_sent: u64,
    pub notifications_acknowledged: u64,
}
