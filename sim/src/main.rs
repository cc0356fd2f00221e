//! Runs seeds of the deterministic simulation.
//!
//! `linli-sim --seed 7` runs one seed (a failing seed's reproduction);
//! `linli-sim --seeds 0..500` runs a range and stops at the first failure.
//! `--steps N` and `--stores N` change the run's size; `--jobs N` runs N
//! seeds at once (each run is deterministic on its own). `--scheme naive`
//! lets the hub sell against a naive shared counter instead of stock rights
//! (its oversells are counted, not failures); `--outages off` keeps every
//! link up and nothing crashing. `SIM_LOG=warn` (a `tracing` filter) prints
//! what the hub and the stores log, on standard error.

use linli_hub::settings::StockScheme;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

fn main() -> std::process::ExitCode {
    if let Ok(filter) = std::env::var("SIM_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let mut settings = linli_sim::Settings::default();
    let mut seeds = 0..20u64;
    let mut jobs = 1usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_default();
        let parsed = match a.as_str() {
            "--seed" => v.parse().map(|s: u64| seeds = s..s + 1).ok(),
            "--seeds" => v.split_once("..").and_then(|(a, b)| {
                let (a, b) = (a.parse().ok()?, b.parse().ok()?);
                seeds = a..b;
                Some(())
            }),
            "--steps" => v.parse().map(|n| settings.steps = n).ok(),
            "--stores" => v.parse().map(|n| settings.stores = n).ok(),
            "--jobs" => v.parse().map(|n: usize| jobs = n.max(1)).ok(),
            "--scheme" => match v.as_str() {
                "rights" => Some(StockScheme::Rights),
                "naive" => Some(StockScheme::Naive),
                _ => None,
            }
            .map(|s| settings.scheme = s),
            "--outages" => match v.as_str() {
                "on" => Some(true),
                "off" => Some(false),
                _ => None,
            }
            .map(|o| settings.outages = o),
            _ => None,
        };
        if parsed.is_none() {
            eprintln!(
                "usage: linli-sim [--seed N | --seeds A..B] [--steps N] [--stores N] [--jobs N] \
                 [--scheme rights|naive] [--outages on|off]"
            );
            return std::process::ExitCode::from(2);
        }
    }
    let started = Instant::now();
    let n = seeds.end.saturating_sub(seeds.start);
    let next = AtomicU64::new(seeds.start);
    let failed = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= seeds.end {
                        break;
                    }
                    match linli_sim::run(seed, &settings) {
                        Ok(report) => println!("{report}"),
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            eprintln!("{e:#}");
                        }
                    }
                }
            });
        }
    });
    if failed.load(Ordering::Relaxed) {
        return std::process::ExitCode::FAILURE;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{n} seeds passed in {secs:.1} s ({:.0} ms a seed, {jobs} at once)",
        secs * 1000.0 / n.max(1) as f64
    );
    std::process::ExitCode::SUCCESS
}
