//! The chain's numbers at the hub (issue 12, DESIGN.md §8): the shared
//! formulas ([`linli_shared::kpi`]) over the facts the stores sent and the
//! hub's own (online orders, community, group-buys, exceptions), for the
//! stores a user may see, per store, in total and as a series.
//!
//! No figure is stored: each query reads the fact rows of its stores and
//! period (docs/DECISIONS.md, "KPIs from the fact rows").

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use linli_shared::kpi::{self, By, Facts, Figures, Period, Price};
use linli_sync::db::StoreError;
use serde::Serialize;

use crate::auth::User;
use crate::error::HubError;
use crate::hub::Hub;

mod facts;

pub use facts::project_write_offs;

/// Which stores a report is about, as asked.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct KpiScope {
    pub region: Option<String>,
    pub store_id: Option<String>,
}

/// When the hub last heard of a store's facts.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Freshness {
    /// The newest sale, refund or write-off the hub holds from the store (RFC 3339).
    pub newest_fact_at: Option<String>,
}

/// One store's figures.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StoreFigures {
    pub store_id: String,
    pub name: String,
    pub region: Option<String>,
    #[serde(flatten)]
    pub figures: Figures,
    pub freshness: Freshness,
}

/// One day, ISO week (labelled by its Monday) or month of the series.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SeriesPoint {
    pub period: String,
    #[serde(flatten)]
    pub figures: Figures,
}

/// `GET /api/v1/kpis`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KpiReport {
    pub from: String,
    pub to: String,
    pub scope: KpiScope,
    /// Over all stores in the answer.
    pub totals: Figures,
    pub stores: Vec<StoreFigures>,
    pub series: Vec<SeriesPoint>,
    /// Each store's newest fact (RFC 3339), `null` if none yet.
    pub freshness: BTreeMap<String, Option<String>>,
    /// Each figure's formula as the page shows it.
    pub formulas: BTreeMap<String, String>,
}

/// Why a KPI question cannot be answered as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KpiRefusal {
    /// A store or region outside the caller's.
    #[error(
        "您只能查看本区域门店的数据（{0} 不在您的区域内） (you may see only your region's stores; {0} is not in it)"
    )]
    NotYourRegion(String),
    /// No store of the directory is in this region.
    #[error(
        "没有区域 {0}：门店目录中没有该区域的门店 (no store of the directory is in region {0})"
    )]
    UnknownRegion(String),
}

impl Hub {
    /// The stores `user` may see figures of, from the store directory
    /// ([`crate::scope::Scope`]): the chain admin every store, a regional
    /// manager their region's, a store manager their store.
    pub fn kpi_stores_of(&self, user: &User) -> Vec<String> {
        self.scope(user).store_ids(&self.directory().stores)
    }

    /// The stores of the answer: the one asked for, a region's, or all
    /// `visible` ones; a store or region outside `visible` is refused.
    pub fn kpi_stores(
        &self,
        visible: &[String],
        scope: &KpiScope,
    ) -> Result<Result<Vec<String>, KpiRefusal>, HubError> {
        let dir = self.directory();
        if let Some(id) = &scope.store_id {
            if dir.stores.get(id).is_none() {
                return Err(HubError::StoreNotFound(id.clone()));
            }
            if !visible.contains(id) {
                return Ok(Err(KpiRefusal::NotYourRegion(id.clone())));
            }
            return Ok(Ok(vec![id.clone()]));
        }
        if let Some(region) = &scope.region {
            let all: Vec<String> = dir
                .stores
                .sites()
                .filter(|s| s.region.as_deref() == Some(region.as_str()))
                .map(|s| s.store_id.clone())
                .collect();
            if all.is_empty() {
                return Ok(Err(KpiRefusal::UnknownRegion(region.clone())));
            }
            if !all.iter().all(|s| visible.contains(s)) {
                return Ok(Err(KpiRefusal::NotYourRegion(region.clone())));
            }
            return Ok(Ok(all));
        }
        Ok(Ok(visible.to_vec()))
    }

    /// The figures of `stores` over `period`, per store, in total and by
    /// `by`, with each store's freshness; overdue pickups are judged at
    /// `now` (or the period's end, if earlier).
    pub async fn kpis(
        &self,
        stores: Vec<String>,
        scope: KpiScope,
        period: Period,
        by: Option<By>,
        now: DateTime<Utc>,
    ) -> Result<KpiReport, HubError> {
        let dir = self.directory();
        let prices: BTreeMap<String, Price> = dir
            .products
            .iter()
            .map(|(sku, p)| {
                (
                    sku.clone(),
                    Price {
                        fen: p.price.0,
                        unit: p.unit,
                    },
                )
            })
            .collect();
        // half of the stores' rows on each of two connections (the hub's
        // two cores), the chain's facts and the freshness on a third
        let (first, second) = stores.split_at(stores.len().div_ceil(2));
        let (first, second, all) = (first.to_vec(), second.to_vec(), stores.clone());
        let (key, people) = (self.member_key.clone(), self.people.clone());
        let (mut facts, rest, (chain, fresh)) = tokio::try_join!(
            self.store
                .read(move |c| facts::load_stores(c, &first, &period)),
            self.store
                .read(move |c| facts::load_stores(c, &second, &period)),
            self.store.read(move |c| {
                let chain = facts::load_chain(c, &all, &period, &people, &key)?;
                let mut fresh = BTreeMap::new();
                for s in &all {
                    fresh.insert(s.clone(), facts::newest_fact_at(c, s)?);
                }
                Ok::<_, HubError>((chain, fresh))
            }),
        )?;
        facts.append(rest);
        facts.group_buys = chain.group_buys;
        facts::with_persons(&chain.people, &mut facts);
        let as_of = now.min(period.end());
        // the formulas run off the async threads, the answer's totals and
        // series on one thread while each store's figures run on another
        let ids = stores.clone();
        let (totals, series, per_store) =
            tokio::task::spawn_blocking(move || figures(&facts, &ids, &period, by, as_of, &prices))
                .await
                .map_err(|_| HubError::Store(StoreError::Panicked))?;
        let per_store = stores
            .into_iter()
            .zip(per_store)
            .map(|(id, figures)| {
                let site = dir.stores.get(&id);
                StoreFigures {
                    name: site.map(|s| s.name.clone()).unwrap_or_default(),
                    region: site.and_then(|s| s.region.clone()),
                    figures,
                    freshness: Freshness {
                        newest_fact_at: fresh.get(&id).cloned().flatten(),
                    },
                    store_id: id,
                }
            })
            .collect();
        Ok(KpiReport {
            from: period.from.to_string(),
            to: period.to.to_string(),
            scope,
            totals,
            stores: per_store,
            series,
            freshness: fresh,
            formulas: kpi::FORMULAS
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        })
    }
}

/// The totals and series of `facts` over `period` on this thread, and on
/// another the figures of each of `stores`, in their order.
fn figures(
    facts: &Facts,
    stores: &[String],
    period: &Period,
    by: Option<By>,
    as_of: DateTime<Utc>,
    prices: &BTreeMap<String, Price>,
) -> (Figures, Vec<SeriesPoint>, Vec<Figures>) {
    std::thread::scope(|scope| {
        let per_store = scope.spawn(|| {
            let split = kpi::Timeline::by_store(facts, period.offset);
            let none = Facts::default();
            stores
                .iter()
                .map(|id| {
                    split.get(id.as_str()).map_or_else(
                        || kpi::compute(&none, period, as_of, prices),
                        |t| t.figures(period, as_of, prices),
                    )
                })
                .collect::<Vec<_>>()
        });
        // the whole answer's facts in time order once: the totals and each
        // bucket of the series read only their own days
        let timeline = kpi::Timeline::new(facts, period.offset);
        let totals = timeline.figures(period, as_of, prices);
        let series = by
            .map(|by| {
                kpi::buckets(period, by)
                    .into_iter()
                    .map(|(label, p)| SeriesPoint {
                        period: label.to_string(),
                        figures: timeline.figures(&p, as_of, prices),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let per_store = per_store
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (totals, series, per_store)
    })
}
