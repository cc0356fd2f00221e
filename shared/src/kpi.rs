//! The chain's numbers (issue 12, DESIGN.md §8): pure formulas over plain
//! fact rows, no IO and no clock, so the hub (over what the stores sent) and
//! a store (over its own books) compute a figure with the very same code.
//!
//! Every figure is for a set of stores over a [`Period`] of business days in
//! the store's local time. Rates are fractions in `[0, 1]`, `None` (JSON
//! `null`) when the denominator is 0. Counts and fen add up: the figures of a
//! region are the sums of its stores' (tested as a law), rates are computed
//! from the summed numerators and denominators, never averaged.
//!
//! Each figure's doc comment is exactly the formula the page shows
//! ([`FORMULAS`] holds the same text in Chinese, keyed by field name).
//!
//! Which day a fact belongs to: a counter sale or refund its own time; an
//! online order the day it was placed (what became of it — handed over,
//! delivered, cancelled — counts for that day); a write-off its time; a
//! group-buy the day it was decided.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Unit;

mod period;
mod timeline;

pub use period::{By, MAX_PERIOD_DAYS, Period, buckets};
pub use timeline::Timeline;

/// The days a customer may come back in for the 30-day repurchase rate.
pub const COHORT_DAYS: u64 = 30;

/// One SKU and quantity (units, or grams of a `kg` product).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sold {
    pub sku: String,
    pub qty: i64,
}

/// A sale at a store's counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterSale {
    pub store_id: String,
    pub sale_id: String,
    pub at: DateTime<Utc>,
    pub cashier: String,
    pub total_fen: i64,
    /// The store's keyed hash of the member's phone, when a member bought.
    pub member_hash: Option<String>,
    /// The person the hub ties the member to across channels
    /// (`cloud-hub/src/people.rs`); always `None` at a store,
    /// which cannot tie a member to an online customer.
    pub person_id: Option<String>,
    pub lines: Vec<Sold>,
}

/// A refund at the counter (of a sale of any day).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterRefund {
    pub store_id: String,
    pub refund_id: String,
    pub at: DateTime<Utc>,
    pub amount_fen: i64,
}

/// An online order routed to a store, with what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OnlineOrder {
    pub store_id: String,
    pub order_id: String,
    /// The live session it was placed in (channel `live`).
    pub live_session_id: Option<String>,
    /// Pickup at the store (else delivery).
    pub pickup: bool,
    pub customer_id: String,
    /// The person the hub ties the online customer to across channels;
    /// always `None` at a store.
    pub person_id: Option<String>,
    pub total_fen: i64,
    pub placed_at: DateTime<Utc>,
    /// Pickup by (pickup) or the delivery window's end (delivery).
    pub promised_by: Option<DateTime<Utc>>,
    pub ready_at: Option<DateTime<Utc>>,
    pub handed_over_at: Option<DateTime<Utc>>,
    pub handed_over_by: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// Its derived status is `cancelled` (`crate::online::derive_status`).
    pub cancelled: bool,
    pub lines: Vec<Sold>,
}

impl OnlineOrder {
    /// An online order as the formulas read it, from the hub's record and
    /// the store's (the hub and the store each hold both); `None` if its
    /// placing time is unreadable.
    pub fn from_records(
        fact: &crate::online::HubOrderFact,
        ful: &crate::online::FulfilmentFact,
        cancelled: bool,
    ) -> Option<OnlineOrder> {
        let time = instant;
        let pickup = fact.fulfilment == crate::order::Fulfilment::Pickup;
        let promised = if pickup {
            Some(fact.expires_at.as_str())
        } else {
            fact.delivery.as_ref().map(|d| d.window_end.as_str())
        };
        Some(OnlineOrder {
            store_id: fact.store_id.clone(),
            order_id: fact.order_id.clone(),
            live_session_id: fact.live_session_id.clone(),
            pickup,
            customer_id: fact.customer_id.clone(),
            person_id: None,
            total_fen: fact.total_fen,
            placed_at: time(&fact.placed_at)?,
            promised_by: promised.and_then(time),
            ready_at: ful.ready_at.as_deref().and_then(time),
            handed_over_at: ful.handed_over_at.as_deref().and_then(time),
            handed_over_by: ful.handed_over_by.clone(),
            delivered_at: ful.delivered_at.as_deref().and_then(time),
            cancelled,
            lines: fact
                .lines
                .iter()
                .map(|l| Sold {
                    sku: l.sku.clone(),
                    qty: l.qty,
                })
                .collect(),
        })
    }

    /// The goods reached the customer (handed over at the counter or to a
    /// rider, or delivered): the physical fact, which wins over a
    /// cancellation.
    pub fn fulfilled(&self) -> bool {
        self.handed_over_at.is_some() || self.delivered_at.is_some()
    }
}

/// Goods written off (waste recorded, or a refunded line thrown away).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOff {
    pub store_id: String,
    pub at: DateTime<Utc>,
    pub sku: String,
    /// Units, or grams of a `kg` product (positive).
    pub qty: i64,
}

/// A customer in a store's community now, since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub store_id: String,
    pub customer_id: String,
    pub since: DateTime<Utc>,
}

/// A qualifying action of a community member (joining, voting, ordering
/// online or in a live session), as the hub's `member_activity` lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    pub store_id: String,
    pub customer_id: String,
    pub at: DateTime<Utc>,
}

/// Group-buy money at a store's counter: a commitment paid there when it
/// was taken (`fen` > 0), or given back there when it was cancelled or its
/// campaign failed (`fen` < 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupBuyCounterMoney {
    pub store_id: String,
    pub at: DateTime<Utc>,
    pub fen: i64,
}

/// A group-buy that was decided (reached its threshold or failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupBuyOutcome {
    pub group_buy_id: String,
    pub store_ids: Vec<String>,
    pub decided_at: DateTime<Utc>,
    pub succeeded: bool,
}

/// An online order a store could not serve because its goods were sold at
/// the counter (re-routed or refunded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oversell {
    pub store_id: String,
    pub order_id: String,
    pub at: DateTime<Utc>,
}

/// A live session's name and host, for the per-session figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSessionInfo {
    pub session_id: String,
    pub store_id: String,
    pub title: String,
    pub host: String,
}

/// A SKU's catalog price: per unit, or per kg for weighed products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    pub fen: i64,
    pub unit: Unit,
}

impl Price {
    /// What `qty` is worth at this price (grams of a `kg` product rounded
    /// half up to the fen).
    pub fn value(&self, qty: i64) -> i64 {
        match self.unit {
            Unit::Each => qty * self.fen,
            Unit::Kg => (qty * self.fen + 500).div_euclid(1000),
        }
    }
}

/// Everything the formulas read. Facts may reach past the period: sales and
/// online orders up to [`COHORT_DAYS`] after it are read only by the 30-day
/// repurchase rate (so a reader may give those sales their time and member
/// hash alone).
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub sales: Vec<CounterSale>,
    pub refunds: Vec<CounterRefund>,
    pub orders: Vec<OnlineOrder>,
    pub write_offs: Vec<WriteOff>,
    pub members: Vec<Member>,
    pub activity: Vec<Activity>,
    pub group_buys: Vec<GroupBuyOutcome>,
    pub group_buy_counter_money: Vec<GroupBuyCounterMoney>,
    pub oversells: Vec<Oversell>,
    pub live_sessions: Vec<LiveSessionInfo>,
}

impl Facts {
    /// Adds `other`'s facts to these (facts read in parts, e.g. a part of
    /// the stores on each of two connections).
    pub fn append(&mut self, mut other: Facts) {
        self.sales.append(&mut other.sales);
        self.refunds.append(&mut other.refunds);
        self.orders.append(&mut other.orders);
        self.write_offs.append(&mut other.write_offs);
        self.members.append(&mut other.members);
        self.activity.append(&mut other.activity);
        self.group_buys.append(&mut other.group_buys);
        self.group_buy_counter_money
            .append(&mut other.group_buy_counter_money);
        self.oversells.append(&mut other.oversells);
        self.live_sessions.append(&mut other.live_sessions);
    }

    /// The facts of one store.
    pub fn of_store(&self, store_id: &str) -> Facts {
        let mine = |s: &String| s == store_id;
        Facts {
            sales: keep(&self.sales, |x| mine(&x.store_id)),
            refunds: keep(&self.refunds, |x| mine(&x.store_id)),
            orders: keep(&self.orders, |x| mine(&x.store_id)),
            write_offs: keep(&self.write_offs, |x| mine(&x.store_id)),
            members: keep(&self.members, |x| mine(&x.store_id)),
            activity: keep(&self.activity, |x| mine(&x.store_id)),
            group_buys: keep(&self.group_buys, |x| x.store_ids.iter().any(mine)),
            group_buy_counter_money: keep(&self.group_buy_counter_money, |x| mine(&x.store_id)),
            oversells: keep(&self.oversells, |x| mine(&x.store_id)),
            live_sessions: keep(&self.live_sessions, |x| mine(&x.store_id)),
        }
    }
}

fn keep<T: Clone>(v: &[T], f: impl Fn(&T) -> bool) -> Vec<T> {
    v.iter().filter(|x| f(x)).cloned().collect()
}

/// A live session's GMV.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LiveSessionGmv {
    pub session_id: String,
    pub title: String,
    pub store_id: String,
    pub gmv_fen: i64,
}

/// One staff member's performance (店员绩效).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StaffFigures {
    pub staff: String,
    /// Counter sales rung up by them, fen (refunds not deducted).
    pub sales_fen: i64,
    /// Number of those sales.
    pub sales: i64,
    /// Online orders they handed over (placed in the period).
    pub handovers: i64,
    /// GMV of the live sessions they hosted.
    pub live_gmv_fen: i64,
}

/// The figures of a set of stores over a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct Figures {
    /// 总成交额 = 门店净销售额 + 线上已履约订单金额 (`counter_gmv_fen + online_gmv_fen`).
    pub gmv_fen: i64,
    /// 门店净销售额 = 期内收银销售额 − 期内退款额.
    pub counter_gmv_fen: i64,
    /// 期内收银销售额 (refunds not deducted).
    pub counter_sales_fen: i64,
    /// 期内退款额 (refunds recorded in the period, of any day's sales).
    pub counter_refunds_fen: i64,
    /// 线上成交额 = 期内下单且已交付（自提交货或送达）的线上订单金额之和.
    pub online_gmv_fen: i64,
    /// 订单数 = 收银笔数 + 期内下单且已交付的线上订单数.
    pub orders: i64,
    pub counter_orders: i64,
    pub online_orders: i64,
    /// 直播成交额 = 期内直播下单且未取消的订单金额之和.
    pub live_gmv_fen: i64,
    pub live_sessions: Vec<LiveSessionGmv>,
    /// 社群月活率 = 期内有至少一次有效行为（入群、投票、下单）的社群成员数 ÷ 期末社群成员数.
    pub community_mau_rate: Option<f64>,
    /// 期末社群成员数 (members who joined by the period's end and are members now).
    pub community_members: i64,
    /// 期内活跃社群成员数.
    pub community_active_members: i64,
    /// 线上订单占比 = 门店履约的线上订单数 ÷ (收银笔数 + 门店履约的线上订单数).
    pub online_order_share: Option<f64>,
    /// 线上金额占比 = 线上成交额 ÷ (收银销售额 + 线上成交额).
    pub online_gmv_share: Option<f64>,
    /// 自提率 = 期内自提订单数 ÷ 期内未取消的线上订单数.
    pub pickup_rate: Option<f64>,
    /// 自提完成率 = 已交货的自提订单数 ÷ 期内下单的自提订单数（含取消、过期）.
    pub pickup_completion_rate: Option<f64>,
    /// 逾期未取 = 截止时间已过、未交货也未取消的自提订单数（以统计时刻计）.
    pub overdue_pickups: i64,
    /// 复购率 = 期内在两个及以上不同营业日购买的顾客数 ÷ 期内有购买的顾客数.
    /// A customer is a person where the hub can tie a counter member and an
    /// online customer to one (then one customer across channels); a store
    /// cannot, and counts a counter member and an online customer apart.
    pub repurchase_rate: Option<f64>,
    /// 30日复购率 = 期内首购后 30 天内另一营业日再次购买的顾客数 ÷ 期内有购买的顾客数.
    pub repurchase_30d_rate: Option<f64>,
    /// 损耗率 = 报损货值 ÷ (销售货值 + 报损货值)，均按目录售价计.
    pub waste_rate: Option<f64>,
    /// 报损货值 at the catalog price, fen.
    pub waste_value_fen: i64,
    /// 销售货值 at the catalog price, fen (counter sales and fulfilled online orders).
    pub sold_value_fen: i64,
    /// 准时送达率 = 在承诺时间窗结束前送达的配送订单数 ÷ 已送达的配送订单数.
    pub on_time_delivery_rate: Option<f64>,
    /// 平均交货时长（秒）= 自提订单从下单到交货的平均秒数.
    pub avg_handover_secs: Option<f64>,
    /// 超卖率 = 因门店已售出而改派或退款的线上订单数 ÷ 期内线上订单数.
    pub oversell_rate: Option<f64>,
    /// 团购成团率 = 期内成团的团购数 ÷ 期内结束（成团或失败）的团购数.
    pub groupbuy_success_rate: Option<f64>,
    /// 团购柜台收款 = 期内门店柜台收取的团购款 − 期内柜台退还的团购款
    /// (presale money, not in 总成交额: the goods are handed over later and
    /// a failed campaign gives it back).
    pub groupbuy_counter_fen: i64,
    pub staff: Vec<StaffFigures>,
}

/// The formulas as the page shows them, keyed by the figure's field name.
pub const FORMULAS: &[(&str, &str)] = &[
    ("gmv_fen", "门店净销售额 + 线上已交付订单金额"),
    ("counter_gmv_fen", "期内收银销售额 − 期内退款额"),
    (
        "online_gmv_fen",
        "期内下单且已交付（自提交货或送达）的线上订单金额之和",
    ),
    ("orders", "收银笔数 + 期内下单且已交付的线上订单数"),
    (
        "live_gmv_fen",
        "期内直播下单且未取消的订单金额之和（每场、每店）",
    ),
    (
        "community_mau_rate",
        "本月有至少一次有效行为的社群成员数 ÷ 月末社群成员数（有效行为：入群、投票、线上或直播下单）",
    ),
    (
        "online_order_share",
        "门店履约的线上订单数 ÷ (收银笔数 + 门店履约的线上订单数)",
    ),
    ("online_gmv_share", "线上成交额 ÷ (收银销售额 + 线上成交额)"),
    ("pickup_rate", "期内自提订单数 ÷ 期内未取消的线上订单数"),
    (
        "pickup_completion_rate",
        "已交货的自提订单数 ÷ 期内下单的自提订单数（含取消、过期）",
    ),
    (
        "overdue_pickups",
        "取货截止时间已过、未交货也未取消的自提订单数",
    ),
    (
        "repurchase_rate",
        "期内在两个及以上不同营业日购买的顾客数 ÷ 期内有购买的顾客数（总部把同一人的收银会员消费与线上订单合并为一位顾客；门店自算时不知道线上顾客的手机号，收银会员与线上顾客分别计）",
    ),
    (
        "repurchase_30d_rate",
        "期内首次购买后 30 天内在另一营业日再次购买的顾客数 ÷ 期内有购买的顾客数（顾客口径同复购率）",
    ),
    (
        "waste_rate",
        "报损货值 ÷ (销售货值 + 报损货值)；商品目录无成本价，两者均按目录售价计",
    ),
    (
        "on_time_delivery_rate",
        "在承诺时间窗结束前送达的配送订单数 ÷ 已送达的配送订单数",
    ),
    ("avg_handover_secs", "自提订单从下单到交货的平均时长（秒）"),
    (
        "oversell_rate",
        "因门店已售出而改派或退款的线上订单数 ÷ 期内线上订单数",
    ),
    (
        "groupbuy_success_rate",
        "期内成团的团购数 ÷ 期内结束（成团或失败）的团购数",
    ),
    (
        "groupbuy_counter_fen",
        "期内门店柜台收取的团购款 − 期内柜台退还的团购款（预售款，不计入总成交额）",
    ),
    (
        "staff",
        "每位店员：收银销售额与笔数、交货单数、主持直播的成交额",
    ),
];

/// An RFC 3339 time as the fact rows hold it, or `None` if unreadable.
pub fn instant(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.to_utc())
}

/// `n / d`, or `None` when `d` is 0.
pub fn rate(n: i64, d: i64) -> Option<f64> {
    (d != 0).then(|| n as f64 / d as f64)
}

/// The figures of every store in `facts` over `p`. `as_of` is the instant
/// overdue pickups are judged at (the period's end, or now if earlier);
/// `prices` values goods for the waste rate (a SKU without a price is worth 0).
/// For several periods over the same facts (a series), build one
/// [`Timeline`] and ask it for each.
pub fn compute(
    facts: &Facts,
    p: &Period,
    as_of: DateTime<Utc>,
    prices: &BTreeMap<String, Price>,
) -> Figures {
    Timeline::new(facts, p.offset).figures(p, as_of, prices)
}

#[cfg(test)]
mod tests;
