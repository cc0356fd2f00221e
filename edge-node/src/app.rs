//! The store's use cases: what a cashier, a manager or a till can do, and the
//! rules that decide whether they may.
//!
//! HTTP handlers and CLI commands call into [`App`]; they hold no business
//! rules. Every write runs as one closure on the store's writer thread, so a
//! use case either commits whole or leaves nothing behind, and its
//! idempotency record commits in the same transaction as its effects.

pub(crate) mod books;
pub mod catalog;
pub mod community;
pub mod erasure;
pub mod groupbuy;
pub mod idempotency;
pub mod kpis;
pub mod online;
pub mod orders;
pub(crate) mod phones;
pub mod promotions;
pub mod recovery;
pub mod replication;
pub mod reports;
pub mod rights;
pub mod sales;
pub mod staff;
pub mod stock;
pub(crate) mod timeline;

use std::sync::{Arc, RwLock};

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use linli_shared::barcode::BarcodeError;
use linli_shared::catalog::CatalogCsvError;
use linli_shared::qty::QtyError;
use linli_shared::sale::PaymentError;

use crate::store::{Store, StoreError};

pub use catalog::CatalogIndex;
pub use staff::{Actor, Role};

/// Where "now" comes from (shared with the hub); tests substitute a manual
/// clock.
pub use linli_sync::clock::{Clock, system_clock};

/// Settings the use cases need.
#[derive(Debug, Clone)]
pub struct AppSettings {
    pub store_id: String,
    /// Offset of the store's local time from UTC; business days follow it.
    pub utc_offset: FixedOffset,
    /// How long a pickup order waits for its customer.
    pub pickup_hold: chrono::Duration,
    /// How long a staff session lasts.
    pub session_ttl: chrono::Duration,
    /// The most change a sale may give back (bounds the cash tendered).
    pub max_change: linli_shared::Fen,
    /// Lockout per staff name and attempts per client address at login.
    pub login_limits: linli_shared::login_guard::LoginLimits,
    /// The chain's member key from the store's identity (`member.key`,
    /// written by `linli-hub issue-cert`): member phones are hashed under it
    /// so the hub can tie a counter sale to its customer (DESIGN.md §8).
    /// Without one the store keeps hashing under its own key.
    pub chain_member_key: Option<[u8; 32]>,
}

/// The store node's application core. Cheap to clone.
#[derive(Clone)]
pub struct App {
    pub(crate) store: Store,
    pub(crate) settings: Arc<AppSettings>,
    /// The store's time: its clock, never earlier than a time it used
    /// (the clock as it reads: [`timeline::Timeline::clock`]).
    pub(crate) timeline: Arc<timeline::Timeline>,
    pub(crate) catalog: Arc<RwLock<Arc<CatalogIndex>>>,
    pub(crate) sessions: Arc<staff::Sessions>,
    /// Key of the member-phone hash (DESIGN.md §8: stores keep only a keyed hash).
    pub(crate) member_key: Arc<[u8; 32]>,
    /// The store's replicated documents.
    pub(crate) sync: Arc<replication::SyncCtx>,
    /// The hub's key for pickup QR codes (from the store's identity).
    pub(crate) pickup_key: Arc<RwLock<Option<ed25519_dalek::VerifyingKey>>>,
    /// The third-party courier behind the store's own riders, if configured.
    pub(crate) courier: Arc<RwLock<Option<Arc<dyn linli_courier::Courier>>>>,
    /// The counter's pricing rules (the store's markdowns from the hub).
    pub(crate) rules: Arc<RwLock<Arc<linli_shared::pricing::Rules>>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("store_id", &self.settings.store_id)
            .finish()
    }
}

impl App {
    /// Builds the core over an open store, loading the catalog and keys.
    pub async fn new(
        store: Store,
        settings: AppSettings,
        clock: Clock,
        sync: Arc<replication::SyncCtx>,
    ) -> Result<App, AppError> {
        let index = catalog::load_index(&store).await?;
        let member_key =
            staff::load_or_create_member_key(&store, settings.chain_member_key).await?;
        // rows written before the store kept only hashes (issue 12)
        store
            .write(move |c| phones::hide_plain_phones(c, &member_key))
            .await?;
        let sessions = Arc::new(staff::Sessions::new(settings.login_limits));
        let rules = store.read(promotions::load_rules).await?;
        let (id, offset) = (settings.store_id.clone(), settings.utc_offset);
        let floor = store
            .read(move |c| timeline::latest_used(c, &id, offset))
            .await?;
        Ok(App {
            store,
            settings: Arc::new(settings),
            timeline: Arc::new(timeline::Timeline::new(clock, floor)),
            catalog: Arc::new(RwLock::new(Arc::new(index))),
            sessions,
            member_key: Arc::new(member_key),
            sync,
            pickup_key: Arc::new(RwLock::new(None)),
            courier: Arc::new(RwLock::new(None)),
            rules: Arc::new(RwLock::new(Arc::new(rules))),
        })
    }

    /// Sets the courier that takes deliveries no rider of the store is free for.
    pub fn set_courier(&self, courier: Arc<dyn linli_courier::Courier>) {
        match self.courier.write() {
            Ok(mut g) => *g = Some(courier),
            Err(p) => *p.into_inner() = Some(courier),
        }
    }

    pub fn courier(&self) -> Option<Arc<dyn linli_courier::Courier>> {
        match self.courier.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Sets the hub's key that signs pickup QR codes.
    pub fn set_pickup_key(&self, key: ed25519_dalek::VerifyingKey) {
        match self.pickup_key.write() {
            Ok(mut g) => *g = Some(key),
            Err(p) => *p.into_inner() = Some(key),
        }
    }

    pub fn pickup_key(&self) -> Option<ed25519_dalek::VerifyingKey> {
        match self.pickup_key.read() {
            Ok(g) => *g,
            Err(p) => *p.into_inner(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The store's documents and their change notifications.
    pub fn sync_ctx(&self) -> &Arc<replication::SyncCtx> {
        &self.sync
    }

    pub fn settings(&self) -> &AppSettings {
        &self.settings
    }

    /// The store's current time, to the millisecond (what is stored is
    /// what is returned, so a receipt reads the same at creation and
    /// later), never earlier than a time it has used: a clock set back
    /// does not take the store back ([`timeline`]).
    pub fn now(&self) -> DateTime<Utc> {
        self.timeline.now()
    }

    /// [`App::now`] for a fact about to be written with
    /// [`App::write_published`]: until its write has ended, the store's
    /// index reports no later than a moment before it
    /// ([`timeline::Timeline::committed_until`]).
    pub(crate) fn stamp(&self) -> timeline::Stamp {
        self.timeline.stamp()
    }

    /// The store's business day at `at`.
    pub fn business_day(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.settings.utc_offset).date_naive()
    }

    /// The current catalog snapshot.
    pub fn catalog(&self) -> Arc<CatalogIndex> {
        match self.catalog.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Runs a use case's write on the writer thread with a [`replication::Publish`]
    /// for the business day of `now`: the document changes it collects are
    /// written in the same transaction, and announced to the uplink once
    /// the transaction has committed.
    pub(crate) async fn write_published<T, F>(
        &self,
        stamp: timeline::Stamp,
        f: F,
    ) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection, &mut replication::Publish<'_>) -> Result<T, AppError>
            + Send
            + 'static,
    {
        let now = stamp.at();
        let (sync, day) = (self.sync.clone(), self.business_day(now));
        let (out, written) = self
            .write_stamped(stamp, move |c| {
                let mut p = replication::Publish::new(c, &sync, day, now);
                let out = f(c, &mut p)?;
                Ok((out, p.finish()?))
            })
            .await?;
        if written {
            self.sync.outbox_written();
        }
        Ok(out)
    }

    /// Runs a write of facts stamped `stamp` on the writer thread. The
    /// stamp goes with the write and comes back with its result, so it is
    /// released after the commit (or the rollback), also when the caller
    /// has gone away (a client that hung up does not take its write back).
    pub(crate) async fn write_stamped<T, F>(
        &self,
        stamp: timeline::Stamp,
        f: F,
    ) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> Result<T, AppError> + Send + 'static,
    {
        let (out, _released_now) = self
            .store
            .write(move |c| Ok::<_, AppError>((f(c)?, stamp)))
            .await?;
        Ok(out)
    }

    /// Writes what gathered in the outbox to the documents (all of it, in
    /// drains prepared off the writer and persisted by one short write
    /// each: `replication::drain`) and offers the changed documents to
    /// the hub. Returns the rows drained.
    pub async fn drain_outbox(&self) -> Result<usize, AppError> {
        replication::drain::drain_all(
            &self.store,
            &self.sync,
            &self.settings.store_id,
            self.timeline.clock(),
        )
        .await
    }

    /// Facts committed to the outbox and not yet written to the documents
    /// (`None` if the database does not answer).
    pub async fn outbox_len(&self) -> Option<i64> {
        self.store
            .read(|c| {
                c.query_row("SELECT count(*) FROM doc_outbox", [], |r| r.get(0))
                    .map_err(StoreError::from)
            })
            .await
            .ok()
    }

    /// Whether the database answers a trivial query.
    pub async fn database_ok(&self) -> bool {
        self.store
            .read(|c| {
                c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                    .map_err(StoreError::from)
            })
            .await
            .is_ok()
    }
}

/// Everything a use case can refuse, each with a stable meaning. The HTTP
/// layer maps each to a status and a machine-readable code.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppError {
    /// A request field is missing or out of range.
    #[error("{field}: {reason}")]
    InvalidField { field: String, reason: String },
    /// A barcode is malformed or its check digit is wrong.
    #[error("{field}: {source}")]
    InvalidBarcode {
        field: String,
        #[source]
        source: BarcodeError,
    },
    /// A quantity is zero, negative or absurd.
    #[error("{field}: {source}")]
    InvalidQuantity {
        field: String,
        #[source]
        source: QtyError,
    },
    /// No product has this barcode.
    #[error("no product has barcode {0}")]
    UnknownBarcode(String),
    /// No product has this SKU.
    #[error("no product has SKU {0}")]
    UnknownSku(String),
    /// The payments do not settle the total.
    #[error(transparent)]
    Payment(#[from] PaymentError),
    /// No sale with this id.
    #[error("no sale with id {0}")]
    SaleNotFound(String),
    /// No order with this id.
    #[error("no order with id {0}")]
    OrderNotFound(String),
    /// A refund asks for more than is left to refund.
    #[error("{0}")]
    RefundExceedsSale(String),
    /// A community order asks for more than is available to reserve.
    #[error("not enough stock of {sku}: {available} available, {requested} requested")]
    InsufficientStock {
        sku: String,
        available: i64,
        requested: i64,
    },
    /// No open or past order has this pickup code.
    #[error("no order has pickup code {0}; check the digits with the customer")]
    PickupCodeUnknown(String),
    /// The order behind the code was handed over before.
    #[error("order {order_id} was already handed over at {at} by {by}")]
    PickupAlreadyHandedOver {
        order_id: String,
        at: DateTime<Utc>,
        by: String,
    },
    /// The order behind the code was cancelled.
    #[error("order {order_id} was cancelled at {at}; do not hand it over")]
    PickupCancelled { order_id: String, at: DateTime<Utc> },
    /// The code's hold period is over.
    #[error("pickup code of order {order_id} expired at {at}")]
    PickupExpired { order_id: String, at: DateTime<Utc> },
    /// The order cannot be cancelled in its current state.
    #[error("order {order_id} is {status} and cannot be cancelled")]
    OrderNotCancellable { order_id: String, status: String },
    /// A scanned pickup QR code is forged, altered, for another store or expired.
    #[error(transparent)]
    PickupCode(linli_shared::pickup::PickupCodeError),
    /// The node has not got the hub's key for pickup QR codes.
    #[error(
        "this store cannot check pickup QR codes: the hub's key (pickup.pub) is missing from its identity; re-issue the identity with linli-hub issue-cert, or type the short code"
    )]
    PickupKeyMissing,
    /// An online order is not in a state that allows this step.
    #[error("order {order_id} is {status}; it cannot be given the step {step}")]
    OrderStep {
        order_id: String,
        status: String,
        step: String,
    },
    /// No rider is free and no courier is configured or reachable.
    #[error("{0}")]
    NoCourier(String),
    /// The store node takes only community pickup orders; others come from the hub.
    #[error("{0}")]
    NotTakenAtStore(String),
    /// The same Idempotency-Key was used for a different request.
    #[error(
        "Idempotency-Key {0:?} was already used for a different request; use a new key for a new request"
    )]
    IdempotencyKeyReused(String),
    /// The request needs an Idempotency-Key header.
    #[error(
        "this request needs an Idempotency-Key header (1-128 visible ASCII characters) so a retry cannot write twice"
    )]
    IdempotencyKeyRequired,
    /// This store takes part in no group-buy with this id (or its terms
    /// have not reached it from the hub yet).
    #[error(
        "本店没有团购 {0}（或总部的团购信息还没同步到本店） (no group-buy {0} at this store; see GET /api/v1/group-buys)"
    )]
    GroupBuyNotFound(String),
    /// A counter commitment the campaign's terms refuse.
    #[error(transparent)]
    GroupBuy(linli_shared::groupbuy::CommitError),
    /// This counter took no commitment with this id in this group-buy
    /// (another store's, an online one, or none).
    #[error(
        "本店柜台没有这笔参团记录 {0} (no commitment {0} taken at this counter in this group-buy; see GET /api/v1/group-buys/{{id}}/commitments)"
    )]
    CommitmentNotFound(String),
    /// A counter commitment the rule does not let go (reached, closed).
    #[error(transparent)]
    Cancel(linli_shared::groupbuy::CancelError),
    /// A counter commitment not refunded as failed (the campaign has not
    /// failed as this store knows it, or it was cancelled and refunded).
    #[error(transparent)]
    FailedRefund(linli_shared::groupbuy::RefundError),
    /// A coupon the counter refuses (signature, store, expiry, used,
    /// minimum spend, allotment).
    #[error(transparent)]
    Coupon(linli_shared::coupon::CouponError),
    /// The node's database is new and it is still recovering from the hub
    /// what the hub holds for this store; it writes nothing until then.
    #[error(
        "本店数据正在从总部恢复，恢复完成前不能记账；请稍候再试 (this node is recovering its store's data from the hub; retry shortly with the same Idempotency-Key)"
    )]
    Recovering,
    /// The catalog CSV is not in the expected format.
    #[error(transparent)]
    CatalogCsv(#[from] CatalogCsvError),
    /// No valid session token was presented.
    #[error("log in first: send Authorization: Bearer <token> from POST /api/v1/login")]
    Unauthenticated,
    /// Wrong staff name or PIN.
    #[error("unknown staff name or wrong PIN")]
    BadCredentials,
    /// Too many wrong PINs in a row (or as many attempts running at once).
    #[error("too many wrong PINs for {name}; try again in {retry_after_secs} s or ask a manager")]
    LockedOut { name: String, retry_after_secs: i64 },
    /// This client address has made too many attempts for now.
    #[error("too many attempts from this address; try again in {retry_after_secs} s")]
    RateLimited { retry_after_secs: i64 },
    /// The staff member's role may not do this.
    #[error("{action} needs a manager; ask a manager to log in")]
    Forbidden { action: &'static str },
    /// A staff member with this name exists.
    #[error("staff member {0} already exists")]
    StaffExists(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for AppError {
    fn from(e: rusqlite::Error) -> Self {
        AppError::Store(StoreError::from(e))
    }
}

pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> AppError {
    AppError::InvalidField {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Timestamps are stored as RFC 3339 UTC text with fixed width, so they sort.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub(crate) fn parse_ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

/// Validates a Chinese mobile number: 11 digits starting with 1, in the
/// chain's one normal form (`linli_shared::member::normal_phone`), so the
/// hub hashes the same string for the same customer.
pub(crate) fn valid_phone(field: &str, phone: &str) -> Result<String, AppError> {
    linli_shared::member::normal_phone(phone)
        .ok_or_else(|| invalid(field, "must be an 11-digit mobile number starting with 1"))
}
