//! What stock rights buy over a shared counter (DESIGN.md §5), measured on
//! the model in `linli_shared::rights_sim`: the same seeded workloads run
//! under both schemes, and the table says how many online orders each
//! accepted, how many units it oversold, how many orders it had to refund at
//! settlement and how many online units it refused. Also the cost of one
//! simulated event, invariant checks included.
//!
//! Run with `cargo bench -p linli-shared --bench rights_bench`.

use linli_shared::rights_sim::{Event, Outages, Scheme, Tally, Workload, run, workload};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

const RUNS: u64 = 1_000;
const EVENTS: usize = 300;
const INITIAL: [i64; 3] = [30, 30, 30];

struct Scenario {
    name: &'static str,
    outages: Outages,
    burst: bool,
}

const SCENARIOS: [Scenario; 3] = [
    Scenario {
        name: "no outage",
        outages: Outages::None,
        burst: false,
    },
    Scenario {
        name: "short outages",
        outages: Outages::Short,
        burst: false,
    },
    Scenario {
        name: "long outages + live burst",
        outages: Outages::Long,
        burst: true,
    },
];

fn streams(sc: &Scenario) -> Vec<Vec<Event>> {
    (0..RUNS)
        .map(|seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            let w = Workload {
                skus: INITIAL.len(),
                events: EVENTS,
                outages: sc.outages,
                burst: sc.burst,
            };
            workload(&w, &mut |n| rng.gen_range(0..n))
        })
        .collect()
}

fn main() {
    println!(
        "{RUNS} seeded workloads x {EVENTS} events per scenario, {} SKUs x {} units at start",
        INITIAL.len(),
        INITIAL[0]
    );
    println!(
        "{:<26} {:<6} {:>8} {:>9} {:>9} {:>8} {:>9} {:>9} {:>9} {:>10} {:>6} {:>9} {:>6} {:>8}",
        "scenario",
        "scheme",
        "accepted",
        "units in",
        "sold onl",
        "oversold",
        "released",
        "rel units",
        "refused u",
        "overdraft",
        "short",
        "conflicts",
        "stuck",
        "ns/event"
    );
    for sc in &SCENARIOS {
        let streams = streams(sc);
        for scheme in [Scheme::Rights, Scheme::Naive] {
            let mut total = Tally::default();
            let mut spent = Duration::ZERO;
            for (seed, ev) in (0u64..).zip(&streams) {
                let start = Instant::now();
                let outcome = run(scheme, &INITIAL, ev, seed);
                spent += start.elapsed();
                match outcome {
                    Ok((_, t)) => total.add(&t),
                    Err(v) => panic!("{} {scheme:?}: {v}", sc.name),
                }
            }
            let per_event = spent.as_nanos() / u128::from(total.events.max(1));
            println!(
                "{:<26} {:<6} {:>8} {:>9} {:>9} {:>8} {:>9} {:>9} {:>9} {:>10} {:>6} {:>9} {:>6} {:>8}",
                sc.name,
                format!("{scheme:?}"),
                total.orders_accepted,
                total.units_accepted,
                total.units_sold_online(),
                total.oversold_units,
                total.orders_released,
                total.units_released,
                total.units_refused,
                total.overdraft_units,
                total.shelf_short,
                total.conflicts,
                total.stuck_runs,
                per_event
            );
        }
    }
    println!(
        "units in: online units accepted; sold onl: accepted - cancelled - released - oversold; \
         oversold: open online units the shelf cannot cover after quiescing; \
         released: orders refunded (flagged) at settlement"
    );
}
