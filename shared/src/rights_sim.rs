//! A model of one store and the hub exchanging rights over a link that
//! fails, for tests and benchmarks.
//!
//! DESIGN.md §5 promises that online orders can never oversell a store, even
//! through an outage, and that every overdraft is settled by releasing orders
//! (flagged, never silently lost). [`crate::rights`] states the rules as pure
//! functions; this module puts them in motion: one store and the hub, a few
//! unit-counted SKUs ([`Policy::EACH`]), and a stream of [`Event`]s (counter
//! sales, receipts, online orders, hand-overs, cancellations, link cuts and
//! heals, and the two halves of a sync). After every event the model checks
//! the invariants the scheme promises and returns a [`Violation`] naming the
//! seed and the event number if one breaks, so a failing run can be replayed.
//!
//! The same model runs a [`Scheme::Naive`] shared counter (the hub sells
//! against the last level it heard minus its own open orders) over the same
//! event streams, so a benchmark can count what the rights buy.
//!
//! Syncs are split in two directions ([`Event::SyncUp`]: the store's totals
//! and hand-overs to the hub; [`Event::SyncDown`]: the hub's totals and orders
//! to the store) because a link can fail between them; a model with atomic
//! round trips would hide the races that matter. Nothing here reads a clock or
//! draws random numbers: [`workload`] takes the randomness from its caller.

use crate::rights::{self, HubRights, OpenOrder, Policy, StoreRights};
use std::collections::BTreeMap;

/// Which way the hub decides whether it may accept an online order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// The hub sells only within the rights the store lent it (§5).
    Rights,
    /// A shared counter without rights: the hub sells against the store's
    /// on-hand as last heard, minus the orders it knows are still open.
    Naive,
}

/// One thing that happens at the store, at the hub or on the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A walk-in buys `qty` units; the counter never refuses goods that are
    /// on the shelf, so at most the on-hand is sold.
    CounterSale { sku: usize, qty: i64 },
    /// Goods arrive at the store.
    Receipt { sku: usize, qty: i64 },
    /// An online customer orders `(sku, qty)` lines at the hub.
    OnlineOrder { lines: Vec<(usize, i64)> },
    /// A customer collects an order the store knows to be open (the
    /// `pick`-th of them, modulo their number); done only if the shelf has
    /// every line.
    HandOver { pick: usize },
    /// A customer cancels an open order at the hub (the `pick`-th, modulo).
    Cancel { pick: usize },
    /// The link goes down.
    Cut,
    /// The link comes back.
    Heal,
    /// The store's totals and hand-overs reach the hub (only while up).
    SyncUp,
    /// The hub's totals and orders reach the store (only while up).
    SyncDown,
}

/// Why an order no longer needs goods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The customer cancelled.
    Cancelled,
    /// Settlement of an overdraft refunded it. With one store in the model
    /// there is nowhere to re-route it, so every settlement is a refund.
    Refunded,
}

/// Where an online order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderState {
    Open,
    HandedOver,
    Released(Release),
}

/// An online order as one side knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Quantity per SKU index.
    pub lines: BTreeMap<usize, i64>,
    pub state: OrderState,
    /// Released by settlement: a manager must tell the customer.
    pub flagged: bool,
    /// Handed over at the store after the hub had released it: the physical
    /// fact wins (§6) and the hub consumes its rights again.
    pub conflict: bool,
}

/// The store's books.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreBooks {
    pub on_hand: Vec<i64>,
    pub rights: Vec<StoreRights>,
    /// The hub's totals as the store last saw them.
    pub hub_seen: Vec<HubRights>,
    /// Orders the store has heard of, by id, with their state as it knows it.
    pub orders: BTreeMap<u64, Order>,
}

/// The hub's books for the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HubBooks {
    pub rights: Vec<HubRights>,
    /// The store's totals as the hub last saw them.
    pub store_seen: Vec<StoreRights>,
    /// Every order accepted, by id; ids grow, so the newest is last.
    pub orders: BTreeMap<u64, Order>,
    /// [`Scheme::Naive`] only: the store's on-hand as last heard.
    pub level_seen: Vec<i64>,
}

/// What a run did, for comparing schemes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub events: u64,
    pub orders_accepted: u64,
    pub units_accepted: i64,
    pub orders_refused: u64,
    pub units_refused: i64,
    pub orders_cancelled: u64,
    pub units_cancelled: i64,
    /// Orders released by settlement (refunded and flagged).
    pub orders_released: u64,
    pub units_released: i64,
    pub units_handed_over: i64,
    /// Hand-over attempts that found the shelf short (the customer waits).
    pub shelf_short: u64,
    /// Hand-overs of orders the hub had already released.
    pub conflicts: u64,
    pub counter_units: i64,
    /// Units the store recorded as overdraft.
    pub overdraft_units: i64,
    /// After quiescing: units of open online orders the shelf cannot cover.
    pub oversold_units: i64,
    /// Deficit the hub was left with after quiescing, with no open order
    /// left to release (see [`Sim::quiesce`]); summed by [`Tally::add`].
    pub stuck_deficit: i64,
    /// Runs that ended with such a deficit.
    pub stuck_runs: u64,
}

impl Tally {
    /// Online units that reach a customer (or will, from the shelf).
    pub fn units_sold_online(&self) -> i64 {
        self.units_accepted - self.units_cancelled - self.units_released - self.oversold_units
    }

    /// Field-wise sum, for totals over many runs.
    pub fn add(&mut self, o: &Tally) {
        self.events += o.events;
        self.orders_accepted += o.orders_accepted;
        self.units_accepted += o.units_accepted;
        self.orders_refused += o.orders_refused;
        self.units_refused += o.units_refused;
        self.orders_cancelled += o.orders_cancelled;
        self.units_cancelled += o.units_cancelled;
        self.orders_released += o.orders_released;
        self.units_released += o.units_released;
        self.units_handed_over += o.units_handed_over;
        self.shelf_short += o.shelf_short;
        self.conflicts += o.conflicts;
        self.counter_units += o.counter_units;
        self.overdraft_units += o.overdraft_units;
        self.oversold_units += o.oversold_units;
        self.stuck_deficit += o.stuck_deficit;
        self.stuck_runs += o.stuck_runs;
    }
}

/// A broken invariant, with what is needed to replay it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("seed {seed}, event {event}: {what}")]
pub struct Violation {
    pub seed: u64,
    /// Events applied before the violation was seen, counting this one.
    pub event: u64,
    pub what: String,
}

/// One store, the hub and the link between them.
#[derive(Debug, Clone)]
pub struct Sim {
    scheme: Scheme,
    policy: Policy,
    seed: u64,
    up: bool,
    next_order: u64,
    store: StoreBooks,
    hub: HubBooks,
    tally: Tally,
}

/// The SKU key the pure functions in [`crate::rights`] use.
fn sku_key(sku: usize) -> String {
    format!("sku{sku}")
}

impl Sim {
    /// A store with `initial` units on hand per SKU, connected, after one
    /// full sync (so the hub starts with the rights the store lends at once).
    pub fn new(scheme: Scheme, initial: &[i64], seed: u64) -> Result<Sim, Violation> {
        let n = initial.len();
        let mut sim = Sim {
            scheme,
            policy: Policy::EACH,
            seed,
            up: true,
            next_order: 0,
            store: StoreBooks {
                on_hand: initial.iter().map(|q| (*q).max(0)).collect(),
                rights: vec![StoreRights::default(); n],
                hub_seen: vec![HubRights::default(); n],
                orders: BTreeMap::new(),
            },
            hub: HubBooks {
                rights: vec![HubRights::default(); n],
                store_seen: vec![StoreRights::default(); n],
                orders: BTreeMap::new(),
                level_seen: vec![0; n],
            },
            tally: Tally::default(),
        };
        sim.store_steps()?;
        sim.sync_up()?;
        sim.sync_down()?;
        Ok(sim)
    }

    pub fn store(&self) -> &StoreBooks {
        &self.store
    }

    pub fn hub(&self) -> &HubBooks {
        &self.hub
    }

    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Rights the hub holds for `sku`, as the hub sees them.
    pub fn hub_held(&self, sku: usize) -> i64 {
        rights::hub_held(&self.hub.store_seen[sku], &self.hub.rights[sku])
    }

    fn violation(&self, what: String) -> Violation {
        Violation {
            seed: self.seed,
            event: self.tally.events,
            what,
        }
    }

    fn skus(&self) -> usize {
        self.store.on_hand.len()
    }

    /// Applies one event and checks the invariants that hold at every step.
    /// Events naming an unknown SKU are ignored, so any stream is valid.
    pub fn apply(&mut self, e: &Event) -> Result<(), Violation> {
        self.tally.events += 1;
        match e {
            Event::CounterSale { sku, qty } => {
                let Some(on_hand) = self.store.on_hand.get_mut(*sku) else {
                    return Ok(());
                };
                let k = (*qty).clamp(0, (*on_hand).max(0));
                *on_hand -= k;
                self.tally.counter_units += k;
                self.store_steps()?;
            }
            Event::Receipt { sku, qty } => {
                let Some(on_hand) = self.store.on_hand.get_mut(*sku) else {
                    return Ok(());
                };
                *on_hand += (*qty).max(0);
                self.store_steps()?;
            }
            Event::OnlineOrder { lines } => self.online_order(lines)?,
            Event::HandOver { pick } => self.hand_over(*pick)?,
            Event::Cancel { pick } => self.cancel(*pick)?,
            Event::Cut => self.up = false,
            Event::Heal => self.up = true,
            Event::SyncUp => {
                if self.up {
                    self.sync_up()?;
                }
            }
            Event::SyncDown => {
                if self.up {
                    self.sync_down()?;
                }
            }
        }
        self.check_always()
    }

    fn online_order(&mut self, lines: &[(usize, i64)]) -> Result<(), Violation> {
        let mut want: BTreeMap<usize, i64> = BTreeMap::new();
        for (sku, qty) in lines {
            if *sku < self.skus() && *qty > 0 {
                *want.entry(*sku).or_default() += qty;
            }
        }
        if want.is_empty() {
            return Ok(());
        }
        let units: i64 = want.values().sum();
        let mut short = false;
        for (sku, qty) in &want {
            let can = match self.scheme {
                Scheme::Rights => self.hub_held(*sku),
                Scheme::Naive => self.hub.level_seen[*sku] - self.hub_open_qty(*sku),
            };
            if can < *qty {
                short = true;
                if self.scheme == Scheme::Rights {
                    // Demand the hub could not serve here pulls more rights.
                    self.hub.rights[*sku].wanted += qty - can.max(0);
                }
            }
        }
        if short {
            self.tally.orders_refused += 1;
            self.tally.units_refused += units;
            return Ok(());
        }
        for (sku, qty) in &want {
            self.hub.rights[*sku].consumed += qty;
        }
        let id = self.next_order;
        self.next_order += 1;
        self.hub.orders.insert(
            id,
            Order {
                lines: want,
                state: OrderState::Open,
                flagged: false,
                conflict: false,
            },
        );
        self.tally.orders_accepted += 1;
        self.tally.units_accepted += units;
        Ok(())
    }

    fn hand_over(&mut self, pick: usize) -> Result<(), Violation> {
        let open: Vec<u64> = self
            .store
            .orders
            .iter()
            .filter(|(_, o)| o.state == OrderState::Open)
            .map(|(id, _)| *id)
            .collect();
        if open.is_empty() {
            return Ok(());
        }
        let id = open[pick % open.len()];
        let Some(order) = self.store.orders.get_mut(&id) else {
            return Ok(());
        };
        if order
            .lines
            .iter()
            .any(|(sku, qty)| self.store.on_hand[*sku] < *qty)
        {
            self.tally.shelf_short += 1;
            return Ok(());
        }
        for (sku, qty) in &order.lines {
            self.store.on_hand[*sku] -= qty;
            self.store.rights[*sku].delivered += qty;
            self.tally.units_handed_over += qty;
        }
        order.state = OrderState::HandedOver;
        self.store_steps()
    }

    fn cancel(&mut self, pick: usize) -> Result<(), Violation> {
        let open: Vec<u64> = self
            .hub
            .orders
            .iter()
            .filter(|(_, o)| o.state == OrderState::Open)
            .map(|(id, _)| *id)
            .collect();
        if open.is_empty() {
            return Ok(());
        }
        let id = open[pick % open.len()];
        let Some(order) = self.hub.orders.get_mut(&id) else {
            return Ok(());
        };
        order.state = OrderState::Released(Release::Cancelled);
        for (sku, qty) in &order.lines {
            self.hub.rights[*sku].released += qty;
            self.tally.units_cancelled += qty;
        }
        self.tally.orders_cancelled += 1;
        Ok(())
    }

    /// Units of open orders for `sku`, as the hub knows them.
    fn hub_open_qty(&self, sku: usize) -> i64 {
        self.hub
            .orders
            .values()
            .filter(|o| o.state == OrderState::Open)
            .filter_map(|o| o.lines.get(&sku))
            .sum()
    }

    /// The store re-decides every SKU after a change of its books or of what
    /// it saw, checking what [`rights::store_step`] promises.
    fn store_steps(&mut self) -> Result<(), Violation> {
        if self.scheme != Scheme::Rights {
            return Ok(());
        }
        for sku in 0..self.skus() {
            let on_hand = self.store.on_hand[sku];
            let s = self.store.rights[sku];
            let h = self.store.hub_seen[sku];
            let step = rights::store_step(on_hand, 0, &s, &h, &self.policy);
            if step.lend < 0 || step.recall < 0 || step.overdraft < 0 {
                return Err(self.violation(format!("sku {sku}: negative step {step:?}")));
            }
            if step.overdraft > rights::outstanding(&s, &h) {
                return Err(self.violation(format!(
                    "sku {sku}: overdraft {} beyond what is lent out",
                    step.overdraft
                )));
            }
            let s2 = step.apply(&s);
            if step.lend > 0
                && rights::counter_free(on_hand, 0, &s2, &h) < self.policy.safety(on_hand)
            {
                return Err(self.violation(format!("sku {sku}: lent safety stock")));
            }
            if rights::outstanding(&s2, &h) > on_hand {
                return Err(self.violation(format!(
                    "sku {sku}: keeps {} for the hub with {on_hand} on hand",
                    rights::outstanding(&s2, &h)
                )));
            }
            self.tally.overdraft_units += step.overdraft;
            self.store.rights[sku] = s2;
        }
        Ok(())
    }

    fn sync_up(&mut self) -> Result<(), Violation> {
        match self.scheme {
            Scheme::Rights => {
                for (seen, s) in self.hub.store_seen.iter_mut().zip(&self.store.rights) {
                    *seen = seen.join(*s);
                }
            }
            Scheme::Naive => self.hub.level_seen.clone_from(&self.store.on_hand),
        }
        for (id, so) in &self.store.orders {
            if so.state != OrderState::HandedOver {
                continue;
            }
            let Some(ho) = self.hub.orders.get_mut(id) else {
                return Err(Violation {
                    seed: self.seed,
                    event: self.tally.events,
                    what: format!("order {id} handed over but unknown to the hub"),
                });
            };
            match ho.state {
                OrderState::HandedOver => {}
                OrderState::Open => ho.state = OrderState::HandedOver,
                OrderState::Released(_) => {
                    ho.state = OrderState::HandedOver;
                    ho.conflict = true;
                    self.tally.conflicts += 1;
                    if self.scheme == Scheme::Rights {
                        // The goods left with the customer: the release gave
                        // back rights the hub never had, so it consumes again.
                        for (sku, qty) in &ho.lines {
                            self.hub.rights[*sku].consumed += qty;
                        }
                    }
                }
            }
        }
        if self.scheme == Scheme::Rights {
            self.settle()?;
        }
        Ok(())
    }

    /// The hub settles what it learnt: answers what the store asked back,
    /// then releases the newest open orders while it holds negative rights.
    fn settle(&mut self) -> Result<(), Violation> {
        // pending recalls first: a recall must never be settled by releasing orders
        for sku in 0..self.skus() {
            self.hub.rights[sku] =
                rights::hub_answer(&self.hub.store_seen[sku], &self.hub.rights[sku]);
        }
        let deficits: BTreeMap<String, i64> = (0..self.skus())
            .filter_map(|sku| {
                let held = self.hub_held(sku);
                (held < 0).then(|| (sku_key(sku), -held))
            })
            .collect();
        if !deficits.is_empty() {
            let open: Vec<OpenOrder> = self
                .hub
                .orders
                .iter()
                .rev()
                .filter(|(_, o)| o.state == OrderState::Open)
                .map(|(id, o)| OpenOrder {
                    order_id: id.to_string(),
                    lines: o.lines.iter().map(|(k, q)| (sku_key(*k), *q)).collect(),
                })
                .collect();
            for id in rights::orders_to_release(&deficits, &open) {
                let order = id
                    .parse::<u64>()
                    .ok()
                    .and_then(|id| self.hub.orders.get_mut(&id));
                let Some(order) = order else {
                    return Err(self.violation(format!("settlement named unknown order {id}")));
                };
                order.state = OrderState::Released(Release::Refunded);
                order.flagged = true;
                for (sku, qty) in &order.lines {
                    self.hub.rights[*sku].released += qty;
                    self.tally.units_released += qty;
                }
                self.tally.orders_released += 1;
            }
        }
        Ok(())
    }

    fn sync_down(&mut self) -> Result<(), Violation> {
        if self.scheme == Scheme::Rights {
            for (seen, h) in self.store.hub_seen.iter_mut().zip(&self.hub.rights) {
                *seen = seen.join(*h);
            }
        }
        for (id, ho) in &self.hub.orders {
            match self.store.orders.get_mut(id) {
                None => {
                    self.store.orders.insert(*id, ho.clone());
                }
                Some(so) => {
                    if so.state == OrderState::Open {
                        so.state = ho.state;
                    }
                    so.flagged |= ho.flagged;
                    so.conflict |= ho.conflict;
                }
            }
        }
        self.store_steps()
    }

    /// Invariants after every event. For the rights scheme (I1): after a
    /// hub step the hub holds no negative rights for a SKU while an open
    /// order it could release still holds that SKU; its own books agree
    /// (consumed − released − delivered seen = open units). For both: no
    /// negative shelf.
    fn check_always(&self) -> Result<(), Violation> {
        for sku in 0..self.skus() {
            if self.store.on_hand[sku] < 0 {
                return Err(self.violation(format!("sku {sku}: negative on-hand")));
            }
            if self.scheme != Scheme::Rights {
                continue;
            }
            let open = self.hub_open_qty(sku);
            let held = self.hub_held(sku);
            if held < 0 && open > 0 {
                return Err(self.violation(format!(
                    "sku {sku}: hub holds {held} rights with {open} open units unreleased"
                )));
            }
            let h = &self.hub.rights[sku];
            let handed: i64 = self
                .hub
                .orders
                .values()
                .filter(|o| o.state == OrderState::HandedOver)
                .filter_map(|o| o.lines.get(&sku))
                .sum();
            // A conflicted order was consumed twice and released once, so
            // it counts once, among the handed over.
            if h.consumed - h.released != open + handed {
                return Err(self.violation(format!(
                    "sku {sku}: hub books do not add up: {h:?}, {handed} handed over, {open} open"
                )));
            }
            if self.hub.store_seen[sku].delivered != handed {
                return Err(self.violation(format!(
                    "sku {sku}: store reported {} delivered, hub knows {handed} handed over",
                    self.hub.store_seen[sku].delivered
                )));
            }
        }
        Ok(())
    }

    /// Heals the link and syncs until nothing changes, then checks the
    /// invariants a settled system must meet (I3). Fills in
    /// [`Tally::oversold_units`] and [`Tally::stuck_deficit`].
    pub fn quiesce(&mut self) -> Result<(), Violation> {
        self.up = true;
        let mut rounds = 0;
        loop {
            let before = (self.store.clone(), self.hub.clone());
            self.sync_up()?;
            self.sync_down()?;
            if (&self.store, &self.hub) == (&before.0, &before.1) {
                break;
            }
            rounds += 1;
            if rounds > 50 {
                return Err(self.violation("no quiescence after 50 sync rounds".into()));
            }
        }
        self.check_settled()
    }

    fn check_settled(&mut self) -> Result<(), Violation> {
        for (id, ho) in &self.hub.orders {
            match self.store.orders.get(id) {
                Some(so) if so.state == ho.state => {}
                other => {
                    return Err(self.violation(format!(
                        "order {id}: hub says {:?}, store {:?}",
                        ho.state,
                        other.map(|o| o.state)
                    )));
                }
            }
        }
        let (mut handed, mut open, mut released) = (0u64, 0u64, 0u64);
        for o in self.hub.orders.values() {
            match o.state {
                OrderState::HandedOver => handed += 1,
                OrderState::Open => open += 1,
                OrderState::Released(_) => released += 1,
            }
        }
        if handed + open + released != self.tally.orders_accepted {
            return Err(self.violation(format!(
                "{} orders accepted but {handed} handed over + {open} open + {released} released",
                self.tally.orders_accepted
            )));
        }
        let mut oversold = 0;
        let mut stuck = 0;
        for sku in 0..self.skus() {
            let open = self.hub_open_qty(sku);
            oversold += (open - self.store.on_hand[sku]).max(0);
            if self.scheme != Scheme::Rights {
                continue;
            }
            let s = self.store.rights[sku];
            let h = self.hub.rights[sku];
            if self.hub.store_seen[sku] != s || self.store.hub_seen[sku] != h {
                return Err(self.violation(format!("sku {sku}: views disagree after quiescing")));
            }
            if open > self.store.on_hand[sku] {
                return Err(self.violation(format!(
                    "sku {sku}: {open} units open online, {} on the shelf",
                    self.store.on_hand[sku]
                )));
            }
            let held = rights::hub_held(&s, &h);
            // Units the store keeps for the hub are the hub's rights plus
            // its open orders, to the unit.
            // (unclamped: after a cancel that lost to a hand-over the hub
            // may owe a right until the store lends again)
            let kept = s.lent - s.overdraft - h.returned - s.delivered - rights::unanswered(&s, &h);
            if kept != held + open {
                return Err(self.violation(format!(
                    "sku {sku}: store keeps {kept}, hub holds {held} + {open} open"
                )));
            }
            if held < 0 {
                stuck += -held;
            }
        }
        self.tally.oversold_units = oversold;
        self.tally.stuck_deficit = stuck;
        self.tally.stuck_runs = u64::from(stuck > 0);
        Ok(())
    }
}

/// Runs `events` from a fresh store and quiesces.
pub fn run(
    scheme: Scheme,
    initial: &[i64],
    events: &[Event],
    seed: u64,
) -> Result<(Sim, Tally), Violation> {
    let mut sim = Sim::new(scheme, initial, seed)?;
    for e in events {
        sim.apply(e)?;
    }
    sim.quiesce()?;
    let tally = sim.tally;
    Ok((sim, tally))
}

/// How often and how long the link fails in a [`Workload`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outages {
    None,
    /// Cuts of 5–15 events, about one every 30 events.
    Short,
    /// Cuts of 80–200 events, long enough for the counter to sell into
    /// lent units.
    Long,
}

/// The shape of a random event stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    pub skus: usize,
    pub events: usize,
    pub outages: Outages,
    /// A live-stream burst once: 10–30 orders in a row for one SKU.
    pub burst: bool,
}

/// Draws a stream of events. `draw(n)` must return a number in `0..n`; the
/// caller brings the randomness (a seeded RNG in tests and benchmarks), so
/// equal draws give equal streams.
pub fn workload(w: &Workload, draw: &mut dyn FnMut(u64) -> u64) -> Vec<Event> {
    let skus = w.skus.max(1) as u64;
    let mut out = Vec::with_capacity(w.events + 32);
    let mut down_left = 0u64;
    let mut burst_left = w.burst;
    while out.len() < w.events {
        if down_left > 0 {
            down_left -= 1;
            if down_left == 0 {
                out.push(Event::Heal);
                continue;
            }
        } else {
            let (cut_pct, min, span) = match w.outages {
                Outages::None => (0, 0, 1),
                Outages::Short => (3, 5, 11),
                Outages::Long => (1, 80, 121),
            };
            if draw(100) < cut_pct {
                out.push(Event::Cut);
                down_left = min + draw(span);
                continue;
            }
        }
        if burst_left && draw(60) == 0 {
            burst_left = false;
            let sku = draw(skus) as usize;
            for _ in 0..10 + draw(21) {
                let qty = 1 + draw(2) as i64;
                out.push(Event::OnlineOrder {
                    lines: vec![(sku, qty)],
                });
            }
            continue;
        }
        let r = draw(100);
        let e = match r {
            0..=29 => Event::CounterSale {
                sku: draw(skus) as usize,
                qty: 1 + draw(3) as i64,
            },
            30..=36 => Event::Receipt {
                sku: draw(skus) as usize,
                qty: 5 + draw(16) as i64,
            },
            37..=54 => {
                let mut lines = vec![(draw(skus) as usize, 1 + draw(3) as i64)];
                if draw(4) == 0 {
                    lines.push((draw(skus) as usize, 1 + draw(2) as i64));
                }
                Event::OnlineOrder { lines }
            }
            55..=66 => Event::HandOver {
                pick: draw(1 << 16) as usize,
            },
            67..=69 => Event::Cancel {
                pick: draw(1 << 16) as usize,
            },
            // While cut off, sync slots become counter sales: the outage
            // is when the counter eats into lent units.
            _ if down_left > 0 => Event::CounterSale {
                sku: draw(skus) as usize,
                qty: 1 + draw(2) as i64,
            },
            _ if r.is_multiple_of(2) => Event::SyncUp,
            _ => Event::SyncDown,
        };
        out.push(e);
    }
    out
}
