//! The hub's online-order use cases: the store directory, customers and
//! their sessions, placing, following and cancelling orders, sellable stock
//! per store and the exceptions raised for regional managers. The rules are
//! in [`crate::app::orders`] and [`crate::store::rights`]; this module runs
//! them on the writer thread and announces the documents they changed.

use std::collections::BTreeMap;

use chrono::Utc;
use linli_shared::docs::DocId;
use linli_shared::docs::catalog::read_products;
use linli_shared::geo::{StoreIndex, StoreSite, parse_stores_csv};
use linli_shared::online::{FulfilmentFact, HubOrderFact};
use linli_shared::order::OrderStatus;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::app::orders::{
    Exception, NewOrder, OrderView, PlaceOrder, cancel, choose_store, record_wanted, valid_phone,
    validate, view, view_paid, write_order,
};
use crate::auth::Caller;
use crate::auth::{Role, User};
use crate::directory::Directory;
use crate::error::HubError;
use crate::hub::{CATALOG_EPOCH, Hub};
use crate::store::customers::CustomerRecords;
use crate::store::idempotency::idempotency_record_key;
use crate::store::members::resolve_customer;
use crate::store::orders::OrderRecords;
use crate::store::rights::HubRightsBatch;
use crate::store::sites::SiteRecords;

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoresReport {
    pub imported: usize,
    pub rejected: Vec<linli_shared::catalog::RejectedRow>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SellableView {
    pub store_id: String,
    pub name: String,
    /// Units (grams for `kg`) the hub may still sell online at this store.
    pub sellable: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProductView {
    pub sku: String,
    /// The display name (Simplified Chinese).
    pub name: String,
    /// The English name, when the catalog has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_en: Option<String>,
    pub category: String,
    pub unit: String,
    pub price_fen: i64,
}

fn hash(t: &str) -> String {
    hex::encode(Sha256::digest(t.as_bytes()))
}

/// A WeChat openid: 1-128 letters, digits, `-` or `_` (WeChat's are 28).
pub(crate) fn valid_openid(o: &str) -> Result<String, HubError> {
    let o = o.trim();
    if !o.is_empty()
        && o.len() <= 128
        && o.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(o.to_owned())
    } else {
        Err(HubError::Invalid(
            "openid must be 1-128 letters, digits, '-' or '_'".into(),
        ))
    }
}

/// Refuses an order that would take a customer's open units of a SKU past
/// `cap` (for `kg` products, `cap` kilograms).
fn check_open_units(
    c: &rusqlite::Connection,
    dir: &Directory,
    customer_id: &str,
    lines: &[linli_shared::online::OnlineLine],
    cap: i64,
) -> Result<(), HubError> {
    let ids = c.open_order_ids_of_customer(customer_id)?;
    let mut open: BTreeMap<String, i64> = BTreeMap::new();
    for id in ids {
        let Some((fact, f)) = c.order(&id)? else {
            continue;
        };
        if matches!(
            view(dir, &fact, f.as_ref()).status,
            OrderStatus::Cancelled | OrderStatus::HandedOver | OrderStatus::Delivered
        ) {
            continue;
        }
        for l in &fact.lines {
            *open.entry(l.sku.clone()).or_default() += l.qty;
        }
    }
    for l in lines {
        let limit = if l.unit == "kg" {
            cap.saturating_mul(1000)
        } else {
            cap
        };
        let held = open.get(&l.sku).copied().unwrap_or(0);
        if held.saturating_add(l.qty) > limit {
            return Err(HubError::OpenUnitsCap {
                sku: l.sku.clone(),
                cap: limit,
                open: held,
                requested: l.qty,
            });
        }
    }
    Ok(())
}

impl Hub {
    /// The current store directory and catalog.
    pub fn directory(&self) -> Directory {
        match self.directory.read() {
            Ok(d) => d.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// What `user` may see, over the current store directory.
    pub fn scope(&self, user: &crate::auth::User) -> crate::scope::Scope {
        crate::scope::Scope::of(user, &self.directory().stores)
    }

    /// Rebuilds the directory from the stores table and the catalog document.
    pub async fn reload_directory(&self) -> Result<(), HubError> {
        let (sites, products) = self
            .with_docs(|c, docs| {
                let sites = c.sites()?;
                let products = docs
                    .read(c, &DocId::catalog(CATALOG_EPOCH), read_products)?
                    .unwrap_or_default();
                Ok((sites, products))
            })
            .await?;
        let dir = Directory {
            stores: std::sync::Arc::new(StoreIndex::new(sites)),
            products: std::sync::Arc::new(
                products
                    .into_iter()
                    .map(|p| (p.sku.to_string(), p))
                    .collect::<BTreeMap<_, _>>(),
            ),
        };
        match self.directory.write() {
            Ok(mut g) => *g = dir,
            Err(p) => *p.into_inner() = dir,
        }
        Ok(())
    }

    /// Imports the store directory (CSV like `data/stores.csv`). Admin only.
    pub async fn import_stores(&self, user: &User, csv: Vec<u8>) -> Result<StoresReport, HubError> {
        if user.role != Role::Admin {
            return Err(HubError::Forbidden);
        }
        let parsed = parse_stores_csv(&csv)?;
        let sites: Vec<StoreSite> = parsed.stores.into_iter().map(|(_, s)| s).collect();
        let n = sites.len();
        let now = self.now();
        self.store
            .write(move |c| {
                for s in &sites {
                    c.put_site(s, now)?;
                }
                Ok::<_, HubError>(())
            })
            .await?;
        self.reload_directory().await?;
        Ok(StoresReport {
            imported: n,
            rejected: parsed.rejected,
        })
    }

    /// The chain's products, optionally filtered by a fragment of the name
    /// (Chinese or English) or SKU.
    pub fn products(&self, q: Option<&str>, category: Option<&str>) -> Vec<ProductView> {
        let q = q.map(str::to_lowercase);
        self.directory()
            .products
            .values()
            .filter(|p| category.is_none_or(|c| p.category == c))
            .filter(|p| {
                q.as_deref().is_none_or(|q| {
                    p.name.to_lowercase().contains(q)
                        || p.sku.as_str().to_lowercase().contains(q)
                        || p.name_en
                            .as_deref()
                            .is_some_and(|n| n.to_lowercase().contains(q))
                })
            })
            .take(200)
            .map(|p| ProductView {
                sku: p.sku.to_string(),
                name: p.name.clone(),
                name_en: p.name_en.clone(),
                category: p.category.clone(),
                unit: p.unit.as_str().to_owned(),
                price_fen: p.price.0,
            })
            .collect()
    }

    /// Opens a customer session for a phone and/or WeChat openid, creating
    /// the customer on first use (one customer per phone or openid).
    ///
    /// Proof of the phone (an SMS code, WeChat login) belongs to the channel
    /// in front of this API and is not part of this hub.
    pub async fn customer_session(
        &self,
        phone: Option<String>,
        openid: Option<String>,
    ) -> Result<(String, String), HubError> {
        self.customer_session_from(phone, openid, None).await
    }

    /// [`Hub::customer_session`] for a client at `addr`, which may open only
    /// so many sessions a minute (every session is a row on the hub's disk).
    pub async fn customer_session_from(
        &self,
        phone: Option<String>,
        openid: Option<String>,
        addr: Option<&str>,
    ) -> Result<(String, String), HubError> {
        let phone = phone.as_deref().map(valid_phone).transpose()?;
        let openid = openid.as_deref().map(valid_openid).transpose()?;
        if phone.is_none() && openid.is_none() {
            return Err(HubError::Invalid("give phone or openid".into()));
        }
        let now = self.now();
        if let Some(a) = addr {
            self.gate.session_from(a, now)?;
        }
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let token = hex::encode(raw);
        let h = hash(&token);
        let key = self.member_key.clone();
        let id = self
            .store
            .write(move |c| {
                let id = resolve_customer(c, &key, phone.as_deref(), openid.as_deref(), now)?;
                c.add_session(&h, &id, now + chrono::Duration::days(30))?;
                Ok::<_, HubError>(id)
            })
            .await?;
        Ok((token, id))
    }

    /// The customer behind a session token, if any.
    pub async fn authenticate_customer(&self, token: &str) -> Result<Caller, HubError> {
        let h = hash(token);
        let session = self
            .store
            .read(move |c| Ok::<_, HubError>(c.session(&h)?))
            .await?;
        let s = session.ok_or(HubError::Unauthenticated)?;
        if s.expires_at.is_none_or(|e| e < self.now()) {
            return Err(HubError::Unauthenticated);
        }
        Ok(Caller::Customer {
            customer_id: s.customer_id,
            phone: s.phone.unwrap_or_default(),
        })
    }

    /// Places an online order: validates and prices it, routes it to the
    /// nearest store whose rights cover it, consumes those rights and signs
    /// the pickup code, all in one transaction. A retry with the same
    /// Idempotency-Key returns the first answer.
    pub async fn place_order(
        &self,
        caller: &Caller,
        key: String,
        req: PlaceOrder,
    ) -> Result<(OrderView, bool), HubError> {
        let phone = match caller {
            Caller::Customer { phone, .. } => {
                if let Some(p) = &req.customer.phone
                    && valid_phone(p)? != *phone
                {
                    return Err(HubError::Forbidden);
                }
                Some(phone.clone())
            }
            Caller::Staff(_) => req.customer.phone.as_deref().map(valid_phone).transpose()?,
        };
        let openid = req
            .customer
            .openid
            .as_deref()
            .map(valid_openid)
            .transpose()?;
        if phone.is_none() && openid.is_none() {
            return Err(HubError::Invalid("customer needs phone or openid".into()));
        }
        let now = self.now();
        let dir = self.directory();
        let priced = validate(&req, &dir, now)?;
        let fingerprint = hash(&serde_json::to_string(&req).unwrap_or_default());
        let (settings, signing, this) = (
            self.order_settings.clone(),
            self.signing.clone(),
            self.clone(),
        );
        // the store the order is expected at (the one asked for, or the
        // nearest serving its point): its pickup code is signed here rather
        // than on the writer, and what is short is named there
        let expected = priced.store_id.clone().or_else(|| {
            let at = priced.location?;
            dir.stores
                .serving(at)
                .next()
                .map(|(s, _)| s.store_id.clone())
        });
        let signed = expected.as_deref().and_then(|s| {
            crate::app::orders::sign_ahead(&priced, s, &self.order_settings, &self.signing, now)
        });
        let caller_customer = match caller {
            Caller::Customer { customer_id, .. } => Some(customer_id.clone()),
            Caller::Staff(_) => None,
        };
        // a key belongs to its caller: nobody replays another's key to get
        // their order and pickup code, nor blocks it by using it first
        let key = idempotency_record_key(caller, &key);
        let cap = self.order_settings.max_open_units_per_sku;
        let member_key = self.member_key.clone();
        let (result, touched) = self
            .with_docs(move |c, _docs| {
                if let Some((h, resp)) = crate::store::idempotency::replay(c, &key.0)? {
                    if h != fingerprint {
                        return Err(HubError::IdempotencyKeyReused(key.1));
                    }
                    let v: OrderView = serde_json::from_str(&resp)
                        .map_err(|e| HubError::Invalid(e.to_string()))?;
                    return Ok((Ok((v, true)), Vec::new()));
                }
                let customer_id = match caller_customer {
                    Some(id) => id,
                    None => {
                        resolve_customer(c, &member_key, phone.as_deref(), openid.as_deref(), now)?
                    }
                };
                let mut batch = HubRightsBatch::default();
                let day = now.with_timezone(&settings.utc_offset).date_naive();
                let store = match choose_store(c, &dir, settings.scheme, &priced, None)? {
                    Ok(s) => s,
                    Err(unserved) => {
                        // the demand pulls rights from the nearest stores that lack them
                        let targets: Vec<String> = match (&priced.store_id, priced.location) {
                            (Some(s), _) => vec![s.clone()],
                            (None, Some(at)) => dir
                                .stores
                                .serving(at)
                                .take(2)
                                .map(|(s, _)| s.store_id.clone())
                                .collect(),
                            _ => Vec::new(),
                        };
                        for t in &targets {
                            record_wanted(c, &mut batch, t, &priced.lines)?;
                        }
                        let touched = batch.flush(day);
                        // name what is short, at the store asked for or the nearest serving one
                        let mut unserved = unserved;
                        if let Some(s) = expected {
                            unserved.shortages = crate::app::orders::shortages(
                                c,
                                &dir,
                                settings.scheme,
                                &s,
                                &priced.lines,
                            )?;
                        }
                        return Ok((Err(unserved), touched));
                    }
                };
                // only an order that would be placed holds units
                check_open_units(c, &dir, &customer_id, &priced.lines, cap)?;
                let site = dir
                    .stores
                    .get(&store)
                    .cloned()
                    .ok_or_else(|| HubError::UnknownStore(store.clone()))?;
                let (fact, doc) = write_order(
                    c,
                    &mut batch,
                    &settings,
                    &signing,
                    NewOrder {
                        order: &priced,
                        store: &site,
                        customer_id: &customer_id,
                        customer_phone: phone.as_deref().unwrap_or(""),
                        replaces: None,
                        hold_for_payment: settings.payment.is_some(),
                        signed,
                    },
                    now,
                )?;
                let mut touched = batch.flush(day);
                touched.extend(doc);
                let v = view_paid(c, &dir, &fact, None)?;
                crate::store::idempotency::record(
                    c,
                    &key.0,
                    &fingerprint,
                    &serde_json::to_string(&v).unwrap_or_default(),
                    now,
                )?;
                Ok((Ok((v, false)), touched))
            })
            .await?;
        this.announce(touched);
        result.map_err(HubError::Unserved)
    }

    pub(crate) fn announce(&self, docs: Vec<DocId>) {
        for d in docs {
            let _ = self.changes.send(d);
        }
    }

    async fn order_of(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<(HubOrderFact, Option<FulfilmentFact>), HubError> {
        let oid = id.to_owned();
        let found = self
            .store
            .read(move |c| Ok::<_, HubError>(c.order(&oid)?))
            .await?;
        let (fact, f) = found.ok_or_else(|| HubError::OrderNotFound(id.to_owned()))?;
        if let Caller::Customer { customer_id, .. } = caller
            && *customer_id != fact.customer_id
        {
            return Err(HubError::OrderNotFound(id.to_owned()));
        }
        Ok((fact, f))
    }

    /// An order with its status, timeline, payment and refunds (a customer
    /// sees only their own).
    pub async fn order(&self, caller: &Caller, id: &str) -> Result<OrderView, HubError> {
        let (fact, f) = self.order_of(caller, id).await?;
        let dir = self.directory();
        self.store
            .read(move |c| view_paid(c, &dir, &fact, f.as_ref()))
            .await
    }

    /// Cancels an order that has not left the store, releasing its rights.
    /// Cancelling twice answers with the cancelled order.
    pub async fn cancel_order(&self, caller: &Caller, id: &str) -> Result<OrderView, HubError> {
        self.order_of(caller, id).await?;
        let (settings, oid) = (self.order_settings.clone(), id.to_owned());
        let dir = self.directory();
        let now = self.now();
        let (v, touched) = self
            .with_docs(move |c, _docs| {
                let (mut fact, f) = c
                    .order(&oid)?
                    .ok_or_else(|| HubError::OrderNotFound(oid.clone()))?;
                let status = view(&dir, &fact, f.as_ref()).status;
                match status {
                    OrderStatus::Cancelled => {
                        return Ok((view_paid(c, &dir, &fact, f.as_ref())?, Vec::new()));
                    }
                    OrderStatus::Placed
                    | OrderStatus::Accepted
                    | OrderStatus::Picked
                    | OrderStatus::Ready => {}
                    other => {
                        return Err(HubError::NotCancellable {
                            order_id: oid,
                            status: other.as_str().into(),
                        });
                    }
                }
                let day = now.with_timezone(&settings.utc_offset).date_naive();
                let mut batch = HubRightsBatch::default();
                let doc = cancel(c, &mut batch, &mut fact, f.as_ref(), "customer", now, day)?;
                let mut touched = batch.flush(day);
                touched.extend(doc);
                Ok((view_paid(c, &dir, &fact, f.as_ref())?, touched))
            })
            .await?;
        self.announce(touched);
        self.wake_refunds();
        Ok(v)
    }

    /// Cancels pickup orders whose customer did not come by their expiry
    /// (as of `now`), releasing their rights; the store sees the
    /// cancellation by sync and the signed code stops working there too.
    /// Returns how many expired. Delivery orders never expire here: a late
    /// delivery is still a delivery.
    pub async fn expire_orders(&self, now: chrono::DateTime<Utc>) -> Result<usize, HubError> {
        let (settings, dir) = (self.order_settings.clone(), self.directory());
        let (n, touched) = self
            .with_docs(move |c, _docs| {
                let open = c.open_pickup_order_ids()?;
                let day = now.with_timezone(&settings.utc_offset).date_naive();
                let mut batch = HubRightsBatch::default();
                let mut touched = Vec::new();
                let mut n = 0;
                for id in open {
                    let Some((mut fact, f)) = c.order(&id)? else {
                        continue;
                    };
                    let expired = chrono::DateTime::parse_from_rfc3339(&fact.expires_at)
                        .is_ok_and(|e| e <= now);
                    if !expired || view(&dir, &fact, f.as_ref()).status == OrderStatus::Cancelled {
                        continue;
                    }
                    touched.extend(cancel(
                        c,
                        &mut batch,
                        &mut fact,
                        f.as_ref(),
                        "expired",
                        now,
                        day,
                    )?);
                    n += 1;
                }
                touched.extend(batch.flush(day));
                Ok((n, touched))
            })
            .await?;
        self.announce(touched);
        Ok(n)
    }

    /// Units of a SKU the hub may sell online, per store (rights it holds).
    pub async fn sellable(&self, sku: &str) -> Result<Vec<SellableView>, HubError> {
        let dir = self.directory();
        let scheme = self.order_settings.scheme;
        if !dir.products.contains_key(sku) {
            return Err(HubError::UnknownSku(sku.to_owned()));
        }
        let sku = sku.to_owned();
        self.store
            .read(move |c| {
                let mut out = Vec::new();
                for s in dir.stores.sites() {
                    out.push(SellableView {
                        store_id: s.store_id.clone(),
                        name: s.name.clone(),
                        sellable: crate::store::rights::sellable(c, scheme, &s.store_id, &sku)?
                            .max(0),
                    });
                }
                Ok(out)
            })
            .await
    }

    /// Exceptions raised for regional managers, newest first.
    pub async fn exceptions(&self) -> Result<Vec<Exception>, HubError> {
        self.store
            .read(|c| Ok::<_, HubError>(crate::store::exceptions::newest(c)?))
            .await
    }
}
