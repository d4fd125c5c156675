use std::collections::BTreeMap;

use anyhow::{Context, Result};
use medlit_corpus::datasets::read_qa;

use super::print_json;
use super::search::open_retriever;
use crate::cli::{EvalCommand, EvalModeArg, EvalRetrievalArgs};
use crate::eval::retrieval::{evaluate, RetrievalReport};
use crate::retrieve::hybrid::Mode;

/// Depth of each ranked list: recall@100 needs 100.
const DEPTH: usize = 100;

pub fn run(cmd: &EvalCommand) -> Result<()> {
    match cmd {
        EvalCommand::Retrieval(a) => retrieval(a),
    }
}

fn retrieval(args: &EvalRetrievalArgs) -> Result<()> {
    let items = read_qa(&args.dataset).context("reading the dataset")?;
    let pairs: Vec<(String, String)> = items
        .iter()
        .map(|i| (i.question.clone(), i.pmid.clone()))
        .collect();
    let dir = super::index_dir(&args.index)?;
    let want = |m: EvalModeArg| args.mode == m || args.mode == EvalModeArg::All;
    let retriever = open_retriever(&dir, args.mode != EvalModeArg::Bm25, &args.fusion)?;
    let mut run_modes = Vec::new();
    if want(EvalModeArg::Bm25) {
        run_modes.push(Mode::Bm25);
    }
    if args.mode != EvalModeArg::Bm25 {
        if retriever.dense.is_none() && args.mode == EvalModeArg::All {
            eprintln!("note: the index has no dense part; dense and hybrid are skipped (build it with `medlit index --dense`)");
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
