//! What stock rights buy over a naive shared counter (DESIGN.md §5),
//! measured on the deterministic simulation: the real hub, the real stores
//! and the real sync over a virtual network. The same seeds run under both
//! schemes (the hub's `StockScheme`): the same steps are drawn, so the
//! counters sell, goods arrive and links fail alike, and only what the hub
//! accepts online differs. The table says how many online orders each
//! scheme accepted, what it refused, what settlement released (refunded,
//! flagged) and what it oversold: open online units that no shelf covers
//! once the chain is idle. Under rights that must be nothing (the run fails
//! otherwise); the naive counter's oversells are counted.
//!
//! Run with `cargo bench -p linli-sim --bench rights_bench` (`SEEDS=N`
//! seeds per cell, 24 by default).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use linli_hub::settings::StockScheme;
use linli_sim::world::{OnlineReport, Units};
use linli_sim::{Settings, run};

#[derive(Default)]
struct Cell {
    runs: usize,
    placed: usize,
    refused: usize,
    handed_over: usize,
    released: usize,
    conflicts: usize,
    units_placed: Units,
    units_refused: Units,
    units_released: Units,
    oversold: Units,
    runs_oversold: usize,
    secs: f64,
}

impl Cell {
    fn add(&mut self, o: &OnlineReport, secs: f64) {
        self.runs += 1;
        self.placed += o.placed;
        self.refused += o.refused;
        self.handed_over += o.handed_over;
        self.released += o.released;
        self.conflicts += o.conflicts;
        self.units_placed.sum(&o.units_placed);
        self.units_refused.sum(&o.units_refused);
        self.units_released.sum(&o.units_released);
        self.oversold.sum(&o.oversold);
        if o.oversold != Units::default() {
            self.runs_oversold += 1;
        }
        self.secs += secs;
    }
}

fn main() {
    let seeds: u64 = std::env::var("SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24);
    let scenarios = [("links stay up", false), ("cuts, crashes, restarts", true)];
    let schemes = [StockScheme::Rights, StockScheme::Naive];
    println!(
        "{seeds} seeds per cell, each a hub and 3 stores for 250 steps (the same seeds in every cell)"
    );
    println!(
        "{:<24} {:<6} {:>6} {:>7} {:>8} {:>8} {:>7} {:>21} {:>21} {:>21} {:>21} {:>9} {:>8}",
        "scenario",
        "scheme",
        "placed",
        "refused",
        "handed",
        "released",
        "confl",
        "units placed",
        "units refused",
        "units released",
        "oversold",
        "runs over",
        "s/seed"
    );
    for (name, outages) in scenarios {
        for scheme in schemes {
            let settings = Settings {
                outages,
                scheme,
                ..Settings::default()
            };
            let cell = Mutex::new(Cell::default());
            let next = AtomicU64::new(0);
            std::thread::scope(|s| {
                for _ in 0..2 {
                    s.spawn(|| {
                        loop {
                            let seed = next.fetch_add(1, Ordering::Relaxed);
                            if seed >= seeds {
                                break;
                            }
                            let start = Instant::now();
                            let report = run(seed, &settings)
                                .unwrap_or_else(|e| panic!("{name} {scheme:?}: {e:#}"));
                            let secs = start.elapsed().as_secs_f64();
                            cell.lock()
                                .expect("no panics while held")
                                .add(&report.online, secs);
                        }
                    });
                }
            });
            let c = cell.into_inner().expect("no panics while held");
            println!(
                "{:<24} {:<6} {:>6} {:>7} {:>8} {:>8} {:>7} {:>21} {:>21} {:>21} {:>21} {:>9} {:>8.2}",
                name,
                format!("{scheme:?}"),
                c.placed,
                c.refused,
                c.handed_over,
                c.released,
                c.conflicts,
                c.units_placed.to_string(),
                c.units_refused.to_string(),
                c.units_released.to_string(),
                c.oversold.to_string(),
                format!("{}/{}", c.runs_oversold, c.runs),
                c.secs / c.runs.max(1) as f64,
            );
        }
    }
    println!(
        "placed/refused: online orders the hub accepted/refused; released: orders settlement \
         refunded (flagged) after a counter overdraft; oversold: open online units no shelf covers \
         once idle; runs over: runs with any oversold unit"
    );
}
