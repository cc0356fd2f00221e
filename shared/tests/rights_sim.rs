//! The bounded counter of stock rights in motion (DESIGN.md §5): one store
//! and the hub over a link that fails, driven by seeded random workloads and
//! by hand-written outages. The model checks its invariants after every
//! event and after quiescing (see `linli_shared::rights_sim`); these tests
//! only choose the workloads and look at the outcomes.

use linli_shared::rights_sim::{
    Event, OrderState, Outages, Release, Scheme, Sim, Tally, Workload, run, workload,
};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const INITIAL: [i64; 3] = [30, 30, 30];

fn events(seed: u64, outages: Outages, burst: bool) -> Vec<Event> {
    let mut rng = StdRng::seed_from_u64(seed);
    let w = Workload {
        skus: INITIAL.len(),
        events: 300,
        outages,
        burst,
    };
    workload(&w, &mut |n| rng.gen_range(0..n))
}

/// Runs both schemes on the same stream; panics with the seed and event
/// number on any broken invariant.
fn both(seed: u64, outages: Outages, burst: bool) -> (Tally, Tally) {
    let ev = events(seed, outages, burst);
    let rights = match run(Scheme::Rights, &INITIAL, &ev, seed) {
        Ok((_, t)) => t,
        Err(v) => panic!("rights, {outages:?}, burst {burst}: {v}"),
    };
    let naive = match run(Scheme::Naive, &INITIAL, &ev, seed) {
        Ok((_, t)) => t,
        Err(v) => panic!("naive, {outages:?}, burst {burst}: {v}"),
    };
    (rights, naive)
}

fn outages(i: u64) -> Outages {
    match i % 3 {
        0 => Outages::None,
        1 => Outages::Short,
        _ => Outages::Long,
    }
}

#[test]
fn fixed_seeds_never_oversell_and_settle_every_overdraft() {
    let mut rights = Tally::default();
    let mut naive = Tally::default();
    for seed in 0..200 {
        for kind in 0..3 {
            let (r, n) = both(seed, outages(kind), seed % 2 == 0);
            assert_eq!(r.oversold_units, 0, "seed {seed}");
            rights.add(&r);
            naive.add(&n);
        }
    }
    // The workloads do reach the interesting cases, or the test proves little.
    assert!(rights.overdraft_units > 0, "{rights:?}");
    assert!(rights.orders_released > 0, "{rights:?}");
    assert!(rights.conflicts > 0, "{rights:?}");
    assert!(naive.oversold_units > 0, "{naive:?}");
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        rng_seed: RngSeed::Fixed(0x5EED_0005),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_workloads_never_oversell(seed in any::<u64>(), kind in 0..3u64, burst in any::<bool>()) {
        let (r, _) = both(seed, outages(kind), burst);
        prop_assert_eq!(r.oversold_units, 0);
    }
}

fn sale(sku: usize, qty: i64) -> Event {
    Event::CounterSale { sku, qty }
}

fn order(sku: usize, qty: i64) -> Event {
    Event::OnlineOrder {
        lines: vec![(sku, qty)],
    }
}

fn apply(sim: &mut Sim, events: &[Event]) {
    for e in events {
        if let Err(v) = sim.apply(e) {
            panic!("{v}");
        }
    }
}

fn new(scheme: Scheme, initial: &[i64]) -> Sim {
    match Sim::new(scheme, initial, 0) {
        Ok(sim) => sim,
        Err(v) => panic!("{v}"),
    }
}

fn quiesce(sim: &mut Sim) {
    if let Err(v) = sim.quiesce() {
        panic!("{v}");
    }
}

fn state(sim: &Sim, id: u64) -> Option<OrderState> {
    sim.hub().orders.get(&id).map(|o| o.state)
}

#[test]
fn an_outage_overdraft_releases_the_newest_orders() {
    // 30 on hand: the store lends the hub 40% = 12 and keeps the rest.
    let outage = [
        Event::Cut,
        order(0, 4),
        order(0, 4),
        order(0, 4),
        // the hub has sold every right it held: the next order is refused
        order(0, 1),
        // the counter sells 26 of 30: 8 of the units lent to the hub are gone
        sale(0, 26),
        Event::Heal,
    ];
    let mut sim = new(Scheme::Rights, &[30]);
    assert_eq!(sim.hub_held(0), 12);
    apply(&mut sim, &outage);
    assert_eq!(sim.tally().orders_refused, 1);
    assert_eq!(sim.store().rights[0].overdraft, 8);
    quiesce(&mut sim);
    // newest first: the customers who ordered last are refunded and flagged
    assert_eq!(state(&sim, 0), Some(OrderState::Open));
    for id in [1, 2] {
        assert_eq!(
            state(&sim, id),
            Some(OrderState::Released(Release::Refunded))
        );
        assert!(sim.hub().orders[&id].flagged);
    }
    assert_eq!(sim.store().on_hand[0], 4);
    assert!(sim.hub_held(0) >= 0);
    apply(&mut sim, &[Event::HandOver { pick: 0 }]);
    assert_eq!(state(&sim, 0), Some(OrderState::Open));
    assert_eq!(sim.store().orders[&0].state, OrderState::HandedOver);
    assert_eq!(sim.tally().shelf_short, 0);

    // The same outage against a shared counter accepts all four orders (13
    // units) with 4 left on the shelf.
    let mut naive = new(Scheme::Naive, &[30]);
    apply(&mut naive, &outage);
    quiesce(&mut naive);
    assert_eq!(naive.tally().oversold_units, 9);
    assert_eq!(naive.tally().orders_released, 0);
}

#[test]
fn a_cancel_during_an_outage_gives_the_rights_back_at_once() {
    let mut sim = new(Scheme::Rights, &[30]);
    apply(
        &mut sim,
        &[
            Event::Cut,
            order(0, 5),
            order(0, 5),
            Event::Cancel { pick: 0 },
        ],
    );
    assert_eq!(sim.hub_held(0), 7);
    // the freed rights sell again before the link heals
    apply(&mut sim, &[order(0, 7)]);
    assert_eq!(sim.hub_held(0), 0);
    apply(&mut sim, &[Event::Heal]);
    quiesce(&mut sim);
    assert_eq!(
        state(&sim, 0),
        Some(OrderState::Released(Release::Cancelled))
    );
    assert!(!sim.hub().orders[&0].flagged);
    assert_eq!(sim.store().rights[0].overdraft, 0);
    assert_eq!(sim.tally().orders_released, 0);
}

#[test]
fn a_cancel_that_loses_to_an_offline_hand_over_consumes_again() {
    let mut sim = new(Scheme::Rights, &[30]);
    apply(
        &mut sim,
        &[
            order(0, 3),
            Event::SyncDown,
            Event::Cut,
            // the customer collects at the store while cancelling online
            Event::HandOver { pick: 0 },
            Event::Cancel { pick: 0 },
        ],
    );
    assert_eq!(sim.hub_held(0), 12);
    quiesce(&mut sim);
    let o = &sim.hub().orders[&0];
    assert_eq!(o.state, OrderState::HandedOver);
    assert!(o.conflict);
    assert_eq!(sim.tally().conflicts, 1);
    // the hub's books count the order as sold, as if never cancelled
    let h = sim.hub().rights[0];
    assert_eq!(h.consumed - h.released, 3);
}

#[test]
fn receipts_during_an_outage_lend_more_after_the_heal() {
    let mut sim = new(Scheme::Rights, &[10]);
    assert_eq!(sim.hub_held(0), 4);
    apply(
        &mut sim,
        &[
            Event::Cut,
            Event::Receipt { sku: 0, qty: 50 },
            order(0, 4),
            // the hub cannot know of the receipt yet
            order(0, 3),
        ],
    );
    assert_eq!(sim.tally().orders_refused, 1);
    // the store lent its share of the receipt while cut off
    assert_eq!(sim.store().rights[0].lent, 24);
    apply(&mut sim, &[Event::Heal]);
    quiesce(&mut sim);
    // 24 lent, 4 sold, and the 3 the hub could not serve lent on top
    assert_eq!(sim.hub_held(0), 27);
    apply(&mut sim, &[order(0, 3)]);
    assert_eq!(sim.tally().orders_accepted, 2);
}

/// The race this simulation found: the hub answers a recall and the link
/// fails before the store hears of it; the counter then sells. A recall
/// counts as the store's from the moment it is asked, so the store records
/// no overdraft for units already given back, no order is refunded for it,
/// and the hub is never left below zero.
#[test]
fn a_return_racing_a_counter_sale_is_counted_once() {
    let start = [
        // 14 left, 12 kept for the hub: below safety, the store recalls 2
        sale(0, 16),
        // the hub returns them, but the link fails before the store hears
        Event::SyncUp,
    ];
    let mut sim = new(Scheme::Rights, &[30]);
    apply(&mut sim, &start);
    assert_eq!(sim.hub().rights[0].returned, 2);
    apply(
        &mut sim,
        &[
            order(0, 5),
            order(0, 5),
            Event::Cut,
            sale(0, 4),
            Event::Heal,
        ],
    );
    // 10 on the shelf cover both orders, and the store knows it
    assert_eq!(sim.store().rights[0].overdraft, 0);
    quiesce(&mut sim);
    assert_eq!(sim.store().on_hand[0], 10);
    assert_eq!(state(&sim, 0), Some(OrderState::Open));
    assert_eq!(state(&sim, 1), Some(OrderState::Open));
    assert_eq!(sim.tally().oversold_units, 0);

    // with no order to release, the hub is not left below zero either
    let mut sim = new(Scheme::Rights, &[30]);
    apply(&mut sim, &start);
    apply(&mut sim, &[Event::Cut, sale(0, 14), Event::Heal]);
    quiesce(&mut sim);
    assert!(sim.hub_held(0) >= 0);
    assert_eq!(sim.tally().stuck_deficit, 0);
}
