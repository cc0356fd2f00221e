//! The figures of many periods over one set of facts. [`Timeline::new`]
//! puts the facts in time order once, and each period then reads only its
//! own facts (two binary searches a kind): a month's daily series costs one
//! pass over the month, not one pass per day. The days each customer bought
//! on, which the repurchase rates read past the period, are indexed once too.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use chrono::{DateTime, Days, FixedOffset, NaiveDate, Utc};
// the keys are ids this process reads from its own tables, not input an
// attacker shapes for collisions; SipHash was 9 % of a region's month
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use super::{
    Activity, COHORT_DAYS, CounterRefund, CounterSale, Facts, Figures, GroupBuyCounterMoney,
    GroupBuyOutcome, LiveSessionGmv, LiveSessionInfo, Member, OnlineOrder, Oversell, Period, Price,
    Sold, StaffFigures, WriteOff, rate,
};

/// Who bought, for the repurchase rates: the person, where the hub tied
/// the purchase to one; else counter members and online customers are
/// different keys (the store knows a member by a keyed hash of the phone
/// only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Buyer<'a> {
    Person(&'a str),
    Member(&'a str),
    Online(&'a str),
}

impl<'a> Buyer<'a> {
    fn of_sale(s: &'a CounterSale) -> Option<Buyer<'a>> {
        match (&s.person_id, &s.member_hash) {
            (Some(person), _) => Some(Buyer::Person(person)),
            (None, Some(hash)) => Some(Buyer::Member(hash)),
            (None, None) => None,
        }
    }

    fn of_order(o: &'a OnlineOrder) -> Option<Buyer<'a>> {
        o.fulfilled().then_some(match &o.person_id {
            Some(person) => Buyer::Person(person),
            None => Buyer::Online(o.customer_id.as_str()),
        })
    }
}

/// One set of facts in time order, for the figures of any period of
/// business days in `offset`'s local time.
#[derive(Debug)]
pub struct Timeline<'a> {
    offset: FixedOffset,
    live_sessions: Vec<&'a LiveSessionInfo>,
    sales: Vec<&'a CounterSale>,
    refunds: Vec<&'a CounterRefund>,
    /// By placing time.
    orders: Vec<&'a OnlineOrder>,
    write_offs: Vec<&'a WriteOff>,
    activity: Vec<&'a Activity>,
    oversells: Vec<DateTime<Utc>>,
    /// By deciding time.
    group_buys: Vec<&'a GroupBuyOutcome>,
    group_buy_counter_money: Vec<&'a GroupBuyCounterMoney>,
    /// Each (store, customer) membership's earliest start, in time order.
    members: Vec<DateTime<Utc>>,
    member_since: HashMap<(&'a str, &'a str), DateTime<Utc>>,
    /// The buyer (an index into `days`) of each sale and each order, in
    /// their time order; `NO_BUYER` for none.
    sale_buyer: Vec<u32>,
    order_buyer: Vec<u32>,
    /// Each buyer's business days with a purchase, in order, once each.
    days: Vec<Vec<NaiveDate>>,
}

const NO_BUYER: u32 = u32::MAX;

/// The facts of one timeline, as references, before they are put in order.
#[derive(Default)]
struct Refs<'a> {
    sales: Vec<&'a CounterSale>,
    refunds: Vec<&'a CounterRefund>,
    orders: Vec<&'a OnlineOrder>,
    write_offs: Vec<&'a WriteOff>,
    members: Vec<&'a Member>,
    activity: Vec<&'a Activity>,
    oversells: Vec<&'a Oversell>,
    group_buys: Vec<&'a GroupBuyOutcome>,
    group_buy_counter_money: Vec<&'a GroupBuyCounterMoney>,
    live_sessions: Vec<&'a LiveSessionInfo>,
}

impl<'a> Refs<'a> {
    fn all(f: &'a Facts) -> Refs<'a> {
        Refs {
            sales: f.sales.iter().collect(),
            refunds: f.refunds.iter().collect(),
            orders: f.orders.iter().collect(),
            write_offs: f.write_offs.iter().collect(),
            members: f.members.iter().collect(),
            activity: f.activity.iter().collect(),
            oversells: f.oversells.iter().collect(),
            group_buys: f.group_buys.iter().collect(),
            group_buy_counter_money: f.group_buy_counter_money.iter().collect(),
            live_sessions: f.live_sessions.iter().collect(),
        }
    }

    /// Each store's, in one pass (a group-buy goes to each of its stores).
    fn by_store(f: &'a Facts) -> BTreeMap<&'a str, Refs<'a>> {
        let mut out: BTreeMap<&str, Refs> = BTreeMap::new();
        // facts come in runs of one store (each store's rows are read
        // together): one look-up a run, not a fact
        fn split<'a, T>(
            out: &mut BTreeMap<&'a str, Refs<'a>>,
            v: &'a [T],
            store: impl Fn(&T) -> &str,
            field: impl for<'r> Fn(&'r mut Refs<'a>) -> &'r mut Vec<&'a T>,
        ) where
            T: 'a,
        {
            for run in v.chunk_by(|a, b| store(a) == store(b)) {
                field(out.entry(store(&run[0])).or_default()).extend(run);
            }
        }
        split(&mut out, &f.sales, |x| &x.store_id, |r| &mut r.sales);
        split(&mut out, &f.refunds, |x| &x.store_id, |r| &mut r.refunds);
        split(&mut out, &f.orders, |x| &x.store_id, |r| &mut r.orders);
        split(
            &mut out,
            &f.write_offs,
            |x| &x.store_id,
            |r| &mut r.write_offs,
        );
        split(&mut out, &f.members, |x| &x.store_id, |r| &mut r.members);
        split(&mut out, &f.activity, |x| &x.store_id, |r| &mut r.activity);
        split(
            &mut out,
            &f.oversells,
            |x| &x.store_id,
            |r| &mut r.oversells,
        );
        split(
            &mut out,
            &f.group_buy_counter_money,
            |x| &x.store_id,
            |r| &mut r.group_buy_counter_money,
        );
        split(
            &mut out,
            &f.live_sessions,
            |x| &x.store_id,
            |r| &mut r.live_sessions,
        );
        for g in &f.group_buys {
            for s in g.store_ids.iter().collect::<BTreeSet<_>>() {
                out.entry(s).or_default().group_buys.push(g);
            }
        }
        out
    }
}

impl<'a> Timeline<'a> {
    pub fn new(facts: &'a Facts, offset: FixedOffset) -> Timeline<'a> {
        Timeline::of(Refs::all(facts), offset)
    }

    /// The timeline of each store in `facts`, split in one pass: what
    /// [`Facts::of_store`] and [`Timeline::new`] give for every store,
    /// without copying a fact or reading them all once per store.
    pub fn by_store(facts: &'a Facts, offset: FixedOffset) -> BTreeMap<&'a str, Timeline<'a>> {
        Refs::by_store(facts)
            .into_iter()
            .map(|(store, refs)| (store, Timeline::of(refs, offset)))
            .collect()
    }

    fn of(mut r: Refs<'a>, offset: FixedOffset) -> Timeline<'a> {
        let mut member_since: HashMap<(&str, &str), DateTime<Utc>> = HashMap::default();
        for m in &r.members {
            let since = member_since
                .entry((m.store_id.as_str(), m.customer_id.as_str()))
                .or_insert(m.since);
            *since = (*since).min(m.since);
        }
        let mut members: Vec<DateTime<Utc>> = member_since.values().copied().collect();
        members.sort_unstable();
        let mut oversells: Vec<DateTime<Utc>> = r.oversells.iter().map(|o| o.at).collect();
        oversells.sort_unstable();
        r.sales.sort_by_key(|s| s.at);
        r.refunds.sort_by_key(|x| x.at);
        r.orders.sort_by_key(|o| o.placed_at);
        r.write_offs.sort_by_key(|w| w.at);
        r.activity.sort_by_key(|a| a.at);
        r.group_buys.sort_by_key(|g| g.decided_at);
        r.group_buy_counter_money.sort_by_key(|m| m.at);
        // buyers by number, each with their days
        let day = |at: DateTime<Utc>| at.with_timezone(&offset).date_naive();
        let mut ids: HashMap<Buyer, u32> = HashMap::default();
        let mut days: Vec<Vec<NaiveDate>> = Vec::new();
        let mut number = |b: Option<Buyer<'a>>, on: NaiveDate| match b {
            None => NO_BUYER,
            Some(b) => {
                let id = *ids.entry(b).or_insert_with(|| {
                    days.push(Vec::new());
                    (days.len() - 1) as u32
                });
                days[id as usize].push(on);
                id
            }
        };
        let sale_buyer: Vec<u32> = r
            .sales
            .iter()
            .map(|s| number(Buyer::of_sale(s), day(s.at)))
            .collect();
        let order_buyer: Vec<u32> = r
            .orders
            .iter()
            .map(|o| number(Buyer::of_order(o), day(o.placed_at)))
            .collect();
        for d in &mut days {
            d.sort_unstable();
            d.dedup();
        }
        Timeline {
            offset,
            live_sessions: r.live_sessions,
            sales: r.sales,
            refunds: r.refunds,
            orders: r.orders,
            write_offs: r.write_offs,
            activity: r.activity,
            oversells,
            group_buys: r.group_buys,
            group_buy_counter_money: r.group_buy_counter_money,
            members,
            member_since,
            sale_buyer,
            order_buyer,
            days,
        }
    }

    /// The figures over `p` (whose offset must be the timeline's). `as_of`
    /// is the instant overdue pickups are judged at (the period's end, or
    /// now if earlier); `prices` values goods for the waste rate (a SKU
    /// without a price is worth 0).
    pub fn figures(
        &self,
        p: &Period,
        as_of: DateTime<Utc>,
        prices: &BTreeMap<String, Price>,
    ) -> Figures {
        debug_assert_eq!(p.offset, self.offset, "a period in another time zone");
        let mut f = Figures::default();
        let value = |l: &Sold| prices.get(&l.sku).map_or(0, |pr| pr.value(l.qty));
        let mut staff: Staff = HashMap::default();

        let sale_span = span(&self.sales, p, |s| s.at);
        let sales = &self.sales[sale_span.clone()];
        for s in sales {
            f.counter_sales_fen += s.total_fen;
            f.counter_orders += 1;
            f.sold_value_fen += s.lines.iter().map(value).sum::<i64>();
            let st = staff_of(&mut staff, &s.cashier);
            st.sales += 1;
            st.sales_fen += s.total_fen;
        }
        f.counter_refunds_fen = within(&self.refunds, p, |r| r.at)
            .iter()
            .map(|r| r.amount_fen)
            .sum();
        f.counter_gmv_fen = f.counter_sales_fen - f.counter_refunds_fen;

        let order_span = span(&self.orders, p, |o| o.placed_at);
        let orders = &self.orders[order_span.clone()];
        let mut live: BTreeMap<String, i64> = BTreeMap::new();
        let (mut pickups, mut pickups_done, mut pickups_all) = (0, 0, 0);
        let (mut delivered, mut on_time) = (0, 0);
        let (mut handover_secs, mut handovers) = (0i64, 0i64);
        let mut not_cancelled = 0;
        for o in orders {
            if !o.cancelled || o.fulfilled() {
                not_cancelled += 1;
            }
            if let Some(sid) = &o.live_session_id
                && !o.cancelled
            {
                f.live_gmv_fen += o.total_fen;
                *live.entry(sid.clone()).or_default() += o.total_fen;
            }
            if o.fulfilled() {
                f.online_orders += 1;
                f.online_gmv_fen += o.total_fen;
                f.sold_value_fen += o.lines.iter().map(value).sum::<i64>();
            }
            if let Some(by) = &o.handed_over_by
                && o.handed_over_at.is_some()
            {
                staff_of(&mut staff, by).handovers += 1;
            }
            if o.pickup {
                pickups_all += 1;
                if !o.cancelled || o.fulfilled() {
                    pickups += 1;
                }
                if let Some(h) = o.handed_over_at {
                    pickups_done += 1;
                    handovers += 1;
                    handover_secs += (h - o.placed_at).num_seconds();
                } else if !o.cancelled && o.promised_by.is_some_and(|by| by < as_of) {
                    f.overdue_pickups += 1;
                }
            } else if let Some(at) = o.delivered_at {
                delivered += 1;
                if o.promised_by.is_some_and(|by| at <= by) {
                    on_time += 1;
                }
            }
        }
        f.orders = f.counter_orders + f.online_orders;
        f.gmv_fen = f.counter_gmv_fen + f.online_gmv_fen;
        f.online_order_share = rate(f.online_orders, f.orders);
        f.online_gmv_share = rate(f.online_gmv_fen, f.counter_sales_fen + f.online_gmv_fen);
        f.pickup_rate = rate(pickups, not_cancelled);
        f.pickup_completion_rate = rate(pickups_done, pickups_all);
        f.on_time_delivery_rate = rate(on_time, delivered);
        f.avg_handover_secs = (handovers > 0).then(|| handover_secs as f64 / handovers as f64);

        self.live_sessions(&mut f, &mut staff, live);
        self.community(&mut f, p);
        self.repurchase(&mut f, p, sale_span, order_span);

        f.waste_value_fen = within(&self.write_offs, p, |w| w.at)
            .iter()
            .map(|w| {
                value(&Sold {
                    sku: w.sku.clone(),
                    qty: w.qty,
                })
            })
            .sum();
        f.waste_rate = rate(f.waste_value_fen, f.sold_value_fen + f.waste_value_fen);

        let oversold = within(&self.oversells, p, |at| *at).len() as i64;
        f.oversell_rate = rate(oversold, orders.len() as i64);

        let decided: BTreeMap<&str, bool> = within(&self.group_buys, p, |g| g.decided_at)
            .iter()
            .map(|g| (g.group_buy_id.as_str(), g.succeeded))
            .collect();
        let won = decided.values().filter(|s| **s).count() as i64;
        f.groupbuy_success_rate = rate(won, decided.len() as i64);
        f.groupbuy_counter_fen = within(&self.group_buy_counter_money, p, |m| m.at)
            .iter()
            .map(|m| m.fen)
            .sum();

        f.staff = staff.into_values().collect();
        f.staff.sort_by(|a, b| a.staff.cmp(&b.staff));
        f
    }

    /// Every session of the stores with an order in the period.
    fn live_sessions(&self, f: &mut Figures, staff: &mut Staff<'a>, live: BTreeMap<String, i64>) {
        for s in &self.live_sessions {
            if let Some(gmv) = live.get(&s.session_id) {
                f.live_sessions.push(LiveSessionGmv {
                    session_id: s.session_id.clone(),
                    title: s.title.clone(),
                    store_id: s.store_id.clone(),
                    gmv_fen: *gmv,
                });
                staff_of(staff, &s.host).live_gmv_fen += gmv;
            }
        }
        // sessions the facts carry no name for still count, under their id
        for (id, gmv) in live {
            if !self.live_sessions.iter().any(|s| s.session_id == id) {
                let store_id = self
                    .orders
                    .iter()
                    .find(|o| o.live_session_id.as_ref() == Some(&id))
                    .map(|o| o.store_id.clone())
                    .unwrap_or_default();
                f.live_sessions.push(LiveSessionGmv {
                    session_id: id,
                    title: String::new(),
                    store_id,
                    gmv_fen: gmv,
                });
            }
        }
        f.live_sessions
            .sort_by(|a, b| a.session_id.cmp(&b.session_id));
    }

    /// Members by the period's end, the active ones in the period.
    fn community(&self, f: &mut Figures, p: &Period) {
        let end = p.end();
        let active: HashSet<(&str, &str)> = within(&self.activity, p, |a| a.at)
            .iter()
            .map(|a| (a.store_id.as_str(), a.customer_id.as_str()))
            .filter(|k| self.member_since.get(k).is_some_and(|since| *since < end))
            .collect();
        f.community_members = self.members.partition_point(|since| *since < end) as i64;
        f.community_active_members = active.len() as i64;
        f.community_mau_rate = rate(f.community_active_members, f.community_members);
    }

    /// Customers with a purchase in the period (the spans of `sales` and
    /// `orders` in it), and which of them came back.
    fn repurchase(&self, f: &mut Figures, p: &Period, sales: Range<usize>, orders: Range<usize>) {
        let mut buyers: Vec<u32> = self.sale_buyer[sales]
            .iter()
            .chain(&self.order_buyer[orders])
            .copied()
            .filter(|b| *b != NO_BUYER)
            .collect();
        buyers.sort_unstable();
        buyers.dedup();
        let (mut repeat, mut repeat_30d) = (0, 0);
        for b in &buyers {
            let days = &self.days[*b as usize];
            let mut inside = days.iter().filter(|d| (p.from..=p.to).contains(*d));
            let Some(first) = inside.next().copied() else {
                continue;
            };
            if inside.next().is_some() {
                repeat += 1;
            }
            let until = first
                .checked_add_days(Days::new(COHORT_DAYS))
                .unwrap_or(first);
            if days.iter().any(|d| *d > first && *d <= until) {
                repeat_30d += 1;
            }
        }
        f.repurchase_rate = rate(repeat, buyers.len() as i64);
        f.repurchase_30d_rate = rate(repeat_30d, buyers.len() as i64);
    }
}

/// Where the part of `v` (in time order) that falls in `p` lies.
fn span<T>(v: &[T], p: &Period, at: impl Fn(&T) -> DateTime<Utc>) -> Range<usize> {
    let (start, end) = (p.start(), p.end());
    let lo = v.partition_point(|x| at(x) < start);
    let hi = v.partition_point(|x| at(x) < end).max(lo);
    lo..hi
}

/// The part of `v` (in time order) that falls in `p`.
fn within<'v, T>(v: &'v [T], p: &Period, at: impl Fn(&T) -> DateTime<Utc>) -> &'v [T] {
    &v[span(v, p, at)]
}

/// Each staff member's figures, by name (borrowed from the facts).
type Staff<'a> = HashMap<&'a str, StaffFigures>;

fn staff_of<'m, 'a>(m: &'m mut Staff<'a>, name: &'a str) -> &'m mut StaffFigures {
    m.entry(name).or_insert_with(|| StaffFigures {
        staff: name.to_owned(),
        sales_fen: 0,
        sales: 0,
        handovers: 0,
        live_gmv_fen: 0,
    })
}
