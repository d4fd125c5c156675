//! `medlit bench embed`: passages/s of our embedder against Python onnxruntime + tokenizers on
//! the same ONNX file, texts, threads and batch size, in the same run.
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use medlit_indexer::embed::EncoderConfig;
use medlit_indexer::pubmed::{parse_file, Record};
use serde::{Deserialize, Serialize};

use crate::args::BenchEmbedArgs;
use crate::peer::{peer_json, peer_python};
use medlit::commands::print_json;
use medlit::generate::int8_matmul::Kernel;

const PEER_SCRIPT: &str = include_str!("../peers/onnx_embed_peer.py");
/// The same ONNX Runtime version as the runtime asset, so both sides run the same kernels.
const PEER_PACKAGES: [&str; 3] = ["onnxruntime==1.24.1", "tokenizers", "numpy"];

#[derive(Debug, Serialize)]
struct EmbedBench {
    /// `int8` (medlit's encoder), `onnx` or `f32` (candle, with its device).
    encoder: &'static str,
    /// Where medlit's encoder ran (`cpu`, `cuda:N`).
    device: String,
    /// The int8 kernel path (`MEDLIT_KERNEL` forces one), for the int8 encoder.
    kernel: Option<&'static str>,
    cpu_features: Vec<&'static str>,
    passages: usize,
    tokens: usize,
    threads: usize,
    sessions: usize,
    batch: usize,
    peer_batch: usize,
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
    use medlit::cli::EncoderArg;
    let device = medlit::generate::device::parse(&args.device)
        .with_context(|| format!("--device {}", args.device))?;
    let kind = if device.is_cpu() {
        args.encoder.resolve()
    } else {
        EncoderArg::F32
    };
    let batch = args
        .batch
        .unwrap_or(match kind {
            EncoderArg::Onnx => 1,
            EncoderArg::F32 if !device.is_cpu() => 128,
            _ => 16,
        })
        .max(1);
    // The peer runs the ONNX export with the batch size it measures fastest at: 1 (padding).
    let peer_batch = args.batch.unwrap_or(1).max(1);
    let cfg = medlit::cli::setup::onnx_config(&manifest, args.threads, args.sessions, 1, 256)?;
    let encoder = match kind {
        EncoderArg::Int8 => EncoderConfig::Int8(medlit::cli::setup::int8_config(
            &manifest,
            args.threads,
            batch,
            256,
        )?),
        EncoderArg::F32 => EncoderConfig::Candle(medlit::cli::setup::candle_config(
            &manifest, batch, 256, device,
        )?),
        _ => {
            let mut c = cfg.clone();
            c.batch_size = batch;
            EncoderConfig::Onnx(c)
        }
    };
    let mut embedder = encoder.load()?;
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
                .arg(peer_batch.to_string())
                .arg(cfg.max_tokens.to_string())
                .arg(&texts_path),
        )?;
        Some(p.passages as f64 / p.seconds.max(1e-9))
    };
    let out = EmbedBench {
        encoder: encoder.kind(),
        device: args.device.clone(),
        kernel: matches!(kind, EncoderArg::Int8).then(kernel_label),
        cpu_features: medlit::generate::int8_matmul::cpu_features(),
        passages: texts.len(),
        tokens,
        threads: args.threads,
        sessions: args.sessions,
        batch,
        medlit_passages_per_s: ours,
        peer_passages_per_s: peer,
        peer_batch,
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
        "CPU features: {}; medlit encoder {} on {}{}",
        out.cpu_features.join(" "),
        out.encoder,
        out.device,
        out.kernel
            .map(|k| format!(" (int8 kernel {k})"))
            .unwrap_or_default()
    );
    println!(
        "{:<36} {:>8.1} passages/s",
        format!("medlit ({}, {})", out.encoder, out.device),
        out.medlit_passages_per_s
    );
    if let (Some(p), Some(r)) = (out.peer_passages_per_s, out.ratio_vs_peer) {
        println!("Python onnxruntime+tokenizers   {p:>8.1} passages/s");
        println!("ratio (medlit / peer): {r:.2}x");
    }
    Ok(())
}

/// The int8 path as the JSON names it: `avx2-8bit` when `MEDLIT_AVX2_ACTIVATION_BITS=8` keeps
/// the AVX2 feed-forward products at eight bits of activation.
fn kernel_label() -> &'static str {
    let kernel = Kernel::selected();
    if kernel == Kernel::Avx2 && !medlit::generate::int8_matmul::narrow_activations_allowed() {
        "avx2-8bit"
    } else {
        kernel.name()
    }
}
