//! `medlit bench graph`: the dense graph's recall against exact search and its walk time, for
//! one graph over all rows and for the same rows in segments, at several query-time `ef`, in
//! one run. The rows are noisy mixtures of real MiniLM vectors (as in `bench scale`); the
//! queries are real titles. What is timed is the graph search of a query vector (walk, int8
//! distances, exact re-scoring, the merge of segments): query embedding is the same for both
//! and left out, so the ratio is the graph's.
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use medlit_indexer::dense::{DenseIndex, DenseWriter, HnswParams, RowRef};
use serde::Serialize;

use crate::args::BenchGraphArgs;
use crate::scale::{
    queries, reset_peak_rss, seeds, self_kb, synthetic_vectors, Seeds, VECTOR_SLICE,
};
use crate::workdir::work_dir;
use medlit::commands::print_json;
use medlit::eval::retrieval::percentile;

#[derive(Debug, Serialize)]
struct Build {
    segment_rows: usize,
    segments: usize,
    build_s: f64,
    build_peak_rss_mb: f64,
}

#[derive(Debug, Serialize)]
struct AtEf {
    ef: usize,
    /// Per layout (`single`, `segmented`): recall@10 against exact search, p50/p95 ms.
    single: Walk,
    segmented: Walk,
    /// segmented p95 / single p95.
    p95_ratio: f64,
}

/// ann-benchmarks' tolerance on the 10th exact distance: a returned row within it counts.
const TIE_EPSILON: f32 = 1e-3;

#[derive(Debug, Serialize)]
struct Walk {
    /// Share of the exact 10 nearest rows returned.
    recall_at_10: f64,
    /// Share of the 10 returned rows at least as close as the exact 10th less
    /// [`TIE_EPSILON`] (ann-benchmarks' k-NN recall): near-ties count as found.
    recall_at_10_eps: f64,
    p50_ms: f64,
    p95_ms: f64,
}

#[derive(Debug, Serialize)]
struct GraphBench {
    rows: usize,
    /// Real vectors the rows are mixtures of.
    pool: usize,
    queries: usize,
    params: HnswParams,
    single: Build,
    segmented: Build,
    sweep: Vec<AtEf>,
}

pub fn run(args: &BenchGraphArgs) -> Result<()> {
    let segments = args.segments as usize;
    if args.rows < 1000 * segments {
        bail!(
            "--rows {} is too few for --segments {segments}: at least 1,000 rows a segment",
            args.rows
        );
    }
    if args.embed.segment_rows != medlit_indexer::dense::DEFAULT_SEGMENT_ROWS as u64 {
        bail!(
            "--segment-rows is not used by `bench graph`: --segments N splits --rows into N graphs"
        );
    }
    let segment_rows = args.rows.div_ceil(segments);
    if args.ef.is_empty() || args.ef.contains(&0) {
        bail!("--ef needs candidate list lengths above 0 (e.g. 96,192,384)");
    }
    let work = work_dir(args.work.as_deref(), "graph")?;
    let single_dir = work.join("single");
    let segmented_dir = work.join("segmented");
    let manifest = medlit::cli::setup::manifest(&medlit::cli::ManifestArg::default())?;
    let sources = medlit::cli::setup::corpus_files(&manifest)?;
    let dense = medlit::cli::setup::dense_options(&manifest, &args.embed)?;
    let titles = queries(&sources, args.queries)?;
    let (base, model, query_vectors) = match &args.pool_index {
        Some(dir) => pool_of(dir, &manifest, &titles)?,
        None => {
            let Seeds { base, model, .. } = seeds(&work, &sources, args.embed_sample, &dense)?;
            let mut embedder = dense.embedder.load().context("loading the embedder")?;
            let refs: Vec<&str> = titles.iter().map(String::as_str).collect();
            let query_vectors = embedder.embed(&refs)?;
            (base, model, query_vectors)
        }
    };
    eprintln!("mixing rows from {} real vectors", base.len());

    let params = HnswParams {
        segment_rows: args.rows,
        ..dense.params
    };
    let single = build(&single_dir, &base, &model, params, args.rows)?;
    let segmented = build(
        &segmented_dir,
        &base,
        &model,
        HnswParams {
            segment_rows,
            ..params
        },
        args.rows,
    )?;
    let one = DenseIndex::open(&single_dir.join("dense"), &model)?;
    let many = DenseIndex::open(&segmented_dir.join("dense"), &model)?;
    // Both hold the same rows: one exact answer per query.
    let exact: Vec<Vec<(usize, f32)>> = query_vectors.iter().map(|q| one.exact(q, 10)).collect();
    // One untimed pass at the widest list: the first timed ef would otherwise pay for
    // faulting the freshly written files in.
    let widest = args.ef.iter().copied().max().unwrap_or(1);
    for q in &query_vectors {
        one.search(q, 10, Some(widest));
        many.search(q, 10, Some(widest));
    }
    let mut sweep = Vec::new();
    for &ef in &args.ef {
        // Interleaved per query, so a change in the machine's speed meets both alike.
        let (mut a, mut b) = (Tally::default(), Tally::default());
        for (q, want) in query_vectors.iter().zip(&exact) {
            a.add(&one, q, want, ef);
            b.add(&many, q, want, ef);
        }
        let (single, segmented) = (a.finish(), b.finish());
        eprintln!(
            "ef {ef}: recall@10 single {:.3} segmented {:.3}; p95 {:.2} / {:.2} ms",
            single.recall_at_10, segmented.recall_at_10, single.p95_ms, segmented.p95_ms
        );
        sweep.push(AtEf {
            ef,
            p95_ratio: segmented.p95_ms / single.p95_ms.max(1e-9),
            single,
            segmented,
        });
    }
    let report = GraphBench {
        rows: args.rows,
        pool: base.len(),
        queries: query_vectors.len(),
        params,
        single,
        segmented,
        sweep,
    };
    if !args.keep {
        let _ = std::fs::remove_dir_all(&single_dir);
        let _ = std::fs::remove_dir_all(&segmented_dir);
    }
    if args.json {
        return print_json(&report);
    }
    print_text(&report);
    Ok(())
}

#[derive(Default)]
struct Tally {
    found: usize,
    within_eps: usize,
    total: usize,
    ms: Vec<f64>,
}

impl Tally {
    fn add(&mut self, index: &DenseIndex, q: &[f32], want: &[(usize, f32)], ef: usize) {
        let t = Instant::now();
        let got = index.search(q, 10, Some(ef));
        self.ms.push(t.elapsed().as_secs_f64() * 1e3);
        self.total += want.len();
        self.found += want
            .iter()
            .filter(|w| got.iter().any(|g| g.0 == w.0))
            .count();
        // Scores are exact cosines (the search re-scores in f32): higher is nearer.
        if let Some(&(_, tenth)) = want.last() {
            self.within_eps += got
                .iter()
                .filter(|g| g.1 >= tenth - TIE_EPSILON)
                .count()
                .min(want.len());
        }
    }

    fn finish(mut self) -> Walk {
        self.ms.sort_by(f64::total_cmp);
        Walk {
            recall_at_10: self.found as f64 / self.total.max(1) as f64,
            recall_at_10_eps: self.within_eps as f64 / self.total.max(1) as f64,
            p50_ms: percentile(&self.ms, 0.5),
            p95_ms: percentile(&self.ms, 0.95),
        }
    }
}

/// Every live vector of an existing index's dense half as the pool, and the titles embedded
/// by the encoder that index was built with.
type Pool = (
    Vec<Vec<f32>>,
    medlit_indexer::embed::ModelInfo,
    Vec<Vec<f32>>,
);

fn pool_of(dir: &Path, manifest: &medlit_corpus::DataManifest, titles: &[String]) -> Result<Pool> {
    let candidates = medlit::cli::setup::encoders(manifest, 2, 256);
    let searcher = medlit::retrieve::dense::DenseSearcher::open(dir, &candidates)
        .with_context(|| format!("opening the dense half of {}", dir.display()))?;
    let index = searcher.index();
    let base: Vec<Vec<f32>> = (0..index.rows())
        .filter(|&i| !index.is_dead(i))
        .map(|i| index.vector(i).to_vec())
        .collect();
    let embedder = searcher.embedder();
    let query_vectors = titles
        .iter()
        .map(|t| embedder.embed_one(t))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((base, index.meta().model.clone(), query_vectors))
}

/// Writes `rows` synthetic rows in `dir/dense` and builds their graph; time and peak memory.
fn build(
    dir: &Path,
    base: &[Vec<f32>],
    model: &medlit_indexer::embed::ModelInfo,
    params: HnswParams,
    rows: usize,
) -> Result<Build> {
    let dense_dir = dir.join("dense");
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    eprintln!(
        "{rows} rows in segments of at most {}: building",
        params.segment_rows
    );
    let mut w = DenseWriter::create(&dense_dir, model, params)?;
    for first in (0..rows).step_by(VECTOR_SLICE) {
        let n = (rows - first).min(VECTOR_SLICE);
        let refs: Vec<RowRef> = (first..first + n)
            .map(|i| RowRef {
                pmid: i as u64 + 1,
                passage_no: 0,
            })
            .collect();
        w.append(&refs, &synthetic_vectors(base, first, n))?;
    }
    reset_peak_rss();
    let started = Instant::now();
    let meta = w.finish(true)?;
    Ok(Build {
        segment_rows: params.segment_rows,
        segments: meta.graphs.len(),
        build_s: started.elapsed().as_secs_f64(),
        build_peak_rss_mb: self_kb("VmHWM:") as f64 / 1024.0,
    })
}

fn print_text(r: &GraphBench) {
    println!(
        "{} rows (noisy mixtures of {} real MiniLM vectors), {} real titles as queries, M {}, ef_construction {}",
        r.rows, r.pool, r.queries, r.params.m, r.params.ef_construction
    );
    for (name, b) in [("single", &r.single), ("segmented", &r.segmented)] {
        println!(
            "{name:>9}: {} segment(s) of at most {} rows, built in {:.0} s, peak RSS {:.0} MB",
            b.segments, b.segment_rows, b.build_s, b.build_peak_rss_mb
        );
    }
    println!("| ef | recall@10 single (ε) | recall@10 segmented (ε) | p50 / p95 ms single | p50 / p95 ms segmented | p95 segmented / single |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for e in &r.sweep {
        println!(
            "| {} | {:.3} ({:.3}) | {:.3} ({:.3}) | {:.2} / {:.2} | {:.2} / {:.2} | {:.2}× |",
            e.ef,
            e.single.recall_at_10,
            e.single.recall_at_10_eps,
            e.segmented.recall_at_10,
            e.segmented.recall_at_10_eps,
            e.single.p50_ms,
            e.single.p95_ms,
            e.segmented.p50_ms,
            e.segmented.p95_ms,
            e.p95_ratio
        );
    }
}
