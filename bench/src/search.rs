//! `medlit bench search`: per-query latency of each search mode against Python peers (bm25s
//! for BM25, numpy exact cosine for dense, their fusion for hybrid) on the same articles and
//! questions, in the same run.
use std::collections::BTreeMap;
use std::io::Write;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use medlit_corpus::datasets::read_qa;
use serde::{Deserialize, Serialize};

use crate::args::BenchSearchArgs;
use crate::peer::{peer_json, peer_python};
use medlit::cli::setup::open_retriever;
use medlit::commands::print_json;
use medlit::eval::retrieval::percentile;
use medlit::retrieve::hybrid::Mode;

const PEER_SCRIPT: &str = include_str!("../peers/search_peer.py");
const PEER_PACKAGES: [&str; 5] = [
    "bm25s",
    "PyStemmer",
    "numpy",
    "onnxruntime==1.24.1",
    "tokenizers",
];

/// Latency of one side in one mode.
#[derive(Debug, Serialize)]
struct Side {
    p50_ms: f64,
    p95_ms: f64,
    mean_ms: f64,
    /// Questions whose source PMID is in the top k: both sides must do the same work.
    #[serde(rename = "recall@k")]
    recall_k: f64,
}

impl Side {
    fn new(mut ms: Vec<f64>, hits: usize) -> Self {
        let n = ms.len().max(1) as f64;
        let mean = ms.iter().sum::<f64>() / n;
        ms.sort_by(f64::total_cmp);
        Side {
            p50_ms: percentile(&ms, 0.50),
            p95_ms: percentile(&ms, 0.95),
            mean_ms: mean,
            recall_k: hits as f64 / n,
        }
    }
}

#[derive(Debug, Serialize)]
struct ModeBench {
    medlit: Side,
    peer: Option<Side>,
    /// Peer p50 over medlit p50: above 1, medlit is faster.
    speedup_p50: Option<f64>,
    speedup_p95: Option<f64>,
}

#[derive(Debug, Serialize)]
struct SearchBench {
    dataset: String,
    n: usize,
    k: usize,
    runs: usize,
    articles: u64,
    modes: BTreeMap<&'static str, ModeBench>,
}

#[derive(Deserialize)]
struct PeerMode {
    ms: Vec<f64>,
    #[serde(rename = "hits@k")]
    hits: usize,
}

#[derive(Deserialize)]
struct PeerOut {
    modes: BTreeMap<String, PeerMode>,
}

pub fn run(args: &BenchSearchArgs) -> Result<()> {
    let items = read_qa(&args.dataset).context("reading the dataset")?;
    anyhow::ensure!(
        !items.is_empty(),
        "{} has no questions",
        args.dataset.display()
    );
    let dir = medlit::cli::setup::index_dir(&args.index)?;
    let retriever = open_retriever(&dir, true, &args.fusion)?;
    let modes: Vec<Mode> = match retriever.dense {
        Some(_) => Mode::ALL.to_vec(),
        None => {
            eprintln!("note: the index has no dense part; only BM25 is measured (rebuild it with `medlit index --dense --replace`)");
            vec![Mode::Bm25]
        }
    };
    let runs = args.runs.max(1);
    let k = args.k.max(1);
    let say = |s: &str| {
        if !args.json {
            eprintln!("{s}");
        }
    };

    let mut ours = BTreeMap::new();
    for &mode in &modes {
        say(&format!(
            "medlit {}: {} questions, best of {runs}…",
            mode.name(),
            items.len()
        ));
        retriever.rank(&items[0].question, k, mode)?; // warm-up: page in the index
        let mut best = vec![f64::INFINITY; items.len()];
        let mut hits = 0;
        for run in 0..runs {
            for (i, item) in items.iter().enumerate() {
                let t = Instant::now();
                let got = retriever.rank(&item.question, k, mode)?;
                best[i] = best[i].min(t.elapsed().as_secs_f64() * 1000.0);
                if run == 0 && got.iter().any(|p| p.to_string() == item.pmid) {
                    hits += 1;
                }
            }
        }
        ours.insert(mode.name(), Side::new(best, hits));
    }

    let mut peer = if args.no_peer {
        BTreeMap::new()
    } else {
        say("running the peers (Python bm25s; numpy exact cosine; their fusion)…");
        run_peer(args, &dir, &retriever, &items, k, runs)?
    };

    // The index's own count: reading every stored article to count them would be a second pass.
    let articles = retriever.bm25.manifest().counts.indexed;
    let out = SearchBench {
        dataset: args.dataset.display().to_string(),
        n: items.len(),
        k,
        runs,
        articles,
        modes: ours
            .into_iter()
            .map(|(name, medlit)| {
                let peer = peer.remove(name).map(|p| Side::new(p.ms, p.hits));
                let speedup =
                    |f: fn(&Side) -> f64| peer.as_ref().map(|p| f(p) / f(&medlit).max(1e-9));
                let m = ModeBench {
                    speedup_p50: speedup(|s| s.p50_ms),
                    speedup_p95: speedup(|s| s.p95_ms),
                    medlit,
                    peer,
                };
                (name, m)
            })
            .collect(),
    };
    if args.json {
        return print_json(&out);
    }
    println!(
        "{} questions, {} articles, top {}, best of {} runs per question",
        out.n, out.articles, out.k, out.runs
    );
    println!(
        "{:<7} {:<7} {:>8} {:>8} {:>8} {:>9}",
        "mode", "side", "p50 ms", "p95 ms", "mean ms", "recall@k"
    );
    for (name, m) in &out.modes {
        let row = |side: &str, s: &Side| {
            println!(
                "{name:<7} {side:<7} {:>8.2} {:>8.2} {:>8.2} {:>9.3}",
                s.p50_ms, s.p95_ms, s.mean_ms, s.recall_k
            )
        };
        row("medlit", &m.medlit);
        if let Some(p) = &m.peer {
            row("peer", p);
        }
        if let (Some(a), Some(b)) = (m.speedup_p50, m.speedup_p95) {
            println!("{name:<7} speedup (peer / medlit): {a:.1}x at p50, {b:.1}x at p95");
        }
    }
    Ok(())
}

fn run_peer(
    args: &BenchSearchArgs,
    dir: &std::path::Path,
    retriever: &medlit::retrieve::hybrid::Retriever,
    items: &[medlit_corpus::datasets::QaItem],
    k: usize,
    runs: usize,
) -> Result<BTreeMap<String, PeerMode>> {
    let py = peer_python(
        &args.python,
        "search-venv",
        &PEER_PACKAGES,
        "bm25s, Stemmer, onnxruntime",
    )?;
    let scratch = tempfile::tempdir().context("creating a scratch folder")?;
    let corpus = scratch.path().join("corpus.jsonl");
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(&corpus).context("writing the peer's corpus")?,
    );
    retriever.bm25.for_each_article(|a| {
        let text = format!("{} {}", a.title, a.abstract_text);
        serde_json::to_writer(&mut w, &serde_json::json!({"pmid": a.pmid, "text": text}))?;
        w.write_all(b"\n")
    })?;
    w.flush().context("writing the peer's corpus")?;
    drop(w);

    let dense = match &retriever.bm25.manifest().dense {
        Some(d) => {
            let cfg = medlit::cli::setup::onnx_config(
                &medlit::cli::setup::manifest(&medlit::cli::ManifestArg::default())?,
                args.fusion.query_threads,
                1,
                1,
                d.model.max_tokens,
            )?;
            let ddir = dir.join(&d.dir);
            let meta: medlit_indexer::dense::DenseMeta = serde_json::from_slice(
                &std::fs::read(ddir.join("dense.json")).context("reading dense.json")?,
            )
            .context("reading dense.json")?;
            serde_json::json!({
                "vectors": meta.chunks.iter().map(|c| ddir.join(format!("vectors-{}.bin", c.stem))).collect::<Vec<_>>(),
                "docmap": meta.chunks.iter().map(|c| ddir.join(format!("docmap-{}.bin", c.stem))).collect::<Vec<_>>(),
                "tombstones": ddir.join("tombstones.bin"),
                "dim": d.model.dim,
                "model_dir": cfg.model_dir,
                "threads": args.fusion.query_threads,
                "max_tokens": d.model.max_tokens,
            })
        }
        None => serde_json::Value::Null,
    };
    let config = serde_json::json!({
        "corpus": corpus,
        "questions": items.iter().map(|i| serde_json::json!({"q": i.question, "pmid": i.pmid})).collect::<Vec<_>>(),
        "k": k,
        "depth": args.fusion.depth.max(k),
        "rrf_k": args.fusion.rrf_k,
        "dense_weight": args.fusion.dense_weight,
        "runs": runs,
        "dense": dense,
    });
    let config_path = scratch.path().join("config.json");
    std::fs::write(&config_path, serde_json::to_vec(&config)?)
        .context("writing the peer's configuration")?;
    let script = scratch.path().join("search_peer.py");
    std::fs::write(&script, PEER_SCRIPT).context("writing the peer script")?;
    let out: PeerOut = peer_json(Command::new(&py).arg(&script).arg(&config_path))?;
    Ok(out.modes)
}
