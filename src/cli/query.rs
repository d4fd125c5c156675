//! Flags of the commands that answer: `search`, `ask`, `serve`, `demo`, and the launcher of
//! `bench`.
use clap::Args;

use super::common::*;

/// The question `medlit demo` asks unless told another: the sample answers it.
pub const DEFAULT_QUESTION: &str =
    "In mice infected with Brucella melitensis, which antibiotic cured nearly all animals after three weeks?";

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// What to search for: a question or keywords (quotes optional: the words are joined)
    #[arg(required = true, num_args = 1.., value_name = "QUERY", value_parser = non_blank)]
    pub words: Vec<String>,
    /// Number of results
    #[arg(long, short, default_value_t = 10, value_parser = at_least_one)]
    pub k: usize,
    /// bm25 (keywords), dense (meaning), hybrid (both, fused); auto: hybrid when the index has
    /// a dense part, else bm25
    #[arg(long, value_enum, default_value = "auto")]
    pub mode: SearchModeArg,
    #[command(flatten)]
    pub index: IndexDirArg,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub filters: FilterArgs,
    #[command(flatten)]
    pub export: ExportRefsArgs,
    #[command(flatten)]
    pub fusion: FusionArgs,
    #[command(flatten)]
    pub retrieval: RetrievalArgs,
}

#[derive(Debug, Args)]
#[command(
    after_help = "The answer streams to the terminal as it is written, then is checked: \
PMIDs not among the evidence are removed, each citation must be backed by passage text, and \
when the evidence does not cover the question the answer is \"The retrieved evidence is \
insufficient to answer this question.\" with the closest PMIDs as related reading. \
A research aid, not medical advice."
)]
pub struct AskArgs {
    /// The question (quotes optional: the words are joined)
    #[arg(required = true, num_args = 1.., value_name = "QUESTION", value_parser = non_blank)]
    pub words: Vec<String>,
    /// Passages given to the model as evidence [default: 3 for a span answer, 5 for free text]
    #[arg(long, short, value_parser = at_least_one)]
    pub k: Option<usize>,
    /// Retrieval mode (auto: hybrid when the index has a dense part, else bm25)
    #[arg(long, value_enum, default_value = "auto")]
    pub mode: SearchModeArg,
    /// Print the evidence passages after the answer
    #[arg(long)]
    pub show_evidence: bool,
    #[command(flatten)]
    pub index: IndexDirArg,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub generate: GenerateArgs,
    #[command(flatten)]
    pub filters: FilterArgs,
    #[command(flatten)]
    pub export: ExportRefsArgs,
    #[command(flatten)]
    pub fusion: FusionArgs,
    #[command(flatten)]
    pub retrieval: RetrievalArgs,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Routes: GET / (web page), GET /healthz, GET /api/stats, \
GET /api/search?q=…&k=…&mode=…&year=… (as `medlit search --json`), \
POST /api/ask {\"question\",\"k\",\"mode\",\"max_tokens\",\"stream\"} (as `medlit ask --json`; \
with \"stream\": true, server-sent events: token…, then answer), \
GET /api/article/{pmid}[?format=ris|bibtex|csl-json|medline] (as `medlit show --json`, or a download), \
GET /api/export?pmids=1,2&format=ris (the records as one download), \
GET /api/similar/{pmid}?k=… (as `medlit similar --json`), \
GET /v1/models, POST /v1/chat/completions (OpenAI-compatible; the last user message is the \
question). One model answers one question at a time; up to --queue more wait, beyond that \
503 with Retry-After. Every error is JSON. The safety policy applies to every route."
)]
pub struct ServeArgs {
    /// Address to listen on (loopback by default: medlit has no authentication; another
    /// address is logged as reachable from other machines)
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: std::net::SocketAddr,
    /// Questions allowed to wait for the model beyond the one being answered
    #[arg(long, default_value_t = 8)]
    pub queue: usize,
    /// Longest question, in characters
    #[arg(long, default_value_t = 2000)]
    pub max_question_chars: usize,
    /// Largest k a request may ask for
    #[arg(long, default_value_t = 50)]
    pub max_k: usize,
    /// Largest max_tokens a request may ask for
    #[arg(long, default_value_t = 512)]
    pub max_tokens_limit: usize,
    /// Largest request body, in bytes
    #[arg(long, default_value_t = 65536)]
    pub max_body_bytes: usize,
    /// Time limit per answer, in seconds (queue wait included)
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Retrieval mode (auto: hybrid when the index has a dense part, else bm25)
    #[arg(long, value_enum, default_value = "auto")]
    pub mode: SearchModeArg,
    #[command(flatten)]
    pub generate: GenerateArgs,
    #[command(flatten)]
    pub fusion: FusionArgs,
    #[command(flatten)]
    pub retrieval: RetrievalArgs,
    #[command(flatten)]
    pub index: IndexDirArg,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The question to run
    #[arg(long, default_value = DEFAULT_QUESTION)]
    pub question: String,
    /// Number of results
    #[arg(long, short, default_value_t = 5)]
    pub k: usize,
    #[command(flatten)]
    pub index: IndexDirArg,
    /// Rebuild the index from the sample when the folder holds an index of other files, or a
    /// keyword-only one (kept live until the new one is complete); without it, such a folder
    /// is refused, or, when keyword-only, answered from as it is
    #[arg(long)]
    pub replace: bool,
    /// Index keyword-only (BM25): minutes sooner, but reworded questions find less (dev
    /// paraphrased recall@10: 0.567 against 0.867 hybrid)
    #[arg(long)]
    pub bm25_only: bool,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// `medlit bench …`: everything after `bench` goes to the medlit-bench binary, which holds the
/// peer benchmarks (their Python peers, the llama.cpp build, plots) outside the user binary.
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct BenchLaunch {
    /// The benchmark and its options (see `medlit bench --help`)
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    pub args: Vec<std::ffi::OsString>,
}

impl SearchArgs {
    /// The query: the words given, joined by spaces.
    pub fn query(&self) -> String {
        self.words.join(" ")
    }
}

impl AskArgs {
    /// The question: the words given, joined by spaces.
    pub fn question(&self) -> String {
        self.words.join(" ")
    }
}
