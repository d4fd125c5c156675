//! `medlit bench embed`: passages/s of our embedder against Python onnxruntime + tokenizers on
//! the same ONNX file, texts, threads and batch size, in the same run.
use std::process::Command;
use std::time::Instant;

use anyhow::Result;
use medlit_indexer::embed::{Embedder, OnnxEmbedder};
use medlit_indexer::pubmed::{parse_file, Record};
use serde::{Deserialize, Serialize};

use crate::args::BenchEmbedArgs;
use crate::peer::{peer_json, peer_python};
use medlit::commands::print_json;

const PEER_SCRIPT: &str = include_str!("../peers/onnx_embed_peer.py");
/// The same ONNX Runtime version as the runtime asset, so both sides run the same kernels.
const PEER_PACKAGES: [&str; 3] = ["onnxruntime==1.24.1", "tokenizers", "numpy"];

#[derive(Debug, Serialize)]
struct EmbedBench {
    passages: usize,
    tokens: usize,
    threads: usize,
    sessions: usize,
    batch: usize,
    medlit_passages_per_s: f64,
    peer_passages_per_s: Option<f64>,
    /// medlit over the peer.
    ratio_vs_peer: Option<f64>,
}

#[derive(Deserialize)]
struct PeerOut {
    passages: usize,
    seconds: f64,
}

pub fn run(args: &BenchEmbedArgs) -> Result<()> {
    let manifest = medlit::cli::setup::manifest(&medlit::cli::ManifestArg::default())?;
    let batch = args.batch.max(1);
    let cfg = medlit::cli::setup::onnx_config(&manifest, args.threads, args.sessions, batch, 256)?;
    let mut embedder = OnnxEmbedder::load(&cfg)?;
    let budget = cfg.max_tokens - 2;

    // Real passages, split as `medlit index --dense` splits them.
    let mut texts = Vec::new();
    'files: for f in &medlit::cli::setup::corpus_files(&manifest)? {
        for r in parse_file(f)?.records {
            let Record::Article(a) = r else { continue };
            if !a.has_abstract() {
                continue;
            }
            let parts =
                medlit_indexer::passages::split(&a, budget, &mut |t| embedder.count_tokens(t));
            texts.extend(parts.iter().map(|p| p.embedding_text()));
            if texts.len() >= args.passages {
                texts.truncate(args.passages);
                break 'files;
            }
        }
    }
    let tokens: usize = texts
        .iter()
        .map(|t| embedder.count_tokens(t).min(budget))
        .sum();
    if !args.json {
        eprintln!(
            "embedding {} passages ({tokens} tokens) with medlit…",
            texts.len()
        );
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let t = Instant::now();
    embedder.embed(&refs)?;
    let ours = texts.len() as f64 / t.elapsed().as_secs_f64();

    let peer = if args.no_peer {
        None
    } else {
        if !args.json {
            eprintln!("running the peer (Python onnxruntime + tokenizers)…");
        }
        let py = peer_python(
            &args.python,
            "onnx-embed-venv",
            &PEER_PACKAGES,
            "onnxruntime",
        )?;
        let dir = tempfile::tempdir()?;
        let texts_path = dir.path().join("texts.json");
        std::fs::write(&texts_path, serde_json::to_vec(&texts)?)?;
        let script = dir.path().join("peer.py");
        std::fs::write(&script, PEER_SCRIPT)?;
        let p: PeerOut = peer_json(
            Command::new(&py)
                .arg(&script)
                .arg(&cfg.model_dir)
                .arg(args.threads.to_string())
                .arg(batch.to_string())
                .arg(cfg.max_tokens.to_string())
                .arg(&texts_path),
        )?;
        Some(p.passages as f64 / p.seconds.max(1e-9))
    };
    let out = EmbedBench {
        passages: texts.len(),
        tokens,
        threads: args.threads,
        sessions: args.sessions,
        batch,
        medlit_passages_per_s: ours,
        peer_passages_per_s: peer,
        ratio_vs_peer: peer.map(|p| ours / p.max(1e-9)),
    };
    if args.json {
        return print_json(&out);
    }
    println!(
        "{} passages, {} tokens, {} threads, batch {}, {} medlit sessions",
        out.passages, out.tokens, out.threads, out.batch, out.sessions
    );
    println!(
        "medlit (fastembed)              {:>8.1} passages/s",
        out.medlit_passages_per_s
    );
    if let (Some(p), Some(r)) = (out.peer_passages_per_s, out.ratio_vs_peer) {
        println!("Python onnxruntime+tokenizers   {p:>8.1} passages/s");
        println!("ratio (medlit / peer): {r:.2}x");
    }
    Ok(())
}
