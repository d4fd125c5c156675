//! Retrieval quality: does the source abstract of each question come back, and how high?
use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

/// What one mode scored on a dataset.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ModeScores {
    #[serde(rename = "recall@1")]
    pub recall_1: f64,
    #[serde(rename = "recall@10")]
    pub recall_10: f64,
    #[serde(rename = "recall@100")]
    pub recall_100: f64,
    #[serde(rename = "mrr@10")]
    pub mrr_10: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RetrievalReport {
    pub dataset: String,
    pub n: usize,
    pub modes: BTreeMap<String, ModeScores>,
}

/// Scores a ranked PMID list per query: `rank_of` is the 1-based rank of the source PMID, if
/// it was retrieved; `ms` the query's latency.
pub fn score(ranks: &[(Option<usize>, f64)]) -> ModeScores {
    let n = ranks.len().max(1) as f64;
    let within = |k: usize| {
        ranks
            .iter()
            .filter(|(r, _)| r.is_some_and(|r| r <= k))
            .count() as f64
            / n
    };
    let mrr = ranks
        .iter()
        .map(|(r, _)| match r {
            Some(r) if *r <= 10 => 1.0 / *r as f64,
            _ => 0.0,
        })
        .sum::<f64>()
        / n;
    let mut ms: Vec<f64> = ranks.iter().map(|(_, t)| *t).collect();
    ms.sort_by(f64::total_cmp);
    ModeScores {
        recall_1: within(1),
        recall_10: within(10),
        recall_100: within(100),
        mrr_10: mrr,
        p50_ms: percentile(&ms, 0.50),
        p95_ms: percentile(&ms, 0.95),
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs `search` (returning PMIDs best first) for every question and scores the ranks.
pub fn evaluate<E>(
    items: &[(String, String)],
    mut search: impl FnMut(&str) -> Result<Vec<String>, E>,
) -> Result<ModeScores, E> {
    let mut ranks = Vec::with_capacity(items.len());
    for (question, pmid) in items {
        let t = Instant::now();
        let pmids = search(question)?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        ranks.push((pmids.iter().position(|p| p == pmid).map(|i| i + 1), ms));
    }
    Ok(score(&ranks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_ranks() {
        let s = score(&[(Some(1), 1.0), (Some(3), 2.0), (Some(50), 3.0), (None, 4.0)]);
        assert_eq!(s.recall_1, 0.25);
        assert_eq!(s.recall_10, 0.5);
        assert_eq!(s.recall_100, 0.75);
        assert!((s.mrr_10 - (1.0 + 1.0 / 3.0) / 4.0).abs() < 1e-12);
        assert_eq!(s.p50_ms, 2.0);
        assert_eq!(s.p95_ms, 4.0);
    }

    #[test]
    fn percentiles() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(percentile(&v, 0.5), 5.0);
        assert_eq!(percentile(&v, 0.95), 10.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
