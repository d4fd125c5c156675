//! Flags of `medlit eval`: retrieval, answers, the safety policy.
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::common::*;

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
    /// Abstention: the answerability model on a question set (its calibration), or fitting it
    Answerability(EvalAnswerabilityArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "Each question is retrieved as `ask` retrieves it (no generation) and the answerability signals of its evidence are computed: coverage, cosine, unknown terms, rare-term coverage, BM25/dense agreement. Without --fit the model in use (the built-in one, or --answerability-model) is measured; with --fit FILE a logistic model is fitted on the whole set and written to FILE, after K-fold cross-validation on the same set (each fold predicted by a model fitted on the others), whose figures are printed and recorded in the file. Needs an index with its dense half.\n\nExample (the built-in model was made so):\n  medlit eval answerability --dataset policy/answerability_train.jsonl --fit policy/answerability.json"
)]
pub struct EvalAnswerabilityArgs {
    /// JSONL question set: answerable rows with `golden_answers`, unanswerable ones with
    /// `"expected": "insufficient_evidence"` (as ../shared/eval/)
    #[arg(long, value_name = "FILE")]
    pub dataset: PathBuf,
    /// Evidence articles per question, as `ask` gives a span answer
    #[arg(long, short, default_value_t = crate::answer::SPAN_K)]
    pub k: usize,
    /// Fit the model on the dataset and write it here (JSON)
    #[arg(long, value_name = "FILE")]
    pub fit: Option<PathBuf>,
    /// Replace FILE if it exists (--fit)
    #[arg(long, requires = "fit")]
    pub force: bool,
    /// Folds of the cross-validation with --fit
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(2..=100))]
    pub folds: u16,
    /// L2 penalty of the fit
    #[arg(long, default_value_t = 0.05)]
    pub l2: f32,
    /// The model measured without --fit [default: the built-in policy/answerability.json]
    #[arg(long, value_name = "FILE", conflicts_with = "fit")]
    pub answerability_model: Option<PathBuf>,
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
    /// Fit the span ranker on the dataset's answerable questions and write it here (JSON):
    /// each question's candidate spans are read (the greedy one answers), labelled right or
    /// wrong by its golden answers, and a logistic model fitted after a cross-validation by
    /// article whose figures are printed and recorded in the file. Needs a dense index
    #[arg(long, value_name = "FILE", conflicts_with = "retrieval_only")]
    pub fit_span_ranker: Option<PathBuf>,
    /// Replace FILE if it exists (--fit-span-ranker)
    #[arg(long, requires = "fit_span_ranker")]
    pub force: bool,
    /// Folds of the cross-validation with --fit-span-ranker
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(2..=100))]
    pub folds: u16,
    /// L2 penalty of the --fit-span-ranker fit
    #[arg(long, default_value_t = 0.05)]
    pub l2: f32,
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
