//! `medlit eval answerability`: the answerability model on a question set, or fitting it with
//! its cross-validated figures.
use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::answer::{answerability_signals, gather_reranked};
use crate::answerable::{calibration, Calibration, Model, Signals};
use crate::cli::{setup, EvalAnswerabilityArgs, SearchModeArg};
use medlit_corpus::datasets::read_answer_set;

use super::print_json;

#[derive(Debug, Serialize)]
struct Item {
    id: String,
    answerable: bool,
    signals: Signals,
    /// The model's probability (with --fit: the cross-validated one, from a model that did
    /// not see this item's fold).
    probability: f32,
    answered: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    dataset: String,
    n: usize,
    /// "model" (measured) or "cross-validated K-fold" (with --fit).
    predictions: String,
    threshold: f32,
    /// Share of decisions right (answer when answerable, abstain when not).
    accuracy: f64,
    answerable_abstained: Option<f64>,
    unanswerable_answered: Option<f64>,
    log_loss: f64,
    calibration: Calibration,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<Model>,
    items: Vec<Item>,
}

pub fn run(args: &EvalAnswerabilityArgs) -> Result<()> {
    let items = read_answer_set(&args.dataset).context("reading the dataset")?;
    if items.is_empty() {
        bail!("{}: no questions", args.dataset.display());
    }
    if let Some(out) = &args.fit {
        if out.exists() && !args.force {
            bail!(
                "{} exists: give --force to replace it (the model in use may be that file)",
                out.display()
            );
        }
    }
    let dir = setup::index_dir(&args.index)?;
    let (retriever, mode) = setup::retriever(&dir, SearchModeArg::Auto, &args.fusion)?;
    if retriever.dense.is_none() {
        bail!(
            "{} has no dense half: the answerability model reads the question's cosine to the \
             evidence (`medlit index --update --dense` adds it)",
            dir.display()
        );
    }
    let bar = crate::progress::items(args.json, items.len() as u64, "retrieving");
    let mut signals = Vec::with_capacity(items.len());
    for item in &items {
        let evidence = gather_reranked(
            &retriever,
            &item.question,
            args.k,
            mode,
            &Default::default(),
        )
        .with_context(|| format!("retrieving for {}", item.id))?;
        signals
            .push(answerability_signals(&retriever, &item.question, &evidence).unwrap_or_default());
        bar.inc(1);
    }
    bar.finish_and_clear();
    let labels: Vec<bool> = items.iter().map(|i| !i.unanswerable).collect();

    let (probabilities, model, predictions, threshold) = match &args.fit {
        Some(_) => {
            let keys: Vec<String> = items
                .iter()
                .map(|i| i.pmid.clone().unwrap_or_else(|| i.id.clone()))
                .collect();
            let (fold_of, k) = crate::eval::folds_by_key(&keys, usize::from(args.folds));
            let mut p = vec![0f32; items.len()];
            for fold in 0..k {
                let (train_x, train_y): (Vec<Signals>, Vec<bool>) = (0..items.len())
                    .filter(|&i| fold_of[i] != fold)
                    .map(|i| (signals[i], labels[i]))
                    .unzip();
                let m = Model::fit(&train_x, &train_y, args.l2, String::new());
                for i in (0..items.len()).filter(|&i| fold_of[i] == fold) {
                    p[i] = m.probability(&signals[i]);
                }
            }
            let model = Model::fit(&signals, &labels, args.l2, String::new());
            let threshold = model.threshold;
            (
                p,
                Some(model),
                format!("cross-validated {k}-fold"),
                threshold,
            )
        }
        None => {
            let model = match &args.answerability_model {
                Some(path) => Model::parse(
                    &std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?,
                )
                .with_context(|| format!("in {}", path.display()))?,
                None => Model::builtin().context("the built-in answerability model")?,
            };
            let p = signals.iter().map(|s| model.probability(s)).collect();
            (p, None, "model".to_string(), model.threshold)
        }
    };
    let mut report = summarise(
        args.dataset.display().to_string(),
        &items.iter().map(|i| i.id.clone()).collect::<Vec<_>>(),
        &signals,
        &labels,
        &probabilities,
        threshold,
        predictions,
    );
    if let (Some(out), Some(mut model)) = (&args.fit, model) {
        model.fitted_articles = retriever.bm25.num_docs();
        model.trained_on = format!(
            "{} ({} questions, {} answerable); {}: accuracy {:.3}, answerable abstained {}, \
             unanswerable answered {}, ECE {:.3}",
            args.dataset.display(),
            items.len(),
            labels.iter().filter(|&&a| a).count(),
            report.predictions,
            report.accuracy,
            fmt_rate(report.answerable_abstained),
            fmt_rate(report.unanswerable_answered),
            report.calibration.expected_calibration_error,
        );
        let text = serde_json::to_string_pretty(&model)? + "\n";
        // Written beside and renamed, so an interrupted run leaves the old file whole.
        let tmp = out.with_extension("json.tmp");
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))?;
        report.model = Some(model);
    }
    if args.json {
        return print_json(&report);
    }
    println!(
        "dataset {} ({} questions; {} predictions, threshold {:.2})",
        report.dataset, report.n, report.predictions, report.threshold
    );
    println!("accuracy               {:>6.3}", report.accuracy);
    println!(
        "answerable abstained   {:>6}",
        fmt_rate(report.answerable_abstained)
    );
    println!(
        "unanswerable answered  {:>6}",
        fmt_rate(report.unanswerable_answered)
    );
    println!("log loss               {:>6.3}", report.log_loss);
    println!(
        "calibration error      {:>6.3}  (expected, 10 bins)",
        report.calibration.expected_calibration_error
    );
    println!("  predicted     n  mean   observed");
    for b in report.calibration.bins.iter().filter(|b| b.n > 0) {
        println!(
            "  {:.1}–{:.1}  {:>4}  {:.3}  {:.3}",
            b.lo, b.hi, b.n, b.mean_predicted, b.observed
        );
    }
    if let Some(m) = &report.model {
        println!("weights (standardised signals):");
        for (f, w) in m.features.iter().zip(&m.fitted.weights) {
            println!("  {f:<14} {w:>7.3}");
        }
        println!("  {:<14} {:>7.3}", "bias", m.fitted.bias);
        if let Some(out) = &args.fit {
            println!("written to {}", out.display());
        }
    }
    Ok(())
}

fn fmt_rate(r: Option<f64>) -> String {
    r.map_or_else(|| "–".to_string(), |r| format!("{r:.3}"))
}

fn summarise(
    dataset: String,
    ids: &[String],
    signals: &[Signals],
    labels: &[bool],
    p: &[f32],
    threshold: f32,
    predictions: String,
) -> Report {
    let n = labels.len();
    let answered: Vec<bool> = p.iter().map(|&p| p >= threshold).collect();
    let right = answered.iter().zip(labels).filter(|(a, l)| a == l).count();
    let rate = |of: bool, wrong: bool| {
        let total = labels.iter().filter(|&&l| l == of).count();
        (total > 0).then(|| {
            labels
                .iter()
                .zip(&answered)
                .filter(|(&l, &a)| l == of && a == wrong)
                .count() as f64
                / total as f64
        })
    };
    let log_loss = p
        .iter()
        .zip(labels)
        .map(|(&p, &l)| {
            let p = (p as f64).clamp(1e-6, 1.0 - 1e-6);
            -(if l { p.ln() } else { (1.0 - p).ln() })
        })
        .sum::<f64>()
        / n.max(1) as f64;
    Report {
        dataset,
        n,
        predictions,
        threshold,
        accuracy: right as f64 / n.max(1) as f64,
        answerable_abstained: rate(true, false),
        unanswerable_answered: rate(false, true),
        log_loss,
        calibration: calibration(p, labels, 10),
        model: None,
        items: (0..n)
            .map(|i| Item {
                id: ids[i].clone(),
                answerable: labels[i],
                signals: signals[i],
                probability: p[i],
                answered: answered[i],
            })
            .collect(),
    }
}
