//! Citation verification: only PMIDs of the evidence survive, every shown citation is backed
//! by a passage the user can read, and weak evidence turns the answer into an abstention.
//!
//! Support is lexical: the share of a sentence's content words (analysed as the index analyses
//! text, so "muscles" meets "muscle") found in a passage, weighted by rarity (IDF) so that
//! "the patients were treated" supports nothing while a drug name does.
use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::prompt::Evidence;

/// The answer medlit gives when the evidence does not answer the question.
pub const INSUFFICIENT: &str = "The retrieved evidence is insufficient to answer this question.";

/// Phrases with which a model abstains.
const ABSTAIN_PHRASES: [&str; 6] = [
    "evidence is insufficient",
    "insufficient evidence",
    "evidence does not",
    "does not contain",
    "cannot be answered",
    "not enough information",
];

/// What the analyser and the index know about words.
pub trait Lexicon {
    /// Analysed terms of `text` (lower-cased, stemmed, stop words removed), duplicates kept.
    fn terms(&self, text: &str) -> Vec<String>;
    /// Rarity of a term in the corpus (higher = rarer); unknown terms are the rarest.
    fn idf(&self, term: &str) -> f32;
}

/// The analysed terms of `text`, each once, in order of first appearance.
pub fn distinct_terms(lexicon: &(impl Lexicon + ?Sized), text: &str) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    lexicon
        .terms(text)
        .into_iter()
        .filter(|t| seen.insert(t.clone()))
        .collect()
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Citation {
    #[serde(serialize_with = "crate::prompt::pmid_string")]
    pub pmid: u64,
    pub title: String,
    pub journal: String,
    pub year: Option<i64>,
    /// How well the answer is backed by this passage, 0..1.
    pub support: f32,
}

/// The evidence sentence an answer rests on, quoted with its article: for a span, the sentence
/// it was copied from.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Quote {
    #[serde(serialize_with = "crate::prompt::pmid_string")]
    pub pmid: u64,
    pub sentence: String,
}

/// An answer sentence and the passages that back it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SentenceSupport {
    pub text: String,
    #[serde(serialize_with = "crate::prompt::pmids_string")]
    pub pmids: Vec<u64>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Verified {
    pub answer: String,
    pub citations: Vec<Citation>,
    /// PMIDs the model wrote that are not among the evidence (removed from the answer).
    pub removed_pmids: Vec<String>,
    pub abstained: bool,
    /// Why it abstained: `model` (the model said so) or `weak_evidence`.
    pub abstain_reason: Option<&'static str>,
    /// When abstaining: the closest PMIDs, not presented as support.
    #[serde(serialize_with = "crate::prompt::pmids_string")]
    pub related: Vec<u64>,
    pub sentences: Vec<SentenceSupport>,
    /// The share of the question's weight found in the best passage, 0..1.
    pub question_coverage: f32,
    /// Cosine between the question and the closest passage (dense retrieval only).
    pub question_similarity: Option<f32>,
    /// The supporting sentence, quoted (none when abstaining).
    pub quote: Option<Quote>,
}

/// Thresholds of the decision to abstain.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Below this question coverage the evidence is too weak to answer, unless its meaning
    /// is close (`min_similarity`).
    pub min_coverage: f32,
    /// From this cosine between question and passage up, the evidence counts as covering the
    /// question even when it words it differently.
    pub min_similarity: f32,
    /// A passage backs a sentence from this support up.
    pub min_support: f32,
}

impl Thresholds {
    pub const DEFAULT_MIN_COVERAGE: f32 = 0.5;
    pub const DEFAULT_MIN_SIMILARITY: f32 = 0.65;

    /// Whether evidence with this lexical coverage and closest cosine is enough to answer
    /// from: either the question's distinctive words are there, or its meaning is.
    pub fn covers(&self, coverage: f32, similarity: Option<f32>) -> bool {
        coverage >= self.min_coverage || similarity.is_some_and(|s| s >= self.min_similarity)
    }

    /// These thresholds with the coverage decision already taken (by the answerability
    /// model): evidence covers the question exactly when `covered`.
    pub fn decided(self, covered: bool) -> Self {
        let edge = if covered {
            f32::NEG_INFINITY
        } else {
            f32::INFINITY
        };
        Thresholds {
            min_coverage: edge,
            min_similarity: edge,
            ..self
        }
    }
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            min_coverage: Self::DEFAULT_MIN_COVERAGE,
            min_similarity: Self::DEFAULT_MIN_SIMILARITY,
            min_support: 0.5,
        }
    }
}

/// PMIDs written in `text`, in order of appearance, with the byte span of each mention
/// (`[PMID 123]`, `PMID: 123`, `PMID 123`, `(PMID 1, 2)`, and a bare `[12345]` of 5 to 9
/// digits, shorter ones being years or reference numbers).
pub fn mentions(text: &str) -> Vec<(String, std::ops::Range<usize>)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        let lower_starts = rest
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("pmid"));
        if lower_starts {
            // PMID, optional s / : / spaces, then one or more comma-separated numbers.
            let mut j = i + 4;
            while j < bytes.len() && matches!(bytes[j], b's' | b'S' | b':' | b' ' | b'#') {
                j += 1;
            }
            let mut any = false;
            loop {
                let start = j;
                while j < bytes.len() && bytes[j].is_ascii_digit() {
                    j += 1;
                }
                if j == start {
                    break;
                }
                any = true;
                out.push((text[start..j].to_string(), start..j));
                let mut k = j;
                while k < bytes.len() && matches!(bytes[k], b',' | b' ' | b';') {
                    k += 1;
                }
                if k < bytes.len() && bytes[k].is_ascii_digit() && k > j {
                    j = k;
                } else {
                    break;
                }
            }
            i = if any { j } else { i + 4 };
            continue;
        }
        if bytes[i] == b'[' {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                j += 1;
            }
            let digits = j - i - 1;
            if (5..=9).contains(&digits) && j < bytes.len() && bytes[j] == b']' {
                out.push((text[i + 1..j].to_string(), i + 1..j));
                i = j + 1;
                continue;
            }
        }
        i += rest.chars().next().map_or(1, char::len_utf8);
    }
    out
}

/// Removes the mentions of `bad` PMIDs (with their `[PMID …]` wrapper when it holds nothing
/// else) and tidies the spaces left behind.
pub fn remove_pmids(text: &str, bad: &HashSet<String>) -> String {
    if bad.is_empty() {
        return text.to_string();
    }
    let mut out = text.to_string();
    for pmid in bad {
        for pat in [
            format!("[PMID {pmid}]"),
            format!("[PMID: {pmid}]"),
            format!("(PMID {pmid})"),
            format!("(PMID: {pmid})"),
            format!("[{pmid}]"),
            format!("PMID: {pmid}"),
            format!("PMID {pmid}"),
        ] {
            out = out.replace(&pat, "");
        }
    }
    // Mentions in other forms (lists, `PMID#…`): remove just their number, by its span, so a
    // longer number that merely contains a bad PMID's digits is left alone.
    for (pmid, span) in mentions(&out).into_iter().rev() {
        if bad.contains(&pmid) {
            out.replace_range(span, "");
        }
    }
    let mut tidy = String::with_capacity(out.len());
    for word in out.split(' ').filter(|w| !w.is_empty()) {
        if !tidy.is_empty() && !word.starts_with(['.', ',', ';', ':']) {
            tidy.push(' ');
        }
        tidy.push_str(word);
    }
    tidy.replace("[]", "").replace("()", "").trim().to_string()
}

/// Sentences of an answer (ends at `.`, `!`, `?` followed by a space or the end).
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let b = text.as_bytes();
    for i in 0..b.len() {
        if matches!(b[i], b'.' | b'!' | b'?') && (i + 1 == b.len() || b[i + 1] == b' ') {
            let s = text[start..=i].trim();
            if !s.is_empty() {
                out.push(s);
            }
            start = i + 1;
        }
    }
    let tail = text[start..].trim();
    if !tail.is_empty() {
        out.push(tail);
    }
    out
}

/// IDF-weighted share of `query`'s distinct terms found in `passage_terms`.
fn coverage(lex: &dyn Lexicon, query: &[String], passage_terms: &HashSet<String>) -> f32 {
    let distinct: HashSet<&String> = query.iter().collect();
    let (mut have, mut all) = (0.0, 0.0);
    for t in distinct {
        let w = lex.idf(t);
        all += w;
        if passage_terms.contains(t) {
            have += w;
        }
    }
    if all == 0.0 {
        0.0
    } else {
        have / all
    }
}

/// The share of the question's weight (IDF) found in the passage that covers it best, 0..1:
/// low when the question's distinctive words are in none of the evidence.
pub fn question_coverage(question: &str, evidence: &[Evidence], lex: &dyn Lexicon) -> f32 {
    best_coverage(lex, &lex.terms(question), &passage_terms(evidence, lex))
}

/// The highest cosine between the question and a passage of the evidence, when dense
/// retrieval scored any.
pub fn question_similarity(evidence: &[Evidence]) -> Option<f32> {
    evidence
        .iter()
        .filter_map(|e| e.similarity)
        .fold(None, |best, s| Some(best.map_or(s, |b: f32| b.max(s))))
}

/// The analysed terms of each passage with its title.
fn passage_terms(evidence: &[Evidence], lex: &dyn Lexicon) -> Vec<HashSet<String>> {
    evidence
        .iter()
        .map(|e| {
            lex.terms(&format!("{} {}", e.title, e.text))
                .into_iter()
                .collect()
        })
        .collect()
}

fn best_coverage(lex: &dyn Lexicon, query: &[String], passages: &[HashSet<String>]) -> f32 {
    passages
        .iter()
        .map(|p| coverage(lex, query, p))
        .fold(0.0, f32::max)
}

/// The sentence of a cited passage that covers most of the answer's weight: the quote of a
/// free-text answer (a span's quote is the sentence it was copied from).
pub fn best_quote(v: &Verified, evidence: &[Evidence], lex: &dyn Lexicon) -> Option<Quote> {
    let mut terms = lex.terms(&remove_pmids(&v.answer, &HashSet::new()));
    terms.retain(|t| t != "pmid");
    let mut best: Option<(f32, Quote)> = None;
    for c in &v.citations {
        let Some(e) = evidence.iter().find(|e| e.pmid == c.pmid) else {
            continue;
        };
        for s in crate::span_unit::sentences(&e.text) {
            let have: HashSet<String> = lex.terms(s).into_iter().collect();
            let score = coverage(lex, &terms, &have);
            if score > 0.0 && best.as_ref().is_none_or(|(b, _)| score > *b) {
                best = Some((
                    score,
                    Quote {
                        pmid: e.pmid,
                        sentence: s.to_string(),
                    },
                ));
            }
        }
    }
    best.map(|(_, q)| q)
}

/// Checks a model's draft against the evidence it was given.
pub fn verify(
    question: &str,
    draft: &str,
    evidence: &[Evidence],
    lex: &dyn Lexicon,
    th: Thresholds,
) -> Verified {
    let passage_terms = passage_terms(evidence, lex);
    let question_coverage = best_coverage(lex, &lex.terms(question), &passage_terms);
    let question_similarity = question_similarity(evidence);

    let known: HashMap<u64, usize> = evidence
        .iter()
        .enumerate()
        .map(|(i, e)| (e.pmid, i))
        .collect();
    // What the model wrote is text; a mention is known when its number is in the evidence.
    let known_as = |p: &str| p.parse::<u64>().ok().and_then(|n| known.get(&n).copied());
    let written = mentions(draft);
    let removed: HashSet<String> = written
        .iter()
        .filter(|(p, _)| known_as(p).is_none())
        .map(|(p, _)| p.clone())
        .collect();
    let mut removed_pmids: Vec<String> = removed.iter().cloned().collect();
    removed_pmids.sort();
    let answer = remove_pmids(draft.trim(), &removed);

    let related: Vec<u64> = evidence.iter().take(3).map(|e| e.pmid).collect();
    let lower = answer.to_lowercase();
    let abstain = |reason: &'static str, removed_pmids: Vec<String>| Verified {
        answer: INSUFFICIENT.to_string(),
        citations: Vec::new(),
        removed_pmids,
        abstained: true,
        abstain_reason: Some(reason),
        related: related.clone(),
        sentences: Vec::new(),
        question_coverage,
        question_similarity,
        quote: None,
    };
    if !th.covers(question_coverage, question_similarity) {
        return abstain("weak_evidence", removed_pmids);
    }
    if answer.is_empty() || ABSTAIN_PHRASES.iter().any(|p| lower.contains(p)) {
        return abstain("model", removed_pmids);
    }

    // Support of each sentence by each passage; the passages a sentence cites come first.
    let mut best_support: HashMap<usize, f32> = HashMap::new();
    let mut support_rows = Vec::new();
    for s in sentences(&answer) {
        let cited: Vec<usize> = mentions(s)
            .iter()
            .filter_map(|(p, _)| known_as(p))
            .collect();
        let mut s_terms = lex.terms(s);
        s_terms.retain(|t| t != "pmid");
        let mut backing: Vec<(usize, f32)> = passage_terms
            .iter()
            .enumerate()
            .map(|(i, p)| (i, coverage(lex, &s_terms, p)))
            .filter(|&(i, sup)| sup >= th.min_support || (cited.contains(&i) && sup > 0.0))
            .collect();
        backing.sort_by(|a, b| b.1.total_cmp(&a.1));
        // A sentence with no content words of its own (an answer like "Yes.") rests on what it
        // cites, or on the best passage for the question.
        if s_terms.is_empty() && backing.is_empty() {
            backing = cited.iter().map(|&i| (i, 1.0)).collect();
        }
        for &(i, sup) in &backing {
            let e = best_support.entry(i).or_insert(0.0);
            *e = e.max(sup);
        }
        support_rows.push(SentenceSupport {
            text: s.to_string(),
            pmids: backing.iter().map(|&(i, _)| evidence[i].pmid).collect(),
        });
    }
    if best_support.is_empty() {
        return abstain("weak_evidence", removed_pmids);
    }
    let mut cited: Vec<(usize, f32)> = best_support.into_iter().collect();
    cited.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let citations = cited
        .into_iter()
        .map(|(i, support)| {
            let e = &evidence[i];
            Citation {
                pmid: e.pmid,
                title: e.title.clone(),
                journal: e.journal.clone(),
                year: e.year,
                support,
            }
        })
        .collect();
    Verified {
        answer,
        citations,
        removed_pmids,
        abstained: false,
        abstain_reason: None,
        related: Vec::new(),
        sentences: support_rows,
        question_coverage,
        question_similarity,
        quote: None,
    }
}

impl Lexicon for crate::retrieve::Bm25Searcher {
    fn terms(&self, text: &str) -> Vec<String> {
        self.analyse(text)
    }

    fn idf(&self, term: &str) -> f32 {
        crate::retrieve::Bm25Searcher::idf(self, term)
    }
}

impl crate::answerable::Corpus for crate::retrieve::Bm25Searcher {
    fn knows(&self, term: &str) -> bool {
        self.doc_freq(term) > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lower-cased words, a tiny stop list, no stemming; every term equally rare.
    struct Plain;
    impl Lexicon for Plain {
        fn terms(&self, text: &str) -> Vec<String> {
            text.split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_lowercase)
                .filter(|w| !["the", "is", "in", "of", "which", "what", "a"].contains(&w.as_str()))
                .filter(|w| !w.chars().all(|c| c.is_ascii_digit()))
                .collect()
        }
        fn idf(&self, _: &str) -> f32 {
            1.0
        }
    }

    fn ev(pmid: &str, title: &str, text: &str) -> Evidence {
        Evidence {
            pmid: pmid.parse().unwrap(),
            title: title.into(),
            journal: "J".into(),
            year: Some(1990),
            text: text.into(),
            similarity: None,
            bm25_rank: None,
            dense_rank: None,
            closest_sentence: None,
        }
    }

    fn evidence() -> Vec<Evidence> {
        vec![
            ev(
                "111",
                "Dystrophin in muscular dystrophy",
                "Dystrophin protein is absent in Duchenne muscular dystrophy muscle.",
            ),
            ev("222", "Statins", "Statins lower cholesterol."),
        ]
    }

    #[test]
    fn close_meaning_covers_a_reworded_question_that_shares_no_words() {
        let question = "Which molecule is missing from the muscles of boys with DMD?";
        let mut ev = evidence();
        let coverage = question_coverage(question, &ev, &Plain);
        assert!(coverage < 0.5, "{coverage}");
        let th = Thresholds::default();
        // BM25-only evidence has no similarity: weak wording means abstain.
        let v = verify(question, "Dystrophin [PMID 111].", &ev, &Plain, th);
        assert_eq!(v.abstain_reason, Some("weak_evidence"));
        // Dense retrieval found a passage close in meaning: the answer stands.
        ev[0].similarity = Some(th.min_similarity + 0.05);
        ev[1].similarity = Some(0.2);
        assert_eq!(question_similarity(&ev), ev[0].similarity);
        let v = verify(question, "Dystrophin [PMID 111].", &ev, &Plain, th);
        assert!(!v.abstained, "{v:?}");
        assert_eq!(v.citations[0].pmid, 111);
        // Only as close as an unrelated passage: abstain again.
        ev[0].similarity = Some(th.min_similarity - 0.05);
        let v = verify(question, "Dystrophin [PMID 111].", &ev, &Plain, th);
        assert!(v.abstained);
    }

    #[test]
    fn finds_pmid_mentions_in_every_usual_form() {
        let got: Vec<String> = mentions("a [PMID 123] b (PMID: 4567, 8910) c [12345] d PMIDs 42")
            .into_iter()
            .map(|m| m.0)
            .collect();
        assert_eq!(got, ["123", "4567", "8910", "12345", "42"]);
        // Bracketed years and small numbers are not PMIDs.
        assert!(mentions("in [2021] and [12] and 1234").is_empty());
    }

    #[test]
    fn a_fabricated_pmid_is_removed_and_counted() {
        let v = verify(
            "Which protein is absent in Duchenne muscular dystrophy?",
            "Dystrophin [PMID 111] [PMID 999].",
            &evidence(),
            &Plain,
            Thresholds::default(),
        );
        assert!(!v.abstained, "{v:?}");
        assert_eq!(v.removed_pmids, ["999"]);
        assert!(!v.answer.contains("999"), "{}", v.answer);
        assert_eq!(v.answer, "Dystrophin [PMID 111].");
        // Only whole mentions go: digits inside another number stay.
        let bad: HashSet<String> = ["999".to_string()].into();
        assert_eq!(
            remove_pmids("In 19990 patients (PMIDs 111, 999).", &bad),
            "In 19990 patients (PMIDs 111, )."
        );
        assert_eq!(v.citations.len(), 1);
        assert_eq!(v.citations[0].pmid, 111);
    }

    #[test]
    fn an_uncited_but_supported_answer_gets_its_passage() {
        let v = verify(
            "Which protein is absent in Duchenne muscular dystrophy?",
            "Dystrophin protein",
            &evidence(),
            &Plain,
            Thresholds::default(),
        );
        assert_eq!(
            v.citations.iter().map(|c| c.pmid).collect::<Vec<_>>(),
            [111]
        );
        assert_eq!(v.sentences[0].pmids, [111]);
    }

    #[test]
    fn a_citation_the_text_does_not_back_is_dropped() {
        let v = verify(
            "Which protein is absent in Duchenne muscular dystrophy?",
            "Dystrophin is absent [PMID 111]. Utrophin compensates fully [PMID 222].",
            &evidence(),
            &Plain,
            Thresholds::default(),
        );
        assert!(v.citations.iter().all(|c| c.pmid == 111), "{v:?}");
    }

    #[test]
    fn abstains_when_the_model_says_so_or_the_evidence_is_weak() {
        let v = verify(
            "Which protein is absent in Duchenne muscular dystrophy?",
            "The evidence is insufficient to answer this question.",
            &evidence(),
            &Plain,
            Thresholds::default(),
        );
        assert!(v.abstained);
        assert_eq!(v.abstain_reason, Some("model"));
        assert_eq!(v.answer, INSUFFICIENT);
        assert!(v.citations.is_empty());
        assert_eq!(v.related, [111, 222]);

        let v = verify(
            "Which kinase inhibitor was approved for myelofibrosis in 2023?",
            "Momelotinib [PMID 222].",
            &evidence(),
            &Plain,
            Thresholds::default(),
        );
        assert!(v.abstained);
        assert_eq!(v.abstain_reason, Some("weak_evidence"));
    }
}
