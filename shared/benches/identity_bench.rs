//! Identity bench: how well the resolver finds one customer across channels
//! on `data/identities.csv`, against a naive baseline, and how fast it runs.
//!
//! Prints, against the file's `true_customer_id`:
//! - pairwise precision and recall of two naive resolvers (merge on any
//!   shared raw value of phone, openid, unionid or member card; and the same
//!   with the written forms of a phone unified but junk kept) and of ours;
//! - merges each made on a junk identifier (ours must make none);
//! - the pairs ours gets wrong, by category, and which are undecidable;
//! - throughput on 100,000 records made from the file's by seeded
//!   perturbation (each of 15 copies a disjoint population: identifiers
//!   suffixed, mobiles shifted; then a phone rewritten in another form, an
//!   identifier dropped, or junk typed, at random), in records per second.
//!
//! Run: `cargo bench -p linli-shared --bench identity_bench`

use linli_shared::identity::{
    PhoneReading, Resolution, Rule, SourceRecord, pairwise, parse_identities_csv, read_phone,
    read_token, resolve,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

const SCALE: usize = 100_000;
const RUNS: usize = 5;

fn load() -> Result<(Vec<SourceRecord>, Vec<String>), Box<dyn std::error::Error>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/identities.csv");
    let parsed = parse_identities_csv(&std::fs::read(path)?)?;
    if !parsed.rejected.is_empty() {
        return Err(format!("rejected rows: {:?}", parsed.rejected).into());
    }
    let mut records = Vec::new();
    let mut truth = Vec::new();
    for row in parsed.rows {
        truth.push(
            row.true_customer_id
                .ok_or("a row without true_customer_id")?,
        );
        records.push(row.record);
    }
    Ok((records, truth))
}

struct Uf(Vec<usize>);

impl Uf {
    fn find(&mut self, mut x: usize) -> usize {
        while self.0[x] != x {
            self.0[x] = self.0[self.0[x]];
            x = self.0[x];
        }
        x
    }
    fn union(&mut self, a: usize, b: usize) -> bool {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            self.0[a.max(b)] = a.min(b);
        }
        a != b
    }
}

/// Merges on any shared value; `phone` maps the raw phone to its key.
/// Returns each record's group and how many merges used a junk value.
fn naive(records: &[SourceRecord], phone: fn(&str) -> String) -> (Vec<usize>, usize) {
    let mut uf = Uf((0..records.len()).collect());
    let mut first: HashMap<(u8, String), usize> = HashMap::new();
    let mut junk = 0;
    for (i, r) in records.iter().enumerate() {
        let keys = [
            (
                0,
                phone(&r.phone),
                !matches!(read_phone(&r.phone), PhoneReading::Mobile(_)),
            ),
            (1, r.openid.clone(), read_token(&r.openid).is_none()),
            (2, r.unionid.clone(), read_token(&r.unionid).is_none()),
            (
                3,
                r.member_card.clone(),
                read_token(&r.member_card).is_none(),
            ),
        ];
        for (field, value, is_junk) in keys {
            if value.is_empty() {
                continue;
            }
            match first.get(&(field, value.clone())) {
                Some(&j) => {
                    if uf.union(i, j) && is_junk {
                        junk += 1;
                    }
                }
                None => {
                    first.insert((field, value), i);
                }
            }
        }
    }
    ((0..records.len()).map(|i| uf.find(i)).collect(), junk)
}

/// Phone written forms unified (digits only, `86` prefix dropped), junk kept.
fn digits(raw: &str) -> String {
    let d: String = raw.chars().filter(char::is_ascii_digit).collect();
    match d.strip_prefix("86") {
        Some(rest) if d.len() == 13 => rest.to_owned(),
        _ => d,
    }
}

fn groups_of(res: &Resolution, records: &[SourceRecord]) -> Vec<usize> {
    let of: HashMap<&str, usize> = res
        .clusters
        .iter()
        .enumerate()
        .flat_map(|(c, cl)| cl.records.iter().map(move |r| (r.as_str(), c)))
        .collect();
    records.iter().map(|r| of[r.record_id.as_str()]).collect()
}

/// Merges whose value the normaliser refuses (must be none).
fn junk_merges(res: &Resolution) -> usize {
    res.clusters
        .iter()
        .flat_map(|c| &c.merges)
        .filter(|m| match m.rule {
            Rule::Phone => !matches!(read_phone(&m.value), PhoneReading::Mobile(_)),
            Rule::NameOnSharedPhone | Rule::NameAtStore => m
                .value
                .rsplit_once('@')
                .is_none_or(|(name, _)| read_token(name).is_none()),
            _ => read_token(&m.value).is_none(),
        })
        .count()
}

fn usable(r: &SourceRecord) -> bool {
    matches!(read_phone(&r.phone), PhoneReading::Mobile(_))
        || [&r.openid, &r.unionid, &r.member_card, &r.nickname]
            .iter()
            .any(|f| read_token(f).is_some())
}

/// Wrong pairs by category, with the reason each is (un)decidable.
fn errors(res: &Resolution, records: &[SourceRecord], truth: &[String], group: &[usize]) {
    let idx: HashMap<&str, usize> = records
        .iter()
        .enumerate()
        .map(|(i, r)| (r.record_id.as_str(), i))
        .collect();
    // False merges: the merges that join two people, by rule, with the pairs
    // they cost (the product of the two sides' sizes is an upper bound; we
    // count the real wrong pairs per cluster and attribute them to the rules
    // of its cross-person merges).
    let mut cross: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for c in &res.clusters {
        let mut per: HashMap<&str, u64> = HashMap::new();
        for r in &c.records {
            *per.entry(truth[idx[r.as_str()]].as_str()).or_default() += 1;
        }
        if per.len() < 2 {
            continue;
        }
        let n = c.records.len() as u64;
        let wrong = n * (n - 1) / 2 - per.values().map(|k| k * (k - 1) / 2).sum::<u64>();
        let bridges: Vec<&str> = c
            .merges
            .iter()
            .filter(|m| truth[idx[m.a.as_str()]] != truth[idx[m.b.as_str()]])
            .map(|m| m.rule.as_str())
            .collect();
        for (k, rule) in bridges.iter().enumerate() {
            let e = cross.entry(rule).or_default();
            e.0 += 1;
            if k == 0 {
                e.1 += wrong;
            }
        }
    }
    println!(
        "  wrong merges (joining two people), by rule: merges, wrong pairs of their customers"
    );
    for (rule, (m, p)) in &cross {
        println!("    {rule:<22} {m:>4} merges {p:>5} pairs");
    }
    println!(
        "    why: a household phone where only one member ever shows a unionid, card or name looks\n    \
         exactly like one person's phone (undecidable from these columns); a name at a store shared by\n    \
         two people each seen once with it (undecidable)."
    );
    // Missed pairs: same person, different customers.
    let mut by_person: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, t) in truth.iter().enumerate() {
        by_person.entry(t.as_str()).or_default().push(i);
    }
    // What each customer carries, to see whether two parts of one person
    // share anything at all.
    let mut keys: HashMap<usize, Vec<String>> = HashMap::new();
    for (i, r) in records.iter().enumerate() {
        let k = keys.entry(group[i]).or_default();
        if let PhoneReading::Mobile(p) = read_phone(&r.phone) {
            k.push(format!("p:{p}"));
        }
        for (tag, f) in [
            ("o", &r.openid),
            ("u", &r.unionid),
            ("c", &r.member_card),
            ("n", &r.nickname),
        ] {
            if let Some(v) = read_token(f) {
                k.push(format!("{tag}:{v}"));
            }
        }
    }
    let mut missed: BTreeMap<&str, u64> = BTreeMap::new();
    for ids in by_person.values() {
        for (k, &i) in ids.iter().enumerate() {
            for &j in &ids[k + 1..] {
                if group[i] == group[j] {
                    continue;
                }
                let (ki, kj) = (&keys[&group[i]], &keys[&group[j]]);
                let shared: Vec<&String> = ki.iter().filter(|v| kj.contains(v)).collect();
                let category = if !usable(&records[i]) || !usable(&records[j]) {
                    "junk_or_no_identifier"
                } else if shared.iter().any(|v| {
                    v.strip_prefix("p:")
                        .is_some_and(|p| res.ambiguous_phones.keys().any(|m| m.as_str() == p))
                }) {
                    "shared_phone"
                } else if shared.iter().any(|v| v.starts_with("n:")) {
                    "name_only"
                } else if !shared.is_empty() {
                    "refused_by_conflict"
                } else {
                    "nothing_in_common"
                };
                *missed.entry(category).or_default() += 1;
            }
        }
    }
    println!("  missed pairs (one person, two customers), by category:");
    for (cat, n) in &missed {
        let why = match *cat {
            "junk_or_no_identifier" => {
                "undecidable: one record carries only junk or nothing (a till sale with `0`)"
            }
            "shared_phone" => {
                "undecidable for till records: the phone is a household's, and a till record with\n        \
                 only that phone could be either member's; decidable only via a name (rule 3)"
            }
            "refused_by_conflict" => "a join was refused: two names or cards would meet",
            "name_only" => {
                "the two customers share only a name (at another store, or a name several people\n        \
                 there carry): names are not identifiers, so left apart"
            }
            _ => {
                "the two customers share no identifier at all (a second openid without unionid or\n        \
                 phone, a card without phone): undecidable from these columns"
            }
        };
        println!("    {cat:<24} {n:>6} pairs  {why}");
    }
}

/// 100,000 records from the file's: copy `k` of the population gets its
/// identifiers suffixed and its mobiles shifted, so copies are disjoint
/// people; then seeded noise.
fn scaled(records: &[SourceRecord], n: usize, rng: &mut StdRng) -> Vec<SourceRecord> {
    (0..n)
        .map(|k| {
            let base = &records[k % records.len()];
            let copy = k / records.len();
            let sfx = |s: &str| {
                if read_token(s).is_some() && copy > 0 {
                    format!("{s}_{copy}")
                } else {
                    s.to_owned()
                }
            };
            let mut r = SourceRecord {
                record_id: format!("X{copy:02}{}", base.record_id),
                source: base.source.clone(),
                phone: base.phone.clone(),
                openid: sfx(&base.openid),
                unionid: sfx(&base.unionid),
                member_card: sfx(&base.member_card),
                nickname: base.nickname.clone(),
                store_id: format!("{}-{copy}", base.store_id),
            };
            if let PhoneReading::Mobile(m) = read_phone(&base.phone) {
                let s = m.as_str();
                let rest: u64 = s[3..].parse().unwrap_or(0);
                let shifted = format!(
                    "{}{:08}",
                    &s[..3],
                    (rest + copy as u64 * 7_919) % 100_000_000
                );
                r.phone = match rng.gen_range(0..4) {
                    0 => shifted,
                    1 => format!("+86 {} {} {}", &shifted[..3], &shifted[3..7], &shifted[7..]),
                    2 => format!("{}-{}-{}", &shifted[..3], &shifted[3..7], &shifted[7..]),
                    _ => format!("86{shifted}"),
                };
            }
            match rng.gen_range(0..100) {
                0..=2 => r.openid.clear(),
                3..=4 => r.phone = ["0", "null", "-", "anonymous"][rng.gen_range(0..4)].to_owned(),
                5 => r.member_card.clear(),
                _ => {}
            }
            r
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (records, truth) = load()?;
    println!("identity bench: {} records, {} people", records.len(), {
        let mut t: Vec<&String> = truth.iter().collect();
        t.sort();
        t.dedup();
        t.len()
    });

    let (raw, raw_junk) = naive(&records, str::to_owned);
    let s = pairwise(&raw, &truth);
    println!(
        "  naive, any shared raw value          precision {:.3} recall {:.3}  merges on junk {raw_junk}",
        s.precision(),
        s.recall()
    );
    let (dig, dig_junk) = naive(&records, digits);
    let s = pairwise(&dig, &truth);
    println!(
        "  naive, phone forms unified, junk kept precision {:.3} recall {:.3}  merges on junk {dig_junk}",
        s.precision(),
        s.recall()
    );

    let res = resolve(&records, &[])?;
    let group = groups_of(&res, &records);
    let s = pairwise(&group, &truth);
    println!(
        "  linli resolver                       precision {:.4} recall {:.4}  merges on junk {}",
        s.precision(),
        s.recall(),
        junk_merges(&res)
    );
    println!(
        "    pairs: {} predicted, {} true, {} actual; {} customers; {} phones left ambiguous",
        s.predicted_pairs,
        s.true_pairs,
        s.actual_pairs,
        res.clusters.len(),
        res.ambiguous_phones.len()
    );
    let mut by_rule: BTreeMap<&str, usize> = BTreeMap::new();
    for m in res.clusters.iter().flat_map(|c| &c.merges) {
        *by_rule.entry(m.rule.as_str()).or_default() += 1;
    }
    println!("    merges by rule: {by_rule:?}");
    errors(&res, &records, &truth, &group);

    let mut rng = StdRng::seed_from_u64(12);
    let big = scaled(&records, SCALE, &mut rng);
    let mut best = f64::INFINITY;
    let mut customers = 0;
    for _ in 0..RUNS {
        let t = Instant::now();
        let res = resolve(std::hint::black_box(&big), &[])?;
        best = best.min(t.elapsed().as_secs_f64());
        customers = res.clusters.len();
    }
    println!(
        "  throughput: {SCALE} records -> {customers} customers in {:.1} ms (best of {RUNS}), {:.0} records/s",
        best * 1e3,
        SCALE as f64 / best
    );
    if cfg!(debug_assertions) {
        println!("  (debug build: run with `cargo bench` for the release figure)");
    }
    Ok(())
}
