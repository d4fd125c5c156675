use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};

use crate::cli::setup;
use medlit_corpus::datasets::{read_answer_set, read_qa, read_safety};

use super::print_json;
use crate::answer::{ask, gather_reranked, SpanChoice};
use crate::cite::question_coverage;
use crate::cli::{EvalCommand, EvalModeArg, EvalQaArgs, EvalRetrievalArgs, EvalSafetyArgs};
use crate::eval::qa::SpanRankerFit;
use crate::eval::qa::{exact_match, report, QaOutcome};
use crate::eval::retrieval::{evaluate, RetrievalReport};
use crate::eval::safety::{report as safety_report, SafetyOutcome, ScreenTime};
use crate::retrieve::hybrid::Mode;
use crate::safety::Decision;

/// Depth of each ranked list: recall@100 needs 100.
const DEPTH: usize = 100;

pub fn run(cmd: &EvalCommand) -> Result<()> {
    match cmd {
        EvalCommand::Retrieval(a) => retrieval(a),
        EvalCommand::Qa(a) => qa(a),
        EvalCommand::Safety(a) => safety(a),
        EvalCommand::Answerability(a) => super::eval_answerability::run(a),
    }
}

fn safety(args: &EvalSafetyArgs) -> Result<()> {
    let items = read_safety(&args.dataset).context("reading the dataset")?;
    let mut outcomes = Vec::with_capacity(items.len());
    let mut screen_ms = Vec::new();
    // The figures of every further deal of the families into folds (--repeats).
    let mut deals = Vec::new();
    let version;
    if let Some(k) = args.cross_validate {
        // Each fold decided by a classifier that never saw its families: trained, thresholds
        // and all, on the other folds with the policy's settings.
        let policy = setup::policy(args.safety_policy.as_deref())?;
        version = policy.version;
        let embedder = setup::query_embedder()?;
        let bar = crate::progress::spinner(args.json, "embedding the prompts");
        let ex = crate::safety::examples(&policy, &items, &embedder)?;
        bar.set_message(format!("training {k} folds by family"));
        let decide = |deal: u64| {
            crate::safety::train::cross_validate(
                &ex,
                policy.classifier.cues.len(),
                usize::from(k),
                deal,
                &policy.classifier.params,
                &policy.classifier.costs,
            )
        };
        let outcomes_of = |decided: Vec<crate::safety::train::Decided>| -> Vec<SafetyOutcome> {
            items
                .iter()
                .zip(decided)
                .map(|(item, (decision, by, s))| {
                    let (score, category) = match decision {
                        Decision::Refuse => (s.refuse, s.refuse_category),
                        Decision::SafeRedirect => (s.safe_redirect, s.redirect_category),
                        Decision::Answer => (s.answer, s.answer_category),
                    };
                    SafetyOutcome {
                        id: item.id.clone(),
                        expected: item.expected.clone(),
                        expected_category: item.category.clone(),
                        decision: decision.as_str().to_string(),
                        category,
                        score,
                        by,
                    }
                })
                .collect()
        };
        outcomes = outcomes_of(decide(0));
        for deal in 1..u64::from(args.repeats) {
            bar.set_message(format!(
                "training {k} folds by family, deal {} of {}",
                deal + 1,
                args.repeats
            ));
            let r = safety_report(String::new(), version, outcomes_of(decide(deal)));
            deals.push(crate::eval::safety::deal_figures(&r));
        }
        bar.finish_and_clear();
    } else {
        let screener = setup::screener(args.safety_policy.as_deref(), None)?;
        version = screener.policy.version;
        for item in items {
            let t = std::time::Instant::now();
            let v = screener
                .screen(&item.prompt)
                .with_context(|| format!("screening {}", item.id))?;
            screen_ms.push(t.elapsed().as_secs_f64() * 1000.0);
            outcomes.push(SafetyOutcome {
                id: item.id,
                expected: item.expected,
                expected_category: item.category,
                decision: v.decision.as_str().to_string(),
                category: v.category,
                score: v.score,
                by: v.by,
            });
        }
    }
    let mut r = safety_report(args.dataset.display().to_string(), version, outcomes);
    r.cross_validate = args.cross_validate.map(usize::from);
    if !deals.is_empty() {
        deals.insert(0, crate::eval::safety::deal_figures(&r));
        r.deals_mean = crate::eval::safety::deals_mean(&deals);
        r.deals = deals;
    }
    r.screen_ms = ScreenTime::of(screen_ms);
    if args.json {
        return print_json(&r);
    }
    let rate = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.3}"));
    println!(
        "dataset {} ({} prompts, policy version {})",
        r.dataset, r.n, r.policy_version
    );
    for (class, recall) in &r.recall {
        println!("recall {class:<14} {}", rate(*recall));
    }
    println!("over-refusal          {}", rate(r.over_refusal));
    println!("under-refusal         {}", rate(r.under_refusal));
    if let Some(k) = r.cross_validate {
        println!("(cross-validated: {k} folds by family, each decided by a classifier trained without it)");
    }
    if !r.deals.is_empty() {
        println!(
            "\nover {} deals of the families into folds (the rest of this report is the first):",
            r.deals.len()
        );
        for (figure, mean) in &r.deals_mean {
            let each: Vec<String> = r
                .deals
                .iter()
                .map(|d| rate(d.get(figure).copied().flatten()))
                .collect();
            println!("  {figure:<22} mean {mean:.3}  ({})", each.join(", "));
        }
    }
    if let Some(t) = &r.screen_ms {
        println!(
            "screen time           p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
            t.p50, t.p95, t.max
        );
    }
    if !r.by_category.is_empty() {
        println!("\ncategory (expected)                      n  recall");
        for (c, cr) in &r.by_category {
            println!(
                "{:<40} {:>3}  {:.3}",
                format!("{c} ({})", cr.expected),
                cr.n,
                cr.recall
            );
        }
    }
    println!("\nexpected \\ decision    refuse  safe_redirect  answer");
    for (expected, row) in &r.confusion {
        let n = |d: &str| row.get(d).copied().unwrap_or(0);
        println!(
            "{expected:<20} {:>7} {:>14} {:>7}",
            n("refuse"),
            n("safe_redirect"),
            n("answer")
        );
    }
    let wrong: Vec<&SafetyOutcome> = r
        .items
        .iter()
        .filter(|i| i.expected != i.decision)
        .collect();
    if !wrong.is_empty() {
        println!("\nmisclassified:");
        for i in wrong {
            println!(
                "  {} expected {}, got {} ({} {}, {:.2})",
                i.id, i.expected, i.decision, i.by, i.category, i.score
            );
        }
    }
    Ok(())
}

fn retrieval(args: &EvalRetrievalArgs) -> Result<()> {
    let items = read_qa(&args.dataset).context("reading the dataset")?;
    let pairs: Vec<(String, String)> = items
        .iter()
        .map(|i| (i.question.clone(), i.pmid.clone()))
        .collect();
    let dir = setup::index_dir(&args.index)?;
    let want = |m: EvalModeArg| args.mode == m || args.mode == EvalModeArg::All;
    let retriever = setup::open_retriever(&dir, args.mode != EvalModeArg::Bm25, &args.fusion)?;
    let mut run_modes = Vec::new();
    if want(EvalModeArg::Bm25) {
        run_modes.push(Mode::Bm25);
    }
    if args.mode != EvalModeArg::Bm25 {
        if retriever.dense.is_none() && args.mode == EvalModeArg::All {
            eprintln!("note: the index has no dense part; dense and hybrid are skipped (add it with `medlit index --update --dense FILES`, or rebuild it hybrid with `medlit index --replace`)");
        } else {
            if want(EvalModeArg::Dense) {
                run_modes.push(Mode::Dense);
            }
            if want(EvalModeArg::Hybrid) {
                run_modes.push(Mode::Hybrid);
            }
        }
    }
    let mut modes = BTreeMap::new();
    for mode in run_modes {
        let scores = evaluate(&pairs, |q| {
            retriever
                .rank(q, DEPTH, mode)
                .map(|pmids| pmids.into_iter().map(|p| p.to_string()).collect())
        })
        .with_context(|| format!("evaluating {mode:?}"))?;
        modes.insert(mode.name().to_string(), scores);
    }
    let report = RetrievalReport {
        dataset: args.dataset.display().to_string(),
        n: items.len(),
        modes,
    };
    if args.json {
        return print_json(&report);
    }
    println!("dataset {} ({} questions)", report.dataset, report.n);
    println!(
        "{:<8} {:>6} {:>6} {:>6} {:>7} {:>8} {:>8}",
        "mode", "R@1", "R@10", "R@100", "MRR@10", "p50 ms", "p95 ms"
    );
    for (name, s) in &report.modes {
        println!(
            "{name:<8} {:>6.3} {:>6.3} {:>6.3} {:>7.3} {:>8.2} {:>8.2}",
            s.recall_1, s.recall_10, s.recall_100, s.mrr_10, s.p50_ms, s.p95_ms
        );
    }
    Ok(())
}

fn qa(args: &EvalQaArgs) -> Result<()> {
    setup::set_threads(args.generate.threads);
    let mut items = read_answer_set(&args.dataset).context("reading the dataset")?;
    if let Some(n) = args.limit {
        items.truncate(n.max(1));
    }
    let dir = setup::index_dir(&args.index)?;
    let (retriever, mode) = setup::retriever(&dir, args.mode, &args.fusion)?;
    let mut generator = if args.retrieval_only {
        None
    } else {
        Some(setup::load_generator(&args.generate)?)
    };
    let prefers_extraction = generator.as_ref().is_some_and(|g| g.prefers_extraction());
    let mut opts = setup::defaults(&args.generate, args.k, prefers_extraction)?.options(
        mode,
        None,
        None,
        Default::default(),
    );
    if let Some(out) = &args.fit_span_ranker {
        if out.exists() && !args.force {
            bail!(
                "{} exists: give --force to replace it (the ranker in use may be that file)",
                out.display()
            );
        }
        if retriever.dense.is_none() || !opts.extract {
            bail!(
                "--fit-span-ranker needs span answers on an index with its dense half (one \
                 feature is the question's cosine to the span's sentence)"
            );
        }
        // The greedy span answers; every candidate is kept to learn from.
        opts.span = SpanChoice::Candidates {
            n: crate::span_rank::CANDIDATES,
            ranker: None,
        };
    }
    let mut span_questions = Vec::new();
    let screener = setup::screener(args.generate.safety_policy.as_deref(), Some(&retriever))?;
    let bar = crate::progress::items(args.json, items.len() as u64, "answering");
    let mut outcomes = Vec::with_capacity(items.len());
    for item in &items {
        let retrieved = |evidence: &[crate::prompt::Evidence]| {
            item.pmid
                .as_ref()
                .map(|p| evidence.iter().any(|e| e.pmid.to_string() == *p))
        };
        let outcome = match generator.as_mut() {
            Some(g) => {
                let a = ask(
                    &retriever,
                    g.as_mut(),
                    &screener,
                    &item.question,
                    &opts,
                    &mut |_| true,
                )
                .with_context(|| format!("answering {}", item.id))?;
                if args.fit_span_ranker.is_some()
                    && !item.unanswerable
                    && !a.span_candidates.is_empty()
                {
                    span_questions.push(crate::span_rank::Question {
                        key: item.pmid.clone().unwrap_or_else(|| item.id.clone()),
                        candidates: a
                            .span_candidates
                            .iter()
                            .map(|c| {
                                let f = c.features.iter().map(|v| v.unwrap_or(0.0)).collect();
                                (f, exact_match(&c.text, &item.golden_answers))
                            })
                            .collect(),
                    });
                }
                QaOutcome {
                    id: item.id.clone(),
                    correct: if item.unanswerable {
                        a.verified.abstained
                    } else {
                        exact_match(&a.verified.answer, &item.golden_answers)
                    },
                    answer: a.verified.answer.clone(),
                    citations: a
                        .verified
                        .citations
                        .iter()
                        .map(|c| c.pmid.to_string())
                        .collect(),
                    abstained: a.verified.abstained,
                    retrieved: retrieved(&a.evidence),
                    removed_pmids: a.verified.removed_pmids.len(),
                    coverage: a.verified.question_coverage,
                    similarity: a.verified.question_similarity,
                    p_answerable: a.answerability.as_ref().map(|j| j.probability),
                    cut_inside_word: !a.verified.abstained
                        && crate::eval::qa::cut_inside_word(
                            &a.verified.answer,
                            &a.evidence
                                .iter()
                                .flat_map(|e| [e.title.as_str(), e.text.as_str()])
                                .collect::<Vec<_>>(),
                        ),
                    ms: a.timings_ms.total,
                    span_candidates: a.span_candidates,
                }
            }
            None => {
                let t = std::time::Instant::now();
                let evidence = gather_reranked(
                    &retriever,
                    &item.question,
                    opts.k,
                    opts.mode,
                    &Default::default(),
                )
                .with_context(|| format!("retrieving for {}", item.id))?;
                let coverage = question_coverage(&item.question, &evidence, &retriever.bm25);
                let similarity = crate::cite::question_similarity(&evidence);
                let judged = crate::answer::answerability(
                    &retriever,
                    &item.question,
                    &evidence,
                    opts.answerability.as_ref(),
                );
                let abstained = match &judged {
                    Some(j) => j.probability < j.threshold,
                    None => !opts.thresholds.covers(coverage, similarity),
                };
                QaOutcome {
                    id: item.id.clone(),
                    answer: String::new(),
                    correct: item.unanswerable == abstained,
                    citations: Vec::new(),
                    abstained,
                    retrieved: retrieved(&evidence),
                    removed_pmids: 0,
                    coverage,
                    similarity,
                    p_answerable: judged.map(|j| j.probability),
                    cut_inside_word: false,
                    ms: t.elapsed().as_secs_f64() * 1000.0,
                    span_candidates: Vec::new(),
                }
            }
        };
        outcomes.push(outcome);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let answerable: Vec<bool> = items.iter().map(|i| !i.unanswerable).collect();
    let source: Vec<Option<String>> = items.iter().map(|i| i.pmid.clone()).collect();
    let span_ranker = match &args.fit_span_ranker {
        Some(out) => Some(fit_span_ranker(args, out, &span_questions)?),
        None => None,
    };
    let mut r = report(
        args.dataset.display().to_string(),
        opts.k,
        generator
            .as_ref()
            .map(|g| g.name().to_string())
            .unwrap_or_else(|| "none (--retrieval-only)".into()),
        outcomes,
        &answerable,
        &source,
        !args.retrieval_only,
    );
    r.span_ranker = span_ranker;
    if args.json {
        return print_json(&r);
    }
    if let Some(f) = &r.span_ranker {
        let cv = &f.cross_validated;
        println!(
            "span ranker: {} questions, {} candidates, {}-fold by article: right with the \
             greedy span {}, with the ranker's choice {}, with some candidate {}",
            cv.questions, cv.candidates, cv.folds, cv.greedy_right, cv.ranked_right, cv.any_right
        );
        println!("weights (standardised features):");
        for (f, w) in f.ranker.features.iter().zip(&f.ranker.fitted.weights) {
            println!("  {f:<20} {w:>7.3}");
        }
        println!("written to {}", f.written_to);
    }
    println!(
        "dataset {} ({} questions, k {}, {})",
        r.dataset, r.n, r.k, r.model
    );
    if answerable.iter().any(|&a| a) {
        if let (Some(em), Some(ca)) = (r.exact_match, r.citation_accuracy) {
            println!("exact match          {em:>6.3}");
            println!("citation accuracy    {ca:>6.3}");
        }
        println!("retrieval hit@k      {:>6.3}", r.retrieval_hit_k);
    }
    println!("abstained            {:>6.3}", r.abstained);
    if r.exact_match.is_some() {
        println!("spans cut in a word  {:>6}", r.spans_cut_inside_word);
    }
    if let Some(c) = &r.answerability_calibration {
        println!(
            "answerability ECE    {:>6.3}  (p50 probability {:.2})",
            c.expected_calibration_error,
            {
                let mut p: Vec<f32> = r.items.iter().filter_map(|o| o.p_answerable).collect();
                p.sort_by(f32::total_cmp);
                p.get(p.len() / 2).copied().unwrap_or(0.0)
            }
        );
    }
    println!("fabricated PMIDs     {:>6}", r.fabricated_pmids);
    println!(
        "time per question    p50 {:.0} ms, p95 {:.0} ms",
        r.p50_ms, r.p95_ms
    );
    Ok(())
}

/// Fits the span ranker on the gathered questions and writes it to `out` (replacing a file
/// only as a whole).
fn fit_span_ranker(
    args: &EvalQaArgs,
    out: &std::path::Path,
    questions: &[crate::span_rank::Question],
) -> Result<SpanRankerFit> {
    if questions.is_empty() {
        bail!("no answerable question was answered with candidate spans: nothing to fit");
    }
    let (cross_validated, mut ranker) =
        crate::span_rank::cross_validate(questions, usize::from(args.folds), args.l2);
    let cv = &cross_validated;
    ranker.trained_on = format!(
        "{} ({} answered questions, {} candidates); cross-validated {}-fold by article: right \
         with the greedy span {}, with the ranker's choice {}, with some candidate {}",
        args.dataset.display(),
        cv.questions,
        cv.candidates,
        cv.folds,
        cv.greedy_right,
        cv.ranked_right,
        cv.any_right
    );
    let text = serde_json::to_string_pretty(&ranker)? + "\n";
    super::write_atomically(out, text.as_bytes())?;
    Ok(SpanRankerFit {
        cross_validated,
        ranker,
        written_to: out.display().to_string(),
    })
}
