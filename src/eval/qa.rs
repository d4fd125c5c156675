//! Answer quality: normalised exact match, citation accuracy, fabricated PMIDs, abstention.
use serde::Serialize;

use crate::cite::{mentions, remove_pmids};

/// Lower-case; punctuation becomes space; the articles a, an, the go; spaces collapse.
pub fn normalise(text: &str) -> String {
    let lowered: String = text
        .to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    lowered
        .split_whitespace()
        .filter(|w| !matches!(*w, "a" | "an" | "the"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The short answer: the first sentence, without PMID mentions.
pub fn short_answer(answer: &str) -> String {
    let all = mentions(answer).into_iter().map(|(p, _)| p).collect();
    let text = remove_pmids(answer, &all);
    let end = text
        .char_indices()
        .find(|&(i, c)| {
            matches!(c, '.' | '!' | '?' | '\n')
                && text[i + c.len_utf8()..]
                    .chars()
                    .next()
                    .is_none_or(char::is_whitespace)
        })
        .map(|(i, _)| i)
        .unwrap_or(text.len());
    text[..end].trim().to_string()
}

/// Correct when a golden answer equals the normalised short answer or occurs in it as a
/// whole-word span.
pub fn exact_match(answer: &str, golden: &[String]) -> bool {
    let short = normalise(&short_answer(answer));
    if short.is_empty() {
        return false;
    }
    let padded = format!(" {short} ");
    golden.iter().any(|g| {
        let g = normalise(g);
        !g.is_empty() && (g == short || padded.contains(&format!(" {g} ")))
    })
}

/// One question's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct QaOutcome {
    pub id: String,
    pub answer: String,
    /// Exact match for answerable questions; abstained for unanswerable ones.
    pub correct: bool,
    pub citations: Vec<String>,
    pub abstained: bool,
    /// The source PMID was among the evidence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retrieved: Option<bool>,
    pub removed_pmids: usize,
    /// Share of the question's weight in the best passage (what abstention is decided on).
    pub coverage: f32,
    /// Cosine between the question and the closest passage (dense and hybrid modes).
    pub similarity: Option<f32>,
    /// The answerability model's probability that the evidence answers (when it decided).
    pub p_answerable: Option<f32>,
    /// The answer is a copy of evidence text that starts or ends inside a word.
    pub cut_inside_word: bool,
    pub ms: f64,
    /// The candidate spans read, with the generator's log-probabilities among their features
    /// (when several were read): what a confidence signal for abstention can be measured on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub span_candidates: Vec<crate::answer::SpanCandidate>,
}

#[derive(Debug, Clone, Serialize)]
pub struct QaReport {
    pub dataset: String,
    pub n: usize,
    /// Null with `--retrieval-only` (nothing was generated).
    pub exact_match: Option<f64>,
    #[serde(rename = "retrieval_hit@k")]
    pub retrieval_hit_k: f64,
    pub citation_accuracy: Option<f64>,
    /// PMIDs the model wrote that were not in its evidence (all removed before display).
    pub fabricated_pmids: usize,
    /// Fraction of questions answered with "insufficient evidence".
    pub abstained: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub k: usize,
    pub model: String,
    /// Answers copied from evidence that start or end inside a word.
    pub spans_cut_inside_word: usize,
    /// Reliability of the answerability model's probabilities against the set's labels
    /// (answerable or not), when it decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answerability_calibration: Option<crate::answerable::Calibration>,
    /// With `--fit-span-ranker`: the ranker fitted and its cross-validated figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span_ranker: Option<SpanRankerFit>,
    pub items: Vec<QaOutcome>,
}

/// Whether `answer` (its short answer) is a copy of some of `texts` that begins or ends in the
/// middle of a word there (every copy of it does).
pub fn cut_inside_word(answer: &str, texts: &[&str]) -> bool {
    let short = short_answer(answer);
    if short.is_empty() {
        return false;
    }
    let mut found = false;
    for t in texts {
        for (at, _) in t.match_indices(short.as_str()) {
            found = true;
            let before = t[..at].chars().next_back();
            let after = t[at + short.len()..].chars().next();
            let first = short.chars().next();
            let last = short.chars().next_back();
            let inside = |edge: Option<char>, own: Option<char>| {
                edge.is_some_and(char::is_alphanumeric) && own.is_some_and(char::is_alphanumeric)
            };
            if !inside(before, first) && !inside(after, last) {
                return false;
            }
        }
    }
    found
}

/// The span ranker fitted by `eval qa --fit-span-ranker`, with its cross-validated figures.
#[derive(Debug, Clone, Serialize)]
pub struct SpanRankerFit {
    pub cross_validated: crate::span_rank::CrossValidated,
    pub ranker: crate::span_rank::Ranker,
    pub written_to: String,
}

/// Aggregates outcomes; `answerable[i]` tells whether item i has a golden answer, `source[i]`
/// its source PMID.
pub fn report(
    dataset: String,
    k: usize,
    model: String,
    items: Vec<QaOutcome>,
    answerable: &[bool],
    source: &[Option<String>],
    generated: bool,
) -> QaReport {
    let n = items.len();
    let frac = |count: usize, of: usize| {
        if of == 0 {
            0.0
        } else {
            count as f64 / of as f64
        }
    };
    let answerable_n = answerable.iter().filter(|&&a| a).count();
    let em = items
        .iter()
        .zip(answerable)
        .filter(|(o, &a)| a && o.correct)
        .count();
    let with_source = source.iter().filter(|s| s.is_some()).count();
    let hits = items.iter().filter(|o| o.retrieved == Some(true)).count();
    let cited = items
        .iter()
        .zip(source)
        .filter(|(o, s)| s.as_ref().is_some_and(|s| o.citations.contains(s)))
        .count();
    let judged: Vec<(f32, bool)> = items
        .iter()
        .zip(answerable)
        .filter_map(|(o, &a)| o.p_answerable.map(|p| (p, a)))
        .collect();
    let answerability_calibration = (!judged.is_empty()).then(|| {
        let (p, a): (Vec<f32>, Vec<bool>) = judged.into_iter().unzip();
        crate::answerable::calibration(&p, &a, 10)
    });
    let mut ms: Vec<f64> = items.iter().map(|o| o.ms).collect();
    ms.sort_by(f64::total_cmp);
    QaReport {
        dataset,
        n,
        exact_match: generated.then(|| frac(em, answerable_n)),
        retrieval_hit_k: frac(hits, with_source),
        citation_accuracy: generated.then(|| frac(cited, with_source)),
        fabricated_pmids: items.iter().map(|o| o.removed_pmids).sum(),
        abstained: frac(items.iter().filter(|o| o.abstained).count(), n),
        p50_ms: super::retrieval::percentile(&ms, 0.5),
        p95_ms: super::retrieval::percentile(&ms, 0.95),
        k,
        model,
        spans_cut_inside_word: items.iter().filter(|o| o.cut_inside_word).count(),
        answerability_calibration,
        span_ranker: None,
        items,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn normalises_like_squad() {
        assert_eq!(
            normalise("The  Senior-Fitness Test!"),
            "senior fitness test"
        );
        assert_eq!(normalise("an α-helix"), "α helix");
    }

    #[test]
    fn short_answer_is_the_first_sentence_without_pmids() {
        assert_eq!(
            short_answer("Tetracycline [PMID 409786]. It left 70% infected."),
            "Tetracycline"
        );
        assert_eq!(short_answer("About 3.5 mg per day"), "About 3.5 mg per day");
    }

    #[test]
    fn exact_match_by_equality_or_whole_word_span() {
        let gold = g(&["Senior Fitness Test", "SFT"]);
        assert!(exact_match("The Senior Fitness Test [PMID 1].", &gold));
        assert!(exact_match("It was the SFT battery.", &gold));
        assert!(!exact_match("SFTX", &gold));
        assert!(!exact_match("Fitness", &gold));
        // Only the first sentence counts.
        assert!(!exact_match("A walking test. Not the SFT.", &gold));
    }

    #[test]
    fn a_copy_cut_inside_a_word_is_found() {
        let texts = ["Lecithin had no effect in DS.", "Serum lecithin rose."];
        assert!(cut_inside_word("Lec [PMID 1]", &texts[..1]));
        assert!(!cut_inside_word("Lecithin [PMID 1]", &texts));
        // One whole-word copy is enough.
        assert!(!cut_inside_word("lecithin", &texts));
        assert!(!cut_inside_word("not in the evidence", &texts));
    }
}
