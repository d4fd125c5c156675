//! The query path end to end: retrieve, fill the prompt, generate, verify the citations.
use std::time::Instant;

use serde::Serialize;

use crate::cite::{self, Thresholds, Verified};
use crate::generate::sampler::Sampling;
use crate::generate::{GenOptions, GenerateError, Generated, Generator};
use crate::prompt::{Evidence, EvidenceOrder, PromptError, Template};
use crate::retrieve::hybrid::{Mode, RetrieveError, Retriever};
use crate::safety::{Decision, SafetyError, Screener, Verdict};

/// Tokens kept free for the chat wrapping around the prompt (turn markers, role names).
const CHAT_OVERHEAD: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    // The cause follows in the error chain (`{:#}` at the binary's edge): not repeated here.
    #[error("retrieving evidence")]
    Retrieve(#[from] RetrieveError),
    #[error("generating the answer")]
    Generate(#[from] GenerateError),
    #[error("the question is empty")]
    EmptyQuestion,
    /// The caller said stop (a client that went away): nothing more is computed.
    #[error("stopped: nobody waits for the answer any more")]
    Cancelled,
    #[error(transparent)]
    Safety(#[from] SafetyError),
}

pub struct AskOptions {
    pub k: usize,
    pub mode: Mode,
    /// Only evidence from articles these filters let through (years, journal, MeSH…).
    pub filters: crate::retrieve::Filters,
    pub template: Template,
    pub generation: GenOptions,
    pub thresholds: Thresholds,
    /// Answer with a span copied from the evidence (constrained decoding) instead of free
    /// text, when the generator can.
    pub extract: bool,
    /// Decides whether the evidence covers the question when dense retrieval scored it;
    /// `None` (or keyword-only evidence) leaves it to the coverage rule of `thresholds`.
    pub answerability: Option<crate::answerable::Model>,
    /// How a span answer is chosen.
    pub span: SpanChoice,
}

/// How a span answer is chosen among what the model would copy.
#[derive(Debug, Clone, Default)]
pub enum SpanChoice {
    /// The model's own greedy span, streamed as it is chosen.
    #[default]
    Greedy,
    /// `n` candidate spans from one reading of the prompt, the best by `ranker` kept (the
    /// greedy one without a ranker: how the ranker's training data is gathered).
    Candidates {
        n: usize,
        ranker: Option<crate::span_rank::Ranker>,
    },
}

/// Default answer lengths: a span is a name, a number or a short phrase (a few tokens, as
/// dev_qa's golden answers); free text has room for a sentence or two with citations.
pub const SPAN_TOKENS: usize = 16;
pub const FREE_TOKENS: usize = 96;
/// Default evidence sizes: a 270M model copying a span is distracted by more passages (exact
/// match on dev_qa 0.40 at k 3, 0.35 at k 5, see README); free text cites more of them.
pub const SPAN_K: usize = 3;
pub const FREE_K: usize = 5;

/// What a question's options start from, for one loaded generator: `ask`, `eval qa`, `demo`
/// and every request to the server take these, changing only what the request names. The
/// template is parsed once, here.
#[derive(Debug, Clone)]
pub struct Defaults {
    pub extract: bool,
    pub k: usize,
    pub template: Template,
    pub generation: GenOptions,
    pub thresholds: Thresholds,
    pub answerability: Option<crate::answerable::Model>,
    pub span: SpanChoice,
}

/// The choices `Defaults` are made from; `None` takes the engine's default for the answer
/// style (span or free text).
#[derive(Debug, Clone, Default)]
pub struct Choices<'a> {
    pub template: Option<&'a str>,
    pub evidence_order: Option<EvidenceOrder>,
    pub max_tokens: Option<usize>,
    pub k: Option<usize>,
    pub sampling: Sampling,
    pub thresholds: Thresholds,
    pub answerability: Option<crate::answerable::Model>,
    pub span: SpanChoice,
}

impl Defaults {
    /// `extract`: answer with a span (the default model's style) rather than free text.
    pub fn new(extract: bool, c: &Choices<'_>) -> Result<Self, PromptError> {
        let template = match c.template {
            Some(t) => t,
            None if extract => "extractive",
            None => crate::prompt::DEFAULT,
        };
        let order = c.evidence_order.unwrap_or(if extract {
            EvidenceOrder::BestLast
        } else {
            EvidenceOrder::Rank
        });
        Ok(Defaults {
            extract,
            k: c.k.unwrap_or(if extract { SPAN_K } else { FREE_K }),
            template: Template::load(template)?.ordered(order),
            generation: GenOptions {
                max_tokens: c
                    .max_tokens
                    .unwrap_or(if extract { SPAN_TOKENS } else { FREE_TOKENS })
                    .max(1),
                sampling: c.sampling,
            },
            thresholds: c.thresholds,
            answerability: c.answerability.clone(),
            span: c.span.clone(),
        })
    }

    /// The options of one question: these defaults, with what the request names.
    pub fn options(
        &self,
        mode: Mode,
        k: Option<usize>,
        max_tokens: Option<usize>,
        filters: crate::retrieve::Filters,
    ) -> AskOptions {
        let mut generation = self.generation.clone();
        if let Some(m) = max_tokens {
            generation.max_tokens = m.max(1);
        }
        AskOptions {
            k: k.unwrap_or(self.k),
            mode,
            filters,
            template: self.template.clone(),
            generation,
            thresholds: self.thresholds,
            extract: self.extract,
            answerability: self.answerability.clone(),
            span: self.span.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub retrieve: f64,
    pub generate: f64,
    pub total: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub question: String,
    /// The verified answer: its text, citations, abstention, sentence support, coverage (in
    /// the JSON, its fields stand beside the others).
    #[serde(flatten)]
    pub verified: Verified,
    pub evidence: Vec<Evidence>,
    /// What the model wrote, before verification.
    pub draft: String,
    pub prompt_tokens: usize,
    pub answer_tokens: usize,
    pub timings_ms: Timings,
    pub model: String,
    pub prompt_template: String,
    /// The safety policy's decision on the request (or on the draft, when the draft check
    /// withheld it).
    pub safety: Verdict,
    /// The answerability model's probability and the signals it read (when it decided).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answerability: Option<Answerability>,
    /// The candidate spans read and how each scored (when several were read).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub span_candidates: Vec<SpanCandidate>,
}

/// One candidate span of [`SpanChoice::Candidates`].
#[derive(Debug, Clone, Serialize)]
pub struct SpanCandidate {
    /// The span as a whole unit of its passage.
    pub text: String,
    #[serde(serialize_with = "crate::prompt::pmid_string")]
    pub pmid: u64,
    /// [`crate::span_rank::FEATURES`] in order (`null` for a feature not computed).
    pub features: Vec<Option<f32>>,
    /// The ranker's score, when a ranker chose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    pub chosen: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Answerability {
    pub probability: f32,
    pub threshold: f32,
    pub signals: crate::answerable::Signals,
}

/// The answerability model's view of `evidence` (as retrieved, before widening), when it
/// decides: with a model and evidence that dense retrieval scored.
pub fn answerability(
    retriever: &Retriever,
    question: &str,
    evidence: &[Evidence],
    model: Option<&crate::answerable::Model>,
) -> Option<Answerability> {
    let model = model.filter(|m| m.applies_to(retriever.bm25.num_docs()))?;
    let signals = answerability_signals(retriever, question, evidence)?;
    Some(Answerability {
        probability: model.probability(&signals),
        threshold: model.threshold,
        signals,
    })
}

/// The answerability signals of `evidence` (none for keyword-only evidence: the model reads a
/// cosine).
pub fn answerability_signals(
    retriever: &Retriever,
    question: &str,
    evidence: &[Evidence],
) -> Option<crate::answerable::Signals> {
    if !evidence.iter().any(|e| e.similarity.is_some()) {
        return None;
    }
    let articles: Vec<String> = evidence
        .iter()
        .map(|e| format!("{} {}", e.title, whole_text(retriever, e)))
        .collect();
    Some(crate::answerable::signals(
        question,
        evidence,
        &articles,
        // Re-ranking embedded every sentence of these articles already.
        match evidence
            .iter()
            .map(|e| e.closest_sentence)
            .collect::<Option<Vec<f32>>>()
        {
            Some(c) if !c.is_empty() => c.into_iter().fold(f32::NEG_INFINITY, f32::max),
            _ => sentence_similarity(retriever, question, evidence).unwrap_or(0.0),
        },
        &retriever.bm25,
    ))
}

/// The whole abstract of an evidence article (its passage when the index has no abstract for
/// it).
fn whole_text(retriever: &Retriever, e: &Evidence) -> String {
    retriever
        .bm25
        .abstract_of(e.pmid)
        .ok()
        .flatten()
        .map_or_else(|| e.text.clone(), |(_, a)| a)
}

/// The highest cosine between `question` and one sentence (or the title) of the evidence
/// articles' abstracts, by the index's own encoder.
fn sentence_similarity(
    retriever: &Retriever,
    question: &str,
    evidence: &[Evidence],
) -> Option<f32> {
    let embedder = retriever.dense.as_ref()?.embedder();
    let mut texts: Vec<String> = Vec::new();
    for e in evidence {
        texts.push(e.title.clone());
        let text = whole_text(retriever, e);
        texts.extend(
            crate::span_unit::sentences(&text)
                .into_iter()
                .map(str::to_string),
        );
    }
    let q = embedder.embed_one(question).ok()?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let vectors = embedder.embed_many(&refs).ok()?;
    vectors
        .iter()
        .map(|v| v.iter().zip(&q).map(|(a, b)| a * b).sum::<f32>())
        .fold(None, |best: Option<f32>, c| {
            Some(best.map_or(c, |b| b.max(c)))
        })
}

/// The `k` best passages for `question`: the passage that matched (dense and hybrid), else
/// the whole abstract.
pub fn gather_evidence(
    retriever: &Retriever,
    question: &str,
    k: usize,
    mode: Mode,
    filters: &crate::retrieve::Filters,
) -> Result<Vec<Evidence>, AnswerError> {
    let hits = retriever.search(question, k.max(1), mode, filters)?;
    let mut evidence = Vec::with_capacity(hits.len());
    for h in hits {
        let pmid = h.pmid;
        let text = match h.passage {
            Some(p) => p,
            None => retriever
                .bm25
                .abstract_of(pmid)
                .map_err(RetrieveError::from)?
                .map(|(_, a)| a)
                .unwrap_or_default(),
        };
        evidence.push(Evidence {
            pmid: h.pmid,
            title: h.title,
            journal: h.journal,
            year: h.year,
            text,
            similarity: h.similarity,
            bm25_rank: h.bm25_rank,
            dense_rank: h.dense_rank,
            closest_sentence: None,
        });
    }
    Ok(evidence)
}

/// Candidates re-ranked by sentence evidence per evidence article kept: the fused list is read
/// `RERANK_DEPTH` times deeper than what is shown.
const RERANK_DEPTH: usize = 3;

/// The `k` best articles for `question`: the fused list's top `RERANK_DEPTH · k`, re-ranked by
/// reciprocal rank fusion of their fused rank and the rank of their closest sentence to the
/// question (a reworded question restates one sentence of its source; the passage vector
/// averages a whole passage). Keyword-only evidence is returned as retrieved.
pub fn gather_reranked(
    retriever: &Retriever,
    question: &str,
    k: usize,
    mode: Mode,
    filters: &crate::retrieve::Filters,
) -> Result<Vec<Evidence>, AnswerError> {
    let k = k.max(1);
    if retriever.dense.is_none() || mode == Mode::Bm25 {
        return gather_evidence(retriever, question, k, mode, filters);
    }
    let mut evidence = gather_evidence(retriever, question, k * RERANK_DEPTH, mode, filters)?;
    let closest: Vec<f32> = evidence
        .iter()
        .map(|e| {
            sentence_similarity(retriever, question, std::slice::from_ref(e))
                .unwrap_or(f32::NEG_INFINITY)
        })
        .collect();
    let mut by_sentence: Vec<usize> = (0..evidence.len()).collect();
    by_sentence.sort_by(|&a, &b| closest[b].total_cmp(&closest[a]));
    let rrf_k = retriever.fusion.rrf_k;
    let mut score = vec![0f32; evidence.len()];
    for (rank, &i) in by_sentence.iter().enumerate() {
        score[i] += 1.0 / (rrf_k + rank as f32 + 1.0);
    }
    for (i, s) in score.iter_mut().enumerate() {
        *s += 1.0 / (rrf_k + i as f32 + 1.0);
    }
    let mut order: Vec<usize> = (0..evidence.len()).collect();
    order.sort_by(|&a, &b| score[b].total_cmp(&score[a]).then(a.cmp(&b)));
    order.truncate(k);
    for (e, &c) in evidence.iter_mut().zip(&closest) {
        e.closest_sentence = c.is_finite().then_some(c);
    }
    let mut taken: Vec<Option<Evidence>> = evidence.drain(..).map(Some).collect();
    Ok(order.into_iter().filter_map(|i| taken[i].take()).collect())
}

/// Answers `question` from the index under the safety policy of `screener`; `on_text`
/// receives the draft as it is generated.
pub fn ask(
    retriever: &Retriever,
    generator: &mut dyn Generator,
    screener: &Screener,
    question: &str,
    opts: &AskOptions,
    on_text: &mut dyn FnMut(&str) -> bool,
) -> Result<Answer, AnswerError> {
    let question = question.trim();
    if question.is_empty() {
        return Err(AnswerError::EmptyQuestion);
    }
    let t0 = Instant::now();
    let verdict = screener.screen(question)?;
    if verdict.decision != Decision::Answer {
        return withheld(retriever, generator, screener, question, opts, verdict, t0);
    }
    let mut evidence = gather_reranked(retriever, question, opts.k, opts.mode, &opts.filters)?;
    let judged = answerability(retriever, question, &evidence, opts.answerability.as_ref());
    let thresholds = match &judged {
        Some(j) => opts.thresholds.decided(j.probability >= j.threshold),
        None => opts.thresholds,
    };
    let retrieve_ms = t0.elapsed().as_secs_f64() * 1000.0;
    // An empty piece asks the caller whether anyone still waits, before seconds of generation.
    if !on_text("") {
        return Err(AnswerError::Cancelled);
    }

    let budget = generator
        .context()
        .saturating_sub(opts.generation.max_tokens + CHAT_OVERHEAD);
    // Each article's share of the room the question and the template leave.
    let room = budget.saturating_sub(
        generator.count_tokens(
            &opts
                .template
                .fill(question, &[], budget, &mut |t| t.len())
                .0,
        ),
    );
    crate::evidence::widen_all(
        &mut evidence,
        room,
        &mut |pmid| {
            retriever
                .bm25
                .abstract_of(pmid)
                .ok()
                .flatten()
                .map(|(_, a)| a)
        },
        &mut |t| generator.count_tokens(t),
    );
    let (prompt, shown) = opts.template.fill(question, &evidence, budget, &mut |t| {
        generator.count_tokens(t)
    });
    evidence.truncate(shown);

    let t1 = Instant::now();
    // Evidence too weak to answer from: abstain without spending seconds on generation.
    let covered = thresholds.covers(
        cite::question_coverage(question, &evidence, &retriever.bm25),
        cite::question_similarity(&evidence),
    );
    let mut streamed = String::new();
    let mut span_quote = None;
    let mut span_candidates = Vec::new();
    let decided = if !covered {
        Some(Generated {
            stop: "weak_evidence",
            ..Generated::default()
        })
    } else if opts.extract && !evidence.is_empty() {
        let span = extract_span(
            retriever,
            generator,
            question,
            &prompt,
            &evidence,
            opts,
            &mut |piece| {
                streamed.push_str(piece);
                on_text(piece)
            },
        )?;
        if !on_text("") {
            return Err(AnswerError::Cancelled);
        }
        span.map(|(g, q, c)| {
            span_quote = Some(q);
            span_candidates = c;
            g
        })
    } else {
        None
    };
    let generated = match decided {
        Some(g) => {
            // The span's pieces were streamed as chosen: send what the final text adds (its
            // citation), or all of it when trimming changed its start.
            let told = streamed.trim_start();
            match g.text.strip_prefix(told) {
                Some(rest) if !told.is_empty() => on_text(rest),
                // A span chosen among candidates arrives whole, then its citation.
                _ => match g.text.rfind(" [PMID ") {
                    Some(at) => on_text(&g.text[..at]) && on_text(&g.text[at..]),
                    None => on_text(&g.text),
                },
            };
            g
        }
        None => generator.chat(&prompt, &opts.generation, on_text)?,
    };
    let generate_ms = t1.elapsed().as_secs_f64() * 1000.0;

    let mut v = cite::verify(
        question,
        &generated.text,
        &evidence,
        &retriever.bm25,
        thresholds,
    );
    if !v.abstained {
        v.quote = span_quote
            .filter(|q| v.citations.iter().any(|c| c.pmid == q.pmid))
            .or_else(|| cite::best_quote(&v, &evidence, &retriever.bm25));
    }
    let mut answer = Answer {
        question: question.to_string(),
        verified: v,
        evidence,
        draft: generated.text,
        prompt_tokens: generated.prompt_tokens,
        answer_tokens: generated.tokens,
        timings_ms: Timings {
            retrieve: retrieve_ms,
            generate: generate_ms,
            total: t0.elapsed().as_secs_f64() * 1000.0,
        },
        model: generator.name().to_string(),
        prompt_template: opts.template.name.clone(),
        safety: verdict,
        answerability: judged,
        span_candidates,
    };
    // Whatever the request looked like, a draft that instructs a dose or a harmful procedure
    // is not shown.
    if let Some(flag) = screener.check.check(&answer.verified.answer) {
        let v = &mut answer.verified;
        v.answer = screener
            .policy
            .message(flag.decision, flag.category)
            .to_string();
        v.related = answer.evidence.iter().map(|e| e.pmid).collect();
        v.citations.clear();
        v.sentences.clear();
        v.quote = None;
        answer.safety = Verdict {
            decision: flag.decision,
            category: flag.category.to_string(),
            score: 1.0,
            by: "draft_check",
            probabilities: None,
        };
    }
    Ok(answer)
}

/// A refusal (nothing retrieved, nothing generated) or a redirect to a professional, with
/// the evidence on the topic as related reading for education (none for an emergency: the
/// message is all that should be read).
fn withheld(
    retriever: &Retriever,
    generator: &dyn Generator,
    screener: &Screener,
    question: &str,
    opts: &AskOptions,
    verdict: Verdict,
    t0: Instant,
) -> Result<Answer, AnswerError> {
    let evidence = if verdict.decision == Decision::SafeRedirect && verdict.category != "emergency"
    {
        gather_evidence(retriever, question, opts.k, opts.mode, &opts.filters)?
    } else {
        Vec::new()
    };
    let retrieve_ms = t0.elapsed().as_secs_f64() * 1000.0;
    Ok(Answer {
        question: question.to_string(),
        verified: Verified {
            answer: screener
                .policy
                .message(verdict.decision, &verdict.category)
                .to_string(),
            related: evidence.iter().map(|e| e.pmid).collect(),
            ..Verified::default()
        },
        evidence,
        draft: String::new(),
        prompt_tokens: 0,
        answer_tokens: 0,
        timings_ms: Timings {
            retrieve: retrieve_ms,
            generate: 0.0,
            total: t0.elapsed().as_secs_f64() * 1000.0,
        },
        model: generator.name().to_string(),
        prompt_template: opts.template.name.clone(),
        safety: verdict,
        answerability: None,
        span_candidates: Vec::new(),
    })
}

/// A span copied from the evidence, made a whole unit of its passage, as a draft that cites
/// the passage it came from; with the sentence it was copied from, and the candidates read
/// when several were.
#[allow(clippy::too_many_arguments)]
fn extract_span(
    retriever: &Retriever,
    generator: &mut dyn Generator,
    question: &str,
    prompt: &str,
    evidence: &[Evidence],
    opts: &AskOptions,
    on_piece: &mut dyn FnMut(&str) -> bool,
) -> Result<Option<(Generated, cite::Quote, Vec<SpanCandidate>)>, AnswerError> {
    let max_tokens = opts.generation.max_tokens;
    // Titles and passage texts, in rank order; entry i belongs to evidence i / 2.
    let passages: Vec<&str> = evidence
        .iter()
        .flat_map(|e| [e.title.as_str(), e.text.as_str()])
        .collect();
    // The prompt ends at "Answer:"; the answer's first word follows after a space.
    let prompt = prompt.trim_end();
    let (spans, ranker) = match &opts.span {
        SpanChoice::Greedy => (
            generator
                .extract(prompt, &passages, max_tokens, on_piece)?
                .into_iter()
                .collect::<Vec<_>>(),
            None,
        ),
        SpanChoice::Candidates { n, ranker } => (
            generator.extract_candidates(prompt, &passages, max_tokens, *n, on_piece)?,
            ranker.as_ref(),
        ),
    };
    let several = matches!(opts.span, SpanChoice::Candidates { .. });
    let embedder = retriever.dense.as_ref().map(|d| d.embedder());
    let question_vector = match (&embedder, several) {
        (Some(e), true) => e.embed_one(question).ok(),
        _ => None,
    };
    // Each span as a whole unit, with its article and features.
    let mut units = Vec::new();
    let mut rows = Vec::new();
    for span in &spans {
        let Some(passage) = passages.get(span.source) else {
            continue;
        };
        let Some(unit) = crate::span_unit::whole_unit(passage, &span.text, span.cut) else {
            continue;
        };
        if several {
            let sentence_similarity = match (&embedder, &question_vector) {
                (Some(e), Some(q)) => e
                    .embed_one(&unit.sentence)
                    .ok()
                    .map(|v| v.iter().zip(q).map(|(a, b)| a * b).sum::<f32>()),
                _ => None,
            };
            rows.push(crate::span_rank::features(
                question,
                &crate::span_rank::CandidateSpan {
                    text: &unit.text,
                    sentence: &unit.sentence,
                    first_logprob: span.first_logprob,
                    mean_logprob: span.mean_logprob,
                    rank: span.rank,
                    source_rank: span.source / 2,
                    sentence_similarity,
                },
                &retriever.bm25,
            ));
        }
        units.push((span, unit));
    }
    let chosen = match ranker {
        Some(r) if !rows.is_empty() => r.best(&rows).unwrap_or(0),
        _ => 0,
    };
    let candidates: Vec<SpanCandidate> = if several {
        units
            .iter()
            .zip(&rows)
            .enumerate()
            .map(|(i, ((span, unit), row))| SpanCandidate {
                text: unit.text.clone(),
                pmid: evidence[span.source / 2].pmid,
                features: row.iter().map(|v| (!v.is_nan()).then_some(*v)).collect(),
                score: ranker.map(|r| r.score(row)),
                chosen: i == chosen,
            })
            .collect()
    } else {
        Vec::new()
    };
    let Some((span, unit)) = units.into_iter().nth(chosen) else {
        return Ok(None);
    };
    let e = &evidence[span.source / 2];
    Ok(Some((
        Generated {
            text: format!("{} [PMID {}]", unit.text, e.pmid),
            prompt_tokens: span.prompt_tokens,
            tokens: span.tokens,
            stop: "span",
            prefill_ms: span.prefill_ms,
            decode_ms: span.decode_ms,
        },
        cite::Quote {
            pmid: e.pmid,
            sentence: unit.sentence,
        },
        candidates,
    )))
}
