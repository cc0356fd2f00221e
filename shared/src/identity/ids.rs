//! Stable customer ids across runs of the resolver.
//!
//! A customer keeps its id as long as any part of it survives: when groups
//! merge, the id held by the most records survives (ties: the smallest id);
//! when a customer is split, the largest part keeps the id and the others
//! get new ones. A new id is `C` followed by the customer's smallest record
//! id, with `-2`, `-3`, … if that was ever used, so ids are never reused and
//! the same history always yields the same ids.

use super::Cluster;
use std::collections::{BTreeMap, BTreeSet};

/// The customer id of each cluster, in the order given. `previous` maps
/// record ids to the customer ids an earlier run gave them; `retired` holds
/// ids used before and no longer held by any record (never given again).
pub fn assign_ids(
    clusters: &[Cluster],
    previous: &BTreeMap<String, String>,
    retired: &BTreeSet<String>,
) -> Vec<String> {
    // Each (cluster, old id) with how many of the cluster's records held it.
    let mut claims: Vec<(u64, &str, usize)> = Vec::new();
    for (c, cluster) in clusters.iter().enumerate() {
        let mut held: BTreeMap<&str, u64> = BTreeMap::new();
        for r in &cluster.records {
            if let Some(id) = previous.get(r) {
                *held.entry(id.as_str()).or_default() += 1;
            }
        }
        claims.extend(held.into_iter().map(|(id, k)| (k, id, c)));
    }
    // Most records first, then the smallest id, then the earliest cluster.
    claims.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)).then(a.2.cmp(&b.2)));
    let mut out: Vec<Option<String>> = vec![None; clusters.len()];
    let mut given: BTreeSet<&str> = BTreeSet::new();
    for (_, id, c) in claims {
        if out[c].is_none() && given.insert(id) {
            out[c] = Some(id.to_owned());
        }
    }
    let mut used: BTreeSet<String> = previous.values().cloned().collect();
    used.extend(retired.iter().cloned());
    clusters
        .iter()
        .zip(out)
        .map(|(cluster, id)| {
            id.unwrap_or_else(|| {
                let base = format!("C{}", cluster.records.first().map_or("", String::as_str));
                let mut candidate = base.clone();
                let mut k = 2;
                while used.contains(&candidate) {
                    candidate = format!("{base}-{k}");
                    k += 1;
                }
                used.insert(candidate.clone());
                candidate
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cl(records: &[&str]) -> Cluster {
        Cluster {
            records: records.iter().map(|s| (*s).to_owned()).collect(),
            merges: vec![],
        }
    }

    fn prev(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(r, c)| ((*r).to_owned(), (*c).to_owned()))
            .collect()
    }

    #[test]
    fn new_customers_are_named_after_their_first_record() {
        let ids = assign_ids(
            &[cl(&["R1", "R2"]), cl(&["R3"])],
            &BTreeMap::new(),
            &BTreeSet::new(),
        );
        assert_eq!(ids, vec!["CR1", "CR3"]);
    }

    #[test]
    fn a_merge_keeps_the_larger_part_s_id() {
        let p = prev(&[("R1", "CR1"), ("R2", "CR2"), ("R3", "CR2")]);
        let ids = assign_ids(&[cl(&["R1", "R2", "R3"])], &p, &BTreeSet::new());
        assert_eq!(ids, vec!["CR2"]);
        // a tie keeps the smaller id
        let p = prev(&[("R1", "CR9"), ("R2", "CR2")]);
        assert_eq!(
            assign_ids(&[cl(&["R1", "R2"])], &p, &BTreeSet::new()),
            vec!["CR2"]
        );
    }

    #[test]
    fn a_split_keeps_the_id_on_the_larger_part_and_never_reuses_one() {
        let p = prev(&[("R1", "CR1"), ("R2", "CR1"), ("R3", "CR1")]);
        let ids = assign_ids(&[cl(&["R1"]), cl(&["R2", "R3"])], &p, &BTreeSet::new());
        assert_eq!(ids, vec!["CR1-2", "CR1"]);
        let retired: BTreeSet<String> = ["CR1-2".to_owned()].into();
        let ids = assign_ids(&[cl(&["R1"]), cl(&["R2", "R3"])], &p, &retired);
        assert_eq!(ids, vec!["CR1-3", "CR1"]);
    }
}
