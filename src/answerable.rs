//! Whether the retrieved evidence can answer a question: one calibrated probability from
//! several signals, instead of one cosine threshold (the closest-passage cosines of reworded
//! answerable questions and of unanswerable ones overlap: 0.44–0.76 against 0.44–0.70).
//!
//! The signals, each computed over the evidence articles (title and whole abstract):
//! - `coverage`: IDF share of the question's terms in the article that holds most of them;
//! - `similarity`: the question's cosine to the closest passage (dense retrieval);
//! - `sentence_similarity`: its cosine to the closest single sentence of the evidence
//!   articles (a reworded question restates one sentence; an unanswerable one, none);
//! - `unknown`: IDF share of the question's terms that no article of the index holds at all
//!   (a drug or trial the corpus never mentions);
//! - `rare_coverage`: of the question's three rarest terms, the share some evidence article
//!   holds (a question about an entity no retrieved passage mentions);
//! - `missing_rarity`: the IDF of the rarest question term that no evidence article holds,
//!   over the IDF of a term no article holds: high when a specific name is missing (a drug,
//!   a trial), low when only common words are (a question worded differently);
//! - `agreement`: the first evidence article is in both the BM25 and the dense list.
//!
//! A logistic model over the standardised signals, its weights fitted by `medlit eval
//! answerability --fit` on `policy/answerability_train.jsonl` (questions written for it, none
//! from the development sets) and kept in `policy/answerability.json`.
use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::cite::Lexicon;
use crate::prompt::Evidence;

/// The built-in model.
pub const BUILTIN_MODEL: &str = include_str!("../policy/answerability.json");

/// Names of the signals, in the order of [`Signals::vector`].
pub const FEATURES: [&str; 7] = [
    "coverage",
    "similarity",
    "sentence_similarity",
    "unknown",
    "rare_coverage",
    "missing_rarity",
    "agreement",
];

/// Terms of the question counted as its rare ones.
const RARE_TERMS: usize = 3;

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Signals {
    pub coverage: f32,
    pub similarity: f32,
    pub sentence_similarity: f32,
    pub unknown: f32,
    pub rare_coverage: f32,
    pub missing_rarity: f32,
    pub agreement: f32,
}

impl Signals {
    pub fn vector(&self) -> [f32; 7] {
        [
            self.coverage,
            self.similarity,
            self.sentence_similarity,
            self.unknown,
            self.rare_coverage,
            self.missing_rarity,
            self.agreement,
        ]
    }
}

/// What the signals need of the index: its analyser and statistics.
pub trait Corpus: Lexicon {
    /// Whether any live article holds the analysed `term`.
    fn knows(&self, term: &str) -> bool;
}

/// The signals of `question` against `articles` (title + whole abstract of each evidence
/// article, in rank order) and the evidence list as retrieved.
pub fn signals(
    question: &str,
    evidence: &[Evidence],
    articles: &[String],
    sentence_similarity: f32,
    corpus: &dyn Corpus,
) -> Signals {
    let terms = crate::cite::distinct_terms(corpus, question);
    let held: Vec<HashSet<String>> = articles
        .iter()
        .map(|a| corpus.terms(a).into_iter().collect())
        .collect();
    let weights: Vec<f32> = terms.iter().map(|t| corpus.idf(t)).collect();
    let total: f32 = weights.iter().sum();
    let share = |pick: &dyn Fn(&String) -> bool| -> f32 {
        if total <= 0.0 {
            return 0.0;
        }
        terms
            .iter()
            .zip(&weights)
            .filter(|(t, _)| pick(t))
            .map(|(_, w)| w)
            .sum::<f32>()
            .max(0.0)
            / total
    };
    let coverage = held
        .iter()
        .map(|h| share(&|t| h.contains(t)))
        .fold(0.0, f32::max);
    let unknown = share(&|t| !corpus.knows(t));
    let mut by_rarity: Vec<(&String, f32)> = terms.iter().zip(weights.iter().copied()).collect();
    by_rarity.sort_by(|a, b| b.1.total_cmp(&a.1));
    let rare: Vec<&String> = by_rarity.iter().take(RARE_TERMS).map(|(t, _)| *t).collect();
    let rare_coverage = if rare.is_empty() {
        0.0
    } else {
        rare.iter()
            .filter(|t| held.iter().any(|h| h.contains(**t)))
            .count() as f32
            / rare.len() as f32
    };
    let ceiling = corpus
        .idf("\u{0}medlit-no-such-term")
        .max(f32::MIN_POSITIVE);
    let missing_rarity = terms
        .iter()
        .zip(&weights)
        .filter(|(t, _)| !held.iter().any(|h| h.contains(*t)))
        .map(|(_, &w)| w / ceiling)
        .fold(0.0, f32::max)
        .min(1.0);
    let similarity = crate::cite::question_similarity(evidence).unwrap_or(0.0);
    let agreement = evidence
        .first()
        .is_some_and(|e| e.bm25_rank.is_some() && e.dense_rank.is_some());
    Signals {
        coverage,
        similarity,
        sentence_similarity,
        unknown,
        rare_coverage,
        missing_rarity,
        agreement: if agreement { 1.0 } else { 0.0 },
    }
}

/// A logistic model over standardised signals.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Model {
    pub features: Vec<String>,
    /// Means, scales, weights and bias, at the top level of the JSON.
    #[serde(flatten)]
    pub fitted: crate::logistic::Fitted,
    /// Answer from this probability up.
    pub threshold: f32,
    /// What it was fitted on, and its cross-validated figures there.
    #[serde(default)]
    pub trained_on: String,
    #[serde(default)]
    pub l2: f32,
    /// Live articles of the index it was fitted on. Its signals are term statistics of that
    /// corpus: on an index of under a tenth of its size (a handful of test articles) most
    /// words are "unknown", and the coverage rule decides instead.
    #[serde(default)]
    pub fitted_articles: u64,
}

/// An index this much smaller than the model's is outside what it was fitted on.
const SMALLEST_SHARE: u64 = 10;

impl Model {
    /// Whether the model applies to an index of `articles` live articles.
    pub fn applies_to(&self, articles: u64) -> bool {
        articles.saturating_mul(SMALLEST_SHARE) >= self.fitted_articles
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("the answerability model is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the answerability model names features {found:?}; this build computes {FEATURES:?}")]
    Features { found: Vec<String> },
}

impl Model {
    pub fn parse(text: &str) -> Result<Self, ModelError> {
        let m: Model = serde_json::from_str(text)?;
        let n = FEATURES.len();
        if m.features != FEATURES || !m.fitted.has_features(n) {
            return Err(ModelError::Features { found: m.features });
        }
        Ok(m)
    }

    pub fn builtin() -> Result<Self, ModelError> {
        Self::parse(BUILTIN_MODEL)
    }

    /// P(the evidence answers the question).
    pub fn probability(&self, s: &Signals) -> f32 {
        self.fitted.probability(&s.vector())
    }

    /// Fits weights by gradient descent on the mean log-loss plus `l2 · |w|²` (the bias free).
    pub fn fit(xs: &[Signals], answerable: &[bool], l2: f32, trained_on: String) -> Model {
        let rows: Vec<Vec<f32>> = xs.iter().map(|s| s.vector().to_vec()).collect();
        Model {
            features: FEATURES.iter().map(|f| f.to_string()).collect(),
            fitted: crate::logistic::fit(&rows, answerable, l2),
            threshold: 0.5,
            trained_on,
            l2,
            fitted_articles: 0,
        }
    }
}

/// How well probabilities match outcomes: per bin of predicted probability, the mean
/// prediction and the observed rate; and the expected calibration error over the bins.
#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    pub bins: Vec<CalibrationBin>,
    /// Σ (items in bin / items) · |mean predicted − observed|.
    pub expected_calibration_error: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CalibrationBin {
    /// Predicted probabilities in [lo, hi).
    pub lo: f64,
    pub hi: f64,
    pub n: usize,
    pub mean_predicted: f64,
    pub observed: f64,
}

/// Reliability table over `bins` equal-width bins of `predicted` against `outcome`.
pub fn calibration(predicted: &[f32], outcome: &[bool], bins: usize) -> Calibration {
    let bins = bins.max(1);
    let mut table: Vec<(usize, f64, f64)> = vec![(0, 0.0, 0.0); bins];
    for (&p, &o) in predicted.iter().zip(outcome) {
        let i = ((p as f64 * bins as f64) as usize).min(bins - 1);
        table[i].0 += 1;
        table[i].1 += p as f64;
        table[i].2 += if o { 1.0 } else { 0.0 };
    }
    let total = predicted.len().max(1) as f64;
    let mut ece = 0.0;
    let bins_out = table
        .iter()
        .enumerate()
        .map(|(i, &(n, sp, so))| {
            let (mp, ob) = if n > 0 {
                (sp / n as f64, so / n as f64)
            } else {
                (0.0, 0.0)
            };
            ece += n as f64 / total * (mp - ob).abs();
            CalibrationBin {
                lo: i as f64 / bins as f64,
                hi: (i + 1) as f64 / bins as f64,
                n,
                mean_predicted: mp,
                observed: ob,
            }
        })
        .collect();
    Calibration {
        bins: bins_out,
        expected_calibration_error: ece,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(coverage: f32, unknown: f32) -> Signals {
        Signals {
            coverage,
            similarity: 0.5,
            sentence_similarity: 0.5,
            unknown,
            rare_coverage: coverage,
            missing_rarity: unknown,
            agreement: 0.0,
        }
    }

    #[test]
    fn a_fitted_model_separates_what_it_was_fitted_on_and_round_trips() {
        let xs: Vec<Signals> = (0..20)
            .map(|i| if i % 2 == 0 { s(0.8, 0.0) } else { s(0.3, 0.4) })
            .collect();
        let ys: Vec<bool> = (0..20).map(|i| i % 2 == 0).collect();
        let m = Model::fit(&xs, &ys, 0.01, "test".into());
        assert!(m.probability(&s(0.8, 0.0)) > 0.9);
        assert!(m.probability(&s(0.3, 0.4)) < 0.1);
        let back = Model::parse(&serde_json::to_string(&m).expect("serialises")).expect("parses");
        assert_eq!(back, m);
    }

    #[test]
    fn the_builtin_model_loads_and_unknown_entities_lower_the_probability() {
        let m = Model::builtin().expect("policy/answerability.json");
        let known = Signals {
            coverage: 0.5,
            similarity: 0.6,
            sentence_similarity: 0.6,
            unknown: 0.0,
            rare_coverage: 1.0,
            missing_rarity: 0.3,
            agreement: 1.0,
        };
        let unknown = Signals {
            unknown: 0.3,
            rare_coverage: 0.33,
            missing_rarity: 1.0,
            ..known
        };
        assert!(m.probability(&unknown) < m.probability(&known));
    }

    #[test]
    fn calibration_of_perfect_and_of_overconfident_predictions() {
        let c = calibration(&[0.05, 0.95], &[false, true], 10);
        assert!((c.expected_calibration_error - 0.05).abs() < 1e-6);
        let c = calibration(&[0.95, 0.95], &[false, false], 10);
        assert!((c.expected_calibration_error - 0.95).abs() < 1e-6);
        assert_eq!(c.bins[9].n, 2);
    }

    #[test]
    fn a_model_naming_other_features_is_refused() {
        let text =
            r#"{"features":["x"],"mean":[0],"scale":[1],"weights":[1],"bias":0,"threshold":0.5}"#;
        assert!(matches!(
            Model::parse(text),
            Err(ModelError::Features { .. })
        ));
    }
}
