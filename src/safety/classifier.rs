//! The learned screen: two softmax heads over the request's sentence vector (the MiniLM model
//! medlit already loads for retrieval), the policy's intent cues (small regular expressions:
//! first person, a how-to, secrecy, a research frame…) and, optionally, hashed word and
//! word-pair features of the folded text.
//!
//! The decision head says refuse, safe_redirect or answer; the category head names the
//! category within the decision (which message is shown: crisis resources for self-harm, the
//! emergency advice for an emergency). Measured on held-out families, one head over the three
//! decisions over-refused less than summing a head over the categories. The weights come from
//! `medlit policy train` (see [`super::train`]) and are kept as a JSON data file beside the
//! policy, which records the file's sha256 and the embedding model's: weights trained on another
//! model's vectors would score noise, so a mismatch is refused, never run.
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::Decision;

/// The weights file's format version.
pub const FORMAT: u32 = 2;

/// The embedding model the weights were trained on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddingRef {
    pub id: String,
    pub sha256: String,
    pub dim: usize,
}

/// One output of the head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassLabel {
    pub decision: Decision,
    pub category: String,
}

/// The two decisions of the screen, each with its own threshold. First whether to answer at
/// all: a request is flagged when P(refuse) + P(safe_redirect) reaches `flag`; this is where the
/// costs are lopsided (a harmful request or an emergency answered costs far more than an
/// over-refusal). Then, of a flagged request, refuse when P(refuse)'s share of the flagged mass
/// reaches `refuse_share`, else redirect; a single P(refuse) threshold would trade emergencies
/// for refusals, since a low refuse threshold low enough to catch every harmful request also
/// catches the dosing questions that share its vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub flag: f32,
    pub refuse_share: f32,
}

/// How the weights were made, for the record (not read by the screen).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainingRecord {
    /// sha256 of the corpus file.
    pub corpus_sha256: String,
    pub prompts: usize,
    pub families: usize,
    /// Inner folds (by family) the thresholds were chosen on.
    pub folds: usize,
    pub epochs: usize,
    pub l2: f32,
    /// Out-of-fold recall per expected decision on the training corpus, with the thresholds
    /// chosen on those same folds (so slightly optimistic; `eval safety --cross-validate`
    /// gives the honest figure).
    pub validation: std::collections::BTreeMap<String, f64>,
}

/// An intent cue: a feature that is 1 when its pattern matches the folded request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cue {
    pub name: String,
    pub pattern: String,
}

/// One softmax layer: a row of weights and a bias per class.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Head {
    pub classes: Vec<ClassLabel>,
    /// One row per class: `embedding.dim` dense weights, then `lexical_buckets` lexical ones,
    /// then one per cue.
    pub weights: Vec<Vec<f32>>,
    pub bias: Vec<f32>,
}

/// The trained heads, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Classifier {
    pub format: u32,
    pub embedding: EmbeddingRef,
    /// Hashed word and word-pair features (0: none).
    pub lexical_buckets: usize,
    /// The intent cues the heads were trained with (copied from the policy at training).
    pub cues: Vec<Cue>,
    /// A matching cue's feature value (larger: the cues weigh more against the vector under
    /// the same L2 penalty).
    pub cue_value: f32,
    /// Per-dimension centre and 1/spread of the training vectors.
    pub mean: Vec<f32>,
    pub inv_std: Vec<f32>,
    /// Classes: the three decisions.
    pub decision: Head,
    /// Classes: the policy's categories.
    pub category: Head,
    pub thresholds: Thresholds,
    pub training: TrainingRecord,
    #[serde(skip)]
    compiled: Vec<Regex>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClassifierError {
    #[error("{name}: not a safety classifier weights file: {reason}")]
    Parse { name: String, reason: String },
    #[error("{name}: format {found}, this medlit reads format {FORMAT}; retrain with `medlit policy train`")]
    Format { name: String, found: u32 },
    #[error("{name}: {reason}")]
    Shape { name: String, reason: String },
}

/// The heads' view of one request: its standardised sentence vector and its sparse features.
#[derive(Debug, Clone)]
pub struct Features {
    pub dense: Vec<f32>,
    /// (index after the dense part, value) pairs, indices distinct: hashed terms, then cues.
    pub sparse: Vec<(u32, f32)>,
}

/// Compiles cue patterns; `name` names the file in an error.
pub fn compile_cues(cues: &[Cue]) -> Result<Vec<Regex>, (String, String)> {
    cues.iter()
        .map(|c| Regex::new(&c.pattern).map_err(|e| (c.name.clone(), e.to_string())))
        .collect()
}

/// The sparse features of a folded request: hashed terms, then `cue_value` per matching cue.
pub fn sparse(folded: &str, buckets: usize, cues: &[Regex], cue_value: f32) -> Vec<(u32, f32)> {
    let mut out = lexical(folded, buckets);
    out.extend(
        cues.iter()
            .enumerate()
            .filter(|(_, re)| re.is_match(folded))
            .map(|(i, _)| ((buckets + i) as u32, cue_value)),
    );
    out
}

/// Words of the folded text: runs of letters and digits.
fn words(folded: &str) -> Vec<&str> {
    folded
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect()
}

/// 64-bit FNV-1a of the parts joined by spaces (stable across runs and machines).
pub(crate) fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h ^= u64::from(b' ');
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        for b in p.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Hashed word and word-pair indicators of `folded`, scaled to unit length.
pub fn lexical(folded: &str, buckets: usize) -> Vec<(u32, f32)> {
    if buckets == 0 {
        return Vec::new();
    }
    let w = words(folded);
    let mut ids: Vec<u32> = w
        .iter()
        .map(|a| fnv1a(&[a]))
        .chain(w.windows(2).map(fnv1a))
        .map(|h| (h % buckets as u64) as u32)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let v = 1.0 / (ids.len().max(1) as f32).sqrt();
    ids.into_iter().map(|i| (i, v)).collect()
}

/// Standardises `vector` with the given centre and inverse spread.
pub fn standardise(vector: &[f32], mean: &[f32], inv_std: &[f32]) -> Vec<f32> {
    vector
        .iter()
        .zip(mean)
        .zip(inv_std)
        .map(|((x, m), s)| (x - m) * s)
        .collect()
}

/// Softmax of the logits of `weights`/`bias` for `f`.
pub fn probabilities(weights: &[Vec<f32>], bias: &[f32], f: &Features) -> Vec<f32> {
    let dim = f.dense.len();
    let mut z: Vec<f32> = weights
        .iter()
        .zip(bias)
        .map(|(row, b)| {
            let dense: f32 = row[..dim].iter().zip(&f.dense).map(|(w, x)| w * x).sum();
            let lex: f32 = f
                .sparse
                .iter()
                .map(|&(i, v)| row[dim + i as usize] * v)
                .sum();
            b + dense + lex
        })
        .collect();
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut total = 0.0;
    for v in &mut z {
        *v = (*v - max).exp();
        total += *v;
    }
    for v in &mut z {
        *v /= total;
    }
    z
}

/// What the heads say of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    pub refuse: f32,
    pub safe_redirect: f32,
    pub answer: f32,
    /// The most probable category of each decision.
    pub refuse_category: String,
    pub redirect_category: String,
    pub answer_category: String,
}

/// The probability of each decision (from the decision head) and the likeliest category of
/// each (from the category head).
pub fn scores(decision: &Head, category: &Head, f: &Features) -> Scores {
    let pd = probabilities(&decision.weights, &decision.bias, f);
    let pc = probabilities(&category.weights, &category.bias, f);
    let p = |d: Decision| {
        decision
            .classes
            .iter()
            .zip(&pd)
            .filter(|(c, _)| c.decision == d)
            .map(|(_, p)| p)
            .sum::<f32>()
    };
    let best = |d: Decision| {
        category
            .classes
            .iter()
            .zip(&pc)
            .filter(|(c, _)| c.decision == d)
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or_else(|| d.as_str().to_string(), |(c, _)| c.category.clone())
    };
    let q = |d: Decision| {
        category
            .classes
            .iter()
            .zip(&pc)
            .filter(|(c, _)| c.decision == d)
            .map(|(_, p)| p)
            .sum::<f32>()
    };
    // The decision is the two heads' average: the category head's classes are finer (a harmful
    // request and a dosing question share words but not categories), the decision head's
    // coarser; averaged, they measured better on held-out families than either alone.
    let m = |d: Decision| 0.5 * (p(d) + q(d));
    Scores {
        refuse: m(Decision::Refuse),
        safe_redirect: m(Decision::SafeRedirect),
        answer: m(Decision::Answer),
        refuse_category: best(Decision::Refuse),
        redirect_category: best(Decision::SafeRedirect),
        answer_category: best(Decision::Answer),
    }
}

impl Classifier {
    /// Parses and checks a weights file's shape (not yet its model: see
    /// [`Classifier::check_model`]).
    pub fn parse(name: &str, text: &str) -> Result<Self, ClassifierError> {
        // The format first: a file of another format fails on its fields, and "retrain" is the
        // useful message, not the name of a missing field.
        #[derive(Deserialize)]
        struct Format {
            format: u32,
        }
        if let Ok(Format { format }) = serde_json::from_str::<Format>(text) {
            if format != FORMAT {
                return Err(ClassifierError::Format {
                    name: name.to_string(),
                    found: format,
                });
            }
        }
        let mut c: Classifier = serde_json::from_str(text).map_err(|e| ClassifierError::Parse {
            name: name.to_string(),
            reason: e.to_string(),
        })?;
        if c.format != FORMAT {
            return Err(ClassifierError::Format {
                name: name.to_string(),
                found: c.format,
            });
        }
        let shape = |reason: String| ClassifierError::Shape {
            name: name.to_string(),
            reason,
        };
        let width = c.embedding.dim + c.lexical_buckets + c.cues.len();
        for (what, head) in [("decision", &c.decision), ("category", &c.category)] {
            if head.classes.is_empty()
                || head.weights.len() != head.classes.len()
                || head.bias.len() != head.classes.len()
            {
                return Err(shape(format!(
                    "{what} head: {} classes, {} weight rows, {} biases",
                    head.classes.len(),
                    head.weights.len(),
                    head.bias.len()
                )));
            }
            if let Some((i, row)) = head
                .weights
                .iter()
                .enumerate()
                .find(|(_, r)| r.len() != width)
            {
                return Err(shape(format!(
                    "{what} head: weight row {} has {} values; embedding dimension {} + {} lexical buckets + {} cues make {width}",
                    i + 1,
                    row.len(),
                    c.embedding.dim,
                    c.lexical_buckets,
                    c.cues.len()
                )));
            }
            for d in [Decision::Refuse, Decision::SafeRedirect, Decision::Answer] {
                if !head.classes.iter().any(|l| l.decision == d) {
                    return Err(shape(format!(
                        "{what} head: no class decides {}",
                        d.as_str()
                    )));
                }
            }
        }
        if c.mean.len() != c.embedding.dim || c.inv_std.len() != c.embedding.dim {
            return Err(shape(format!(
                "centre and spread have {} and {} values for a {}-dimensional embedding",
                c.mean.len(),
                c.inv_std.len(),
                c.embedding.dim
            )));
        }
        c.compiled = compile_cues(&c.cues)
            .map_err(|(cue, e)| shape(format!("cue {cue}: bad pattern: {e}")))?;
        Ok(c)
    }

    /// The features of a request: its sentence vector and folded text.
    pub fn features(&self, vector: &[f32], folded: &str) -> Features {
        Features {
            dense: standardise(vector, &self.mean, &self.inv_std),
            sparse: sparse(folded, self.lexical_buckets, &self.compiled, self.cue_value),
        }
    }

    pub fn scores(&self, vector: &[f32], folded: &str) -> Scores {
        scores(
            &self.decision,
            &self.category,
            &self.features(vector, folded),
        )
    }

    /// Assembles a classifier from trained parts (cues compiled).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        embedding: EmbeddingRef,
        lexical_buckets: usize,
        cues: Vec<Cue>,
        cue_value: f32,
        mean: Vec<f32>,
        inv_std: Vec<f32>,
        decision: Head,
        category: Head,
        thresholds: Thresholds,
        training: TrainingRecord,
    ) -> Result<Self, ClassifierError> {
        let compiled = compile_cues(&cues).map_err(|(cue, e)| ClassifierError::Shape {
            name: "the policy".into(),
            reason: format!("cue {cue}: bad pattern: {e}"),
        })?;
        Ok(Classifier {
            format: FORMAT,
            embedding,
            lexical_buckets,
            cues,
            cue_value,
            mean,
            inv_std,
            decision,
            category,
            thresholds,
            training,
            compiled,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_features_are_distinct_unit_length_and_stable() {
        let f = lexical("how do i make ricin at home", 1024);
        let norm: f32 = f.iter().map(|(_, v)| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-5);
        let mut ids: Vec<u32> = f.iter().map(|x| x.0).collect();
        ids.dedup();
        assert_eq!(ids.len(), f.len());
        assert_eq!(f, lexical("how do i make ricin at home", 1024));
        assert!(lexical("anything", 0).is_empty());
    }

    #[test]
    fn the_two_heads_average_and_the_category_head_names() {
        let label = |d, c: &str| ClassLabel {
            decision: d,
            category: c.into(),
        };
        // No features: the biases alone set the probabilities.
        let f = Features {
            dense: Vec::new(),
            sparse: Vec::new(),
        };
        let decision = Head {
            classes: vec![
                label(Decision::Refuse, "refuse"),
                label(Decision::SafeRedirect, "safe_redirect"),
                label(Decision::Answer, "answer"),
            ],
            weights: vec![Vec::new(); 3],
            bias: vec![2f32.ln(), 0.0, 0.0],
        };
        let category = Head {
            classes: vec![
                label(Decision::Refuse, "a"),
                label(Decision::Refuse, "b"),
                label(Decision::SafeRedirect, "c"),
                label(Decision::Answer, "d"),
            ],
            weights: vec![Vec::new(); 4],
            bias: vec![0.0, 1.0, 0.0, 0.0],
        };
        let s = scores(&decision, &category, &f);
        // Decision head: refuse 1/2, answer 1/4; category head: refuse (1 + e)/(3 + e),
        // answer 1/(3 + e).
        let e = std::f32::consts::E;
        assert!(
            (s.refuse - 0.5 * (0.5 + (1.0 + e) / (3.0 + e))).abs() < 1e-6,
            "{s:?}"
        );
        assert!(
            (s.answer - 0.5 * (0.25 + 1.0 / (3.0 + e))).abs() < 1e-6,
            "{s:?}"
        );
        assert!(
            (s.refuse + s.safe_redirect + s.answer - 1.0).abs() < 1e-6,
            "{s:?}"
        );
        assert_eq!(s.refuse_category, "b");
        assert_eq!(s.redirect_category, "c");
    }
}
