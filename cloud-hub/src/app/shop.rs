//! What the phone-first shop reads beyond placing orders: every order of
//! the signed-in customer, what a store may sell online now, and the
//! residential compounds the chain delivers to.
//!
//! Delivery addresses: the customer picks a compound from the hub's list
//! (`data/compounds.csv`, compiled in: reference compounds next to the
//! reference stores, each with its point) and types the building and room.
//! The order's `location` is the compound's point and `address` the words
//! the rider reads; nobody types coordinates. A phone that shares its
//! location can instead deliver to where it is.

use linli_shared::geo::{GeoPoint, distance_m};
use linli_shared::order::{Channel, Fulfilment};
use serde::{Deserialize, Serialize};

use crate::app::orders::{
    CustomerRef, LineRequest, OrderView, PlaceOrder, Quote, price_lines, validate,
};
use crate::auth::Caller;
use crate::error::HubError;
use crate::hub::Hub;
use crate::store::orders::OrderRecords;

/// `POST /api/v1/quote`: what a basket comes to, before it is placed.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteRequest {
    pub fulfilment: Fulfilment,
    /// Pickup: the chosen store.
    #[serde(default)]
    pub store_id: Option<String>,
    /// Delivery: where to (the store is the nearest one serving it).
    #[serde(default)]
    pub location: Option<GeoPoint>,
    pub lines: Vec<LineRequest>,
    /// The live session the basket is ordered from: its prices apply while
    /// it runs at this store, as they will on the order.
    #[serde(default)]
    pub live_session_id: Option<String>,
    /// One of the customer's online coupons (its `claim_id`; needs the
    /// customer's token): the quote takes it off as the order would.
    #[serde(default)]
    pub coupon: Option<String>,
}

/// The compounds the shop offers as delivery addresses.
const COMPOUNDS_CSV: &str = include_str!("../../../data/compounds.csv");

/// How many orders "my orders" shows, newest first.
pub const MY_ORDERS_LIMIT: usize = 100;

/// What the hub may sell online of one product at one store now.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AvailabilityView {
    pub sku: String,
    /// Units, or grams for `kg` products.
    pub available: i64,
}

/// A product category and how many products it has.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CategoryView {
    /// The catalog's key (`vegetable`, `bakery`, …); pages translate it.
    pub category: String,
    pub products: usize,
}

/// A residential compound the chain delivers to.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CompoundView {
    pub compound_id: String,
    /// Simplified Chinese.
    pub name: String,
    pub name_en: String,
    pub district: String,
    pub location: GeoPoint,
    /// The nearest store and how far it is, in metres.
    pub nearest_store_id: Option<String>,
    pub nearest_store_m: Option<u32>,
}

/// Parses the compiled-in compound list; a bad row is skipped (the list is
/// checked by a test).
fn compounds() -> Vec<(String, String, String, String, GeoPoint)> {
    COMPOUNDS_CSV
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let [id, name, name_en, district, lat, lon] = f.as_slice() else {
                return None;
            };
            let at = GeoPoint::new(lat.parse().ok()?, lon.parse().ok()?).ok()?;
            Some((
                (*id).to_owned(),
                (*name).to_owned(),
                (*name_en).to_owned(),
                (*district).to_owned(),
                at,
            ))
        })
        .collect()
}

impl Hub {
    /// Every order of the signed-in customer, newest first (at most
    /// [`MY_ORDERS_LIMIT`]). Hub users have no orders of their own.
    pub async fn customer_orders(&self, caller: &Caller) -> Result<Vec<OrderView>, HubError> {
        let Caller::Customer { customer_id, .. } = caller else {
            return Err(HubError::Forbidden);
        };
        let id = customer_id.clone();
        let dir = self.directory();
        self.store
            .read(move |c| {
                let ids = c.recent_order_ids_of_customer(&id, MY_ORDERS_LIMIT)?;
                let mut out = Vec::with_capacity(ids.len());
                for oid in ids {
                    if let Some((fact, f)) = c.order(&oid)? {
                        out.push(crate::app::orders::view_paid(c, &dir, &fact, f.as_ref())?);
                    }
                }
                Ok::<_, HubError>(out)
            })
            .await
    }

    /// What the hub may sell online at `store_id` now, for every product of
    /// the catalog (zero included).
    pub async fn availability(&self, store_id: &str) -> Result<Vec<AvailabilityView>, HubError> {
        let dir = self.directory();
        let scheme = self.order_settings.scheme;
        if dir.stores.get(store_id).is_none() {
            return Err(HubError::StoreNotFound(store_id.to_owned()));
        }
        let store = store_id.to_owned();
        self.store
            .read(move |c| {
                let mut out = Vec::with_capacity(dir.products.len());
                for sku in dir.products.keys() {
                    out.push(AvailabilityView {
                        sku: sku.clone(),
                        available: crate::store::rights::sellable(c, scheme, &store, sku)?.max(0),
                    });
                }
                Ok::<_, HubError>(out)
            })
            .await
    }

    /// What a basket comes to with the same pricing as a placed order
    /// (pickup discount, delivery fee, the store's markdowns now). Says
    /// nothing about stock: placing the order does.
    /// `customer`: the caller, whose coupon `req.coupon` names.
    pub async fn quote(
        &self,
        req: QuoteRequest,
        customer: Option<String>,
    ) -> Result<Quote, HubError> {
        if req.coupon.is_some() && customer.is_none() {
            return Err(HubError::Unauthenticated);
        }
        let dir = self.directory();
        let now = self.now();
        let order = PlaceOrder {
            channel: Channel::Miniapp,
            customer: CustomerRef {
                phone: None,
                openid: None,
            },
            fulfilment: req.fulfilment,
            store_id: req.store_id,
            location: req.location,
            lines: req.lines,
            live_session_id: req.live_session_id,
            delivery_slot: None,
            address: None,
            coupon: req.coupon,
        };
        let priced = validate(&order, &dir, now)?;
        let store = match (&priced.store_id, priced.location) {
            (Some(s), _) => {
                dir.stores
                    .get(s)
                    .ok_or_else(|| HubError::UnknownStore(s.clone()))?;
                s.clone()
            }
            (None, Some(at)) => dir
                .stores
                .serving(at)
                .next()
                .map(|(s, _)| s.store_id.clone())
                .unwrap_or_default(),
            (None, None) => String::new(),
        };
        let settings = self.order_settings.clone();
        self.store
            .read(move |c| {
                let live = match &priced.live_session_id {
                    Some(id) => crate::app::live::offer_for(c, id, &store, now)?,
                    None => None,
                };
                // the customer's coupon, checked as the order will check it
                let coupon = match (&priced.coupon, &customer) {
                    (Some(claim), Some(cust)) => Some(crate::app::coupons::online_coupon(
                        c, claim, cust, None, now,
                    )?),
                    _ => None,
                };
                let terms = coupon.as_ref().map(|t| t.as_coupon());
                let (_, quote, order) = price_lines(
                    c,
                    &settings,
                    &store,
                    &priced,
                    now,
                    live.as_ref(),
                    terms.as_ref(),
                )?;
                if let (Some(t), None) = (&coupon, order.coupon_discount()) {
                    return Err(HubError::Coupon(
                        linli_shared::coupon::CouponError::BelowMinSpend {
                            min: t.min_spend.to_string(),
                        },
                    ));
                }
                Ok(quote)
            })
            .await
    }

    /// The catalog's categories, by name.
    pub fn categories(&self) -> Vec<CategoryView> {
        let mut by: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
        for p in self.directory().products.values() {
            *by.entry(p.category.clone()).or_default() += 1;
        }
        by.into_iter()
            .map(|(category, products)| CategoryView { category, products })
            .collect()
    }

    /// The compounds the chain delivers to, each with its nearest store.
    pub fn compounds(&self) -> Vec<CompoundView> {
        let dir = self.directory();
        compounds()
            .into_iter()
            .map(|(compound_id, name, name_en, district, location)| {
                let nearest = dir.stores.nearest(location).next();
                CompoundView {
                    compound_id,
                    name,
                    name_en,
                    district,
                    location,
                    nearest_store_id: nearest.map(|(s, _)| s.store_id.clone()),
                    nearest_store_m: nearest
                        .map(|(s, _)| distance_m(location, s.location).round() as u32),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_compound_row_parses() {
        let rows = super::COMPOUNDS_CSV.lines().skip(1).count();
        assert_eq!(super::compounds().len(), rows);
        assert!(rows >= 2);
    }
}
