//! `medlit policy train`: fits the safety classifier on the policy's corpus, writes its weights
//! beside the policy and records their sha256 in it.
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::cli::setup;
use medlit_corpus::datasets::read_safety;
use medlit_corpus::digest::sha256_bytes;
use serde::Serialize;

use super::print_json;
use crate::cli::PolicyTrainArgs;
use crate::safety::classifier::{Classifier, EmbeddingRef, Thresholds, TrainingRecord};
use crate::safety::{examples, train, Policy};

#[derive(Serialize)]
struct TrainJson {
    policy: String,
    weights: String,
    weights_sha256: String,
    /// `written`, or `unchanged` when the file already held these weights.
    outcome: &'static str,
    prompts: usize,
    families: usize,
    classes: usize,
    thresholds: Thresholds,
    validation: std::collections::BTreeMap<String, f64>,
    seconds: f64,
}

/// The policy text with its `weights_sha256` line set to `sha`.
fn record_sha(policy_text: &str, sha: &str) -> Result<String> {
    let mut found = false;
    let out: Vec<String> = policy_text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("weights_sha256") && !found {
                found = true;
                format!("weights_sha256 = \"{sha}\"")
            } else {
                l.to_string()
            }
        })
        .collect();
    if !found {
        bail!("the policy has no `weights_sha256 = \"…\"` line in [classifier] to record the weights in");
    }
    Ok(out.join("\n") + "\n")
}

pub fn train(args: &PolicyTrainArgs) -> Result<()> {
    let t0 = Instant::now();
    let policy = Policy::load(&args.policy)?;
    let spec = &policy.classifier;
    let corpus = policy
        .beside(&spec.corpus)
        .context("a policy file names its corpus")?;
    let weights_path = policy
        .beside(&spec.weights)
        .context("a policy file names its weights")?;
    let items = read_safety(&corpus).context("reading the training corpus")?;
    if let Some(i) = items
        .iter()
        .find(|i| i.family.is_none() || i.category.is_none())
    {
        bail!(
            "{}: prompt {} has no `family` or no `category`; every training prompt needs both (rewordings of one request share a family)",
            corpus.display(),
            i.id
        );
    }
    let embedder = setup::query_embedder()?;
    let info = embedder.info().clone();
    if info.sha256 != spec.embedding_sha256 {
        bail!(
            "the policy names embedding model sha256 {}, but the fetched model is {}: set embedding_sha256 in {} to the model you mean to train on",
            spec.embedding_sha256,
            info.sha256,
            args.policy.display()
        );
    }
    let bar = crate::progress::spinner(args.json, "embedding the corpus");
    let ex = examples(&policy, &items, &embedder)?;
    bar.set_message("training (folds by family, then the whole corpus)");
    let (fit, thresholds, validation) =
        train::train(&ex, spec.cues.len(), &spec.params, &spec.costs);
    bar.finish_and_clear();
    let families: std::collections::BTreeSet<&str> = ex.iter().map(|e| e.family.as_str()).collect();
    let corpus_bytes =
        std::fs::read(&corpus).with_context(|| format!("reading {}", corpus.display()))?;
    let classes = fit.category.classes.len();
    let classifier = Classifier::new(
        EmbeddingRef {
            id: info.id.clone(),
            sha256: info.sha256.clone(),
            dim: info.dim,
        },
        spec.params.lexical_buckets,
        spec.cues.clone(),
        spec.params.cue_value,
        fit.mean,
        fit.inv_std,
        fit.decision,
        fit.category,
        thresholds,
        TrainingRecord {
            corpus_sha256: sha256_bytes(&corpus_bytes),
            prompts: ex.len(),
            families: families.len(),
            folds: spec.params.folds,
            epochs: spec.params.epochs,
            l2: spec.params.l2,
            validation: validation.clone(),
        },
    )?;
    let text = serde_json::to_string(&classifier)? + "\n";
    let sha = sha256_bytes(text.as_bytes());
    let old = std::fs::read(&weights_path).ok();
    let outcome = match &old {
        Some(b) if b == text.as_bytes() => "unchanged",
        Some(b) if !args.force => bail!(
            "{} holds other weights (sha256 {}); the new ones are {sha}. Pass --force to replace them (keep a copy if you may want them back)",
            weights_path.display(),
            sha256_bytes(b)
        ),
        _ => {
            super::write_atomically(&weights_path, text.as_bytes())?;
            "written"
        }
    };
    let policy_text = std::fs::read_to_string(&args.policy)
        .with_context(|| format!("reading {}", args.policy.display()))?;
    let updated = record_sha(&policy_text, &sha)?;
    if updated != policy_text {
        super::write_atomically(&args.policy, updated.as_bytes())?;
    }
    let report = TrainJson {
        policy: args.policy.display().to_string(),
        weights: weights_path.display().to_string(),
        weights_sha256: sha,
        outcome,
        prompts: ex.len(),
        families: families.len(),
        classes,
        thresholds,
        validation,
        seconds: t0.elapsed().as_secs_f64(),
    };
    if args.json {
        return print_json(&report);
    }
    println!(
        "{} {} ({} prompts, {} families, {} classes, {:.1} s)",
        report.outcome,
        report.weights,
        report.prompts,
        report.families,
        report.classes,
        report.seconds
    );
    println!(
        "sha256 {} recorded in {}",
        report.weights_sha256, report.policy
    );
    println!(
        "thresholds: flag {:.2}, refuse share {:.2} (chosen on {} folds by family at the policy's costs)",
        thresholds.flag, thresholds.refuse_share, spec.params.folds
    );
    for (k, v) in &report.validation {
        println!("  out-of-fold {k:<22} {v:.3}");
    }
    println!("(for the figure on requests never trained on: `medlit eval safety --dataset {} --cross-validate 5`)", corpus.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::record_sha;

    #[test]
    fn the_sha_line_is_replaced_and_nothing_else() {
        let t = "a = 1\n[classifier]\nweights_sha256 = \"00\"\nb = \"weights_sha256\"\n";
        let out = record_sha(t, "ff").unwrap();
        assert_eq!(
            out,
            "a = 1\n[classifier]\nweights_sha256 = \"ff\"\nb = \"weights_sha256\"\n"
        );
        assert!(record_sha("a = 1\n", "ff").is_err());
    }
}
