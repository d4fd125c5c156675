//! The flag groups several commands flatten in: where the index and the manifest are, how the
//! answer is generated, how passages are embedded, how hybrid search fuses; and the value
//! parsers they share.
use std::path::PathBuf;

use clap::{Args, ValueEnum};

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

/// `--encoder`: which MiniLM backend embeds passages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EncoderArg {
    /// int8 where the int8 kernel in use has VNNI, else onnx
    Auto,
    /// medlit's own encoder on the int8 kernels
    Int8,
    /// ONNX Runtime on the int8 ONNX export (f32 arithmetic)
    Onnx,
    /// medlit's MiniLM in f32 on candle's tensor operations: the GPU encoder (--embed-device
    /// cuda); on a CPU it is slower than int8 and onnx
    F32,
}

impl EncoderArg {
    /// `Auto` decided for this CPU (and `MEDLIT_KERNEL`): int8 on the VNNI and AVX2 paths, where
    /// it is the faster encoder (AVX2: 1.45× the onnxruntime peer on an AVX2-only Zen 3, with
    /// seven-bit feed-forward activations), ONNX Runtime on the portable path (0.10×).
    pub fn resolve(self) -> EncoderArg {
        use crate::generate::int8_matmul::Kernel;
        match self {
            EncoderArg::Auto => match Kernel::selected().vector_level().name() {
                "avx512vnni" | "avxvnni" | "avx2" => EncoderArg::Int8,
                _ => EncoderArg::Onnx,
            },
            other => other,
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

/// `--evidence-order`: where the best passage goes in the prompt (the flag's own type, so the
/// prompt module needs no CLI crate: the fuzz target compiles it alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EvidenceOrderArg {
    /// Best first, as retrieved
    Rank,
    /// Best last, next to the question
    BestLast,
}

impl From<EvidenceOrderArg> for crate::prompt::EvidenceOrder {
    fn from(a: EvidenceOrderArg) -> Self {
        match a {
            EvidenceOrderArg::Rank => crate::prompt::EvidenceOrder::Rank,
            EvidenceOrderArg::BestLast => crate::prompt::EvidenceOrder::BestLast,
        }
    }
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
    pub evidence_order: Option<EvidenceOrderArg>,
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
    /// Ask the server for whole replies instead of a stream (for proxies that do not pass
    /// server-sent events through)
    #[arg(long, requires = "llm_endpoint")]
    pub llm_no_stream: bool,
    /// Context of the remote model, in tokens (prompt + answer)
    #[arg(long, default_value_t = 8192)]
    pub llm_context: usize,
    /// Time limit per remote request, reply included, in seconds
    #[arg(long, default_value_t = 300)]
    pub llm_timeout: u64,
    /// Abstain when the best passage holds less than this share of the question's weight
    /// (IDF of its words), 0..1. Giving it (or --min-similarity) replaces the answerability
    /// model by this rule; keyword-only evidence always uses the rule [default: 0.5]
    #[arg(long)]
    pub min_coverage: Option<f32>,
    /// ...or when no passage is this close in meaning (cosine with the question; dense and
    /// hybrid modes), 0..1 [default: 0.65]
    #[arg(long)]
    pub min_similarity: Option<f32>,
    /// Answerability model (JSON, as `medlit eval answerability --fit` writes) deciding
    /// abstention on hybrid and dense evidence [default: the built-in
    /// policy/answerability.json]
    #[arg(long, value_name = "FILE", conflicts_with_all = ["min_coverage", "min_similarity"])]
    pub answerability_model: Option<std::path::PathBuf>,
    /// How a span answer is chosen: `ranked` reads 4 candidate spans from one reading of the
    /// prompt and keeps the one the span ranker scores best (its sentence's match to the
    /// question, the kind of answer asked, the model's probabilities; the answer then
    /// appears whole, not token by token); `greedy` keeps the model's own span and streams
    /// it as it is chosen
    #[arg(long, value_enum, default_value_t = SpanChoiceArg::Ranked)]
    pub span_choice: SpanChoiceArg,
    /// Span ranker (JSON, as `medlit eval qa --fit-span-ranker` writes) [default: the
    /// built-in policy/span_ranker.json]
    #[arg(long, value_name = "FILE")]
    pub span_ranker: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SpanChoiceArg {
    Ranked,
    Greedy,
}

/// How passages are embedded and the HNSW graph is built.
#[derive(Debug, Args, Clone)]
pub struct EmbedArgs {
    /// Passage encoder: medlit's int8 MiniLM (safetensors weights on the int8 kernels) or the
    /// int8 ONNX export on ONNX Runtime; auto takes int8 on a CPU with VNNI or AVX2, where it
    /// measured faster than ONNX Runtime (1.5-2.5x with VNNI, 1.45x on an AVX2-only Zen 3), and
    /// ONNX Runtime on other CPUs (ARM, old x86: 0.10x). The index records which; queries use
    /// the same one
    #[arg(long, value_enum, default_value_t = EncoderArg::Auto)]
    pub encoder: EncoderArg,
    /// Where passages are embedded: cpu, or cuda / cuda:N for an NVIDIA GPU (a build with
    /// `--features cuda`; runs the f32 encoder in length-sorted padded batches of
    /// --embed-batch, default 128 there)
    #[arg(long, default_value = "cpu", value_name = "DEVICE")]
    pub embed_device: String,
    /// CPU threads for embedding
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub embed_threads: usize,
    /// ONNX Runtime sessions embedding side by side, sharing --embed-threads (one per thread
    /// measured fastest for indexing; --encoder onnx only)
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub embed_sessions: usize,
    /// Passages per encoder call [default: 16 for int8 (no padding: the tokens of a batch are
    /// stacked), 1 for onnx (padding made larger batches slower)]
    #[arg(long, value_name = "N")]
    pub embed_batch: Option<usize>,
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
    /// HNSW: most passages in one graph segment. Building a segment holds its graph in
    /// memory (about 5 KB a passage at the peak), so this bounds indexing memory; searches
    /// walk every segment. Recorded in a new index; an existing index keeps its own
    #[arg(long, default_value_t = medlit_indexer::dense::DEFAULT_SEGMENT_ROWS as u64, value_name = "PASSAGES", value_parser = clap::value_parser!(u64).range(1000..))]
    pub segment_rows: u64,
}

/// Where search candidates come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RetrievalArg {
    /// This index's BM25 and dense lists
    Local,
    /// A Qdrant server holding this index's `medlit export qdrant` collection
    Qdrant,
}

/// `--retrieval`: this index, or a Qdrant server beyond one machine.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Retrieval backend")]
pub struct RetrievalArgs {
    /// Where candidates come from: `local` (this index) or `qdrant` (a Qdrant server loaded
    /// from `medlit export qdrant`; the question is still embedded and analysed here, the
    /// answers, safety and citation checks stay local, and the local index still holds the
    /// articles' records)
    #[arg(long, value_enum, default_value_t = RetrievalArg::Local)]
    pub retrieval: RetrievalArg,
    /// The Qdrant server's REST address (with --retrieval qdrant), e.g. http://127.0.0.1:6333
    #[arg(long, value_name = "URL", required_if_eq("retrieval", "qdrant"))]
    pub qdrant_url: Option<String>,
    /// The collection the export was loaded into
    #[arg(long, value_name = "NAME", default_value = "medlit")]
    pub qdrant_collection: String,
    /// Seconds a Qdrant request may take, answer included
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub qdrant_timeout: u64,
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
    /// HNSW candidate list length per graph segment at query time: higher finds more of the
    /// exact nearest passages and costs graph time [default: the index's, set by `medlit
    /// index --ef-search`; see `medlit bench graph` for the trade-off]
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub search_ef: Option<usize>,
}

/// A count of at least one (`--k 0` is a usage error, exit 2).
pub(super) fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// A word of a query that is not blank (an empty query is a usage error, exit 2).
pub(super) fn non_blank(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        Err("the query is empty".into())
    } else {
        Ok(s.to_string())
    }
}

/// `--export FORMAT FILE`: the references of a search or an answer, for a reference manager.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Citation export")]
pub struct ExportRefsArgs {
    /// Also write the references (search: every result; ask: the cited articles) to FILE in
    /// FORMAT: ris, bibtex, csl-json or medline
    #[arg(long, num_args = 2, value_names = ["FORMAT", "FILE"])]
    pub export: Option<Vec<String>>,
    /// Let --export replace a file that exists (without it, an existing file is refused
    /// before any work is done)
    #[arg(long, requires = "export")]
    pub overwrite: bool,
}

/// Field filters of `search` and `ask`, applied inside retrieval (both halves, before fusion).
#[derive(Debug, Args, Clone, Default)]
#[command(
    next_help_heading = "Filters (also as PubMed tags in the query: asthma[mh], smith j[au], 2020[dp])"
)]
pub struct FilterArgs {
    /// Only articles published in these years: 1985, 1980..1990, 1980.. or ..1990 (inclusive)
    #[arg(long, value_name = "RANGE")]
    pub year: Option<crate::retrieve::YearRange>,
    /// Only this journal (full title or ISO abbreviation, any case); repeat for any of several
    #[arg(long, value_name = "NAME", value_parser = non_blank)]
    pub journal: Vec<String>,
    /// Only articles by this author: "Smith" or "Smith J" (last name, then initials, as
    /// PubMed lists them); repeat to require each
    #[arg(long, value_name = "NAME", value_parser = non_blank)]
    pub author: Vec<String>,
    /// Only articles indexed with this MeSH descriptor (e.g. "Brucellosis"); repeat to
    /// require each
    #[arg(long, value_name = "DESCRIPTOR", value_parser = non_blank)]
    pub mesh: Vec<String>,
    /// As --mesh, but only where the descriptor is a major topic of the article
    #[arg(long, value_name = "DESCRIPTOR", value_parser = non_blank)]
    pub mesh_major: Vec<String>,
    /// Only this publication type (e.g. Review, "Randomized Controlled Trial"); repeat for
    /// any of several
    #[arg(long, value_name = "TYPE", value_parser = non_blank)]
    pub pub_type: Vec<String>,
    /// Only articles with an abstract
    #[arg(long)]
    pub has_abstract: bool,
    /// Only articles in this language: a MEDLINE code (eng, fre, ger) or its name (english);
    /// repeat for any of several
    #[arg(long, value_name = "LANG", value_parser = non_blank)]
    pub lang: Vec<String>,
}

impl FilterArgs {
    pub fn filters(&self) -> crate::retrieve::Filters {
        crate::retrieve::Filters {
            years: self.year,
            journals: self.journal.clone(),
            authors: self.author.clone(),
            mesh: self.mesh.clone(),
            mesh_major: self.mesh_major.clone(),
            pub_types: self.pub_type.clone(),
            langs: self
                .lang
                .iter()
                .map(|l| crate::retrieve::filter::language_code(l))
                .collect(),
            has_abstract: self.has_abstract,
        }
    }
}
