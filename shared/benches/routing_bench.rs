//! Routing bench: what the R-tree buys over scanning every store.
//!
//! Synthetic chains of 1,000, 10,000 and 100,000 stores spread over about
//! 100 km x 100 km around Hangzhou (30.27N 120.15E), service radii 1-5 km,
//! all from a seeded RNG so every run sees the same stores and customers.
//! For each chain: the index build time, then `route` for 100,000 customer
//! points with a `covers` closure that says Full for about 30 % of stores,
//! Partial for 20 % and Nothing for the rest (decided by hashing the id), and
//! a naive baseline on the same points (every store's `distance_m`, keep the
//! serving ones, sort, ask in order). The naive baseline runs on a prefix of
//! the points sized to keep the whole bench well under 30 s, and its outcome
//! is checked against `route` on every point it runs.
//!
//! Run: `cargo bench -p linli-shared --bench routing_bench`

use linli_shared::geo::{
    Alternative, Coverage, GeoPoint, RouteOutcome, StoreIndex, StoreSite, distance_m, route,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::hint::black_box;
use std::time::{Duration, Instant};

const CENTRE: (f64, f64) = (30.27, 120.15);
/// Half the side of the square, in degrees: 50 km north-south, and 50 km
/// east-west at this latitude (96.1 km per degree of longitude).
const HALF_LAT: f64 = 50.0 / 111.2;
const HALF_LON: f64 = 50.0 / 96.1;
const QUERIES: usize = 100_000;
/// Store-distance evaluations the naive baseline may spend per chain size.
const NAIVE_BUDGET: usize = 20_000_000;

fn point(rng: &mut StdRng) -> Result<GeoPoint, linli_shared::geo::GeoError> {
    GeoPoint::new(
        CENTRE.0 + rng.gen_range(-HALF_LAT..HALF_LAT),
        CENTRE.1 + rng.gen_range(-HALF_LON..HALF_LON),
    )
}

fn stores(n: usize, rng: &mut StdRng) -> Result<Vec<StoreSite>, Box<dyn std::error::Error>> {
    (0..n)
        .map(|i| {
            Ok(StoreSite {
                store_id: format!("S{i:06}"),
                name: format!("Lvyuan synthetic {i}"),
                district: "Synthetic".to_owned(),
                location: point(rng)?,
                service_radius_m: rng.gen_range(1_000..=5_000),
                opens: "07:00".to_owned(),
                closes: "22:00".to_owned(),
                name_en: None,
                region: None,
            })
        })
        .collect()
}

/// FNV-1a: a stable hash, so a store's coverage is the same in every run.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn covers(site: &StoreSite) -> Coverage {
    match fnv(&site.store_id) % 10 {
        0..=2 => Coverage::Full,
        3..=4 => Coverage::Partial {
            covered: vec!["P00001".to_owned()],
        },
        _ => Coverage::Nothing,
    }
}

/// The same decision without an index: every store's distance, then the
/// serving ones sorted by distance, asked nearest first.
fn naive_route(sites: &[StoreSite], at: GeoPoint) -> (Option<&StoreSite>, Vec<Alternative>, usize) {
    let mut serving: Vec<(f64, &StoreSite)> = sites
        .iter()
        .map(|s| (distance_m(at, s.location), s))
        .filter(|(d, s)| *d <= f64::from(s.service_radius_m))
        .collect();
    serving.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut alternatives = Vec::new();
    for (d, s) in &serving {
        match covers(s) {
            Coverage::Full => return (Some(s), alternatives, serving.len()),
            Coverage::Partial { covered } => alternatives.push(Alternative {
                store_id: s.store_id.clone(),
                name: s.name.clone(),
                distance_m: d.round() as u32,
                covered_skus: covered,
            }),
            Coverage::Nothing => {}
        }
    }
    let n = serving.len();
    (None, alternatives, n)
}

struct Stats {
    p50_ns: u128,
    p99_ns: u128,
    mean_ns: f64,
}

fn stats(mut ns: Vec<u128>) -> Stats {
    ns.sort_unstable();
    let pick = |q: f64| {
        ns.get(((ns.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0)
    };
    Stats {
        p50_ns: pick(0.5),
        p99_ns: pick(0.99),
        mean_ns: ns.iter().sum::<u128>() as f64 / ns.len().max(1) as f64,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(0x11_4E_11);
    let queries: Vec<GeoPoint> = (0..QUERIES)
        .map(|_| point(&mut rng))
        .collect::<Result<_, _>>()?;
    println!(
        "routing bench: {QUERIES} customer points over 100 km x 100 km around Hangzhou, \
         radii 1-5 km, covers = Full 30% / Partial 20% / Nothing 50%"
    );
    for n in [1_000, 10_000, 100_000] {
        let sites = stores(n, &mut rng)?;
        let input = sites.clone();
        let t = Instant::now();
        let index = StoreIndex::new(input);
        let build = t.elapsed();
        assert_eq!(index.len(), n);

        let (mut routed, mut partial_only, mut nothing, mut outside) = (0usize, 0, 0, 0);
        let mut serving_total = 0usize;
        let mut times = Vec::with_capacity(QUERIES);
        for &q in &queries {
            let t = Instant::now();
            let outcome = black_box(route(&index, black_box(q), covers));
            times.push(t.elapsed().as_nanos());
            match outcome {
                RouteOutcome::Routed { .. } => routed += 1,
                RouteOutcome::Unserved {
                    alternatives,
                    serving_stores,
                } => {
                    serving_total += serving_stores;
                    match (serving_stores, alternatives.is_empty()) {
                        (0, _) => outside += 1,
                        (_, false) => partial_only += 1,
                        (_, true) => nothing += 1,
                    }
                }
            }
        }
        let indexed = stats(times);

        let naive_n = (NAIVE_BUDGET / n).clamp(100, QUERIES);
        let mut times = Vec::with_capacity(naive_n);
        for &q in &queries[..naive_n] {
            let t = Instant::now();
            let naive = black_box(naive_route(&sites, black_box(q)));
            times.push(t.elapsed().as_nanos());
            let same = match route(&index, q, covers) {
                RouteOutcome::Routed { site, .. } => {
                    naive.0.map(|s| &s.store_id) == Some(&site.store_id)
                }
                RouteOutcome::Unserved {
                    alternatives,
                    serving_stores,
                } => naive.0.is_none() && naive.1 == alternatives && naive.2 == serving_stores,
            };
            assert!(same, "naive and indexed routing disagree at {q:?}");
        }
        let naive = stats(times);

        println!("\n{n} stores: build {:.2} ms", ms(build));
        println!(
            "  route (R-tree), {QUERIES} points: p50 {} ns, mean {:.0} ns, p99 {} ns; \
             outcomes: routed {routed}, only partial cover {partial_only}, no cover {nothing}, \
             outside every radius {outside} (unserved points had {:.1} serving stores on average)",
            indexed.p50_ns,
            indexed.mean_ns,
            indexed.p99_ns,
            serving_total as f64 / (QUERIES - routed).max(1) as f64,
        );
        println!(
            "  naive scan+sort, first {naive_n} points (same outcomes): p50 {} ns, mean {:.0} ns, p99 {} ns",
            naive.p50_ns, naive.mean_ns, naive.p99_ns
        );
        println!(
            "  naive / R-tree: {:.1}x at p50, {:.1}x on the mean",
            naive.p50_ns as f64 / indexed.p50_ns.max(1) as f64,
            naive.mean_ns / indexed.mean_ns.max(1.0)
        );
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\nload average at the end (1/5/15 min): {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("total bench time {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
