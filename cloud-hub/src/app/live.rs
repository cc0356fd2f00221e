//! Live sessions at the hub (DESIGN.md §7; rules in [`linli_shared::live`]).
//!
//! Sessions are hub-owned and live in the hub's SQLite (`live_sessions`, one
//! row per session holding it as JSON); no replicated document carries them
//! yet: the only readers are the hub's own pricing and the pages that ask
//! the hub, a live stream needs the internet anyway, and a store that
//! cannot reach the hub cannot take the stream's orders either. When stores
//! need sessions offline (a live price at the counter), `hub/live/<session>`
//! is the document to write, from this same row.
//!
//! - **Who:** the store's manager (a hub user bound to that store) or an
//!   admin schedules, starts, pins and ends; chain staff and the store's
//!   manager read the figures. Anyone reads the running session of a store
//!   (the shop shows it with its prices).
//! - **Pricing and attribution** happen in the order's own transaction
//!   (`offer_for`, `attribute`): the session row is read there, so an
//!   order placed the instant `end` commits is priced by one or the other,
//!   never half.
//! - **Rights are pulled at scheduling:** for every featured SKU the hub
//!   raises its `wanted` by [`PULL_UNITS`] (kilograms for weighed goods) in
//!   `hub/<S>/stock/<day>`, so the store lends them as soon as it syncs, well
//!   before the stream starts selling.

use chrono::{DateTime, Utc};
use linli_shared::Unit;
use linli_shared::live::{
    self, FeaturedRequest, Figures, LiveOrder, LiveSession, LiveStatus, ScheduleRequest, TopProduct,
};
use linli_shared::pricing::{LiveOffer, OfferPrice};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::auth::{Role, User};
use crate::error::HubError;
use crate::hub::Hub;
use crate::store::live::LiveRecords;
use crate::store::orders::{OrderRecords, SessionOrder};
use crate::store::rights::HubRightsBatch;

/// Rights the hub asks of the store for each featured SKU when a session is
/// scheduled: units, or kilograms of a weighed product.
pub const PULL_UNITS: i64 = 20;

/// `POST /api/v1/live-sessions`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleLive {
    pub store_id: String,
    /// 1-60 characters.
    pub title: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// Minutes after the end during which live prices still apply (0-240).
    #[serde(default)]
    pub grace_minutes: Option<i64>,
    /// 1-50 products, in the order the stream shows them.
    pub featured: Vec<FeaturedLive>,
}

/// A featured product: exactly one of `live_price_fen` (below the list
/// price) and `discount_pct` (the percentage paid, 1-99: 88 = 88折).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeaturedLive {
    pub sku: String,
    #[serde(default)]
    pub live_price_fen: Option<i64>,
    #[serde(default)]
    pub discount_pct: Option<i64>,
}

/// `POST /api/v1/live-sessions/{id}/pin`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PinLive {
    pub sku: String,
}

/// A featured product with its prices.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FeaturedView {
    pub sku: String,
    pub name: String,
    pub unit: String,
    /// The chain price (per unit, or per kg).
    pub list_price_fen: i64,
    /// The live price (per unit, or per kg).
    pub live_price_fen: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discount_pct: Option<u8>,
}

/// A session with its figures.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LiveView {
    pub session_id: String,
    pub store_id: String,
    pub store_name: String,
    pub title: String,
    pub status: LiveStatus,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub grace_minutes: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned_sku: Option<String>,
    /// Whether an order placed now gets the live prices.
    pub live_prices_now: bool,
    pub featured: Vec<FeaturedView>,
    /// Orders attributed to the session, cancelled ones left out.
    pub orders: i64,
    /// Distinct customers of those orders.
    pub buyers: i64,
    /// Goods at the prices paid (line totals; no pickup discount, no fee).
    pub gmv_fen: i64,
    pub top_products: Vec<TopProduct>,
    /// Attributed orders that were cancelled (not counted above).
    pub cancelled_orders: i64,
    /// How fresh the figures are: when the newest counted order was placed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_of: Option<DateTime<Utc>>,
    /// When the hub computed them.
    pub computed_at: DateTime<Utc>,
}

/// Managers act for their own store; admins for any; nobody else.
fn may_run(user: &User, store: &str) -> Result<(), HubError> {
    match user.role {
        Role::Admin => Ok(()),
        Role::Manager if user.store_id.as_deref() == Some(store) => Ok(()),
        Role::Manager => Err(HubError::NotYourStore(store.to_owned())),
        Role::Regional => Err(HubError::Forbidden),
    }
}

/// The chain admin reads every session, a regional manager their region's,
/// a store manager only their store's.
fn may_read(hub: &Hub, user: &User, store: &str) -> Result<(), HubError> {
    match user.role {
        Role::Admin => Ok(()),
        Role::Regional => hub.scope(user).check_store(store),
        Role::Manager => may_run(user, store),
    }
}

fn load(c: &Connection, id: &str) -> Result<Option<LiveSession>, HubError> {
    Ok(c.live_session(id)?)
}

fn save(c: &Connection, s: &LiveSession, by: &str, now: DateTime<Utc>) -> Result<(), HubError> {
    Ok(c.put_live_session(s, by, now)?)
}

/// The live offer an order at `store` placed at `at` with `session_id` gets,
/// if the session ran for it (in the order's transaction).
pub(crate) fn offer_for(
    c: &Connection,
    session_id: &str,
    store: &str,
    at: DateTime<Utc>,
) -> Result<Option<LiveOffer>, HubError> {
    Ok(load(c, session_id)?.and_then(|s| s.offer_for(store, at)))
}

/// Counts an order toward the session that priced it.
pub(crate) fn attribute(c: &Connection, session_id: &str, order_id: &str) -> Result<(), HubError> {
    Ok(c.attribute_order(session_id, order_id)?)
}

fn orders_of(c: &Connection, session_id: &str) -> Result<Vec<LiveOrder>, HubError> {
    Ok(c.live_session_orders(session_id)?
        .into_iter()
        .map(|SessionOrder { fact: f, cancelled }| LiveOrder {
            customer_id: f.customer_id,
            cancelled,
            placed_at: DateTime::parse_from_rfc3339(&f.placed_at)
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default(),
            lines: f
                .lines
                .into_iter()
                .map(|l| (l.sku, l.name, l.qty, l.total_fen))
                .collect(),
        })
        .collect())
}

/// The session a store's shop shows: the one started most recently whose
/// prices apply now.
fn running_at(
    c: &Connection,
    store: &str,
    now: DateTime<Utc>,
) -> Result<Option<LiveSession>, HubError> {
    let mut best: Option<LiveSession> = None;
    for s in c.shown_live_sessions(store)? {
        if s.offer_for(store, now).is_some()
            && best.as_ref().is_none_or(|b| b.started_at < s.started_at)
        {
            best = Some(s);
        }
    }
    Ok(best)
}

impl Hub {
    fn live_view(&self, s: &LiveSession, figures: Figures, now: DateTime<Utc>) -> LiveView {
        let dir = self.directory();
        let featured = s
            .featured
            .iter()
            .map(|f| {
                let p = dir.products.get(&f.sku);
                let list = p.map_or(0, |p| p.price.0);
                FeaturedView {
                    sku: f.sku.clone(),
                    name: p.map_or_else(|| f.sku.clone(), |p| p.name.clone()),
                    unit: p.map_or(Unit::Each, |p| p.unit).as_str().to_owned(),
                    list_price_fen: list,
                    live_price_fen: f.price.apply(linli_shared::Fen(list)).0,
                    discount_pct: match f.price {
                        OfferPrice::PayPercent(p) => Some(p),
                        OfferPrice::Fixed(_) => None,
                    },
                }
            })
            .collect();
        LiveView {
            session_id: s.session_id.clone(),
            store_id: s.store_id.clone(),
            store_name: dir
                .stores
                .get(&s.store_id)
                .map(|x| x.name.clone())
                .unwrap_or_default(),
            title: s.title.clone(),
            status: s.status,
            starts_at: s.starts_at,
            ends_at: s.ends_at,
            grace_minutes: s.grace_minutes,
            started_at: s.started_at,
            ended_at: s.ended_at,
            pinned_sku: s.pinned_sku.clone(),
            live_prices_now: s.offer_for(&s.store_id, now).is_some(),
            featured,
            orders: figures.orders,
            buyers: figures.buyers,
            gmv_fen: figures.gmv_fen,
            top_products: figures.top_products,
            cancelled_orders: figures.cancelled,
            as_of: figures.as_of,
            computed_at: now,
        }
    }

    /// Schedules a session and pulls rights for its featured products.
    pub async fn schedule_live(
        &self,
        user: &User,
        req: ScheduleLive,
    ) -> Result<LiveView, HubError> {
        may_run(user, &req.store_id)?;
        let dir = self.directory();
        if dir.stores.get(&req.store_id).is_none() {
            return Err(HubError::UnknownStore(req.store_id));
        }
        let now = self.now();
        let request = ScheduleRequest {
            store_id: req.store_id,
            title: req.title,
            starts_at: req.starts_at,
            ends_at: req.ends_at,
            grace_minutes: req.grace_minutes,
            featured: req
                .featured
                .into_iter()
                .map(|f| FeaturedRequest {
                    sku: f.sku,
                    live_price_fen: f.live_price_fen,
                    discount_pct: f.discount_pct,
                })
                .collect(),
        };
        let session = live::schedule(
            format!("L{}", linli_sync::ids::ulid()),
            request,
            |sku| dir.products.get(sku).map(|p| p.price),
            now,
        )?;
        let (s, by, offset) = (
            session.clone(),
            user.name.clone(),
            self.order_settings.utc_offset,
        );
        let units: Vec<(String, i64)> = session
            .featured
            .iter()
            .map(|f| {
                let kg = dir.products.get(&f.sku).is_some_and(|p| p.unit == Unit::Kg);
                (
                    f.sku.clone(),
                    if kg { PULL_UNITS * 1000 } else { PULL_UNITS },
                )
            })
            .collect();
        let touched = self
            .with_docs(move |c, _docs| {
                save(c, &s, &by, now)?;
                let mut batch = HubRightsBatch::default();
                for (sku, n) in &units {
                    batch.update(c, &s.store_id, sku, |h| h.wanted += n)?;
                }
                Ok(batch.flush(now.with_timezone(&offset).date_naive()))
            })
            .await?;
        self.announce(touched);
        Ok(self.live_view(&session, live::figures(&[]), now))
    }

    /// Applies a move (start, pin, end) to a session, as its store's
    /// manager or an admin.
    async fn move_live(
        &self,
        user: &User,
        id: &str,
        f: impl FnOnce(&mut LiveSession, DateTime<Utc>) -> Result<(), HubError> + Send + 'static,
    ) -> Result<LiveView, HubError> {
        let (oid, u) = (id.to_owned(), user.clone());
        let now = self.now();
        let (s, orders) = self
            .store
            .write(move |c| {
                let mut s =
                    load(c, &oid)?.ok_or_else(|| HubError::LiveSessionNotFound(oid.clone()))?;
                may_run(&u, &s.store_id)?;
                f(&mut s, now)?;
                save(c, &s, &u.name, now)?;
                let orders = orders_of(c, &oid)?;
                Ok::<_, HubError>((s, orders))
            })
            .await?;
        Ok(self.live_view(&s, live::figures(&orders), now))
    }

    pub async fn start_live(&self, user: &User, id: &str) -> Result<LiveView, HubError> {
        self.move_live(user, id, |s, now| Ok(s.start(now).map(|_| ())?))
            .await
    }

    pub async fn end_live(&self, user: &User, id: &str) -> Result<LiveView, HubError> {
        self.move_live(user, id, |s, now| Ok(s.end(now).map(|_| ())?))
            .await
    }

    pub async fn pin_live(&self, user: &User, id: &str, sku: String) -> Result<LiveView, HubError> {
        self.move_live(user, id, move |s, _| Ok(s.pin(&sku)?)).await
    }

    /// A session with its figures, for its store's manager and chain staff.
    pub async fn live_session(&self, user: &User, id: &str) -> Result<LiveView, HubError> {
        let oid = id.to_owned();
        let (s, orders) = self
            .store
            .read(move |c| {
                let s = load(c, &oid)?.ok_or_else(|| HubError::LiveSessionNotFound(oid.clone()))?;
                let orders = orders_of(c, &oid)?;
                Ok::<_, HubError>((s, orders))
            })
            .await?;
        may_read(self, user, &s.store_id)?;
        Ok(self.live_view(&s, live::figures(&orders), self.now()))
    }

    /// A store's sessions, newest first (at most 50), for its manager and
    /// chain staff; without figures.
    pub async fn live_sessions(&self, user: &User, store: &str) -> Result<Vec<LiveView>, HubError> {
        may_read(self, user, store)?;
        let st = store.to_owned();
        let sessions = self
            .store
            .read(move |c| Ok::<_, HubError>(c.live_sessions_of(&st)?))
            .await?;
        let now = self.now();
        Ok(sessions
            .iter()
            .map(|s| self.live_view(s, live::figures(&[]), now))
            .collect())
    }

    /// The sessions of the stores `user` may see that started within the
    /// last day (running first, then the most recent), with their live
    /// figures: the dashboard's live page polls it.
    pub async fn recent_live(&self, user: &User) -> Result<Vec<LiveView>, HubError> {
        let scope = self.scope(user);
        let now = self.now();
        let since = now - chrono::Duration::days(1);
        let rows = self
            .store
            .read(move |c| {
                let mut out = Vec::new();
                for s in c.live_sessions_since(since)? {
                    if scope.allows_store(&s.store_id) {
                        let orders = orders_of(c, &s.session_id)?;
                        out.push((s, orders));
                    }
                }
                Ok::<_, HubError>(out)
            })
            .await?;
        let mut views: Vec<LiveView> = rows
            .iter()
            .map(|(s, orders)| self.live_view(s, live::figures(orders), now))
            .collect();
        views.sort_by_key(|v| {
            (
                v.status != LiveStatus::Started,
                std::cmp::Reverse(v.starts_at),
            )
        });
        Ok(views)
    }

    /// The session whose live prices apply at a store now, for the shop
    /// (no figures: customers see prices, not sales).
    pub async fn running_live(&self, store: &str) -> Result<Option<LiveView>, HubError> {
        let st = store.to_owned();
        let now = self.now();
        let s = self.store.read(move |c| running_at(c, &st, now)).await?;
        Ok(s.map(|s| self.live_view(&s, live::figures(&[]), now)))
    }
}
