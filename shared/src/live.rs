//! Live sessions (DESIGN.md §7): a store manager's stream with featured
//! products at live prices. Pure: every decision takes the moment as an
//! input; the hub stores sessions and calls in here.
//!
//! Invariants:
//! - A session moves `scheduled → started → ended`, never back. Starting a
//!   started session and ending an ended one change nothing (a retried
//!   button press is harmless); an ended session never starts again.
//! - **When it runs is what the manager pressed, not the plan.** Live prices
//!   apply from the moment `start` was pressed until `end` was pressed, or
//!   until the scheduled end if nobody pressed it (a forgotten button does
//!   not keep live prices forever), plus the grace period. Before the press,
//!   after it, or for an order at another store, the chain price applies.
//!   [`LiveSession::offer`] turns this into the [`LiveOffer`] the one
//!   pricing function knows.
//! - **Attribution follows pricing.** An order counts toward a session
//!   exactly when the session ran for it (its store, its window): the same
//!   decision that gave it the live price, so the figures never count an
//!   order the session did not sell.
//! - Figures exclude cancelled orders; GMV is the goods at the prices paid
//!   (line totals, before the pickup discount, without the delivery fee).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::money::Fen;
use crate::pricing::{LiveOffer, OfferPrice};

/// Most featured products of one session.
pub const MAX_FEATURED: usize = 50;
/// Longest grace period after the end, minutes.
pub const MAX_GRACE_MINUTES: u32 = 240;
/// Longest session, hours.
pub const MAX_HOURS: i64 = 24;
/// How far ahead a session may be scheduled, days.
pub const MAX_DAYS_AHEAD: i64 = 60;
/// How many products the figures rank.
pub const TOP_PRODUCTS: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LiveStatus {
    Scheduled,
    Started,
    Ended,
}

impl LiveStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LiveStatus::Scheduled => "scheduled",
            LiveStatus::Started => "started",
            LiveStatus::Ended => "ended",
        }
    }
    pub fn parse(s: &str) -> Option<LiveStatus> {
        match s {
            "scheduled" => Some(LiveStatus::Scheduled),
            "started" => Some(LiveStatus::Started),
            "ended" => Some(LiveStatus::Ended),
            _ => None,
        }
    }
}

/// One featured product and its live price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Featured {
    pub sku: String,
    pub price: OfferPrice,
}

/// A session as the hub keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveSession {
    pub session_id: String,
    pub store_id: String,
    pub title: String,
    /// The plan.
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub grace_minutes: u32,
    /// In the order the stream shows them.
    pub featured: Vec<Featured>,
    pub status: LiveStatus,
    /// When the manager pressed start / end.
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// The product being shown now.
    pub pinned_sku: Option<String>,
}

/// Why a session cannot be scheduled or moved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LiveError {
    /// A field is out of range.
    #[error("{0}")]
    Invalid(String),
    /// A featured SKU is not in the catalog.
    #[error("目录中没有商品 {0} (no product has SKU {0})")]
    UnknownSku(String),
    /// The move is not allowed from the session's status.
    #[error("直播场次已{}，不能{}。(the session is {}; it cannot be {})", status_zh(.status), action_zh(.action), .status.as_str(), .action)]
    State {
        status: LiveStatus,
        action: &'static str,
    },
    /// Pinning a product the session does not feature.
    #[error("商品 {0} 不在本场直播的商品列表中 ({0} is not featured in this session)")]
    NotFeatured(String),
}

fn status_zh(s: &LiveStatus) -> &'static str {
    match s {
        LiveStatus::Scheduled => "排期",
        LiveStatus::Started => "开播",
        LiveStatus::Ended => "结束",
    }
}

fn action_zh(a: &str) -> &'static str {
    match a {
        "started" => "开播",
        "pinned" => "置顶商品",
        _ => "更改",
    }
}

fn invalid(zh: &str, en: &str) -> LiveError {
    LiveError::Invalid(format!("{zh} ({en})"))
}

/// A featured product as asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeaturedRequest {
    pub sku: String,
    pub live_price_fen: Option<i64>,
    pub discount_pct: Option<i64>,
}

/// A schedule as asked for, before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleRequest {
    pub store_id: String,
    pub title: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub grace_minutes: Option<i64>,
    pub featured: Vec<FeaturedRequest>,
}

/// Checks a schedule against the catalog (`list_price` of a SKU, `None`
/// when unknown) and builds the session. A live price must be below the
/// list price (a "live price" at or above it would be no offer at all and is
/// most likely a typo); `discount_pct` is the percentage paid, 1..=99
/// (88 = 88折). A session may not end in the past, nor last more than
/// [`MAX_HOURS`].
pub fn schedule(
    session_id: String,
    req: ScheduleRequest,
    list_price: impl Fn(&str) -> Option<Fen>,
    now: DateTime<Utc>,
) -> Result<LiveSession, LiveError> {
    let title = req.title.trim();
    if title.is_empty() || title.chars().count() > 60 || title.chars().any(char::is_control) {
        return Err(invalid(
            "标题需 1–60 个字",
            "title must be 1-60 characters, no control characters",
        ));
    }
    if req.ends_at <= req.starts_at {
        return Err(invalid(
            "结束时间必须晚于开始时间",
            "ends_at must be after starts_at",
        ));
    }
    if req.ends_at - req.starts_at > Duration::hours(MAX_HOURS) {
        return Err(invalid(
            "一场直播最长 24 小时",
            "a session lasts at most 24 hours",
        ));
    }
    if req.ends_at <= now {
        return Err(invalid("结束时间已过", "ends_at is in the past"));
    }
    if req.starts_at > now + Duration::days(MAX_DAYS_AHEAD) {
        return Err(invalid(
            "最多提前 60 天安排直播",
            "starts_at may be at most 60 days ahead",
        ));
    }
    let grace = req.grace_minutes.unwrap_or(0);
    if !(0..=i64::from(MAX_GRACE_MINUTES)).contains(&grace) {
        return Err(invalid(
            "宽限时间需在 0–240 分钟之间",
            "grace_minutes must be 0-240",
        ));
    }
    if req.featured.is_empty() || req.featured.len() > MAX_FEATURED {
        return Err(invalid(
            "需要 1–50 个直播商品",
            "featured needs 1-50 products",
        ));
    }
    let mut seen = BTreeSet::new();
    let mut featured = Vec::with_capacity(req.featured.len());
    for (i, f) in req.featured.iter().enumerate() {
        let list = list_price(&f.sku).ok_or_else(|| LiveError::UnknownSku(f.sku.clone()))?;
        if !seen.insert(f.sku.clone()) {
            return Err(LiveError::Invalid(format!(
                "商品 {} 重复 (featured[{i}]: {} appears twice)",
                f.sku, f.sku
            )));
        }
        let price = match (f.live_price_fen, f.discount_pct) {
            (Some(p), None) => {
                if p < 1 || p >= list.0 {
                    return Err(LiveError::Invalid(format!(
                        "直播价需在 1 分到原价 {} 分以下 (featured[{i}].live_price_fen must be 1 to below the list price {} fen)",
                        list.0, list.0
                    )));
                }
                OfferPrice::Fixed(Fen(p))
            }
            (None, Some(p)) => {
                if !(1..=99).contains(&p) {
                    return Err(LiveError::Invalid(format!(
                        "折扣需在 1–99 之间，88 即 88 折 (featured[{i}].discount_pct must be 1-99: the percentage paid, 88 = 12% off)"
                    )));
                }
                OfferPrice::PayPercent(p as u8)
            }
            _ => {
                return Err(LiveError::Invalid(format!(
                    "每个商品需给直播价或折扣之一 (featured[{i}] needs exactly one of live_price_fen, discount_pct)"
                )));
            }
        };
        featured.push(Featured {
            sku: f.sku.clone(),
            price,
        });
    }
    Ok(LiveSession {
        session_id,
        store_id: req.store_id,
        title: title.to_owned(),
        starts_at: req.starts_at,
        ends_at: req.ends_at,
        grace_minutes: grace as u32,
        featured,
        status: LiveStatus::Scheduled,
        started_at: None,
        ended_at: None,
        pinned_sku: None,
    })
}

impl LiveSession {
    /// Presses start. `Ok(false)`: it was already started.
    pub fn start(&mut self, now: DateTime<Utc>) -> Result<bool, LiveError> {
        match self.status {
            LiveStatus::Scheduled => {
                self.status = LiveStatus::Started;
                self.started_at = Some(now);
                Ok(true)
            }
            LiveStatus::Started => Ok(false),
            LiveStatus::Ended => Err(LiveError::State {
                status: self.status,
                action: "started",
            }),
        }
    }

    /// Presses end (a session never started is called off). `Ok(false)`:
    /// it had already ended.
    pub fn end(&mut self, now: DateTime<Utc>) -> Result<bool, LiveError> {
        if self.status == LiveStatus::Ended {
            return Ok(false);
        }
        self.status = LiveStatus::Ended;
        // a session that overran its plan ended when the plan said
        let end = match self.started_at {
            Some(_) => now.min(self.ends_at),
            None => now,
        };
        self.ended_at = Some(end);
        self.pinned_sku = None;
        Ok(true)
    }

    /// Pins the product being shown (a started session, a featured SKU).
    pub fn pin(&mut self, sku: &str) -> Result<(), LiveError> {
        if self.status != LiveStatus::Started {
            return Err(LiveError::State {
                status: self.status,
                action: "pinned",
            });
        }
        if !self.featured.iter().any(|f| f.sku == sku) {
            return Err(LiveError::NotFeatured(sku.to_owned()));
        }
        self.pinned_sku = Some(sku.to_owned());
        Ok(())
    }

    /// The live prices as the pricing function knows them: from the press
    /// of start to the press of end (or the planned end), plus grace.
    /// `None` before start was pressed (and for a session called off).
    pub fn offer(&self) -> Option<LiveOffer> {
        let started = self.started_at?;
        let end = self.ended_at.unwrap_or(self.ends_at).min(self.ends_at);
        Some(LiveOffer {
            session_id: self.session_id.clone(),
            store_id: self.store_id.clone(),
            starts_at: started,
            ends_at: end.max(started),
            grace_minutes: self.grace_minutes,
            featured: self
                .featured
                .iter()
                .map(|f| (f.sku.clone(), f.price))
                .collect(),
        })
    }

    /// The offer that applies to an order at `store` at `at`, if any: the
    /// one decision behind both the live price and the attribution.
    pub fn offer_for(&self, store: &str, at: DateTime<Utc>) -> Option<LiveOffer> {
        self.offer()
            .filter(|o| o.store_id == store && o.runs_at(at))
    }

    /// Whether the stream is on air now (started and before its end).
    pub fn on_air(&self, at: DateTime<Utc>) -> bool {
        self.status == LiveStatus::Started && at < self.ends_at
    }
}

/// An attributed order as the figures need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveOrder {
    pub customer_id: String,
    pub cancelled: bool,
    pub placed_at: DateTime<Utc>,
    /// SKU, name, quantity and line total in fen.
    pub lines: Vec<(String, String, i64, i64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TopProduct {
    pub sku: String,
    pub name: String,
    /// Units, or grams for `kg` products.
    pub qty: i64,
    pub gmv_fen: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Figures {
    pub orders: i64,
    pub buyers: i64,
    pub gmv_fen: i64,
    /// By GMV, then quantity, then SKU; at most [`TOP_PRODUCTS`].
    pub top_products: Vec<TopProduct>,
    /// When the newest counted order was placed (hub time).
    pub as_of: Option<DateTime<Utc>>,
    /// Attributed orders left out because they were cancelled.
    pub cancelled: i64,
}

/// The session's figures from its attributed orders.
pub fn figures<'a>(orders: impl IntoIterator<Item = &'a LiveOrder>) -> Figures {
    let (mut count, mut cancelled, mut gmv) = (0, 0, 0);
    let mut buyers = BTreeSet::new();
    let mut products: BTreeMap<&str, TopProduct> = BTreeMap::new();
    let mut as_of = None;
    for o in orders {
        if o.cancelled {
            cancelled += 1;
            continue;
        }
        count += 1;
        buyers.insert(o.customer_id.as_str());
        as_of = as_of.max(Some(o.placed_at));
        for (sku, name, qty, total) in &o.lines {
            gmv += total;
            let p = products.entry(sku).or_insert_with(|| TopProduct {
                sku: sku.clone(),
                name: name.clone(),
                qty: 0,
                gmv_fen: 0,
            });
            p.qty += qty;
            p.gmv_fen += total;
        }
    }
    let mut top: Vec<TopProduct> = products.into_values().collect();
    top.sort_by(|a, b| {
        (b.gmv_fen, b.qty)
            .cmp(&(a.gmv_fen, a.qty))
            .then_with(|| a.sku.cmp(&b.sku))
    });
    top.truncate(TOP_PRODUCTS);
    Figures {
        orders: count,
        buyers: buyers.len() as i64,
        gmv_fen: gmv,
        top_products: top,
        as_of,
        cancelled,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, m, s).unwrap()
    }

    fn req(featured: Vec<FeaturedRequest>) -> ScheduleRequest {
        ScheduleRequest {
            store_id: "S001".into(),
            title: "周二晚直播".into(),
            starts_at: t(12, 0, 0),
            ends_at: t(13, 0, 0),
            grace_minutes: Some(10),
            featured,
        }
    }

    fn fixed(sku: &str, p: i64) -> FeaturedRequest {
        FeaturedRequest {
            sku: sku.into(),
            live_price_fen: Some(p),
            discount_pct: None,
        }
    }

    fn pct(sku: &str, p: i64) -> FeaturedRequest {
        FeaturedRequest {
            sku: sku.into(),
            live_price_fen: None,
            discount_pct: Some(p),
        }
    }

    fn catalog(sku: &str) -> Option<Fen> {
        (sku == "P1" || sku == "P2").then_some(Fen(1000))
    }

    fn session() -> LiveSession {
        schedule(
            "L1".into(),
            req(vec![fixed("P1", 800), pct("P2", 88)]),
            catalog,
            t(11, 0, 0),
        )
        .unwrap()
    }

    #[test]
    fn schedules_are_validated() {
        let now = t(11, 0, 0);
        let bad = |r: ScheduleRequest| schedule("L".into(), r, catalog, now).unwrap_err();
        let mut r = req(vec![fixed("P1", 800)]);
        r.ends_at = r.starts_at;
        assert!(matches!(bad(r), LiveError::Invalid(_)));
        assert_eq!(
            bad(req(vec![fixed("P9", 1)])),
            LiveError::UnknownSku("P9".into())
        );
        assert!(matches!(bad(req(vec![])), LiveError::Invalid(_)));
        assert!(matches!(
            bad(req(vec![fixed("P1", 1000)])),
            LiveError::Invalid(_)
        ));
        assert!(matches!(
            bad(req(vec![pct("P1", 0)])),
            LiveError::Invalid(_)
        ));
        assert!(matches!(
            bad(req(vec![pct("P1", 100)])),
            LiveError::Invalid(_)
        ));
        assert!(matches!(
            bad(req(vec![fixed("P1", 800), pct("P1", 90)])),
            LiveError::Invalid(_)
        ));
        let s = session();
        assert_eq!(s.featured[1].price, OfferPrice::PayPercent(88));
        assert_eq!(s.status, LiveStatus::Scheduled);
    }

    #[test]
    fn the_state_machine_moves_forward_only() {
        let mut s = session();
        assert!(s.pin("P1").is_err());
        assert!(s.start(t(12, 5, 0)).unwrap());
        assert!(!s.start(t(12, 6, 0)).unwrap());
        assert_eq!(s.started_at, Some(t(12, 5, 0)));
        s.pin("P2").unwrap();
        assert_eq!(s.pin("P9"), Err(LiveError::NotFeatured("P9".into())));
        assert!(s.end(t(12, 40, 0)).unwrap());
        assert!(!s.end(t(12, 41, 0)).unwrap());
        assert_eq!(s.ended_at, Some(t(12, 40, 0)));
        assert!(matches!(
            s.start(t(12, 42, 0)),
            Err(LiveError::State { .. })
        ));
    }

    #[test]
    fn live_prices_apply_from_the_press_of_start_to_the_end_plus_grace() {
        let mut s = session();
        assert_eq!(s.offer_for("S001", t(12, 30, 0)), None, "not started yet");
        s.start(t(12, 0, 0)).unwrap();
        let start = t(12, 0, 0);
        let ms = Duration::milliseconds(1);
        assert!(s.offer_for("S001", start).is_some(), "at the start instant");
        assert!(s.offer_for("S001", start - ms).is_none(), "just before");
        assert!(s.offer_for("S002", start).is_none(), "another store");
        s.end(t(12, 30, 0)).unwrap();
        let end = t(12, 30, 0);
        assert!(
            s.offer_for("S001", end).is_some(),
            "the end instant is in grace"
        );
        let grace_end = end + Duration::minutes(10);
        assert!(s.offer_for("S001", grace_end - ms).is_some());
        assert!(s.offer_for("S001", grace_end).is_none(), "end + grace");
    }

    #[test]
    fn the_end_instant_itself_is_out_without_grace_and_a_forgotten_end_stops_at_the_plan() {
        let mut r = req(vec![fixed("P1", 800)]);
        r.grace_minutes = None;
        let mut s = schedule("L2".into(), r, catalog, t(11, 0, 0)).unwrap();
        s.start(t(11, 55, 0)).unwrap(); // early: the press counts
        assert!(s.offer_for("S001", t(11, 55, 0)).is_some());
        let end = t(13, 0, 0);
        assert!(
            s.offer_for("S001", end - Duration::milliseconds(1))
                .is_some()
        );
        assert!(
            s.offer_for("S001", end).is_none(),
            "never pressed end: the plan's end"
        );
        s.end(t(14, 0, 0)).unwrap();
        assert_eq!(s.ended_at, Some(end));
    }

    #[test]
    fn figures_leave_cancelled_orders_out() {
        let line = |sku: &str, q, tot| (sku.to_owned(), sku.to_owned(), q, tot);
        let orders = [
            LiveOrder {
                customer_id: "C1".into(),
                cancelled: false,
                placed_at: t(12, 1, 0),
                lines: vec![line("P1", 2, 1600)],
            },
            LiveOrder {
                customer_id: "C1".into(),
                cancelled: false,
                placed_at: t(12, 3, 0),
                lines: vec![line("P2", 1, 880), line("P1", 1, 800)],
            },
            LiveOrder {
                customer_id: "C2".into(),
                cancelled: true,
                placed_at: t(12, 4, 0),
                lines: vec![line("P2", 9, 7920)],
            },
        ];
        let f = figures(&orders);
        assert_eq!(
            (f.orders, f.buyers, f.gmv_fen, f.cancelled),
            (2, 1, 3280, 1)
        );
        assert_eq!(f.as_of, Some(t(12, 3, 0)));
        assert_eq!(f.top_products[0].sku, "P1");
        assert_eq!(
            (f.top_products[0].qty, f.top_products[0].gmv_fen),
            (3, 2400)
        );
    }
}
