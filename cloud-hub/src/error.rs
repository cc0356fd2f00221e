//! The hub's error: every way a request or a use case can fail, with the
//! words a caller reads ([`HubError`]), the detail of an order no store can
//! serve ([`Unserved`]), and the shorthand for refusing invalid input
//! (`invalid`).

use linli_shared::catalog::RejectedRow;
use linli_shared::geo::Alternative;
use linli_sync::db::StoreError;
use linli_sync::doc_store::DocError;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("log in first: send Authorization: Bearer <token> from POST /api/v1/login")]
    Unauthenticated,
    #[error("unknown user or wrong password")]
    BadCredentials,
    /// Too many wrong passwords for this name in a row.
    #[error("too many wrong passwords for this name; try again in {retry_after_secs} s")]
    LockedOut { retry_after_secs: i64 },
    /// This client address has made too many attempts for now.
    #[error("too many requests from this address; try again in {retry_after_secs} s")]
    RateLimited { retry_after_secs: i64 },
    /// The customer already holds as many open units of a SKU as allowed.
    #[error(
        "每位顾客的未完成订单中同一商品最多 {cap}（件；称重商品按克计）：{sku} 已有 {open}，本单又要 {requested}。请先取货或取消旧订单。A customer may hold at most {cap} of {sku} (units; grams for kg products) in open orders: {open} open, {requested} more asked"
    )]
    OpenUnitsCap {
        sku: String,
        cap: i64,
        open: i64,
        requested: i64,
    },
    #[error("this needs an admin")]
    Forbidden,
    #[error("{0}")]
    Invalid(String),
    #[error("user {0} already exists")]
    UserExists(String),
    #[error(transparent)]
    Csv(#[from] linli_shared::catalog::CatalogCsvError),
    #[error(transparent)]
    StoresCsv(#[from] linli_shared::geo::StoresCsvError),
    /// No product has this SKU in the hub's catalog.
    #[error("no product has SKU {0}; see GET /api/v1/products")]
    UnknownSku(String),
    /// No store has this id in the hub's store directory.
    #[error("no store {0}; see GET /api/v1/stores")]
    UnknownStore(String),
    /// A per-store endpoint names a store the hub has never heard of: not
    /// in its directory and never synced.
    #[error("没有门店 {0}：它不在门店目录中，也从未同步过 (no store {0}; see GET /api/v1/stores)")]
    StoreNotFound(String),
    /// No store can serve the whole order now.
    #[error("no store within reach has stock for the whole order; see details.alternatives")]
    Unserved(Unserved),
    /// No order with this id (or not the caller's).
    #[error("no order {0}")]
    OrderNotFound(String),
    /// The order can no longer be cancelled.
    #[error("order {order_id} is {status} and can no longer be cancelled")]
    NotCancellable { order_id: String, status: String },
    /// The same Idempotency-Key came with a different request.
    #[error("Idempotency-Key {0:?} was already used for a different request; use a new key")]
    IdempotencyKeyReused(String),
    /// A write needs an Idempotency-Key.
    #[error(
        "this request needs an Idempotency-Key header (1-128 visible ASCII characters) so a retry cannot order twice"
    )]
    IdempotencyKeyRequired,
    #[error(transparent)]
    IdentityCsv(#[from] linli_shared::identity::IdentityCsvError),
    /// Rows of an identities CSV that cannot be read; nothing was imported.
    #[error(
        "文件有 {} 行无法读取，未导入任何记录，见 details.rejected ({} rows could not be read; nothing was imported; see details.rejected)",
        .0.len(), .0.len()
    )]
    IdentityRows(Vec<RejectedRow>),
    /// No customer has this id (or it was merged into another and retired).
    #[error(
        "没有顾客 {0} (no customer {0}; ids come from POST /api/v1/customers/identities/import)"
    )]
    CustomerNotFound(String),
    /// The customer was erased (PIPL): nothing about them is held any more.
    #[error(
        "顾客 {customer_id} 的个人信息已按要求删除（删除单 {erasure_id}），不再保存 (customer {customer_id} was erased by erasure {erasure_id}; see GET /api/v1/erasures/{erasure_id})"
    )]
    CustomerErased {
        customer_id: String,
        erasure_id: String,
    },
    #[error("没有删除单 {0} (no erasure {0})")]
    ErasureNotFound(String),
    /// A poll that cannot be made or voted in as asked.
    #[error(transparent)]
    Poll(linli_shared::community::PollError),
    #[error("没有投票 {0} (no poll {0} in this store's community)")]
    PollNotFound(String),
    /// Only members of the store's community vote in its polls.
    #[error(
        "只有 {0} 社群的成员可以投票，请先加入社群 (only members of {0}'s community may vote; join it first)"
    )]
    NotAMember(String),
    #[error("您已经投过票了，每人一票 (you have already voted in poll {0}; one vote each)")]
    AlreadyVoted(String),
    #[error(
        "入群码不对，请核对门店展示的 6 位入群码 (wrong join code: use the 6-character code the store shows)"
    )]
    WrongJoinCode,
    /// Joining by location needs the store to serve that location.
    #[error(
        "您的位置不在门店 {store_id} 的服务范围内，可加入：{} (your location is outside {store_id}'s service area; stores serving it: see details.serving)",
        if serving.is_empty() { "无".to_owned() } else { serving.join("、") }
    )]
    OutsideServiceArea {
        store_id: String,
        serving: Vec<String>,
    },
    #[error("没有团购 {0} (no group-buy {0}; see GET /api/v1/group-buys)")]
    GroupBuyNotFound(String),
    /// No commitment of this group-buy has this id (or it is another
    /// customer's).
    #[error("没有参团记录 {0} (no commitment {0} of yours in this group-buy)")]
    CommitmentNotFound(String),
    /// The supplier order exists only for a reached campaign.
    #[error(
        "团购尚未成团（现在：{0}），还没有供应商订单 (the group-buy is {0}, not reached: no supplier order yet)"
    )]
    GroupBuyNotReached(&'static str),
    /// A commitment the campaign's rules refuse.
    #[error(transparent)]
    Commit(linli_shared::groupbuy::CommitError),
    /// A cancel the campaign's rules refuse (reached, past the deadline,
    /// taken at a counter).
    #[error(transparent)]
    CancelCommitment(linli_shared::groupbuy::CancelError),
    /// A payment notification whose signature does not verify.
    #[error(
        "支付通知签名无效，已拒绝 (the payment notification's signature does not verify; nothing changed)"
    )]
    BadSignature,
    /// A signed notification that is not a payment this hub understands.
    #[error("支付通知无法识别 (unreadable payment notification): {0}")]
    InvalidNotification(String),
    /// The amount paid is not the order's total.
    #[error(
        "支付金额 {got} 分与订单应付 {expected} 分不符，未记为已付 (paid {got} fen for an order of {expected} fen; not marked paid)"
    )]
    AmountMismatch { expected: i64, got: i64 },
    /// The order is not paid online (placed without a payment provider).
    #[error("{0}")]
    PaymentNotRequired(String),
    /// The order's payment is closed (cancelled or unpaid too long).
    #[error("订单 {0} 已关闭，不能再支付 (order {0} is closed and can no longer be paid)")]
    PaymentClosed(String),
    /// The payment provider cannot be reached now.
    #[error(
        "支付服务暂时不可用，请稍后再试 (the payment provider is unavailable; try again shortly): {0}"
    )]
    PaymentUnavailable(String),
    /// The payment provider refused the request.
    #[error("支付服务拒绝了请求 (the payment provider refused): {0}")]
    PaymentRefused(String),
    /// A refund beyond the payer's limits.
    #[error(transparent)]
    RefundRefused(linli_shared::payment::RefundRefusal),
    /// No live session has this id.
    #[error("没有直播场次 {0} (no live session {0})")]
    LiveSessionNotFound(String),
    /// No claimed coupon has this id (or it is another customer's).
    #[error("没有这张优惠券 {0} (no coupon {0} among yours; see GET /api/v1/customer/coupons)")]
    CouponNotFound(String),
    /// A coupon the rules refuse here and now.
    #[error(transparent)]
    Coupon(linli_shared::coupon::CouponError),
    /// The customer holds as many coupons of the campaign as it allows.
    #[error("这个券每人限领 {0} 张，您已领满 (at most {0} coupons of this campaign per customer)")]
    CouponLimit(u32),
    /// A store manager acting for another store.
    #[error(
        "店长只能管理本店，不能管理 {0} (a store manager acts only for their own store, not for {0})"
    )]
    NotYourStore(String),
    /// A regional manager asking about a store or region outside theirs.
    #[error(
        "{0} 不在您负责的大区内，只能查看本大区的门店 ({0} is outside your region; you see only your region's stores)"
    )]
    NotYourRegion(String),
    /// A live session refused a schedule or a move.
    #[error(transparent)]
    Live(#[from] linli_shared::live::LiveError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Doc(#[from] DocError),
}

impl From<rusqlite::Error> for HubError {
    fn from(e: rusqlite::Error) -> Self {
        HubError::Store(StoreError::from(e))
    }
}

/// Refuses invalid input: [`HubError::Invalid`] with `msg`.
pub(crate) fn invalid(msg: impl Into<String>) -> HubError {
    HubError::Invalid(msg.into())
}

/// Why an order was not placed (beyond invalid input).
#[derive(Debug, Clone)]
pub struct Unserved {
    pub alternatives: Vec<Alternative>,
    pub serving_stores: usize,
    /// What the store asked for (or the nearest serving store) lacks.
    pub shortages: Vec<Shortage>,
}

/// A line a store cannot fill, in words a customer reads.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Shortage {
    pub store_id: String,
    pub sku: String,
    /// The product's name (Simplified Chinese).
    pub name: String,
    /// Units, or grams for `kg` products.
    pub requested: i64,
    /// What the hub may still sell online at that store.
    pub available: i64,
}
