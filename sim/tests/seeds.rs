//! The simulation in CI: seeded runs of a hub and three stores through
//! cuts, lost answers and retries, store crashes and hub restarts, each
//! checked after every step and for convergence at the end: 96 seeds, in
//! two tests so both cores run them (~0.45 s a seed in a debug build),
//! and two bigger runs of 5 stores × 1,000 steps.
//! `SIM_SEEDS` runs more (`SIM_SEEDS=500 cargo test -p linli-sim --release`);
//! a failing seed prints its one-line reproduction. Wider sweeps run on
//! the binary: `linli-sim --seeds 0..3000 --jobs 2` (all pass, ~5 min).

use linli_sim::{Settings, check, run};

fn seeds() -> u64 {
    std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(96)
}

#[test]
fn seeded_runs_keep_every_invariant_and_converge() {
    runs_keep_every_invariant(0..seeds() / 2);
}

#[test]
fn more_seeded_runs_keep_every_invariant_and_converge() {
    runs_keep_every_invariant(seeds() / 2..seeds());
}

fn runs_keep_every_invariant(seeds: std::ops::Range<u64>) {
    let settings = Settings::default();
    let mut totals = [0usize; 11];
    for seed in seeds {
        let r = run(seed, &settings).unwrap_or_else(|e| panic!("{e:#}"));
        println!("{r}");
        for (t, n) in totals.iter_mut().zip([
            r.sales,
            r.refunds,
            r.cuts,
            r.store_crashes,
            r.stores_replaced,
            r.hub_restarts,
            r.answers_lost,
            r.online.placed,
            r.online.handed_over,
            r.online.released,
            r.coupons_used,
        ]) {
            *t += n;
        }
    }
    // the runs did what they are for: sales, orders and coupons through
    // every fault, and overdrafts the hub had to settle
    assert!(totals.iter().all(|n| *n > 0), "{totals:?}");
}

/// Bigger runs: 5 stores × 1,000 steps, where a day runs to ten parts,
/// crashes come close together and a PC is replaced several times a run.
/// Sweeps of this size found what the suite's size had not: a replaced PC
/// that never left recovery (seed 30007) and a recall answered short after
/// a recovered PC's time stood too early (seed 30366). Both seeds are
/// here; each takes some seconds in a debug build.
#[test]
fn bigger_runs_keep_every_invariant_and_converge() {
    let settings = Settings {
        stores: 5,
        steps: 1000,
        ..Settings::default()
    };
    let mut replaced = 0;
    for seed in [30007, 30366] {
        let r = run(seed, &settings).unwrap_or_else(|e| panic!("{e:#}"));
        println!("{r}");
        replaced += r.stores_replaced;
    }
    assert!(replaced > 0);
}

/// A failing seed is a one-line reproduction: two runs of a seed are the
/// same run, step by step, down to the ids, the pickup codes and the
/// bytes sent (each run on one thread, its ids drawn from the seed).
#[test]
fn the_same_seed_is_the_same_run() {
    let settings = Settings {
        steps: 120,
        ..Settings::default()
    };
    for seed in [3, 4] {
        let a = run(seed, &settings).unwrap_or_else(|e| panic!("{e:#}"));
        let b = run(seed, &settings).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(a.to_string(), b.to_string());
        // to the byte (the report rounds to kB): the hub's keys are drawn
        // from the seed too, so signed codes compress the same
        assert_eq!((a.bytes, a.frames), (b.bytes, b.frames));
        assert!(a.trace.len() >= 10, "{}", a.trace.len());
        assert_eq!(a.trace, b.trace);
    }
}

#[test]
fn the_checks_catch_a_lost_a_doubled_and_a_phantom_sale() {
    let answered: check::Sales = [("a".to_owned(), 100), ("b".to_owned(), 200)].into();
    let mut held = answered.clone();
    assert!(check::store_holds_what_it_answered("S001", &held, &answered).is_ok());
    held.remove("b");
    assert!(check::store_holds_what_it_answered("S001", &held, &answered).is_err());
    held.insert("b".into(), 200);
    held.insert("c".into(), 200);
    assert!(check::store_holds_what_it_answered("S001", &held, &answered).is_err());
    let once: std::collections::BTreeSet<String> = ["a".to_owned()].into();
    let at_hub: check::Sales = [("a".to_owned(), 100)].into();
    assert!(check::hub_holds_only_real_sales("S001", &at_hub, &answered, &once).is_ok());
    let phantom: check::Sales = [("a".to_owned(), 100), ("z".to_owned(), 1)].into();
    assert!(check::hub_holds_only_real_sales("S001", &phantom, &answered, &once).is_err());
    assert!(
        check::hub_holds_only_real_sales("S001", &check::Sales::new(), &answered, &once).is_err()
    );
    let levels: check::Levels = [("P00001".to_owned(), 5)].into();
    assert!(check::converged("S001", &answered, &answered, &levels, &levels).is_ok());
    assert!(check::converged("S001", &at_hub, &answered, &levels, &levels).is_err());
}

/// The oversell check sees oversells: the same seeds with the hub selling
/// against a naive shared counter (what it last heard of a shelf, minus its
/// open orders) leave online units no shelf covers, where the rights scheme
/// leaves none (a run under rights fails if it oversells).
#[test]
fn a_naive_counter_oversells_on_seeds_where_rights_never_do() {
    let mut naive = linli_sim::world::Units::default();
    for seed in 0..3 {
        let rights = run(seed, &Settings::default()).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(rights.online.oversold, Default::default(), "{rights}");
        let settings = Settings {
            scheme: linli_hub::settings::StockScheme::Naive,
            ..Settings::default()
        };
        let r = run(seed, &settings).unwrap_or_else(|e| panic!("{e:#}"));
        println!("{r}");
        naive.sum(&r.online.oversold);
    }
    assert!(naive.each + naive.grams > 0, "{naive}");
}
