//! medlit: answers biomedical research questions from PubMed abstracts, with PMID citations.
//!
//! Module map:
//! - [`cli`]: the command-line interface (clap definitions).
//! - [`commands`]: one module per subcommand (`fetch`, `index`, `search`, `demo`, `eval`, `bench`).
//! - [`eval`]: evaluation metrics (retrieval recall, MRR, latency).
//! - [`retrieve`]: search over the index (BM25 now; dense and fusion later).
//! - [`progress`]: progress bars that show on a terminal and stay quiet for `--json`.

pub mod cli;
pub mod commands;
pub mod eval;
pub mod progress;
pub mod retrieve;
