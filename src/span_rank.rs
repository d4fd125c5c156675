//! Choosing among candidate answer spans. The small model copies well from what it read last
//! but cannot map a description to its entity nor tell a total from a per-arm count, so its
//! greedy span is often a nearby entity or the wrong quantity of the right paper. The decoder
//! offers several spans from one reading of the prompt (the greedy copy from each of its
//! likeliest first tokens); each is scored by a logistic model over what the model thought of
//! it and how the sentence it was copied from matches the question:
//! - `first_logprob`, `mean_logprob`: the model's log-probability of the span's first token and
//!   its mean over the span;
//! - `greedy`: 1 for the model's own greedy choice;
//! - `sentence_overlap`: IDF share of the question's terms that the span's sentence holds;
//! - `sentence_similarity`: cosine of question and sentence by the index's encoder (missing on
//!   a keyword-only index: it then adds nothing);
//! - `in_question`: share of the span's terms the question already holds (an answer rarely
//!   repeats the question);
//! - `type_agreement`: 1 when the span holds a digit exactly when the question asks for a
//!   quantity ("how many", "what percentage", …);
//! - `source_rank`: rank of the span's article in the evidence (0 the best).
//!
//! Its weights are fitted by `medlit eval qa --fit-span-ranker` on questions written for it
//! (`policy/answerability_train.jsonl`, none from the development sets), cross-validated by
//! article, and kept in `policy/span_ranker.json`.
use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::cite::Lexicon;
use crate::logistic::Fitted;

/// Names of the features, in the order of [`features`]'s vector.
pub const FEATURES: [&str; 8] = [
    "first_logprob",
    "mean_logprob",
    "greedy",
    "sentence_overlap",
    "sentence_similarity",
    "in_question",
    "type_agreement",
    "source_rank",
];

/// Candidate spans read per question when a ranker chooses among them.
pub const CANDIDATES: usize = 4;

/// Wordings that ask for a quantity; any other question asks for an entity or a phrase.
const QUANTITY_CUES: [&str; 14] = [
    "how many",
    "how much",
    "how long",
    "how often",
    "how old",
    "how large",
    "how high",
    "what percentage",
    "what percent",
    "what proportion",
    "what fraction",
    "what dose",
    "what rate",
    "by how",
];

/// What a candidate span is scored on.
pub struct CandidateSpan<'a> {
    pub text: &'a str,
    /// The passage sentence it was copied from.
    pub sentence: &'a str,
    pub first_logprob: f32,
    pub mean_logprob: f32,
    /// Rank among the candidates (0: the greedy span).
    pub rank: usize,
    /// Rank of its article in the evidence.
    pub source_rank: usize,
    /// Question–sentence cosine, when the index has an encoder.
    pub sentence_similarity: Option<f32>,
}

/// Whether `question` asks for a quantity.
pub fn asks_quantity(question: &str) -> bool {
    let q = question.to_lowercase();
    QUANTITY_CUES.iter().any(|c| q.contains(c))
}

/// The feature vector of `span` for `question`.
pub fn features(question: &str, span: &CandidateSpan<'_>, lexicon: &dyn Lexicon) -> Vec<f32> {
    let question_terms = crate::cite::distinct_terms(lexicon, question);
    let sentence: HashSet<String> = lexicon.terms(span.sentence).into_iter().collect();
    let weights: Vec<f32> = question_terms.iter().map(|t| lexicon.idf(t)).collect();
    let total: f32 = weights.iter().sum();
    let sentence_overlap = if total > 0.0 {
        question_terms
            .iter()
            .zip(&weights)
            .filter(|(t, _)| sentence.contains(*t))
            .map(|(_, w)| w)
            .sum::<f32>()
            / total
    } else {
        0.0
    };
    let asked: HashSet<&String> = question_terms.iter().collect();
    let span_terms = lexicon.terms(span.text);
    let in_question = if span_terms.is_empty() {
        0.0
    } else {
        span_terms.iter().filter(|t| asked.contains(t)).count() as f32 / span_terms.len() as f32
    };
    let has_digit = span.text.chars().any(|c| c.is_ascii_digit());
    vec![
        span.first_logprob,
        span.mean_logprob,
        if span.rank == 0 { 1.0 } else { 0.0 },
        sentence_overlap,
        span.sentence_similarity.unwrap_or(f32::NAN),
        in_question,
        if has_digit == asks_quantity(question) {
            1.0
        } else {
            0.0
        },
        span.source_rank as f32,
    ]
}

/// The fitted ranker.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Ranker {
    pub features: Vec<String>,
    #[serde(flatten)]
    pub fitted: Fitted,
    /// What it was fitted on, and its cross-validated figures there.
    #[serde(default)]
    pub trained_on: String,
    #[serde(default)]
    pub l2: f32,
}

#[derive(Debug, thiserror::Error)]
pub enum RankerError {
    #[error("the span ranker is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the span ranker names features {found:?}; this build computes {FEATURES:?}")]
    Features { found: Vec<String> },
}

/// The built-in ranker.
pub const BUILTIN: &str = include_str!("../policy/span_ranker.json");

impl Ranker {
    pub fn builtin() -> Result<Self, RankerError> {
        Self::parse(BUILTIN)
    }

    pub fn parse(text: &str) -> Result<Self, RankerError> {
        let r: Ranker = serde_json::from_str(text)?;
        if r.features != FEATURES || !r.fitted.has_features(FEATURES.len()) {
            return Err(RankerError::Features { found: r.features });
        }
        Ok(r)
    }

    /// Fits the ranker as a choice among each question's candidates (a conditional logit:
    /// `P(candidate) = softmax` of the scores within its question), maximising the
    /// probability of the right candidates plus an `l2 · |w|²` penalty. A question with no
    /// right candidate says nothing about the choice and is left out. (A yes/no model per
    /// candidate, fitted first, chose worse than the greedy span under cross-validation: it
    /// learns what right candidates look like across questions, not which of one question's
    /// candidates is best.)
    pub fn fit(questions: &[&Question], l2: f32, trained_on: String) -> Ranker {
        let rows: Vec<Vec<f32>> = questions
            .iter()
            .flat_map(|q| q.candidates.iter().map(|(f, _)| f.clone()))
            .collect();
        let (mean, scale) = crate::logistic::standardisation(&rows);
        let n = FEATURES.len();
        let standard =
            |f: &[f32]| -> Vec<f32> { (0..n).map(|i| (f[i] - mean[i]) / scale[i]).collect() };
        let groups: Vec<Vec<(Vec<f32>, bool)>> = questions
            .iter()
            .filter(|q| q.candidates.iter().any(|c| c.1))
            .map(|q| {
                q.candidates
                    .iter()
                    .map(|(f, r)| (standard(f), *r))
                    .collect()
            })
            .collect();
        let count = groups.len().max(1) as f32;
        let mut w = vec![0f32; n];
        for _ in 0..2000 {
            let mut g = vec![0f32; n];
            for group in &groups {
                let z: Vec<f32> = group
                    .iter()
                    .map(|(x, _)| x.iter().zip(&w).map(|(a, b)| a * b).sum())
                    .collect();
                let top = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f32> = z.iter().map(|v| (v - top).exp()).collect();
                let all: f32 = e.iter().sum();
                let right: f32 = e
                    .iter()
                    .zip(group)
                    .filter(|(_, c)| c.1)
                    .map(|(v, _)| v)
                    .sum();
                for ((x, r), ei) in group.iter().zip(&e) {
                    // d(−log Σ_right p)/dz_i = p_i − [right] · p_i / Σ_right p
                    let d = ei / all - if *r { ei / right } else { 0.0 };
                    for (gi, xi) in g.iter_mut().zip(x) {
                        *gi += d * xi / count;
                    }
                }
            }
            for (wi, gi) in w.iter_mut().zip(&g) {
                *wi -= 0.5 * (gi + 2.0 * l2 * *wi);
            }
        }
        Ranker {
            features: FEATURES.iter().map(|f| f.to_string()).collect(),
            fitted: Fitted {
                mean,
                scale,
                weights: w,
                bias: 0.0,
            },
            trained_on,
            l2,
        }
    }

    /// The candidate's score (higher: likelier right).
    pub fn score(&self, features: &[f32]) -> f32 {
        self.fitted.logit(features)
    }

    /// Index of the best of `candidates` (feature vectors); the first on ties.
    pub fn best(&self, candidates: &[Vec<f32>]) -> Option<usize> {
        let scores: Vec<f32> = candidates.iter().map(|c| self.score(c)).collect();
        (0..scores.len()).reduce(|a, b| if scores[b] > scores[a] { b } else { a })
    }
}

/// One question's candidates for fitting: the features of each and whether it was right.
#[derive(Debug, Clone)]
pub struct Question {
    /// The article the question is about: its questions share a fold.
    pub key: String,
    pub candidates: Vec<(Vec<f32>, bool)>,
}

/// What choosing by the ranker is worth on questions it did not see.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct CrossValidated {
    pub questions: usize,
    pub candidates: usize,
    pub folds: usize,
    /// Questions whose greedy span (candidate 0) is right.
    pub greedy_right: usize,
    /// Questions whose span chosen by a ranker fitted on the other folds is right.
    pub ranked_right: usize,
    /// Questions with some right candidate: the most any choice can get.
    pub any_right: usize,
}

/// K-fold cross-validation of the ranker on `questions` (one article's questions share a
/// fold), and the ranker fitted on all of them.
pub fn cross_validate(questions: &[Question], folds: usize, l2: f32) -> (CrossValidated, Ranker) {
    let keys: Vec<String> = questions.iter().map(|q| q.key.clone()).collect();
    let (fold_of, k) = crate::eval::folds_by_key(&keys, folds);
    let picked = |pick: &dyn Fn(usize) -> bool| -> Vec<&Question> {
        questions
            .iter()
            .enumerate()
            .filter(|(i, _)| pick(*i))
            .map(|(_, q)| q)
            .collect()
    };
    let mut ranked_right = 0;
    for fold in 0..k {
        let r = Ranker::fit(&picked(&|i| fold_of[i] != fold), l2, String::new());
        for q in questions
            .iter()
            .enumerate()
            .filter(|(i, _)| fold_of[*i] == fold)
            .map(|(_, q)| q)
        {
            let rows: Vec<Vec<f32>> = q.candidates.iter().map(|(f, _)| f.clone()).collect();
            if r.best(&rows).is_some_and(|b| q.candidates[b].1) {
                ranked_right += 1;
            }
        }
    }
    let figures = CrossValidated {
        questions: questions.len(),
        candidates: questions.iter().map(|q| q.candidates.len()).sum(),
        folds: k,
        greedy_right: questions
            .iter()
            .filter(|q| q.candidates.first().is_some_and(|c| c.1))
            .count(),
        ranked_right,
        any_right: questions
            .iter()
            .filter(|q| q.candidates.iter().any(|c| c.1))
            .count(),
    };
    (figures, Ranker::fit(&picked(&|_| true), l2, String::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Words;
    impl Lexicon for Words {
        fn terms(&self, text: &str) -> Vec<String> {
            text.split(|c: char| !c.is_alphanumeric())
                .filter(|w| w.len() > 2)
                .map(str::to_lowercase)
                .collect()
        }
        fn idf(&self, _: &str) -> f32 {
            1.0
        }
    }

    fn span<'a>(text: &'a str, sentence: &'a str, rank: usize) -> CandidateSpan<'a> {
        CandidateSpan {
            text,
            sentence,
            first_logprob: -1.0,
            mean_logprob: -0.5,
            rank,
            source_rank: 0,
            sentence_similarity: None,
        }
    }

    #[test]
    fn features_read_the_sentence_the_question_and_the_kind_of_answer() {
        let q = "How many patients were randomised to ivermectin?";
        let s = "Of 164 patients, 82 were randomised to ivermectin and 82 to placebo.";
        let f = features(q, &span("82", s, 1), &Words);
        assert_eq!(f.len(), FEATURES.len());
        assert_eq!(f[2], 0.0, "not the greedy span");
        // "how", "many", "patients", "were", "randomised", "ivermectin": the sentence holds 4.
        assert!((f[3] - 4.0 / 6.0).abs() < 1e-6, "overlap {}", f[3]);
        assert!(f[4].is_nan(), "no encoder, no cosine");
        assert_eq!(f[5], 0.0);
        assert_eq!(f[6], 1.0, "a number for a how-many question");
        let g = features(q, &span("ivermectin", s, 0), &Words);
        assert_eq!(g[2], 1.0);
        assert_eq!(g[5], 1.0, "the span repeats the question");
        assert_eq!(g[6], 0.0, "no number for a how-many question");
        assert!(!asks_quantity("Which antibiotic cured the mice?"));
    }

    #[test]
    fn a_fitted_ranker_prefers_what_it_learned_and_round_trips() {
        // Right answers: not in the question, of the asked kind; the greedy one is wrong.
        let row = |greedy: bool, right: bool, lp: f32| {
            vec![
                lp,
                -0.5,
                greedy as u8 as f32,
                0.5,
                0.6,
                if right { 0.0 } else { 1.0 },
                if right { 1.0 } else { 0.0 },
                0.0,
            ]
        };
        let qs: Vec<Question> = (0..20)
            .map(|i| Question {
                key: i.to_string(),
                candidates: vec![
                    (row(true, false, -0.5), false),
                    (row(false, true, -1.0 - (i % 3) as f32), true),
                    (row(false, false, -2.0), false),
                ],
            })
            .collect();
        let r = Ranker::fit(&qs.iter().collect::<Vec<_>>(), 0.05, "test".into());
        let rows: Vec<Vec<f32>> = qs[0].candidates.iter().map(|c| c.0.clone()).collect();
        assert_eq!(r.best(&rows), Some(1));
        let back = Ranker::parse(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        let mut bad = serde_json::to_value(&r).unwrap();
        bad["features"] = serde_json::json!(["x"]);
        assert!(Ranker::parse(&bad.to_string()).is_err());
    }

    #[test]
    fn cross_validation_counts_what_each_choice_gets_right_on_unseen_articles() {
        // The right candidate is never the greedy one and always the one with the digit.
        let q = |key: &str, right_at: usize| Question {
            key: key.to_string(),
            candidates: (0..3)
                .map(|i| {
                    let right = i == right_at;
                    let f = vec![
                        -(i as f32),
                        -1.0,
                        (i == 0) as u8 as f32,
                        0.5,
                        0.5,
                        0.0,
                        right as u8 as f32,
                        0.0,
                    ];
                    (f, right)
                })
                .collect(),
        };
        let qs: Vec<Question> = (0..20)
            .map(|i| q(&format!("a{}", i / 2), 1 + i % 2))
            .chain([q("none", 9)])
            .collect();
        let (cv, ranker) = cross_validate(&qs, 5, 0.05);
        assert_eq!(cv.questions, 21);
        assert_eq!(cv.candidates, 63);
        assert_eq!(cv.folds, 5);
        assert_eq!(cv.greedy_right, 0);
        assert_eq!(cv.any_right, 20);
        assert_eq!(cv.ranked_right, 20, "{cv:?}");
        assert_eq!(ranker.features.len(), FEATURES.len());
    }
}
