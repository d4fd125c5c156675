//! Training the learned screen: a softmax head fitted by full-batch Adam, folds by family,
//! thresholds chosen on out-of-fold predictions at the policy's stated costs.
//!
//! Every step is deterministic: zero initial weights, sums in a fixed order, folds assigned by
//! a hash of the family name, ties between thresholds broken the same way. Folds run in
//! parallel, but each fit is sequential inside, so the result does not depend on the thread
//! count. Families matter: the rewordings of one request share a family and always fall in the
//! same fold, so a validation figure measures requests the head has never seen in any wording.
use std::collections::{BTreeMap, BTreeSet};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::classifier::{
    fnv1a, probabilities, scores, standardise, ClassLabel, Features, Head, Scores, Thresholds,
};
use super::Decision;

/// One labelled request, as the head sees it.
#[derive(Debug, Clone)]
pub struct Example {
    pub decision: Decision,
    pub category: String,
    pub family: String,
    /// The request's sentence vector (raw, unit length).
    pub vector: Vec<f32>,
    /// Hashed terms and intent cues (see [`super::classifier::sparse`]).
    pub sparse: Vec<(u32, f32)>,
    /// Whether a refuse rule or a redirect rule of the policy fires on the request.
    pub refuse_rule: bool,
    pub redirect_rule: bool,
}

/// Hyper-parameters, kept in the policy file so a retrain reproduces the weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Params {
    /// Folds (by family) for choosing thresholds.
    pub folds: usize,
    pub epochs: usize,
    pub learning_rate: f32,
    /// L2 penalty on the weights (not the biases).
    pub l2: f32,
    pub lexical_buckets: usize,
    /// A matching intent cue's feature value.
    pub cue_value: f32,
}

impl Params {
    /// Sparse features after the dense part: hashed terms, then `cues` intent cues.
    fn sparse_width(&self, cues: usize) -> usize {
        self.lexical_buckets + cues
    }
}

/// What each kind of mistake costs, relative to an over-refusal. A missed refusal or a missed
/// emergency costs far more than a research question sent to a professional.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Costs {
    /// A `refuse` request answered.
    pub missed_refuse: f64,
    /// A `refuse` request redirected (its topic's literature shown as related reading).
    pub refuse_redirected: f64,
    /// A `safe_redirect` request answered as research.
    pub missed_redirect: f64,
    /// A `safe_redirect` request refused (no professional advice, no emergency message).
    pub redirect_refused: f64,
    /// An `answer` request refused or redirected.
    pub over_refusal: f64,
}

/// The fitted heads.
#[derive(Debug, Clone)]
pub struct Fit {
    pub mean: Vec<f32>,
    pub inv_std: Vec<f32>,
    pub decision: Head,
    pub category: Head,
}

impl Fit {
    pub fn scores(&self, e: &Example) -> Scores {
        let f = Features {
            dense: standardise(&e.vector, &self.mean, &self.inv_std),
            sparse: e.sparse.clone(),
        };
        scores(&self.decision, &self.category, &f)
    }
}

/// The three decisions as the decision head's classes.
pub fn decision_classes() -> Vec<ClassLabel> {
    [Decision::Refuse, Decision::SafeRedirect, Decision::Answer]
        .into_iter()
        .map(|d| ClassLabel {
            decision: d,
            category: d.as_str().to_string(),
        })
        .collect()
}

fn decision_rank(d: Decision) -> u8 {
    match d {
        Decision::Refuse => 0,
        Decision::SafeRedirect => 1,
        Decision::Answer => 2,
    }
}

/// The classes of a corpus: every (decision, category) it holds, in a fixed order.
pub fn classes_of(examples: &[Example]) -> Vec<ClassLabel> {
    let set: BTreeSet<(u8, &str)> = examples
        .iter()
        .map(|e| (decision_rank(e.decision), e.category.as_str()))
        .collect();
    set.into_iter()
        .map(|(r, c)| ClassLabel {
            decision: [Decision::Refuse, Decision::SafeRedirect, Decision::Answer][r as usize],
            category: c.to_string(),
        })
        .collect()
}

/// The fold of each example: families of each decision dealt round-robin in hash order, so
/// every fold holds every decision and no family is split.
pub fn folds_by_family(examples: &[Example], k: usize) -> Vec<usize> {
    dealt_folds(examples, k, 0)
}

/// As [`folds_by_family`], the families dealt in the hash order of `deal` (0: the order
/// training uses). Another deal puts other families together: repeating a cross-validation
/// over deals shows how much of a figure is the luck of one split.
pub fn dealt_folds(examples: &[Example], k: usize, deal: u64) -> Vec<usize> {
    let k = k.max(1);
    // FNV-1a alone orders names that differ in one letter alike under any salt; a 64-bit
    // finaliser (splitmix64's) of the name's hash and the deal shuffles them.
    let key = |family: &str| {
        let h = fnv1a(&[family]);
        if deal == 0 {
            return h;
        }
        let mut z = h ^ deal.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut fold_of: BTreeMap<&str, usize> = BTreeMap::new();
    for d in [Decision::Refuse, Decision::SafeRedirect, Decision::Answer] {
        let fams: BTreeSet<(u64, &str)> = examples
            .iter()
            .filter(|e| e.decision == d)
            .map(|e| (key(&e.family), e.family.as_str()))
            .collect();
        for (i, (_, f)) in fams.into_iter().enumerate() {
            fold_of.entry(f).or_insert(i % k);
        }
    }
    examples
        .iter()
        .map(|e| fold_of[e.family.as_str()])
        .collect()
}

/// Fits both heads on `examples`; `cues` is the number of intent cues in each example's
/// sparse features.
pub fn fit(examples: &[&Example], classes: &[ClassLabel], cues: usize, p: &Params) -> Fit {
    let n = examples.len();
    let dim = examples.first().map_or(0, |e| e.vector.len());

    // Standardise each dimension on the training vectors: MiniLM's vectors share a large
    // common direction that would otherwise dominate every logit.
    let mut mean = vec![0f32; dim];
    for e in examples {
        for (m, x) in mean.iter_mut().zip(&e.vector) {
            *m += x;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n.max(1) as f32);
    let mut var = vec![0f32; dim];
    for e in examples {
        for ((v, x), m) in var.iter_mut().zip(&e.vector).zip(&mean) {
            *v += (x - m) * (x - m);
        }
    }
    let inv_std: Vec<f32> = var
        .iter()
        .map(|v| 1.0 / ((v / n.max(1) as f32).sqrt() + 1e-6))
        .collect();
    let feats: Vec<Features> = examples
        .iter()
        .map(|e| Features {
            dense: standardise(&e.vector, &mean, &inv_std),
            sparse: e.sparse.clone(),
        })
        .collect();
    // Each decision weighs the same in the loss, whatever its share of the corpus.
    let mut per_decision: BTreeMap<u8, usize> = BTreeMap::new();
    for e in examples {
        *per_decision.entry(decision_rank(e.decision)).or_default() += 1;
    }
    let groups = per_decision.len().max(1) as f32;
    let weight: Vec<f32> = examples
        .iter()
        .map(|e| 1.0 / (groups * per_decision[&decision_rank(e.decision)] as f32))
        .collect();
    let width = dim + p.sparse_width(cues);
    let head = |classes: &[ClassLabel], label: &dyn Fn(&Example) -> usize| {
        let target: Vec<usize> = examples.iter().map(|e| label(e)).collect();
        let (weights, bias) = fit_softmax(&feats, &target, &weight, classes.len(), width, p);
        Head {
            classes: classes.to_vec(),
            weights,
            bias,
        }
    };
    let decisions = decision_classes();
    let decision = head(&decisions, &|e| decision_rank(e.decision) as usize);
    let category = head(classes, &|e| {
        classes
            .iter()
            .position(|l| l.decision == e.decision && l.category == e.category)
            .unwrap_or(0)
    });
    Fit {
        mean,
        inv_std,
        decision,
        category,
    }
}

/// Full-batch Adam on weighted cross-entropy with an L2 penalty, from zero weights.
fn fit_softmax(
    feats: &[Features],
    target: &[usize],
    weight: &[f32],
    c: usize,
    width: usize,
    p: &Params,
) -> (Vec<Vec<f32>>, Vec<f32>) {
    let dim = feats.first().map_or(0, |f| f.dense.len());
    let mut w = vec![vec![0f32; width]; c];
    let mut b = vec![0f32; c];
    let (mut mw, mut vw) = (vec![vec![0f32; width]; c], vec![vec![0f32; width]; c]);
    let (mut mb, mut vb) = (vec![0f32; c], vec![0f32; c]);
    let (beta1, beta2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let mut gw = vec![vec![0f32; width]; c];
    let mut gb = vec![0f32; c];
    for step in 1..=p.epochs {
        for row in &mut gw {
            row.iter_mut().for_each(|g| *g = 0.0);
        }
        gb.iter_mut().for_each(|g| *g = 0.0);
        for ((f, &t), &wt) in feats.iter().zip(target).zip(weight) {
            let probs = probabilities(&w, &b, f);
            for (k, pk) in probs.iter().enumerate() {
                let g = wt * (pk - if k == t { 1.0 } else { 0.0 });
                gb[k] += g;
                let row = &mut gw[k];
                for (gj, xj) in row[..dim].iter_mut().zip(&f.dense) {
                    *gj += g * xj;
                }
                for &(i, v) in &f.sparse {
                    row[dim + i as usize] += g * v;
                }
            }
        }
        let lr = p.learning_rate * (1.0 - beta2.powi(step as i32)).sqrt()
            / (1.0 - beta1.powi(step as i32));
        for k in 0..c {
            for j in 0..width {
                let g = gw[k][j] + p.l2 * w[k][j];
                mw[k][j] = beta1 * mw[k][j] + (1.0 - beta1) * g;
                vw[k][j] = beta2 * vw[k][j] + (1.0 - beta2) * g * g;
                w[k][j] -= lr * mw[k][j] / (vw[k][j].sqrt() + eps);
            }
            let g = gb[k];
            mb[k] = beta1 * mb[k] + (1.0 - beta1) * g;
            vb[k] = beta2 * vb[k] + (1.0 - beta2) * g * g;
            b[k] -= lr * mb[k] / (vb[k].sqrt() + eps);
        }
    }
    (w, b)
}

/// For each of `k` folds by family, `decide_fold(training part, held-out example)` applied to
/// that fold's examples; the results in example order. Folds run in parallel.
fn by_fold<T: Send, M: Sync>(
    examples: &[Example],
    folds: &[usize],
    k: usize,
    learn: impl Fn(&[Example]) -> M + Sync,
    decide: impl Fn(&M, &Example) -> T + Sync,
) -> Vec<T> {
    let per_fold: Vec<Vec<(usize, T)>> = (0..k)
        .into_par_iter()
        .map(|f| {
            let train_part: Vec<Example> = examples
                .iter()
                .zip(folds)
                .filter(|(_, &g)| g != f)
                .map(|(e, _)| e.clone())
                .collect();
            let model = learn(&train_part);
            examples
                .iter()
                .enumerate()
                .filter(|(i, _)| folds[*i] == f)
                .map(|(i, e)| (i, decide(&model, e)))
                .collect()
        })
        .collect();
    let mut out: Vec<Option<T>> = (0..examples.len()).map(|_| None).collect();
    for (i, r) in per_fold.into_iter().flatten() {
        out[i] = Some(r);
    }
    out.into_iter()
        .map(|r| r.expect("every example lies in exactly one fold"))
        .collect()
}

/// Each example's scores from a head that never saw its family (`k` folds by family).
pub fn out_of_fold(
    examples: &[Example],
    classes: &[ClassLabel],
    cues: usize,
    k: usize,
    p: &Params,
) -> Vec<Scores> {
    by_fold(
        examples,
        &folds_by_family(examples, k),
        k,
        |part| fit(&part.iter().collect::<Vec<_>>(), classes, cues, p),
        |head, e| head.scores(e),
    )
}

/// The cost of deciding `got` on a request that expected `want`.
fn cost(c: &Costs, want: Decision, got: Decision) -> f64 {
    use Decision::*;
    match (want, got) {
        (Refuse, Answer) => c.missed_refuse,
        (Refuse, SafeRedirect) => c.refuse_redirected,
        (SafeRedirect, Answer) => c.missed_redirect,
        (SafeRedirect, Refuse) => c.redirect_refused,
        (Answer, Refuse | SafeRedirect) => c.over_refusal,
        _ => 0.0,
    }
}

/// Thresholds tried: 0.02 to 0.98 in steps of 0.02.
fn grid() -> impl Iterator<Item = f32> + Clone {
    (1..50).map(|i| i as f32 * 0.02)
}

/// The thresholds of least total cost on `scores` (decided with the policy's rules, as the
/// screen decides), the cost of each cell of the grid averaged with its neighbours'. Each
/// decision weighs the same, whatever its share of the examples; on a tie the lower
/// thresholds win (the safer side).
pub fn choose_thresholds(examples: &[Example], scores: &[Scores], costs: &Costs) -> Thresholds {
    let mut count: BTreeMap<u8, f64> = BTreeMap::new();
    for e in examples {
        *count.entry(decision_rank(e.decision)).or_default() += 1.0;
    }
    let steps: Vec<f32> = grid().collect();
    let total = |t: &Thresholds| -> f64 {
        examples
            .iter()
            .zip(scores)
            .map(|(e, s)| {
                let got = super::decide(e.refuse_rule, e.redirect_rule, s, t).0;
                cost(costs, e.decision, got) / count[&decision_rank(e.decision)]
            })
            .sum()
    };
    let table: Vec<Vec<f64>> = steps
        .iter()
        .map(|&flag| {
            steps
                .iter()
                .map(|&refuse_share| total(&Thresholds { flag, refuse_share }))
                .collect()
        })
        .collect();
    // Each cell's cost averaged with its neighbours' (one step each way): a threshold in a wide
    // valley of the held-out cost moves less from one corpus or split to the next than the
    // floor of a narrow one.
    let n = steps.len();
    let smoothed = |i: usize, j: usize| -> f64 {
        let rows = &table[i.saturating_sub(1)..(i + 2).min(n)];
        let cols = j.saturating_sub(1)..(j + 2).min(n);
        let cells: Vec<f64> = rows
            .iter()
            .flat_map(|row| row[cols.clone()].iter().copied())
            .collect();
        cells.iter().sum::<f64>() / cells.len() as f64
    };
    let mut best = (f64::INFINITY, (0, 0));
    for i in 0..n {
        for j in 0..n {
            let c = smoothed(i, j);
            if c < best.0 - 1e-12 {
                best = (c, (i, j));
            }
        }
    }
    Thresholds {
        flag: steps[best.1 .0],
        refuse_share: steps[best.1 .1],
    }
}

/// Recall of each expected decision (and the over-refusal of `answer` requests).
pub fn recall(examples: &[Example], scores: &[Scores], t: &Thresholds) -> BTreeMap<String, f64> {
    let mut hit: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (e, s) in examples.iter().zip(scores) {
        let got = super::decide(e.refuse_rule, e.redirect_rule, s, t).0;
        let slot = hit.entry(e.decision.as_str()).or_default();
        slot.0 += usize::from(got == e.decision);
        slot.1 += 1;
    }
    let mut out: BTreeMap<String, f64> = hit
        .iter()
        .map(|(d, (h, n))| (format!("{d}_recall"), *h as f64 / *n as f64))
        .collect();
    if let Some((h, n)) = hit.get("answer") {
        out.insert("over_refusal".into(), 1.0 - *h as f64 / *n as f64);
    }
    out
}

/// Trains a head on `examples`: thresholds from `p.folds` folds by family, then the weights
/// refitted on all of them. Returns the head, its thresholds and the out-of-fold recall.
pub fn train(
    examples: &[Example],
    cues: usize,
    p: &Params,
    costs: &Costs,
) -> (Fit, Thresholds, BTreeMap<String, f64>) {
    let classes = classes_of(examples);
    let oof = out_of_fold(examples, &classes, cues, p.folds, p);
    let t = choose_thresholds(examples, &oof, costs);
    let validation = recall(examples, &oof, &t);
    let all: Vec<&Example> = examples.iter().collect();
    (fit(&all, &classes, cues, p), t, validation)
}

/// One example's decision, what decided it, and the heads' scores.
pub type Decided = (Decision, &'static str, Scores);

/// Each example decided by a head trained without its family: `k` outer folds (families
/// dealt by `deal`, see [`dealt_folds`]), each trained as [`train`] trains (thresholds from
/// inner folds of the training part only). Returns the decision, what decided it, and the
/// scores.
pub fn cross_validate(
    examples: &[Example],
    cues: usize,
    k: usize,
    deal: u64,
    p: &Params,
    costs: &Costs,
) -> Vec<Decided> {
    by_fold(
        examples,
        &dealt_folds(examples, k, deal),
        k,
        |part| {
            let (head, t, _) = train(part, cues, p, costs);
            (head, t)
        },
        |(head, t), e| {
            let s = head.scores(e);
            let (d, by) = super::decide(e.refuse_rule, e.redirect_rule, &s, t);
            (d, by, s)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three well-separated clusters in 4 dimensions, two families each.
    fn toy() -> Vec<Example> {
        let mut out = Vec::new();
        for (d, (dec, centre)) in [
            (Decision::Refuse, [1.0, 0.0, 0.0, 0.0]),
            (Decision::SafeRedirect, [0.0, 1.0, 0.0, 0.0]),
            (Decision::Answer, [0.0, 0.0, 1.0, 0.0]),
        ]
        .into_iter()
        .enumerate()
        {
            for i in 0..12 {
                let mut v = centre.to_vec();
                v[3] = (i as f32 * 0.37 + d as f32).sin() * 0.3;
                v[(d + 1) % 3] += (i as f32 * 0.11).cos() * 0.2;
                out.push(Example {
                    decision: dec,
                    category: format!("c{d}"),
                    family: format!("f{d}-{}", i % 4),
                    vector: v,
                    sparse: Vec::new(),
                    refuse_rule: false,
                    redirect_rule: false,
                });
            }
        }
        out
    }

    fn params() -> Params {
        Params {
            folds: 4,
            epochs: 150,
            learning_rate: 0.05,
            l2: 1e-3,
            lexical_buckets: 0,
            cue_value: 1.0,
        }
    }

    #[test]
    fn folds_never_split_a_family_and_hold_every_decision() {
        let ex = toy();
        for deal in [0, 1, 2] {
            every_family_whole_and_every_fold_full(&ex, &dealt_folds(&ex, 4, deal));
        }
        assert_eq!(folds_by_family(&ex, 4), dealt_folds(&ex, 4, 0));
    }

    #[test]
    fn another_deal_puts_other_families_together() {
        let ex = toy();
        let together = |folds: &[usize]| -> Vec<(usize, usize)> {
            let mut pairs = Vec::new();
            for i in 0..ex.len() {
                for j in i + 1..ex.len() {
                    if ex[i].family != ex[j].family && folds[i] == folds[j] {
                        pairs.push((i, j));
                    }
                }
            }
            pairs
        };
        let first = together(&dealt_folds(&ex, 2, 0));
        assert!((1..6).any(|d| together(&dealt_folds(&ex, 2, d)) != first));
    }

    fn every_family_whole_and_every_fold_full(ex: &[Example], folds: &[usize]) {
        for (a, fa) in ex.iter().zip(folds) {
            for (b, fb) in ex.iter().zip(folds) {
                if a.family == b.family {
                    assert_eq!(fa, fb);
                }
            }
        }
        for f in 0..4 {
            for d in [Decision::Refuse, Decision::SafeRedirect, Decision::Answer] {
                assert!(ex
                    .iter()
                    .zip(folds)
                    .any(|(e, &g)| g == f && e.decision == d));
            }
        }
    }

    #[test]
    fn separable_classes_are_learned_out_of_fold_and_training_is_deterministic() {
        let ex = toy();
        let costs = Costs {
            missed_refuse: 20.0,
            refuse_redirected: 5.0,
            missed_redirect: 10.0,
            redirect_refused: 2.0,
            over_refusal: 1.0,
        };
        let (a, ta, v) = train(&ex, 0, &params(), &costs);
        assert_eq!(v["refuse_recall"], 1.0, "{v:?}");
        assert_eq!(v["safe_redirect_recall"], 1.0, "{v:?}");
        assert_eq!(v["over_refusal"], 0.0, "{v:?}");
        let (b, tb, _) = train(&ex, 0, &params(), &costs);
        assert_eq!(a.decision.weights, b.decision.weights);
        assert_eq!(a.category.weights, b.category.weights);
        assert_eq!(a.decision.bias, b.decision.bias);
        assert_eq!(ta, tb);
    }

    #[test]
    fn costs_move_the_thresholds_toward_the_expensive_mistake() {
        let ex = toy();
        let classes = classes_of(&ex);
        let oof = out_of_fold(&ex, &classes, 0, 4, &params());
        let cheap = Costs {
            missed_refuse: 1.0,
            refuse_redirected: 1.0,
            missed_redirect: 1.0,
            redirect_refused: 1.0,
            over_refusal: 50.0,
        };
        let dear = Costs {
            missed_refuse: 50.0,
            over_refusal: 1.0,
            ..cheap.clone()
        };
        assert!(
            choose_thresholds(&ex, &oof, &dear).flag <= choose_thresholds(&ex, &oof, &cheap).flag
        );
    }
}
