//! A customer's profile (issue 12): orders across the counter and online,
//! spend, visits, first and last purchase, R/F/M scores against every
//! customer with a purchase, the segment, home store, community, and pickup
//! vs delivery. The counting and scoring are [`linli_shared::rfm`]; this
//! module only gathers the rows ([`crate::people`]).
//!
//! Every call scores all customers again from the tables (a read over all
//! sales with a member hash and all online orders): exact, and cheap at a
//! chain's few hundred thousand purchases; past that it wants the figures
//! kept per customer as sales arrive.

use chrono::{FixedOffset, NaiveDate};
use linli_shared::rfm::{self, Figures, Scores, Segment, Summary};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::error::HubError;
use crate::people::{self, People, Person};

/// The profile of `GET /api/v1/customers/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Profile {
    /// Orders, counts per channel, spend (fen, net of counter refunds),
    /// visits (distinct business days, UTC+8), first and last purchase,
    /// home store, pickups and deliveries.
    #[serde(flatten)]
    pub summary: Summary,
    /// Days from the last purchase's business day to today's.
    pub recency_days: Option<i64>,
    /// R, F and M, 1–5 each (none without a purchase).
    pub scores: Option<Scores>,
    /// The segment's code (`important_value`, …).
    pub segment: Option<Segment>,
    /// The segment's name: 重要价值客户, 重要发展客户, 重要保持客户,
    /// 重要挽留客户, 一般价值客户, 一般发展客户, 一般保持客户, 一般挽留客户.
    pub segment_name: Option<String>,
    /// The store whose community the customer belongs to now.
    pub community: Option<String>,
    /// Customers with a purchase the scores are against.
    pub scored_customers: usize,
}

/// The profile of `person` among `people`; `today` is the stores' business day.
pub(crate) fn profile(
    c: &Connection,
    people: &People,
    person: &Person,
    offset: FixedOffset,
    today: NaiveDate,
) -> Result<Profile, HubError> {
    let all = people::purchases(c, people)?;
    let summaries: Vec<(&String, Summary)> = all
        .iter()
        .map(|(id, p)| (id, rfm::summarize(p, offset)))
        .collect();
    let figures: Vec<Figures> = summaries
        .iter()
        .filter_map(|(_, s)| {
            Some(Figures {
                last_day: s.last_day?,
                orders: s.orders,
                spend_fen: s.spend_fen,
            })
        })
        .collect();
    let scores = rfm::score_all(&figures);
    let mine = summaries
        .iter()
        .filter(|(_, s)| s.last_day.is_some())
        .zip(&scores)
        .find(|((id, _), _)| **id == person.id)
        .map(|(_, s)| *s);
    let summary = all.get(&person.id).map_or_else(
        || rfm::summarize(&[], offset),
        |p| rfm::summarize(p, offset),
    );
    Ok(Profile {
        recency_days: summary.last_day.map(|d| (today - d).num_days()),
        segment: mine.map(Segment::of),
        segment_name: mine.map(|s| Segment::of(s).name_zh().to_owned()),
        scores: mine,
        community: people::community_of(c, person)?,
        scored_customers: figures.len(),
        summary,
    })
}
