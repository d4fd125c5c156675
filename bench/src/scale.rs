//! `medlit bench scale`: how indexing and search grow with the corpus, on synthetic corpora
//! recombined from the real sample (see `medlit synth`), with the extrapolation to PubMed.
//!
//! Per size: parse (a standalone parallel pass), the whole `medlit index` run in a child
//! process (parse + BM25 + per-file commits; its peak RSS polled from /proc), embedding (the
//! measured rate of the real model on real passages, times the passages of the size: embedding
//! a million abstracts takes days here), the HNSW graph built for real over that many rows
//! (real embeddings of a subsample, each row a noisy mixture of two), disk per component, and
//! search latency p50/p95 per mode with the resident memory of an opened index.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use medlit_indexer::dense::{DenseWriter, RowRef};
use medlit_indexer::pubmed::{parse_file, Record};
use medlit_indexer::{DenseSummary, IndexDir};
use rayon::prelude::*;
use serde::Serialize;

use crate::args::BenchScaleArgs;
use crate::plot::{Chart, Series};
use crate::workdir::work_dir;
use medlit::commands::print_json;
use medlit::eval::retrieval::percentile;
use medlit::generate::device::proc_kb;
use medlit::retrieve::hybrid::Mode;

/// PubMed's size, for the extrapolation.
const PUBMED_CITATIONS: f64 = 36.0e6;

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
struct Latency {
    p50_ms: f64,
    p95_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
struct SizePoint {
    records: u64,
    /// Distinct PMIDs indexed.
    indexed: u64,
    files: usize,
    xml_mb: f64,
    parse_s: f64,
    /// The `medlit index` run: parse + BM25 + commits.
    index_s: f64,
    /// `index_s - parse_s`: the BM25 side and the commits.
    bm25_s: f64,
    index_peak_rss_mb: f64,
    passages: u64,
    /// Passages / measured passages per second (not run at this size).
    embed_s_estimated: f64,
    hnsw_s: f64,
    hnsw_peak_rss_mb: f64,
    disk_mb: DiskMb,
    search: std::collections::BTreeMap<String, Latency>,
    /// Resident memory of a process that opened the index (and the query embedder) and ran
    /// every query: anonymous (must be RAM) and file-backed (mapped index pages the queries
    /// touched: page cache the system can evict).
    search_anon_mb: f64,
    search_file_mb: f64,
    /// Graph segments the dense half was built in, of at most `segment_rows` passages.
    segments: usize,
    segment_rows: usize,
    /// Dense recall@10 of the graph search against exact search, over the query vectors.
    dense_recall_at_10: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
struct DiskMb {
    bm25: f64,
    vectors: f64,
    docmap: f64,
    /// The hnsw_rs dump: graph plus its own copy of the vectors.
    graph: f64,
    total: f64,
}

#[derive(Debug, Serialize)]
struct Extrapolation {
    citations: f64,
    /// Per phase: seconds per 1,000 citations at the margin (between the two largest sizes),
    /// then hours for all of PubMed on this machine's cores and on 32.
    phases: Vec<PhaseCost>,
    disk_gb: f64,
    disk_bytes_per_citation: DiskMb,
    search_ram_gb: f64,
    index_ram_gb: f64,
    dominant: String,
}

#[derive(Debug, Serialize)]
struct PhaseCost {
    phase: &'static str,
    s_per_1k: f64,
    hours_here: f64,
    hours_32_cores: f64,
}

#[derive(Debug, Serialize)]
struct ScaleBench {
    cores: usize,
    embed_rate_passages_per_s: f64,
    passages_per_abstract: f64,
    queries: usize,
    sizes: Vec<SizePoint>,
    extrapolation: Option<Extrapolation>,
    plots: Vec<String>,
}

/// What the search process reports.
#[derive(Debug, Serialize, serde::Deserialize)]
struct SearchChild {
    search: std::collections::BTreeMap<String, Latency>,
    /// Graph search (ef as stored) against exact search: recall@10 over the queries.
    dense_recall_at_10: f64,
    /// Resident memory at the end: anonymous, and mapped index files.
    anon_kb: u64,
    file_kb: u64,
}

/// `--search-child INDEX`: open the index, time every query in every mode, report memory.
fn search_child(args: &BenchScaleArgs, index: &Path) -> Result<()> {
    let manifest = medlit::cli::setup::manifest(&medlit::cli::ManifestArg::default())?;
    let queries = queries(&medlit::cli::setup::corpus_files(&manifest)?, args.queries)?;
    let retriever = medlit::cli::setup::open_retriever(index, true, &args.fusion)?;
    let mut search = std::collections::BTreeMap::new();
    for mode in [Mode::Bm25, Mode::Dense, Mode::Hybrid] {
        let mut ms = Vec::with_capacity(queries.len());
        for q in &queries {
            let t = Instant::now();
            retriever.search(q, 10, mode, &Default::default())?;
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        ms.sort_by(f64::total_cmp);
        search.insert(
            mode.name().to_string(),
            Latency {
                p50_ms: percentile(&ms, 0.5),
                p95_ms: percentile(&ms, 0.95),
            },
        );
    }
    // Recall after the timings: the exact scans would otherwise warm the page cache for them.
    let dense_recall_at_10 = match &retriever.dense {
        None => 0.0,
        Some(d) => {
            let (mut found, mut total) = (0usize, 0usize);
            for q in &queries {
                let v = d.embedder().embed_one(q)?;
                let want = d.index().exact(&v, 10);
                let got = d.index().search(&v, 10, None);
                total += want.len();
                found += want
                    .iter()
                    .filter(|w| got.iter().any(|g| g.0 == w.0))
                    .count();
            }
            found as f64 / total.max(1) as f64
        }
    };
    print_json(&SearchChild {
        search,
        dense_recall_at_10,
        anon_kb: self_kb("RssAnon:"),
        file_kb: self_kb("RssFile:"),
    })
}

pub fn run(args: &BenchScaleArgs) -> Result<()> {
    if let Some(index) = &args.search_child {
        return search_child(args, index);
    }
    self_exe()?;
    let mut sizes = args.sizes.clone();
    sizes.sort_unstable();
    sizes.dedup();
    if sizes.is_empty() || sizes[0] == 0 {
        bail!("--sizes needs at least one size above 0 (e.g. 50k,200k,1M)");
    }
    let work = work_dir(args.work.as_deref(), "scale")?;
    let manifest = medlit::cli::setup::manifest(&medlit::cli::ManifestArg::default())?;
    let sources = medlit::cli::setup::corpus_files(&manifest)?;
    let dense = medlit::cli::setup::dense_options(&manifest, &args.embed)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    // The real model on real passages: its rate, and the vectors the graphs are built from.
    let Seeds {
        base,
        model,
        embed_rate,
        passages_per_abstract,
    } = seeds(&work, &sources, args.embed_sample, &dense)?;

    let queries = queries(&sources, args.queries)?;
    let mut points = Vec::new();
    for &n in &sizes {
        eprintln!("size {n}: writing the synthetic corpus");
        let corpus = work.join(format!("synth-{n}"));
        let synth = medlit::commands::synth::synthesise(
            &sources,
            &medlit_corpus::synth::SynthOptions {
                records: n,
                ..Default::default()
            },
            &corpus,
        )?;
        let point = measure(
            args,
            n,
            &synth.files,
            &work.join(format!("index-{n}")),
            &base,
            &model,
            dense.params,
            passages_per_abstract,
            embed_rate,
            &queries,
        )?;
        eprintln!(
            "size {n}: index {:.1} s, hnsw {:.1} s, disk {:.0} MB, hybrid p50 {:.1} ms",
            point.index_s,
            point.hnsw_s,
            point.disk_mb.total,
            point.search.get("hybrid").map_or(0.0, |l| l.p50_ms)
        );
        points.push(point);
        if !args.keep {
            let _ = std::fs::remove_dir_all(&corpus);
            let _ = std::fs::remove_dir_all(work.join(format!("index-{n}")));
        }
    }
    let extrapolation = extrapolate(&points, cores);
    let plot_dir = args.plots.clone().unwrap_or_else(|| work.join("plots"));
    let plots = plot(&points, &plot_dir)?;
    let report = ScaleBench {
        cores,
        embed_rate_passages_per_s: embed_rate,
        passages_per_abstract,
        queries: queries.len(),
        sizes: points,
        extrapolation,
        plots: plots.iter().map(|p| p.display().to_string()).collect(),
    };
    if args.json {
        return print_json(&report);
    }
    print_text(&report);
    Ok(())
}

/// Real MiniLM vectors of real passages, the rows' raw material, and the model's rate.
pub(crate) struct Seeds {
    pub base: Vec<Vec<f32>>,
    pub model: medlit_indexer::embed::ModelInfo,
    pub embed_rate: f64,
    pub passages_per_abstract: f64,
}

/// Embeds the passages of `sample` synthetic abstracts (recombined from `sources`, written
/// under `work`) with the configured encoder.
pub(crate) fn seeds(
    work: &Path,
    sources: &[PathBuf],
    sample: usize,
    dense: &medlit_indexer::DenseOptions,
) -> Result<Seeds> {
    let seeds_dir = work.join("synth-seed");
    let seed_corpus = medlit::commands::synth::synthesise(
        sources,
        &medlit_corpus::synth::SynthOptions {
            records: sample.max(1),
            per_file: sample.max(1),
            ..Default::default()
        },
        &seeds_dir,
    )?;
    let mut embedder = dense.embedder.load().context("loading the embedder")?;
    let mut texts = Vec::new();
    let mut abstracts = 0u64;
    for f in &seed_corpus.files {
        for r in parse_file(f)?.records {
            if let Record::Article(a) = r {
                abstracts += 1;
                let split = medlit_indexer::passages::split(
                    &a,
                    medlit_indexer::passages::window_budget(dense.embedder.max_tokens()),
                    &mut |t| embedder.count_tokens(t),
                );
                texts.extend(split.into_iter().map(|p| p.embedding_text()));
            }
        }
    }
    let passages_per_abstract = texts.len() as f64 / abstracts.max(1) as f64;
    eprintln!(
        "embedding {} real passages of {abstracts} synthetic abstracts to measure the rate",
        texts.len()
    );
    let started = Instant::now();
    let mut base = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(64) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        base.extend(embedder.embed(&refs)?);
    }
    let embed_rate = base.len() as f64 / started.elapsed().as_secs_f64().max(1e-9);
    Ok(Seeds {
        base,
        model: embedder.info().clone(),
        embed_rate,
        passages_per_abstract,
    })
}

/// Titles of real articles: real query text, not tuned to the synthetic corpus.
pub(crate) fn queries(sources: &[PathBuf], n: usize) -> Result<Vec<String>> {
    let parsed = parse_file(&sources[0])?;
    let titles: Vec<String> = parsed
        .records
        .into_iter()
        .filter_map(|r| match r {
            Record::Article(a) if a.title.len() > 20 => Some(a.title),
            _ => None,
        })
        .collect();
    let step = (titles.len() / n.max(1)).max(1);
    Ok(titles.into_iter().step_by(step).take(n).collect())
}

#[allow(clippy::too_many_arguments)]
fn measure(
    args: &BenchScaleArgs,
    n: usize,
    files: &[PathBuf],
    index: &Path,
    base: &[Vec<f32>],
    model: &medlit_indexer::embed::ModelInfo,
    params: medlit_indexer::dense::HnswParams,
    passages_per_abstract: f64,
    embed_rate: f64,
    queries: &[String],
) -> Result<SizePoint> {
    let started = Instant::now();
    let xml_bytes: u64 = files
        .par_iter()
        .map(|f| parse_file(f).map(|p| p.xml_bytes))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .sum();
    let parse_s = started.elapsed().as_secs_f64();

    eprintln!("size {n}: medlit index ({} files)", files.len());
    let mut cmd = std::process::Command::new(crate::medlit_exe()?);
    // Keyword-only: the dense half is built below from noisy mixtures of real embeddings (embedding the corpus
    // for real would take days).
    cmd.args([
        "index",
        "--bm25-only",
        "--replace",
        "--json",
        "--writer-memory",
    ])
    .arg(args.writer_memory.to_string())
    .arg("--index")
    .arg(index)
    .args(files)
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::inherit());
    let started = Instant::now();
    let child = cmd.spawn().context("starting medlit index")?;
    let (out, peak_kb) = wait_with_peak(child)?;
    let index_s = started.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("medlit index failed at size {n}");
    }
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("medlit index --json")?;
    let indexed = report["indexed"].as_u64().unwrap_or(0);

    // The dense half: one row per passage of each live PMID, as the real splitter gives on
    // average; each vector a noisy mixture of two real embeddings.
    let layout = IndexDir::new(index);
    let mut m = layout.manifest()?;
    let mut pmids = medlit_indexer::bm25::live_pmids(&layout.bm25_dir(&m))?;
    pmids.sort_unstable();
    let mut rows = Vec::new();
    for (i, &pmid) in pmids.iter().enumerate() {
        let k = ((i + 1) as f64 * passages_per_abstract).floor()
            - (i as f64 * passages_per_abstract).floor();
        for p in 0..(k as u32).max(1) {
            rows.push(RowRef {
                pmid,
                passage_no: p,
            });
        }
    }
    eprintln!(
        "size {n}: HNSW over {} rows in segments of at most {}",
        rows.len(),
        params.segment_rows
    );
    let gen_dir = layout.generation_dir(m.generation);
    let dense_dir = gen_dir.join("dense");
    // The vectors are written in slices, as an index build appends one file's at a time: the
    // peak is the graph build's, not a copy of every vector.
    let mut w = DenseWriter::create(&dense_dir, model, params)?;
    for (i, slice) in rows.chunks(VECTOR_SLICE).enumerate() {
        let vectors = synthetic_vectors(base, i * VECTOR_SLICE, slice.len());
        w.append(slice, &vectors)?;
    }
    reset_peak_rss();
    let started = Instant::now();
    let meta = w.finish(true)?;
    let hnsw_s = started.elapsed().as_secs_f64();
    let hnsw_peak_rss_mb = self_kb("VmHWM:") as f64 / 1024.0;
    // Attached to the live generation in place: a benchmark's throwaway index.
    m.dense = Some(DenseSummary {
        dir: format!("gen-{:06}/dense", m.generation),
        model: meta.model.clone(),
        rows: meta.rows as u64,
        params: meta.params,
        dead: 0,
        graph_rows: meta.rows as u64,
        graph_segments: meta.graphs.len() as u64,
    });
    m.files = medlit_indexer::layout::checksums(index, &gen_dir)?;
    layout.commit(&m)?;
    let disk_mb = disk(&gen_dir)?;

    // In a fresh process: memory freed by the graph build would otherwise be reused and hide
    // what an opened index holds.
    eprintln!("size {n}: searching in a fresh process");
    let out = std::process::Command::new(self_exe()?)
        .args(["scale", "--queries"])
        .arg(queries.len().to_string())
        .arg("--search-child")
        .arg(index)
        .args(["--query-threads", &args.fusion.query_threads.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("starting the search process")?;
    if !out.status.success() {
        bail!("the search process failed at size {n}");
    }
    let child: SearchChild =
        serde_json::from_slice(&out.stdout).context("the search process's JSON")?;
    let (search, search_anon_mb, search_file_mb) = (
        child.search.clone(),
        child.anon_kb as f64 / 1024.0,
        child.file_kb as f64 / 1024.0,
    );
    Ok(SizePoint {
        records: n as u64,
        indexed,
        files: files.len(),
        xml_mb: xml_bytes as f64 / 1e6,
        parse_s,
        index_s,
        bm25_s: (index_s - parse_s).max(0.0),
        index_peak_rss_mb: peak_kb as f64 / 1024.0,
        passages: meta.rows as u64,
        embed_s_estimated: meta.rows as f64 / embed_rate.max(1e-9),
        hnsw_s,
        hnsw_peak_rss_mb,
        disk_mb,
        search,
        search_anon_mb,
        search_file_mb,
        segments: meta.graphs.len(),
        segment_rows: meta.params.segment_rows,
        dense_recall_at_10: child.dense_recall_at_10,
    })
}

/// This benchmark's executable, as found when it started: a run lasts hours, and a rebuild
/// meanwhile replaces the file, after which the running process's own path reads
/// "… (deleted)" and cannot start the search process.
fn self_exe() -> Result<PathBuf> {
    static EXE: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    EXE.get_or_init(|| std::env::current_exe().ok())
        .clone()
        .context("finding the medlit-bench executable")
}

/// Rows of synthetic vectors generated and appended at a time.
pub(crate) const VECTOR_SLICE: usize = 200_000;

/// Unit vectors for rows `first..first + n`: row `i` a random mixture of two real embeddings,
/// `w·a + (1 − w)·b` with `w` uniform, plus noise of a fifth of its length. Copies of one
/// vector (the first design) made clusters of a thousand near-ties at a million rows, where
/// the exact top 10 is decided by the noise and recall against it measures nothing real;
/// mixtures spread like a corpus: neighbours at every distance, few exact ties.
pub(crate) fn synthetic_vectors(base: &[Vec<f32>], first: usize, n: usize) -> Vec<Vec<f32>> {
    let dim = base.first().map_or(0, Vec::len);
    let sigma = 0.2 / (dim.max(1) as f32).sqrt();
    (first..first + n)
        .into_par_iter()
        .map(|i| {
            let mut s = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
            let mut next = || {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s
            };
            let uniform = |x: u64| (x >> 40) as f32 / (1u64 << 24) as f32;
            let (a, b) = (
                &base[next() as usize % base.len()],
                &base[next() as usize % base.len()],
            );
            let w = uniform(next());
            let mut v: Vec<f32> = a
                .iter()
                .zip(b)
                .map(|(x, y)| {
                    // Sum of four uniforms: close enough to a normal for noise.
                    let noise: f32 = (0..4).map(|_| uniform(next()) - 0.5).sum();
                    w * x + (1.0 - w) * y + sigma * 1.73 * noise
                })
                .collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            v.iter_mut().for_each(|x| *x /= norm);
            v
        })
        .collect()
}

/// Waits for the child, polling its high-water resident memory.
fn wait_with_peak(mut child: std::process::Child) -> Result<(std::process::Output, u64)> {
    let status_path = format!("/proc/{}/status", child.id());
    let stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut s) = stdout {
            let _ = std::io::Read::read_to_end(&mut s, &mut buf);
        }
        buf
    });
    let mut peak = 0;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_path) {
            peak = peak.max(proc_kb(&text, "VmHWM:").unwrap_or(0));
        }
        if let Some(st) = child.try_wait()? {
            break st;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = reader.join().unwrap_or_default();
    Ok((
        std::process::Output {
            status,
            stdout,
            stderr: Vec::new(),
        },
        peak,
    ))
}

pub(crate) fn self_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| proc_kb(&t, field))
        .unwrap_or(0)
}

/// Starts a new high-water mark of resident memory (Linux: `5` in `clear_refs`).
pub(crate) fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn disk(gen_dir: &Path) -> Result<DiskMb> {
    let mut d = DiskMb::default();
    let mut stack = vec![gen_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let mb = std::fs::metadata(&p)?.len() as f64 / 1e6;
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let slot = if p.components().any(|c| c.as_os_str() == "bm25") {
                &mut d.bm25
            } else if name.starts_with("vectors-") {
                &mut d.vectors
            } else if name.starts_with("docmap-") {
                &mut d.docmap
            } else {
                &mut d.graph
            };
            *slot += mb;
            d.total += mb;
        }
    }
    Ok(d)
}

fn extrapolate(points: &[SizePoint], cores: usize) -> Option<Extrapolation> {
    let (a, b) = match points {
        [.., a, b] => (a, b),
        [b] => (b, b),
        [] => return None,
    };
    let dn = (b.indexed as f64
        - if a.indexed == b.indexed {
            0.0
        } else {
            a.indexed as f64
        })
    .max(1.0);
    let slope = |f: &dyn Fn(&SizePoint) -> f64| {
        if a.indexed == b.indexed {
            f(b) / dn
        } else {
            (f(b) - f(a)) / dn
        }
    };
    let per_citation = |f: &dyn Fn(&SizePoint) -> f64| slope(f).max(f(b) / b.indexed as f64 * 0.5);
    let hours = |s_per: f64| s_per * PUBMED_CITATIONS / 3600.0;
    let mut phases = Vec::new();
    for (phase, f) in [
        (
            "parse",
            &(|p: &SizePoint| p.parse_s) as &dyn Fn(&SizePoint) -> f64,
        ),
        ("bm25 + commits", &|p: &SizePoint| p.bm25_s),
        ("embed", &|p: &SizePoint| p.embed_s_estimated),
        ("hnsw", &|p: &SizePoint| p.hnsw_s),
    ] {
        let s = per_citation(f);
        phases.push(PhaseCost {
            phase,
            s_per_1k: s * 1e3,
            hours_here: hours(s),
            // Parse, embedding and graph inserts run in parallel; linear scaling assumed.
            hours_32_cores: hours(s) * cores as f64 / 32.0,
        });
    }
    let dominant = phases
        .iter()
        .max_by(|x, y| x.hours_here.total_cmp(&y.hours_here))
        .map(|p| {
            let total: f64 = phases.iter().map(|q| q.hours_here).sum();
            format!(
                "{} ({:.0}% of the indexing time)",
                p.phase,
                100.0 * p.hours_here / total.max(1e-9)
            )
        })
        .unwrap_or_default();
    let bytes = |f: &dyn Fn(&DiskMb) -> f64| per_citation(&|p: &SizePoint| f(&p.disk_mb)) * 1e6;
    let per = DiskMb {
        bm25: bytes(&|d| d.bm25),
        vectors: bytes(&|d| d.vectors),
        docmap: bytes(&|d| d.docmap),
        graph: bytes(&|d| d.graph),
        total: bytes(&|d| d.total),
    };
    Some(Extrapolation {
        citations: PUBMED_CITATIONS,
        disk_gb: per.total * PUBMED_CITATIONS / 1e9,
        search_ram_gb: per_citation(&|p| p.search_anon_mb) * 1e6 * PUBMED_CITATIONS / 1e9,
        index_ram_gb: graph_build_peak_gb(b, per_citation(&|p| p.hnsw_peak_rss_mb)),
        disk_bytes_per_citation: per,
        phases,
        dominant,
    })
}

/// The graph build's peak at PubMed's size: a graph is built one segment at a time, so the
/// peak grows with the corpus only until the segments are full. Measured at the largest size:
/// with a full segment, that peak (the rest grows by the docmap's bytes a passage); below
/// one, scaled up to a full segment; and never above the linear extrapolation.
fn graph_build_peak_gb(largest: &SizePoint, mb_per_citation: f64) -> f64 {
    let linear = mb_per_citation * PUBMED_CITATIONS / 1e3;
    let passages = largest.passages.max(1) as f64;
    let segment = largest.segment_rows.max(1) as f64;
    let per_passage_gb = largest.hnsw_peak_rss_mb / 1e3 / passages;
    let bounded = if passages >= segment {
        largest.hnsw_peak_rss_mb / 1e3
    } else {
        per_passage_gb * segment
    };
    let rows_at_pubmed = passages / largest.indexed.max(1) as f64 * PUBMED_CITATIONS;
    // The writer's PMID per row (8 bytes) and the docmap it reads (12) grow with the corpus.
    let growing = 20.0 * (rows_at_pubmed - passages).max(0.0) / 1e9;
    (bounded + growing).min(linear)
}

fn plot(points: &[SizePoint], dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let xs: Vec<f64> = points.iter().map(|p| p.records as f64).collect();
    let series = |name: &str, f: &dyn Fn(&SizePoint) -> f64| Series {
        name: name.to_string(),
        points: xs.iter().zip(points).map(|(&x, p)| (x, f(p))).collect(),
    };
    let charts = [
        (
            "scale_index_time.png",
            Chart {
                title: "index time by phase (s)".into(),
                x_label: "citations".into(),
                series: vec![
                    series("parse", &|p| p.parse_s),
                    series("bm25+commits", &|p| p.bm25_s),
                    series("hnsw", &|p| p.hnsw_s),
                    series("embed (est.)", &|p| p.embed_s_estimated),
                ],
            },
        ),
        (
            "scale_disk.png",
            Chart {
                title: "index size on disk (MB)".into(),
                x_label: "citations".into(),
                series: vec![
                    series("bm25", &|p| p.disk_mb.bm25),
                    series("vectors", &|p| p.disk_mb.vectors),
                    series("hnsw dump", &|p| p.disk_mb.graph),
                    series("docmap", &|p| p.disk_mb.docmap),
                ],
            },
        ),
        (
            "scale_search_latency.png",
            Chart {
                title: "search latency (ms)".into(),
                x_label: "citations".into(),
                series: ["bm25", "dense", "hybrid"]
                    .iter()
                    .flat_map(|m| {
                        [
                            series(&format!("{m} p50"), &|p| p.search[*m].p50_ms),
                            series(&format!("{m} p95"), &|p| p.search[*m].p95_ms),
                        ]
                    })
                    .collect(),
            },
        ),
        (
            "scale_memory.png",
            Chart {
                title: "memory (MB)".into(),
                x_label: "citations".into(),
                series: vec![
                    series("index peak", &|p| p.index_peak_rss_mb),
                    series("hnsw build peak", &|p| p.hnsw_peak_rss_mb),
                    series("search anon", &|p| p.search_anon_mb),
                    series("search mapped", &|p| p.search_file_mb),
                ],
            },
        ),
    ];
    let mut out = Vec::new();
    for (name, chart) in charts {
        let path = dir.join(name);
        std::fs::write(&path, chart.png(900, 560))
            .with_context(|| format!("writing {}", path.display()))?;
        out.push(path);
    }
    Ok(out)
}

fn print_text(r: &ScaleBench) {
    println!(
        "{} cores; embedding {:.1} passages/s measured; {:.2} passages per abstract; {} queries",
        r.cores, r.embed_rate_passages_per_s, r.passages_per_abstract, r.queries
    );
    println!(
        "{:>9} {:>9} {:>8} {:>8} {:>8} {:>5} {:>10} {:>7} {:>10} {:>8} {:>9} {:>9} {:>11} {:>11} {:>11} {:>11}",
        "records",
        "indexed",
        "parse s",
        "bm25 s",
        "hnsw s",
        "segs",
        "hnsw MB",
        "rec@10",
        "embed s*",
        "idx MB",
        "disk MB",
        "vec MB",
        "bm25 p50/95",
        "dense p50/95",
        "hybrid p50/95",
        "anon/file MB"
    );
    for p in &r.sizes {
        let l = |m: &str| {
            p.search.get(m).map_or(String::new(), |l| {
                format!("{:.1}/{:.1}", l.p50_ms, l.p95_ms)
            })
        };
        println!(
            "{:>9} {:>9} {:>8.1} {:>8.1} {:>8.1} {:>5} {:>10.0} {:>7.3} {:>10.0} {:>8.0} {:>9.0} {:>9.0} {:>11} {:>11} {:>11} {:>11}",
            p.records,
            p.indexed,
            p.parse_s,
            p.bm25_s,
            p.hnsw_s,
            p.segments,
            p.hnsw_peak_rss_mb,
            p.dense_recall_at_10,
            p.embed_s_estimated,
            p.index_peak_rss_mb,
            p.disk_mb.total,
            p.disk_mb.vectors,
            l("bm25"),
            l("dense"),
            l("hybrid"),
            format!("{:.0}/{:.0}", p.search_anon_mb, p.search_file_mb)
        );
    }
    println!("* embedding estimated from the measured rate");
    if let Some(e) = &r.extrapolation {
        println!("extrapolated to {:.0}M citations:", e.citations / 1e6);
        for p in &e.phases {
            println!(
                "  {:<15} {:>8.2} s per 1k   {:>9.1} h on {} cores   {:>8.1} h on 32",
                p.phase, p.s_per_1k, p.hours_here, r.cores, p.hours_32_cores
            );
        }
        let d = &e.disk_bytes_per_citation;
        println!(
            "  disk {:.0} GB ({:.0} B/citation: bm25 {:.0}, vectors {:.0}, hnsw dump {:.0}, docmap {:.0})",
            e.disk_gb, d.total, d.bm25, d.vectors, d.graph, d.docmap
        );
        println!(
            "  RAM: search {:.0} GB anonymous (plus page cache for the mapped files), graph build peak {:.1} GB (segments of {} passages); dominant cost: {}",
            e.search_ram_gb,
            e.index_ram_gb,
            r.sizes.last().map_or(0, |p| p.segment_rows),
            e.dominant
        );
    }
    for p in &r.plots {
        println!("plot: {p}");
    }
}
