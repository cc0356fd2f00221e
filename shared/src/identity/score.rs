//! Pairwise precision and recall of a partition against the truth: of the
//! record pairs put in one customer, how many are one person (precision); of
//! the pairs that are one person, how many were put together (recall).

use std::collections::HashMap;
use std::hash::Hash;

/// Pair counts and the two ratios.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairScore {
    /// Pairs in one predicted customer that are one true person.
    pub true_pairs: u64,
    /// Pairs in one predicted customer.
    pub predicted_pairs: u64,
    /// Pairs that are one true person.
    pub actual_pairs: u64,
}

impl PairScore {
    /// 1.0 when nothing was merged (no pair claimed, none wrong).
    pub fn precision(&self) -> f64 {
        if self.predicted_pairs == 0 {
            1.0
        } else {
            self.true_pairs as f64 / self.predicted_pairs as f64
        }
    }

    pub fn recall(&self) -> f64 {
        if self.actual_pairs == 0 {
            1.0
        } else {
            self.true_pairs as f64 / self.actual_pairs as f64
        }
    }
}

fn pairs(n: u64) -> u64 {
    n * n.saturating_sub(1) / 2
}

/// Scores `predicted[i]` against `truth[i]` (one entry per record).
pub fn pairwise<P: Hash + Eq, T: Hash + Eq>(predicted: &[P], truth: &[T]) -> PairScore {
    let mut pred: HashMap<&P, u64> = HashMap::new();
    let mut act: HashMap<&T, u64> = HashMap::new();
    let mut both: HashMap<(&P, &T), u64> = HashMap::new();
    for (p, t) in predicted.iter().zip(truth) {
        *pred.entry(p).or_default() += 1;
        *act.entry(t).or_default() += 1;
        *both.entry((p, t)).or_default() += 1;
    }
    PairScore {
        true_pairs: both.values().map(|&n| pairs(n)).sum(),
        predicted_pairs: pred.values().map(|&n| pairs(n)).sum(),
        actual_pairs: act.values().map(|&n| pairs(n)).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_pairs() {
        // truth: {0,1,2} {3}; predicted: {0,1} {2,3}
        let s = pairwise(&[1, 1, 2, 2], &["a", "a", "a", "b"]);
        assert_eq!((s.true_pairs, s.predicted_pairs, s.actual_pairs), (1, 2, 3));
        assert!((s.precision() - 0.5).abs() < 1e-9);
        assert!((s.recall() - 1.0 / 3.0).abs() < 1e-9);
    }
}
