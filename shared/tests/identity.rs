//! The identity resolver on the reference file and as laws: the figures the
//! issue asks for, no merge on junk, never-merge pairs kept apart, and a
//! partition that does not depend on the order of the records.

use linli_shared::identity::{
    Merge, NeverMerge, PhoneReading, Resolution, Rule, SourceRecord, assign_ids, pairwise,
    parse_identities_csv, read_phone, read_token, resolve, split_off,
};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};

fn reference() -> (Vec<SourceRecord>, Vec<String>) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/identities.csv");
    let data = std::fs::read(path).expect("data/identities.csv");
    let parsed = parse_identities_csv(&data).expect("header");
    assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
    parsed
        .rows
        .into_iter()
        .map(|r| (r.record, r.true_customer_id.expect("truth")))
        .unzip()
}

/// The customer index of each record id.
fn customer_of(res: &Resolution) -> HashMap<&str, usize> {
    res.clusters
        .iter()
        .enumerate()
        .flat_map(|(c, cl)| cl.records.iter().map(move |r| (r.as_str(), c)))
        .collect()
}

/// A merge is sound when both records really carry its value, and the value
/// is an identifier the normaliser accepts.
fn sound(m: &Merge, by_id: &HashMap<&str, &SourceRecord>) -> bool {
    let (Some(a), Some(b)) = (by_id.get(m.a.as_str()), by_id.get(m.b.as_str())) else {
        return false;
    };
    let token = |r: &SourceRecord, f: fn(&SourceRecord) -> &String| {
        read_token(f(r)) == Some(m.value.as_str())
    };
    let mobile = |r: &SourceRecord, v: &str| matches!(read_phone(&r.phone), PhoneReading::Mobile(p) if p.as_str() == v);
    match m.rule {
        Rule::Unionid => token(a, |r| &r.unionid) && token(b, |r| &r.unionid),
        Rule::Openid => token(a, |r| &r.openid) && token(b, |r| &r.openid),
        Rule::MemberCard => token(a, |r| &r.member_card) && token(b, |r| &r.member_card),
        Rule::Phone => mobile(a, &m.value) && mobile(b, &m.value),
        Rule::NameOnSharedPhone => {
            let (name, phone) = m.value.rsplit_once('@').unwrap_or_default();
            read_token(name).is_some() && mobile(a, phone) && mobile(b, phone)
        }
        Rule::NameAtStore => {
            let (name, store) = m.value.rsplit_once('@').unwrap_or_default();
            [a, b]
                .iter()
                .all(|r| read_token(&r.nickname) == Some(name) && r.store_id == store)
        }
    }
}

#[test]
fn meets_the_goal_on_the_reference_file_with_no_junk_merge() {
    let (records, truth) = reference();
    let res = resolve(&records, &[]).expect("resolves");
    let of = customer_of(&res);
    let predicted: Vec<usize> = records.iter().map(|r| of[r.record_id.as_str()]).collect();
    let s = pairwise(&predicted, &truth);
    assert!(s.precision() >= 0.97, "precision {:.4}", s.precision());
    assert!(s.recall() >= 0.80, "recall {:.4}", s.recall());
    let by_id: HashMap<&str, &SourceRecord> =
        records.iter().map(|r| (r.record_id.as_str(), r)).collect();
    let unsound: Vec<&Merge> = res
        .clusters
        .iter()
        .flat_map(|c| &c.merges)
        .filter(|m| !sound(m, &by_id))
        .collect();
    assert!(unsound.is_empty(), "{unsound:?}");
    // a spanning forest: one merge per record joined
    for c in &res.clusters {
        assert_eq!(c.merges.len() + 1, c.records.len());
    }
}

fn rec(id: &str, phone: &str, openid: &str, unionid: &str, card: &str, name: &str) -> SourceRecord {
    SourceRecord {
        record_id: id.to_owned(),
        source: "pos".to_owned(),
        phone: phone.to_owned(),
        openid: openid.to_owned(),
        unionid: unionid.to_owned(),
        member_card: card.to_owned(),
        nickname: name.to_owned(),
        store_id: "S001".to_owned(),
    }
}

fn groups(res: &Resolution) -> Vec<Vec<&str>> {
    res.clusters
        .iter()
        .map(|c| c.records.iter().map(String::as_str).collect())
        .collect()
}

#[test]
fn written_forms_of_one_phone_merge_and_junk_never_does() {
    let records = [
        rec("R1", "+86 138 1234 5678", "", "", "", ""),
        rec("R2", "138-1234-5678", "", "", "", ""),
        rec("R3", "8613812345678", "", "", "", ""),
        rec("R4", "0", "", "", "", ""),
        rec("R5", "0", "", "", "", ""),
        rec("R6", "null", "null", "null", "-", ""),
        rec("R7", "null", "null", "null", "-", ""),
        rec("R8", "057117784483", "", "", "", ""),
        rec("R9", "057117784483", "", "", "", ""),
        rec("RA", "00000000000", "anonymous", "", "", ""),
        rec("RB", "00000000000", "anonymous", "", "", ""),
    ];
    let res = resolve(&records, &[]).expect("resolves");
    assert_eq!(groups(&res)[0], vec!["R1", "R2", "R3"]);
    assert_eq!(res.clusters.len(), 9);
}

#[test]
fn unionid_ties_openids_and_a_card_ties_a_changed_phone() {
    let records = [
        rec("R1", "", "oMini", "uA", "", ""),
        rec("R2", "", "oLive", "uA", "", ""),
        rec("R3", "13812345678", "oLive", "", "", ""),
        rec("R4", "13812345678", "", "", "LY1", "王芳"),
        rec("R5", "13987654321", "", "", "LY1", "王芳"),
        rec("R6", "13987654321", "", "", "", ""),
    ];
    let res = resolve(&records, &[]).expect("resolves");
    assert_eq!(groups(&res), vec![vec!["R1", "R2", "R3", "R4", "R5", "R6"]]);
    let rules: BTreeSet<Rule> = res.clusters[0].merges.iter().map(|m| m.rule).collect();
    assert_eq!(
        rules,
        [Rule::Unionid, Rule::Openid, Rule::MemberCard, Rule::Phone].into()
    );
}

#[test]
fn a_family_phone_does_not_merge_two_wechat_identities() {
    let records = [
        rec("R1", "13812345678", "oMum", "uMum", "", ""),
        rec("R2", "13812345678", "oKid", "uKid", "", ""),
        rec("R3", "13812345678", "", "", "", ""),
        rec("R4", "13812345678", "", "", "LY7", "李娜"),
        rec("R5", "", "oMum2", "uMum", "", "李娜"),
    ];
    let res = resolve(&records, &[]).expect("resolves");
    // mum's card joins her WeChat by her name on the shared phone; the kid
    // stays apart; the bare till record is undecidable and stays alone
    assert_eq!(
        groups(&res),
        vec![vec!["R1", "R4", "R5"], vec!["R2"], vec!["R3"]]
    );
    assert!(
        res.ambiguous_phones
            .keys()
            .any(|p| p.as_str() == "13812345678")
    );
}

#[test]
fn unmerge_keeps_the_parts_apart_and_the_larger_part_keeps_the_id() {
    let records = [
        rec("R1", "13812345678", "", "", "", ""),
        rec("R2", "13812345678", "", "", "", ""),
        rec("R3", "13812345678", "o1", "", "", ""),
        rec("R4", "", "o1", "", "", ""),
    ];
    let first = resolve(&records, &[]).expect("resolves");
    assert_eq!(first.clusters.len(), 1);
    let ids = assign_ids(&first.clusters, &BTreeMap::new(), &BTreeSet::new());
    assert_eq!(ids, vec!["CR1"]);
    let previous: BTreeMap<String, String> = first.clusters[0]
        .records
        .iter()
        .map(|r| (r.clone(), ids[0].clone()))
        .collect();
    let never = split_off(&first.clusters[0].records, &["R1".to_owned()]);
    let second = resolve(&records, &never).expect("resolves");
    assert_eq!(groups(&second), vec![vec!["R1"], vec!["R2", "R3", "R4"]]);
    let ids = assign_ids(&second.clusters, &previous, &BTreeSet::new());
    assert_eq!(ids, vec!["CR1-2", "CR1"]);
}

// ---- laws ----

fn arb_record(i: usize) -> impl Strategy<Value = SourceRecord> {
    let phone = prop::sample::select(vec![
        "",
        "0",
        "null",
        "-",
        "anonymous",
        "00000000000",
        "057117784483",
        "13812345678",
        "+86 138 1234 5678",
        "138-1234-5678",
        "13987654321",
        "8613987654321",
        "15000000001",
    ]);
    let openid = prop::sample::select(vec!["", "", "oA", "oB", "oC", "null"]);
    let unionid = prop::sample::select(vec!["", "", "uA", "uB", "-"]);
    let card = prop::sample::select(vec!["", "", "LY1", "LY2", "0"]);
    let name = prop::sample::select(vec!["", "", "王芳", "李娜"]);
    let store = prop::sample::select(vec!["S001", "S002"]);
    (phone, openid, unionid, card, name, store).prop_map(move |(p, o, u, c, n, s)| SourceRecord {
        record_id: format!("R{i:03}"),
        source: "pos".to_owned(),
        phone: p.to_owned(),
        openid: o.to_owned(),
        unionid: u.to_owned(),
        member_card: c.to_owned(),
        nickname: n.to_owned(),
        store_id: s.to_owned(),
    })
}

fn arb_records() -> impl Strategy<Value = Vec<SourceRecord>> {
    (1usize..24).prop_flat_map(|n| (0..n).map(arb_record).collect::<Vec<_>>())
}

fn partition(res: &Resolution) -> BTreeSet<Vec<String>> {
    res.clusters.iter().map(|c| c.records.clone()).collect()
}

proptest! {
    #[test]
    fn the_order_of_records_does_not_change_anything(
        records in arb_records(),
        seed in any::<u64>(),
    ) {
        let mut shuffled = records.clone();
        // a deterministic shuffle from the seed
        let mut s = seed;
        for i in (1..shuffled.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (s >> 33) as usize % (i + 1));
        }
        let a = resolve(&records, &[]).expect("resolves");
        let b = resolve(&shuffled, &[]).expect("resolves");
        prop_assert_eq!(&a.clusters, &b.clusters);
        prop_assert_eq!(partition(&a), partition(&b));
    }

    #[test]
    fn no_merge_is_made_on_junk(records in arb_records()) {
        let res = resolve(&records, &[]).expect("resolves");
        let by_id: HashMap<&str, &SourceRecord> = records.iter().map(|r| (r.record_id.as_str(), r)).collect();
        for m in res.clusters.iter().flat_map(|c| &c.merges) {
            prop_assert!(sound(m, &by_id), "{:?}", m);
        }
        // records whose every identifier is junk or absent stay alone
        let of = customer_of(&res);
        for r in &records {
            let bare = !matches!(read_phone(&r.phone), PhoneReading::Mobile(_))
                && [&r.openid, &r.unionid, &r.member_card, &r.nickname].iter().all(|f| read_token(f).is_none());
            if bare {
                prop_assert_eq!(res.clusters[of[r.record_id.as_str()]].records.len(), 1);
            }
        }
    }

    #[test]
    fn never_merge_pairs_stay_apart(
        records in arb_records(),
        pairs in prop::collection::vec((0usize..24, 0usize..24), 0..6),
    ) {
        let never: Vec<NeverMerge> = pairs
            .iter()
            .filter(|(a, b)| a != b && *a < records.len() && *b < records.len())
            .map(|(a, b)| NeverMerge(format!("R{a:03}"), format!("R{b:03}")))
            .collect();
        let res = resolve(&records, &never).expect("resolves");
        let of = customer_of(&res);
        for NeverMerge(a, b) in &never {
            prop_assert_ne!(of[a.as_str()], of[b.as_str()]);
        }
    }

    #[test]
    fn one_wechat_identity_per_customer(records in arb_records()) {
        // two unionids never end in one customer
        let res = resolve(&records, &[]).expect("resolves");
        let by_id: HashMap<&str, &SourceRecord> = records.iter().map(|r| (r.record_id.as_str(), r)).collect();
        for c in &res.clusters {
            let u: BTreeSet<&str> = c.records.iter().filter_map(|r| read_token(&by_id[r.as_str()].unionid)).collect();
            prop_assert!(u.len() <= 1, "{:?}", c);
        }
    }
}
