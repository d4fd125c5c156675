//! Evaluation against the development sets (`medlit eval …`).
//!
//! - [`qa`]: exact match, citation accuracy and abstention of answers.
//! - [`retrieval`]: recall@k, MRR@10 and latency of each search mode on a QA dataset.
//! - [`safety`]: per-class recall, over- and under-refusal of the safety policy.
//! - [`folds_by_key`]: cross-validation folds that keep one article's questions together.
pub mod qa;
pub mod retrieval;
pub mod safety;

/// The fold (of at most `k`) of each item of a K-fold cross-validation in which items with
/// one key share a fold: questions about one article (two wordings) are never split between
/// what a model is fitted on and what it predicts. Returns the folds and their count.
pub fn folds_by_key(keys: &[String], k: usize) -> (Vec<usize>, usize) {
    let mut groups: Vec<&String> = Vec::new();
    let group: Vec<usize> = keys
        .iter()
        .map(|key| match groups.iter().position(|g| *g == key) {
            Some(g) => g,
            None => {
                groups.push(key);
                groups.len() - 1
            }
        })
        .collect();
    let k = k.min(groups.len()).max(1);
    (group.iter().map(|g| g % k).collect(), k)
}
