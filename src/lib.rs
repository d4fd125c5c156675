//! medlit: answers biomedical research questions from PubMed abstracts, with PMID citations.
//!
//! Module map:
//! - [`cli`]: the command-line interface (clap definitions) and [`cli::setup`], which turns
//!   flags into the engine's parts (retriever, generator, screener, defaults: a `Pipeline`).
//! - [`commands`]: one module per subcommand (`fetch`, `index`, `search`, `ask`, `demo`,
//!   `serve`, `verify`, `eval`, `policy`, …; `bench` runs the medlit-bench binary).
//! - [`retrieve`]: BM25, dense and hybrid (reciprocal rank fusion) search over the index, or
//!   the candidates from a Qdrant server holding its export (`--retrieval qdrant`).
//! - [`prompt`]: prompt templates and filling them with question and evidence.
//! - [`generate`]: the `medlit-generate` crate, re-exported (Gemma decoders on candle,
//!   tokenizers, sampling, span decoding, int8 kernels).
//! - [`cite`]: citation verification, sentence support, abstention.
//! - [`evidence`]: each retrieved article widened to what the model reads (its whole abstract
//!   when it fits its share of the prompt, else the best passage with its neighbours).
//! - [`span_unit`]: an answer span widened or trimmed to a whole unit of its passage (word,
//!   parenthesis, phrase, number with its unit), and the sentence it was copied from.
//! - [`answerable`]: whether the evidence can answer a question: signals (coverage, rare and
//!   unknown terms, cosine, rank agreement) and the calibrated logistic model over them.
//! - [`span_rank`]: choosing among candidate answer spans: their features (the model's
//!   log-probabilities, the match of their sentence to the question, the kind of answer) and
//!   the logistic ranker over them.
//! - [`logistic`]: logistic regression over standardised features (the answerability model's
//!   and the span ranker's fit).
//! - [`answer`]: the query path end to end (retrieve → prompt → generate → verify) and its
//!   defaults.
//! - [`reference`]: an article's record as text, JSON, MEDLINE, RIS, BibTeX and CSL-JSON (for
//!   `show` and citation export).
//! - [`render`]: the answer's shapes for readers and scripts (text, JSON, notice), shared by
//!   the CLI and the server.
//! - [`eval`]: evaluation metrics (retrieval recall, MRR, latency).
//! - [`progress`]: progress bars that show on a terminal and stay quiet for `--json`.
//! - [`safety`]: the medical safety policy: the learned request screen (classifier heads over
//!   the MiniLM vector, its training and cross-validation by family), rules, draft check.
//! - [`mcp`]: the Model Context Protocol server (`medlit mcp`): search, ask, show, similar.
//! - [`serve`]: the HTTP server (JSON API, OpenAI-compatible chat, web page).

pub mod answer;
pub mod answerable;
pub mod cite;
pub mod cli;
pub mod commands;
pub mod eval;
pub mod evidence;
pub mod logistic;
pub mod mcp;
pub mod progress;
pub mod prompt;
pub mod reference;
pub mod render;
pub mod retrieve;
pub mod safety;
pub mod serve;
pub mod span_rank;
pub mod span_unit;

/// Generation lives in its own crate (`generate/`): it needs nothing of the rest, and the rest
/// then compiles without recompiling the decoders.
pub use medlit_generate as generate;
