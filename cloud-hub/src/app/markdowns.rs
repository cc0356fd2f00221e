//! Store markdowns (DESIGN.md §7): the prices a store lowers every day at
//! set local times (the evening fresh-food markdown, 晚间鲜食折扣), for
//! some SKUs or a category. A hub admin or the store's manager sets the
//! store's list; each change bumps its version. The hub prices the store's
//! online orders with it, and the store's counter gets the same list in its
//! orders document, so the same basket at the same moment costs the same at
//! the counter and online. The version is the rules version written on
//! every order and receipt.

use linli_shared::docs::DocId;
use linli_shared::docs::json::put_record;
use linli_shared::pricing::{self, Markdown, OfferPrice, StoreMarkdowns};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::auth::User;
use crate::error::HubError;
use crate::error::invalid;
use crate::hub::Hub;
use crate::settings::OrderSettings;
use crate::store::markdowns::MarkdownRecords;

/// Most markdowns one store runs.
pub const MAX_MARKDOWNS: usize = 20;

/// One markdown as a manager writes it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkdownRequest {
    /// Shown on receipts, e.g. "晚间鲜食".
    pub name: String,
    /// The SKUs it lowers; or leave empty and give `category`.
    #[serde(default)]
    pub skus: Vec<String>,
    #[serde(default)]
    pub category: Option<String>,
    /// The share of the price paid (70 = 7折); or give `price_fen`.
    #[serde(default)]
    pub pay_percent: Option<u8>,
    #[serde(default)]
    pub price_fen: Option<i64>,
    /// Local time it starts, `HH:MM`.
    pub from: String,
    /// Local time it ends (excluded), `HH:MM`, after `from`.
    pub to: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetMarkdowns {
    pub markdowns: Vec<MarkdownRequest>,
}

fn minute(field: &str, s: &str) -> Result<u16, HubError> {
    let bad = || {
        invalid(format!(
            "{field} 须为 HH:MM 的时间 ({field} must be a time HH:MM)"
        ))
    };
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 24 || m > 59 || h * 60 + m > 1440 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// The markdowns of `store` (version 0 and none if never set).
pub(crate) fn of(c: &Connection, store: &str) -> Result<StoreMarkdowns, HubError> {
    Ok(c.store_markdowns(store)?)
}

/// The pricing rules for an order at `store`: the chain's settings and the
/// store's markdowns, at the markdowns' version.
pub(crate) fn rules_for(
    c: &Connection,
    settings: &OrderSettings,
    store: &str,
) -> Result<pricing::Rules, HubError> {
    let m = of(c, store)?;
    Ok(pricing::Rules {
        version: m.version,
        markdowns: m.markdowns,
        ..settings.pricing_rules()
    })
}

impl Hub {
    /// Replaces a store's markdowns (admin, or that store's manager) and
    /// sends them to its counter.
    pub async fn set_markdowns(
        &self,
        user: &User,
        store_id: &str,
        req: SetMarkdowns,
    ) -> Result<StoreMarkdowns, HubError> {
        crate::app::communities::may_manage(user, store_id)?;
        let dir = self.directory();
        if dir.stores.get(store_id).is_none() {
            return Err(HubError::StoreNotFound(store_id.to_owned()));
        }
        if req.markdowns.len() > MAX_MARKDOWNS {
            return Err(invalid(format!(
                "每店最多 {MAX_MARKDOWNS} 条折扣 (at most {MAX_MARKDOWNS} markdowns per store)"
            )));
        }
        let mut list = Vec::with_capacity(req.markdowns.len());
        for (i, m) in req.markdowns.iter().enumerate() {
            let name = m.name.trim();
            if name.is_empty() || name.chars().count() > 40 {
                return Err(invalid(format!(
                    "markdowns[{i}].name 须 1–40 个字 (name must be 1-40 characters)"
                )));
            }
            match (&m.category, m.skus.is_empty()) {
                (Some(cat), true) if dir.products.values().any(|p| &p.category == cat) => {}
                (None, false) => {
                    if let Some(s) = m
                        .skus
                        .iter()
                        .find(|s| dir.products.get(s.as_str()).is_none())
                    {
                        return Err(HubError::UnknownSku(s.clone()));
                    }
                }
                _ => {
                    return Err(invalid(format!(
                        "markdowns[{i}] 须给出 skus 或一个已有的 category（二选一） (give skus or an existing category, not both)"
                    )));
                }
            }
            let price = match (m.pay_percent, m.price_fen) {
                (Some(p), None) if (1..=99).contains(&p) => OfferPrice::PayPercent(p),
                (None, Some(f)) if f > 0 => OfferPrice::Fixed(linli_shared::money::Fen(f)),
                _ => {
                    return Err(invalid(format!(
                        "markdowns[{i}] 须给出 pay_percent（1–99）或 price_fen（大于 0），二选一 (give pay_percent 1-99 or price_fen above 0)"
                    )));
                }
            };
            let (from, to) = (minute("from", &m.from)?, minute("to", &m.to)?);
            if from >= to {
                return Err(invalid(format!(
                    "markdowns[{i}] 结束时间须晚于开始时间 (to must be after from)"
                )));
            }
            list.push(Markdown {
                name: name.to_owned(),
                store_id: store_id.to_owned(),
                skus: m.skus.clone(),
                category: m.category.clone(),
                price,
                from_minute: from,
                to_minute: to,
            });
        }
        let now = self.now();
        let day = now
            .with_timezone(&self.order_settings.utc_offset)
            .date_naive();
        let (store, by) = (store_id.to_owned(), user.name.clone());
        let (v, doc) = self
            .with_docs(move |c, docs| {
                let version = c.replace_markdowns(&store, &list, &by, now)?;
                let v = StoreMarkdowns {
                    store_id: store.clone(),
                    version,
                    markdowns: list,
                };
                let doc = DocId::hub_orders(&store, day);
                docs.change(c, &doc, |d| {
                    put_record(d, "markdowns", "current", &v)?;
                    Ok(())
                })?;
                Ok::<_, HubError>((v, doc))
            })
            .await?;
        self.announce(vec![doc]);
        Ok(v)
    }

    /// A store's markdowns.
    pub async fn markdowns(&self, store_id: &str) -> Result<StoreMarkdowns, HubError> {
        let s = store_id.to_owned();
        self.store.read(move |c| of(c, &s)).await
    }
}
