use std::collections::BTreeMap;

use anyhow::{Context, Result};
use medlit_corpus::datasets::read_qa;

use super::print_json;
use crate::cli::{EvalCommand, EvalModeArg, EvalRetrievalArgs};
use crate::eval::retrieval::{evaluate, RetrievalReport};
use crate::retrieve::dense::DenseSearcher;
use crate::retrieve::fuse::rrf;
use crate::retrieve::Bm25Searcher;

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
    let bm25 = Bm25Searcher::open(&dir)
        .with_context(|| format!("opening the index in {}", dir.display()))?;
    let mut modes = BTreeMap::new();
    let want = |m: EvalModeArg| args.mode == m || args.mode == EvalModeArg::All;
    let has_dense = bm25.manifest().dense.is_some();
    if want(EvalModeArg::Bm25) {
        let scores = evaluate(&pairs, |q| {
            bm25.rank(q, DEPTH, None)
                .map(|hits| hits.into_iter().map(|(pmid, _)| pmid.to_string()).collect())
        })?;
        modes.insert("bm25".to_string(), scores);
    }
    let dense_wanted = args.mode != EvalModeArg::Bm25;
    if dense_wanted && !has_dense && args.mode == EvalModeArg::All {
        eprintln!("note: the index has no dense part; dense and hybrid are skipped (build it with `medlit index --dense`)");
    } else if dense_wanted {
        let cfg = super::onnx_config(
            &super::manifest(&crate::cli::ManifestArg { manifest: None })?,
            args.fusion.query_threads,
            1,
            256,
        )?;
        let dense = DenseSearcher::open(&dir, cfg).context("opening the dense index")?;
        let depth = args.fusion.depth.max(DEPTH);
        if want(EvalModeArg::Dense) {
            let scores = evaluate(&pairs, |q| {
                dense
                    .rank(q, DEPTH)
                    .map(|hits| hits.into_iter().map(|h| h.pmid.to_string()).collect())
            })?;
            modes.insert("dense".to_string(), scores);
        }
        if want(EvalModeArg::Hybrid) {
            let scores = evaluate(&pairs, |q| -> Result<Vec<String>> {
                let b: Vec<u64> = bm25
                    .rank(q, depth, None)?
                    .into_iter()
                    .map(|h| h.0)
                    .collect();
                let d: Vec<u64> = dense.rank(q, depth)?.into_iter().map(|h| h.pmid).collect();
                Ok(rrf(&[&b, &d], args.fusion.rrf_k)
                    .into_iter()
                    .take(DEPTH)
                    .map(|f| f.pmid.to_string())
                    .collect())
            })?;
            modes.insert("hybrid".to_string(), scores);
        }
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
