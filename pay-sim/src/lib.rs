//! Online payment for Linli's hub, shaped like WeChat Pay API v3.
//!
//! - [`wire`]: the JSON bodies both ends speak (prepay, query, refund,
//!   notification), one definition so the client and the simulator cannot
//!   drift apart;
//! - [`sign`]: the notification signature and its check;
//! - [`http::HttpPay`]: the hub's client (prepay, query, close, refund);
//! - [`sim`]: a local payment provider serving the same API from memory,
//!   with a "customer confirms" cashier page standing in for the phone
//!   (binary `linli-pay-sim`), for the demo and for tests.
//!
//! # The API (WeChat Pay v3's paths and field names)
//!
//! Merchant calls carry `Authorization: Bearer <key>` (the real one signs
//! each request with the merchant's RSA key; a shared key is enough for a
//! local simulator); a wrong key gets `401 SIGN_ERROR`. Errors are
//! `{"code":"…","message":"…"}`.
//!
//! - `POST /v3/pay/transactions/jsapi` [`wire::PrepayRequest`] →
//!   `200` [`wire::PrepayResponse`]. Idempotent on `out_trade_no`: the same
//!   order number with the same amount gets the same `prepay_id`; with
//!   another amount `400 INVALID_REQUEST`; a closed one `400 ORDER_CLOSED`.
//! - `GET /v3/pay/transactions/out-trade-no/{no}` → [`wire::Transaction`]
//!   (`trade_state` `NOTPAY`, `SUCCESS`, `CLOSED`, `REFUND`);
//!   `404 ORDER_NOT_EXIST`.
//! - `POST /v3/pay/transactions/out-trade-no/{no}/close` → `204`; `400
//!   ORDERPAID` once paid.
//! - `POST /v3/refund/domestic/refunds` [`wire::RefundRequest`] →
//!   [`wire::Refund`]. Idempotent on `out_refund_no` (the same refund id
//!   again returns the first refund, never a second one); at most 50
//!   refunds per order and their sum at most the paid amount (`400
//!   INVALID_REQUEST`); two refunds of one order less than the spacing (one
//!   minute) apart: `429 FREQUENCY_LIMITED`; an injected fault: `500
//!   SYSTEM_ERROR` (before or after the refund is applied).
//!
//! # Notifications
//!
//! When the customer confirms, the provider POSTs a
//! [`wire::Notification`] (`event_type` `TRANSACTION.SUCCESS`) to the
//! order's `notify_url`, and repeats it until the answer is `200` or `204`.
//! Headers `Wechatpay-Timestamp`, `Wechatpay-Nonce`, `Wechatpay-Serial` and
//! `Wechatpay-Signature`: see [`sign`] for what is signed and why HMAC.
//! The resource is the [`wire::Transaction`] as JSON text (`algorithm`
//! `NONE`): the real one is AES-256-GCM-encrypted with the API v3 key.

pub mod http;
pub mod sign;
pub mod sim;
pub mod wire;

pub use http::{HttpPay, PayError};
