//! Linli: which automerge to pin?
//!
//! Measures, for automerge 0.12.0, 0.6.1 and 0.5.12, with a document shaped
//! like a store ledger (root map `sales`: sale_id -> {ticket_no, total_fen,
//! lines: [3 x {sku, qty, total_fen}]}, one sale per committed transaction):
//!
//! 1. cost of applying ONE remote change at several history lengths
//!    (a "follower" change from the document's own writer, as the hub sees
//!    store changes, and a change from a forked replica with another actor);
//! 2. cost per change of applying a batch of 100 remote changes;
//! 3. local transaction cost;
//! 4. save() size and time, load() time, heap and RSS held by a loaded doc;
//! 5. sync protocol: time and bytes for a backlog with a fresh vs a persisted
//!    `sync::State`.
//!
//! Run: `cargo run --release` (all versions, default sizes), or e.g.
//! `cargo run --release -- --sizes 1000,5000 --versions 0.12,0.6 --backlog 5000`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

// ---------------------------------------------------------------- allocator

/// Counts live heap bytes and their peak, so memory per document can be read
/// exactly (RSS is also reported, but glibc keeps freed pages around).
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn note_alloc(n: usize) {
    let now = LIVE.fetch_add(n, Relaxed) + n;
    PEAK.fetch_max(now, Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            note_alloc(l.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(l);
        if !p.is_null() {
            note_alloc(l.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l);
        LIVE.fetch_sub(l.size(), Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = System.realloc(p, l, new);
        if !q.is_null() {
            if new >= l.size() {
                note_alloc(new - l.size());
            } else {
                LIVE.fetch_sub(l.size() - new, Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

extern "C" {
    fn malloc_trim(pad: usize) -> i32;
}

fn trim() {
    unsafe {
        malloc_trim(0);
    }
}

fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<usize>().ok()))
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

// ---------------------------------------------------------------- helpers

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let m = s.len() / 2;
    if s.len() % 2 == 0 {
        (s[m - 1] + s[m]) / 2.0
    } else {
        s[m]
    }
}

fn pct(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    s[((s.len() as f64 - 1.0) * p).round() as usize]
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn mb(b: usize) -> f64 {
    b as f64 / 1_048_576.0
}

/// One sale, as the edge node would write it (ids are ULID-shaped strings).
struct Sale {
    id: String,
    ticket_no: String,
    total_fen: i64,
    lines: [(String, i64, i64); 3],
}

fn make_sale(n: u64, rng: &mut Rng) -> Sale {
    let mut lines: [(String, i64, i64); 3] = Default::default();
    let mut total = 0;
    for l in lines.iter_mut() {
        let qty = (rng.next() % 5 + 1) as i64;
        let price = (rng.next() % 5000 + 100) as i64;
        *l = (format!("69{:011}", rng.next() % 100_000_000_000), qty, qty * price);
        total += qty * price;
    }
    Sale {
        id: format!("01J{:011}{:012}", n, rng.next() % 1_000_000_000_000),
        ticket_no: format!("T{:08}", n),
        total_fen: total,
        lines,
    }
}

// ---------------------------------------------------------------- results

#[derive(Default, Clone)]
struct SizeRow {
    n: usize,
    local_med_ms: f64,
    local_mean_ms: f64,
    last_change_ms: f64,
    change_bytes: f64,
    apply_follow_med_ms: f64,
    apply_follow_p90_ms: f64,
    apply_remote_med_ms: f64,
    apply_remote_p90_ms: f64,
    batch_per_change_ms: f64,
    save_ms: f64,
    save_bytes: usize,
    load_ms: f64,
    heap_after_load: usize,
    peak_heap_load: usize,
    rss_delta: isize,
}

#[derive(Default, Clone)]
struct SyncRow {
    name: String,
    converged: bool,
    rounds: usize,
    msgs: usize,
    bytes_ab: usize,
    bytes_ba: usize,
    ms: f64,
}

struct VersionResult {
    label: &'static str,
    rows: Vec<SizeRow>,
    syncs: Vec<SyncRow>,
    state_bytes: usize,
    secs: f64,
}

struct Config {
    sizes: Vec<usize>,
    backlog: usize,
    applies: usize,
    batches: usize,
}

// ---------------------------------------------------------------- per version

macro_rules! version_bench {
    ($modname:ident, $krate:ident, $label:expr) => {
        mod $modname {
            use super::*;
            use $krate as am;
            use am::sync::{self, SyncDoc};
            use am::transaction::Transactable;
            use am::{AutoCommit, Change, ObjId, ObjType, ReadDoc, ROOT};

            pub const LABEL: &str = $label;

            fn new_doc() -> AutoCommit {
                let mut doc = AutoCommit::new();
                doc.put_object(ROOT, "sales", ObjType::Map).unwrap();
                doc.commit();
                doc
            }

            fn sales_of(doc: &AutoCommit) -> ObjId {
                doc.get(ROOT, "sales").unwrap().expect("sales map").1
            }

            /// One sale = one committed transaction = one change (16 ops).
            fn add_sale(doc: &mut AutoCommit, sales: &ObjId, n: u64, rng: &mut Rng) {
                let s = make_sale(n, rng);
                let m = doc.put_object(sales, s.id.as_str(), ObjType::Map).unwrap();
                doc.put(&m, "ticket_no", s.ticket_no.as_str()).unwrap();
                doc.put(&m, "total_fen", s.total_fen).unwrap();
                let lines = doc.put_object(&m, "lines", ObjType::List).unwrap();
                for (i, (sku, qty, tot)) in s.lines.iter().enumerate() {
                    let l = doc.insert_object(&lines, i, ObjType::Map).unwrap();
                    doc.put(&l, "sku", sku.as_str()).unwrap();
                    doc.put(&l, "qty", *qty).unwrap();
                    doc.put(&l, "total_fen", *tot).unwrap();
                }
                doc.commit();
            }

            fn last_change(doc: &mut AutoCommit) -> Change {
                doc.get_last_local_change().map(|c| c.to_owned()).expect("a change")
            }

            fn heads(doc: &mut AutoCommit) -> Vec<am::ChangeHash> {
                let mut h = doc.get_heads();
                h.sort();
                h
            }

            pub fn run(cfg: &Config) -> VersionResult {
                let started = Instant::now();
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
                let mut doc = new_doc();
                let sales = sales_of(&doc);
                let mut n: u64 = 1;
                let mut rows = Vec::new();

                for &size in &cfg.sizes {
                    // ---- grow the history (local transactions)
                    let mut times = Vec::with_capacity(size);
                    while (n as usize) < size {
                        let t = Instant::now();
                        add_sale(&mut doc, &sales, n, &mut rng);
                        times.push(ms(t));
                        n += 1;
                    }
                    let tail = &times[times.len().saturating_sub(500)..];
                    let mut row = SizeRow {
                        n: size,
                        local_med_ms: median(tail),
                        local_mean_ms: mean(&times),
                        ..Default::default()
                    };

                    // ---- save
                    let reps = if size >= 50_000 { 1 } else { 3 };
                    let mut st = Vec::new();
                    let mut bytes = Vec::new();
                    for _ in 0..reps {
                        let t = Instant::now();
                        bytes = doc.save();
                        st.push(ms(t));
                    }
                    row.save_ms = median(&st);
                    row.save_bytes = bytes.len();

                    // ---- load (the hub's replica), heap and RSS it holds
                    trim();
                    let heap0 = LIVE.load(Relaxed);
                    PEAK.store(heap0, Relaxed);
                    let rss0 = rss_bytes() as isize;
                    let t = Instant::now();
                    let mut target = AutoCommit::load(&bytes).unwrap();
                    let mut lt = vec![ms(t)];
                    row.peak_heap_load = PEAK.load(Relaxed).saturating_sub(heap0);
                    row.heap_after_load = LIVE.load(Relaxed).saturating_sub(heap0);
                    trim();
                    row.rss_delta = rss_bytes() as isize - rss0;
                    for _ in 1..reps {
                        let t = Instant::now();
                        let d = AutoCommit::load(&bytes).unwrap();
                        lt.push(ms(t));
                        drop(d);
                    }
                    row.load_ms = median(&lt);
                    drop(bytes);

                    // ---- follower: the writer commits, the replica applies one change
                    let mut at = Vec::new();
                    let mut lc = Vec::new();
                    let mut csize = Vec::new();
                    for _ in 0..cfg.applies {
                        add_sale(&mut doc, &sales, n, &mut rng);
                        n += 1;
                        let t = Instant::now();
                        let ch = last_change(&mut doc);
                        lc.push(ms(t));
                        csize.push(ch.raw_bytes().len() as f64);
                        let t = Instant::now();
                        target.apply_changes(vec![ch]).unwrap();
                        at.push(ms(t));
                    }
                    row.apply_follow_med_ms = median(&at);
                    row.apply_follow_p90_ms = pct(&at, 0.9);
                    row.last_change_ms = median(&lc);
                    row.change_bytes = mean(&csize);

                    // ---- remote: a fork with another actor writes, the replica applies
                    let mut b = target.fork();
                    let b_sales = sales_of(&b);
                    let mut bn: u64 = 1 << 40;
                    let mut at = Vec::new();
                    for _ in 0..cfg.applies {
                        add_sale(&mut b, &b_sales, bn, &mut rng);
                        bn += 1;
                        let ch = last_change(&mut b);
                        let t = Instant::now();
                        target.apply_changes(vec![ch]).unwrap();
                        at.push(ms(t));
                    }
                    row.apply_remote_med_ms = median(&at);
                    row.apply_remote_p90_ms = pct(&at, 0.9);

                    // ---- batches of 100 remote changes
                    let mut bt = Vec::new();
                    for _ in 0..cfg.batches {
                        let before = b.get_heads();
                        for _ in 0..100 {
                            add_sale(&mut b, &b_sales, bn, &mut rng);
                            bn += 1;
                        }
                        let batch: Vec<Change> =
                            b.get_changes(&before).into_iter().map(|c| c.to_owned()).collect();
                        assert_eq!(batch.len(), 100);
                        let t = Instant::now();
                        target.apply_changes(batch).unwrap();
                        bt.push(ms(t) / 100.0);
                    }
                    row.batch_per_change_ms = median(&bt);
                    assert_eq!(heads(&mut target), heads(&mut b), "replica converged");
                    drop(b);
                    drop(target);
                    trim();

                    eprintln!(
                        "  [{}] n={:>6}: local {:.3} ms, apply1 follower {:.3} / remote {:.3} ms, batch {:.3} ms/chg, load {:.1} ms ({:.0}s)",
                        LABEL, size, row.local_med_ms, row.apply_follow_med_ms,
                        row.apply_remote_med_ms, row.batch_per_change_ms, row.load_ms,
                        started.elapsed().as_secs_f64()
                    );
                    rows.push(row);
                }
                drop(doc);
                trim();

                let (syncs, state_bytes) = sync_bench(cfg.backlog, &mut rng);
                VersionResult {
                    label: LABEL,
                    rows,
                    syncs,
                    state_bytes,
                    secs: started.elapsed().as_secs_f64(),
                }
            }

            /// Run the sync protocol between two in-memory peers until neither
            /// has anything to send. Every message goes through encode/decode.
            fn sync_pair(
                name: &str,
                a: &mut AutoCommit,
                b: &mut AutoCommit,
                sa: &mut sync::State,
                sb: &mut sync::State,
                persist_each_round: bool,
            ) -> SyncRow {
                let mut row = SyncRow { name: name.to_string(), ..Default::default() };
                let t = Instant::now();
                loop {
                    let mut sent = false;
                    if let Some(m) = a.sync().generate_sync_message(sa) {
                        let wire = m.encode();
                        row.bytes_ab += wire.len();
                        row.msgs += 1;
                        let m = sync::Message::decode(&wire).unwrap();
                        b.sync().receive_sync_message(sb, m).unwrap();
                        sent = true;
                    }
                    if let Some(m) = b.sync().generate_sync_message(sb) {
                        let wire = m.encode();
                        row.bytes_ba += wire.len();
                        row.msgs += 1;
                        let m = sync::Message::decode(&wire).unwrap();
                        a.sync().receive_sync_message(sa, m).unwrap();
                        sent = true;
                    }
                    if !sent {
                        break;
                    }
                    row.rounds += 1;
                    if row.rounds >= 50 {
                        break;
                    }
                    if persist_each_round {
                        *sa = sync::State::decode(&sa.encode()).unwrap();
                        *sb = sync::State::decode(&sb.encode()).unwrap();
                    }
                }
                row.ms = ms(t);
                row.converged = heads(a) == heads(b);
                row
            }

            fn restore(s: &[u8]) -> sync::State {
                sync::State::decode(s).unwrap()
            }

            fn sync_bench(backlog: usize, rng: &mut Rng) -> (Vec<SyncRow>, usize) {
                let mut out = Vec::new();
                let small = 100.min(backlog);
                let mut a = new_doc();
                let sales = sales_of(&a);
                let mut n: u64 = 1;
                while (n as usize) < backlog {
                    add_sale(&mut a, &sales, n, rng);
                    n += 1;
                }

                // 1. first sync: the peer has nothing
                let mut b = AutoCommit::new();
                let (mut sa, mut sb) = (sync::State::new(), sync::State::new());
                out.push(sync_pair(
                    &format!("first sync, {backlog} changes -> empty peer"),
                    &mut a, &mut b, &mut sa, &mut sb, false,
                ));
                let (pa, pb) = (sa.encode(), sb.encode());
                let state_bytes = pa.len();

                // 1b. first sync again, but the empty peer speaks first
                {
                    let mut empty = AutoCommit::new();
                    let mut aa = a.fork();
                    let (mut se, mut sa2) = (sync::State::new(), sync::State::new());
                    out.push(sync_pair(
                        &format!("first sync, {backlog} changes, empty peer speaks first (A = empty peer)"),
                        &mut empty, &mut aa, &mut se, &mut sa2, false,
                    ));
                }

                // 2. no-op reconnect
                let (mut sa, mut sb) = (sync::State::new(), sync::State::new());
                out.push(sync_pair(
                    &format!("no-op reconnect at {backlog}, fresh state"),
                    &mut a, &mut b, &mut sa, &mut sb, false,
                ));
                let (mut sa, mut sb) = (restore(&pa), restore(&pb));
                out.push(sync_pair(
                    &format!("no-op reconnect at {backlog}, persisted state"),
                    &mut a, &mut b, &mut sa, &mut sb, false,
                ));

                // 2b. connected: each new change is pushed at once (states kept in memory)
                {
                    let (mut aa, mut bb) = (a.fork(), b.fork());
                    let aa_sales = sales_of(&aa);
                    let (mut sa, mut sb) = (restore(&pa), restore(&pb));
                    sync_pair("warm-up", &mut aa, &mut bb, &mut sa, &mut sb, false);
                    let mut rows = Vec::new();
                    let mut m: u64 = 1 << 41;
                    for _ in 0..20 {
                        add_sale(&mut aa, &aa_sales, m, rng);
                        m += 1;
                        rows.push(sync_pair("", &mut aa, &mut bb, &mut sa, &mut sb, false));
                    }
                    let msv: Vec<f64> = rows.iter().map(|r| r.ms).collect();
                    let mut r = rows[rows.len() / 2].clone();
                    r.name = format!("connected: push 1 new change at {backlog} (median of 20)");
                    r.ms = median(&msv);
                    r.converged = rows.iter().all(|r| r.converged);
                    out.push(r);
                }

                // 3. small backlog (a short outage) on top of the shared history
                for _ in 0..small {
                    add_sale(&mut a, &sales, n, rng);
                    n += 1;
                }
                for (label, persisted) in [("fresh", false), ("persisted", true)] {
                    let (mut aa, mut bb) = (a.fork(), b.fork());
                    let (mut sa, mut sb) = if persisted {
                        (restore(&pa), restore(&pb))
                    } else {
                        (sync::State::new(), sync::State::new())
                    };
                    out.push(sync_pair(
                        &format!("{small} new on {backlog} shared, {label} state"),
                        &mut aa, &mut bb, &mut sa, &mut sb, false,
                    ));
                }

                // 4. full backlog on top of the shared history
                while (n as usize) < 2 * backlog {
                    add_sale(&mut a, &sales, n, rng);
                    n += 1;
                }
                for (label, persisted, each) in [
                    ("fresh state", false, false),
                    ("persisted state", true, false),
                    ("state re-decoded every round (misuse)", true, true),
                ] {
                    let (mut aa, mut bb) = (a.fork(), b.fork());
                    let (mut sa, mut sb) = if persisted {
                        (restore(&pa), restore(&pb))
                    } else {
                        (sync::State::new(), sync::State::new())
                    };
                    out.push(sync_pair(
                        &format!("{backlog} new on {backlog} shared, {label}"),
                        &mut aa, &mut bb, &mut sa, &mut sb, each,
                    ));
                }
                (out, state_bytes)
            }
        }
    };
}

version_bench!(v0_12, am12, "0.12.0");
version_bench!(v0_6, am06, "0.6.1");
version_bench!(v0_5, am05, "0.5.12");

// ---------------------------------------------------------------- printing

fn print_version(r: &VersionResult) {
    println!("\n## automerge {}  ({:.0} s)\n", r.label, r.secs);
    println!(
        "| history | local txn ms (med / mean) | get_last_local_change ms | change B | apply 1 follower ms (med / p90) | apply 1 remote ms (med / p90) | batch 100 ms/chg | save ms | save B | B/chg | load ms | heap after load MB | peak heap during load MB | RSS delta MB |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for x in &r.rows {
        println!(
            "| {} | {:.3} / {:.3} | {:.3} | {:.0} | {:.3} / {:.3} | {:.3} / {:.3} | {:.3} | {:.1} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            x.n,
            x.local_med_ms,
            x.local_mean_ms,
            x.last_change_ms,
            x.change_bytes,
            x.apply_follow_med_ms,
            x.apply_follow_p90_ms,
            x.apply_remote_med_ms,
            x.apply_remote_p90_ms,
            x.batch_per_change_ms,
            x.save_ms,
            x.save_bytes,
            x.save_bytes as f64 / x.n as f64,
            x.load_ms,
            mb(x.heap_after_load),
            mb(x.peak_heap_load),
            x.rss_delta as f64 / 1_048_576.0,
        );
    }
    println!("\nsync (two in-memory peers, every message encoded/decoded; sync::State::encode() = {} B):\n", r.state_bytes);
    println!("| scenario | converged | rounds | messages | bytes A->B | bytes B->A | ms |");
    println!("|---|:---:|---:|---:|---:|---:|---:|");
    for s in &r.syncs {
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.1} |",
            s.name,
            if s.converged { "yes" } else { "NO" },
            s.rounds,
            s.msgs,
            s.bytes_ab,
            s.bytes_ba,
            s.ms
        );
    }
}

fn print_comparison(rs: &[VersionResult]) {
    println!("\n## Comparison\n");
    let mut head = String::from("| metric | history |");
    let mut sep = String::from("|---|---:|");
    for r in rs {
        head += &format!(" {} |", r.label);
        sep += "---:|";
    }
    println!("{head}\n{sep}");
    type F = fn(&SizeRow) -> String;
    let metrics: [(&str, F); 9] = [
        ("apply 1 follower change, ms", |x| format!("{:.3}", x.apply_follow_med_ms)),
        ("apply 1 remote change, ms", |x| format!("{:.3}", x.apply_remote_med_ms)),
        ("apply batch of 100, ms/change", |x| format!("{:.3}", x.batch_per_change_ms)),
        ("local transaction, ms", |x| format!("{:.3}", x.local_med_ms)),
        ("save() bytes / change", |x| format!("{:.1}", x.save_bytes as f64 / x.n as f64)),
        ("save() ms", |x| format!("{:.1}", x.save_ms)),
        ("load() ms", |x| format!("{:.1}", x.load_ms)),
        ("heap held by loaded doc, MB", |x| format!("{:.1}", mb(x.heap_after_load))),
        ("peak heap during load, MB", |x| format!("{:.1}", mb(x.peak_heap_load))),
    ];
    let sizes: Vec<usize> = rs[0].rows.iter().map(|x| x.n).collect();
    for (name, f) in metrics.iter() {
        for (i, n) in sizes.iter().enumerate() {
            let mut line = format!("| {name} | {n} |");
            for r in rs {
                line += &format!(" {} |", r.rows.get(i).map(f).unwrap_or_default());
            }
            println!("{line}");
        }
    }
    for (i, s) in rs[0].syncs.iter().enumerate() {
        let mut line = format!("| sync: {} — bytes A->B / B->A, ms | |", s.name);
        for r in rs {
            let x = &r.syncs[i];
            line += &format!(
                " {} / {}, {:.0}{} |",
                x.bytes_ab,
                x.bytes_ba,
                x.ms,
                if x.converged { "" } else { " (NOT converged)" }
            );
        }
        println!("{line}");
    }
}

fn main() {
    let mut cfg = Config {
        sizes: vec![1_000, 5_000, 10_000, 50_000, 100_000],
        backlog: 5_000,
        applies: 20,
        batches: 3,
    };
    let mut versions: Vec<String> = vec!["0.12".into(), "0.6".into(), "0.5".into()];
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let v = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--sizes" => cfg.sizes = v.split(',').map(|s| s.parse().unwrap()).collect(),
            "--versions" => versions = v.split(',').map(String::from).collect(),
            "--backlog" => cfg.backlog = v.parse().unwrap(),
            "--applies" => cfg.applies = v.parse().unwrap(),
            "--batches" => cfg.batches = v.parse().unwrap(),
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    eprintln!(
        "sizes {:?}, backlog {}, {} single applies, {} batches of 100, versions {:?}",
        cfg.sizes, cfg.backlog, cfg.applies, cfg.batches, versions
    );
    let mut results = Vec::new();
    for v in &versions {
        let r = match v.as_str() {
            "0.12" => v0_12::run(&cfg),
            "0.6" => v0_6::run(&cfg),
            "0.5" => v0_5::run(&cfg),
            other => panic!("unknown version {other}"),
        };
        print_version(&r);
        results.push(r);
    }
    print_comparison(&results);
    let _ = (v0_12::LABEL, v0_6::LABEL, v0_5::LABEL);
}
