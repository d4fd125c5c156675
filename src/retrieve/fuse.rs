//! Reciprocal rank fusion: each list contributes `1 / (k + rank)` for each PMID it ranks.
//! Rank-based, so BM25 scores and cosines need no calibration against each other.
use std::collections::HashMap;

/// Default RRF constant, chosen on the dev sets (see README for the sweep).
pub const DEFAULT_K: f32 = 10.0;

/// Default weight of the dense list against BM25's 1 (see README for the measurement).
pub const DEFAULT_DENSE_WEIGHT: f32 = 2.0;
/// Candidates taken from each list before fusing (20-100 gave the same recall; 30 keeps the
/// HNSW search narrow).
pub const DEFAULT_DEPTH: usize = 30;

/// A fused result: the PMID, its fused score, and its 1-based rank in each input list.
#[derive(Debug, Clone, PartialEq)]
pub struct Fused {
    pub pmid: u64,
    pub score: f32,
    pub ranks: Vec<Option<usize>>,
}

/// Fuses ranked PMID lists (best first). Ties keep the order of first appearance, list by list.
pub fn rrf(lists: &[&[u64]], k: f32) -> Vec<Fused> {
    weighted_rrf(lists, &vec![1.0; lists.len()], k)
}

/// As [`rrf`], list `i` contributing `weights[i] / (k + rank)`.
pub fn weighted_rrf(lists: &[&[u64]], weights: &[f32], k: f32) -> Vec<Fused> {
    let mut at: HashMap<u64, usize> = HashMap::new();
    let mut out: Vec<Fused> = Vec::new();
    for (li, list) in lists.iter().enumerate() {
        for (i, &pmid) in list.iter().enumerate() {
            let idx = *at.entry(pmid).or_insert_with(|| {
                out.push(Fused {
                    pmid,
                    score: 0.0,
                    ranks: vec![None; lists.len()],
                });
                out.len() - 1
            });
            let f = &mut out[idx];
            if f.ranks[li].is_none() {
                f.ranks[li] = Some(i + 1);
                f.score += weights.get(li).copied().unwrap_or(1.0) / (k + (i + 1) as f32);
            }
        }
    }
    // Stable sort: equal scores keep first-appearance order.
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_beats_a_single_top_rank() {
        let bm25 = [1, 2, 3];
        let dense = [4, 2, 5];
        let f = rrf(&[&bm25, &dense], 60.0);
        let order: Vec<u64> = f.iter().map(|x| x.pmid).collect();
        // 2 is ranked 2nd by both (2/62), ahead of either list's first (1/61); 1 and 4 tie and
        // keep first-appearance order.
        assert_eq!(order, vec![2, 1, 4, 3, 5]);
        assert_eq!(f[0].ranks, vec![Some(2), Some(2)]);
        let only_dense = f.iter().find(|x| x.pmid == 4).unwrap();
        assert_eq!(only_dense.ranks, vec![None, Some(1)]);
        assert!((only_dense.score - 1.0 / 61.0).abs() < 1e-7);
    }

    #[test]
    fn duplicates_in_a_list_count_once_and_empty_lists_are_fine() {
        let f = rrf(&[&[7, 7, 8], &[]], 60.0);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].pmid, 7);
        assert_eq!(f[0].ranks, vec![Some(1), None]);
        assert!(rrf(&[], 60.0).is_empty());
    }

    #[test]
    fn a_weight_favours_its_list() {
        let f = weighted_rrf(&[&[1, 2], &[2, 1]], &[1.0, 2.0], 10.0);
        assert_eq!(f[0].pmid, 2);
        assert!((f[0].score - (1.0 / 12.0 + 2.0 / 11.0)).abs() < 1e-7);
    }

    #[test]
    fn ties_keep_first_appearance() {
        let f = rrf(&[&[1], &[2]], 60.0);
        assert_eq!(f.iter().map(|x| x.pmid).collect::<Vec<_>>(), vec![1, 2]);
    }
}
