//! The chain's settings the hub runs with: orders ([`OrderSettings`]),
//! online payment ([`PaySettings`]) and how online sales are bounded by
//! store stock ([`StockScheme`]).

use chrono::{Duration, FixedOffset};
use linli_pay::HttpPay;
use linli_shared::Fen;
use linli_shared::payment::{Backoff, RefundLimits};
use linli_shared::pricing;

/// The chain's order settings.
#[derive(Debug, Clone)]
pub struct OrderSettings {
    /// Discount for picking up, in percent of the goods (e.g. 5).
    pub pickup_discount_pct: i64,
    /// Delivery fee in fen.
    pub delivery_fee_fen: i64,
    /// How long a pickup order waits for its customer.
    pub pickup_hold: Duration,
    /// The chain's local time (business days of the hub's documents).
    pub utc_offset: FixedOffset,
    /// Most units (for `kg` products: kilograms) of one SKU a customer may
    /// hold in open orders; until payment exists, this stops one anonymous
    /// session from holding everything the hub may sell online.
    pub max_open_units_per_sku: i64,
    /// Lockout per user name and attempts per address at hub login.
    pub login: linli_shared::login_guard::LoginLimits,
    /// Customer sessions one address may open at once.
    pub sessions_per_addr_burst: u32,
    /// Customer sessions one address regains per minute.
    pub sessions_per_addr_per_minute: u32,
    /// Online payment; `None`: orders go to their store unpaid (as before
    /// payment existed), so a hub without a provider still works.
    pub payment: Option<PaySettings>,
    /// Origins of the store consoles (e.g. `http://192.168.1.20:7070`) that
    /// may call the hub from the browser (CORS): the console's live tab.
    pub console_origins: Vec<String>,
    /// How online sales are bounded by store stock: by rights, always,
    /// except in the simulation's comparison with a naive counter.
    pub scheme: StockScheme,
}

impl OrderSettings {
    /// The pricing rules these settings give (no markdowns yet).
    pub fn pricing_rules(&self) -> pricing::Rules {
        pricing::Rules {
            version: 1,
            pickup_discount_pct: self.pickup_discount_pct,
            delivery_fee: Fen(self.delivery_fee_fen),
            markdowns: Vec::new(),
        }
    }
}

impl Default for OrderSettings {
    fn default() -> Self {
        OrderSettings {
            pickup_discount_pct: 5,
            delivery_fee_fen: 600,
            pickup_hold: Duration::hours(48),
            utc_offset: FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset"),
            max_open_units_per_sku: 10,
            login: linli_shared::login_guard::LoginLimits::default(),
            sessions_per_addr_burst: 20,
            sessions_per_addr_per_minute: 20,
            payment: None,
            console_origins: Vec::new(),
            scheme: StockScheme::Rights,
        }
    }
}

/// How the hub reaches its payment provider, and the chain's payment rules.
#[derive(Debug, Clone)]
pub struct PaySettings {
    /// The provider's API.
    pub provider: HttpPay,
    /// The merchant key that signs notifications (HMAC-SHA256).
    pub key: String,
    /// Where the provider sends notifications; `None`: this hub's own
    /// `/api/v1/pay/notify` on its listening address.
    pub notify_url: Option<String>,
    /// How long an order may wait for payment (chain setting, 15 min).
    pub unpaid_timeout: Duration,
    /// How often the hub looks for unpaid orders past the timeout.
    pub sweep_every: std::time::Duration,
    /// The provider's refund limits (WeChat Pay: 50 per order, 1 min apart).
    pub refund_limits: RefundLimits,
    /// Waits after failed refund attempts.
    pub backoff: Backoff,
    /// The refund worker looks at the queue at least this often.
    pub refund_tick: std::time::Duration,
}

impl PaySettings {
    /// Settings with the chain's defaults for `provider` and `key`.
    pub fn new(provider: HttpPay, key: impl Into<String>) -> PaySettings {
        PaySettings {
            provider,
            key: key.into(),
            notify_url: None,
            unpaid_timeout: Duration::minutes(15),
            sweep_every: std::time::Duration::from_secs(10),
            refund_limits: RefundLimits::default(),
            backoff: Backoff::default(),
            refund_tick: std::time::Duration::from_secs(1),
        }
    }
}

/// How the hub decides whether it may sell a store's units online.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StockScheme {
    /// Within the rights the store lent it (DESIGN.md §5): never oversells.
    #[default]
    Rights,
    /// A shared counter, for comparison only (the simulation's
    /// `--scheme naive`, `sim_rights_bench`): the store's on-hand as the
    /// hub last heard it, minus the units of the store's open online orders;
    /// no settlement. What most systems do; it oversells through outages.
    Naive,
}
