//! medlit-bench: medlit's throughput measured against a peer in the same run, reported as
//! ratios (absolute times on a shared machine are noise). `medlit bench …` runs this binary.
//!
//! Module map:
//! - [`args`]: the command line, one subcommand per benchmark.
//! - [`ingest`]: PubMed parsing and BM25 indexing against Python's pubmed_parser.
//! - [`ingest_compare`]: every field of every record against pubmed_parser's reading.
//! - [`embed`]: passage embedding against Python onnxruntime + tokenizers.
//! - [`search`]: per-query latency of each search mode against bm25s and numpy.
//! - [`generate`]: prefill and decode speed against llama.cpp's llama-bench (built here).
//! - [`serve`]: load on a real `medlit serve`.
//! - [`scale`]: index time, disk, memory and latency at growing synthetic sizes, extrapolated.
//! - [`graph`]: the dense graph's recall and walk time, one graph against segments, per ef.
//! - [`plot`]: the PNG line charts of `scale` (an encoder of our own, no plotting crate).
//! - [`peer`]: the peers' virtual environments and child processes.
//! - [`workdir`]: the `--work` folder, taken only when new, empty or a benchmark's own.
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

mod args;
mod embed;
mod generate;
mod graph;
mod ingest;
mod ingest_compare;
mod peer;
mod plot;
mod qdrant;
mod scale;
mod search;
mod serve;
mod workdir;

use args::{BenchCommand, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    medlit::cli::init_logging(cli.verbose);
    let result = match &cli.command {
        BenchCommand::Ingest(a) => ingest::run(a),
        BenchCommand::LlamaServer(a) => {
            generate::llama_server(&a.python, a.json).and_then(|path| {
                if a.json {
                    medlit::commands::print_json(&serde_json::json!({ "path": path }))
                } else {
                    medlit::commands::emit(&format!("{}\n", path.display()))
                }
            })
        }
        BenchCommand::Embed(a) => embed::run(a),
        BenchCommand::Search(a) => search::run(a),
        BenchCommand::Generate(a) => generate::run(a),
        BenchCommand::Serve(a) => serve::run(a),
        BenchCommand::Scale(a) => scale::run(a),
        BenchCommand::Graph(a) => graph::run(a),
        BenchCommand::Qdrant(a) => qdrant::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", medlit::render::error_line(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// The `medlit` binary beside this one (the benchmarks that index or serve run it).
fn medlit_exe() -> Result<std::path::PathBuf> {
    medlit::cli::setup::sibling_exe("medlit", "medlit-bench runs the medlit binary beside it")
}
