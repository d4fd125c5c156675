//! The command line of medlit-bench: one subcommand per benchmark (`medlit bench …` runs
//! this binary with the same words).
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use medlit::cli::{DTypeArg, EmbedArgs, FusionArgs, IndexDirArg, ManifestArg};

#[derive(Debug, Parser)]
#[command(
    name = "medlit bench",
    bin_name = "medlit bench",
    version,
    about = "Benchmarks against peers, run on this machine in the same run",
    long_about = "Benchmarks against peers, run on this machine in the same run: each figure is \
reported beside the peer's (Python pubmed_parser, onnxruntime, bm25s and numpy, llama.cpp's \
llama-bench) and as a ratio, since absolute times on a shared machine are noise."
)]
pub struct Cli {
    /// More log output on standard error (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// PubMed parsing and BM25 indexing throughput, against Python's pubmed_parser
    Ingest(BenchIngestArgs),
    /// Build llama.cpp's llama-server once (from the source distribution `bench generate`
    /// builds llama-bench from) and print its path: the third-party OpenAI-compatible server
    /// the remote backend's tests run against
    LlamaServer(BenchLlamaServerArgs),
    /// Passage embedding throughput, against Python onnxruntime + tokenizers on the same model
    Embed(BenchEmbedArgs),
    /// Per-query latency (p50/p95) of each search mode against Python peers: bm25s for BM25,
    /// numpy exact cosine for dense (query embedding included), their fusion for hybrid
    Search(BenchSearchArgs),
    /// Prefill and decode tokens/s of the Gemma decoder, against llama.cpp's llama-bench on
    /// the same GGUF file (built once from the llama-cpp-python source distribution)
    Generate(BenchGenerateArgs),
    /// Load on a real `medlit serve`: searches at concurrency 64, then questions beyond the
    /// queue's bound; throughput, p50/p99, errors, rejections and the server's memory
    Serve(BenchServeArgs),
    /// Index time per phase, disk per component, memory and search latency at growing
    /// synthetic corpus sizes, plotted (PNG), with the extrapolation to all of PubMed
    Scale(BenchScaleArgs),
    /// Dense graph recall@10 against exact search and walk p50/p95, one graph against the
    /// same rows in segments, at several query-time ef, in one run
    Graph(BenchGraphArgs),
    /// `medlit export qdrant` loaded into Qdrant's own engine (qdrant-edge, in process) and
    /// queried with the bodies medlit sends a Qdrant server: dense, sparse BM25 and hybrid
    /// agreement with medlit's retrieval on the same questions
    Qdrant(BenchQdrantArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "Rows are noisy mixtures of two real MiniLM vectors (of --embed-sample abstracts \
recombined from the fetched sample, as `bench scale` builds them); queries are real titles, \
embedded once. Both layouts hold the same rows and are built here, one after the other (build \
time and peak RSS each; `--segments 2` of 500k rows are two graphs of 250k); then every --ef is timed on both, query by query in turn, so a change \
in the machine's speed meets both alike. Timed: the graph search of a query vector (walk, \
exact re-scoring, merge of segments), not the query's embedding. Index flags (--hnsw-m, \
--ef-construction) set the graphs' build."
)]
pub struct BenchGraphArgs {
    /// Rows (passages) in the index
    #[arg(long, value_parser = parse_count, default_value = "500k")]
    pub rows: usize,
    /// Segments of the segmented layout, of equal size (the single layout has one graph;
    /// `--segment-rows` is not used here)
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(2..))]
    pub segments: u64,
    /// Query-time candidate list lengths to measure
    #[arg(long, value_delimiter = ',', default_value = "48,96,128,192,256,384")]
    pub ef: Vec<usize>,
    /// Queries (titles of real articles). The p95 is the 50th slowest of 1,000: of 200, a
    /// handful of slow walks moved the segmented/single ratio between 0.97x and 1.46x from
    /// one pass to the next
    #[arg(long, default_value_t = 1000)]
    pub queries: usize,
    /// Abstracts embedded for real: the vectors the rows are mixed from
    #[arg(long, default_value_t = 1000)]
    pub embed_sample: usize,
    /// Mix the rows from every vector of this index's dense half instead (e.g. the sample's
    /// hybrid index: 78,537 real passages; a small pool makes tight clusters of near-ties)
    #[arg(long, value_name = "INDEX")]
    pub pool_index: Option<PathBuf>,
    /// Work folder [default: $MEDLIT_HOME/bench/graph]; its `single` and `segmented`
    /// folders are rebuilt by each run. A folder of yours must be new or empty (a run marks
    /// it, and later runs reuse it)
    #[arg(long, value_name = "DIR")]
    pub work: Option<PathBuf>,
    /// Keep the two indexes (removed at the end otherwise)
    #[arg(long)]
    pub keep: bool,
    #[command(flatten)]
    pub embed: EmbedArgs,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchQdrantArgs {
    /// Questions: JSON lines with `question` and `pmid` (as the dev sets); repeatable
    #[arg(long, value_name = "FILE", required = true)]
    pub dataset: Vec<PathBuf>,
    /// Work folder for the export and the shard [default: $MEDLIT_HOME/bench/qdrant]; both
    /// are reused while the index's generation is the same. A folder of yours must be new or
    /// empty (a run marks it, and later runs reuse it)
    #[arg(long, value_name = "DIR")]
    pub work: Option<PathBuf>,
    /// Python interpreter used to create the qdrant-edge virtual environment
    #[arg(long, default_value = "python3")]
    pub python: String,
    #[command(flatten)]
    pub fusion: FusionArgs,
    #[command(flatten)]
    pub index: IndexDirArg,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct BenchLlamaServerArgs {
    /// Python interpreter used to create the build tools' virtual environment
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Print JSON ({"path": …}) instead of the path alone
    #[arg(long)]
    pub json: bool,
}

/// A count with an optional k/M suffix: 50k, 1M, 2500.
pub fn parse_count(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (digits, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1_000.0),
        Some('m' | 'M') => (&s[..s.len() - 1], 1_000_000.0),
        _ => (s, 1.0),
    };
    digits
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| (v * mult).round() as usize)
        .ok_or_else(|| format!("`{s}` is not a count (e.g. 50k, 1M, 2500)"))
}

#[derive(Debug, Args)]
#[command(
    after_help = "Each size is a synthetic corpus written by `medlit synth` from the fetched sample \
(30,000 records per file, as NLM's). Per size: a parallel parse pass; `medlit index` in a child \
process (parse + BM25 + per-file commits, peak RSS polled); the HNSW graph built over as many \
rows as the corpus has passages (real MiniLM vectors of a subsample, each row a noisy copy); disk \
per component; search latency p50/p95 per mode over real titles, and the resident memory of the \
opened index. Embedding time is the rate measured on real passages times the passages: embedding \
a million abstracts takes days on 2 cores. The extrapolation to 36M citations uses the marginal \
cost between the two largest sizes."
)]
pub struct BenchScaleArgs {
    /// Corpus sizes in citations
    #[arg(long, value_delimiter = ',', value_parser = parse_count, default_value = "50k,200k,1M")]
    pub sizes: Vec<usize>,
    /// Work folder for corpora and indexes [default: $MEDLIT_HOME/bench/scale]; each size's
    /// corpus and index are replaced by each run. A folder of yours must be new or empty (a
    /// run marks it, and later runs reuse it)
    #[arg(long, value_name = "DIR")]
    pub work: Option<PathBuf>,
    /// Where the PNG plots go [default: WORK/plots]
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
    /// Abstracts embedded for real (the rate, and the vectors the graphs are built from)
    #[arg(long, default_value_t = 1000)]
    pub embed_sample: usize,
    /// Search queries per mode and size (titles of real articles)
    #[arg(long, default_value_t = 200)]
    pub queries: usize,
    /// Indexing memory budget of the BM25 writer, in MiB
    #[arg(long, default_value_t = 512, value_name = "MIB")]
    pub writer_memory: usize,
    /// Keep the synthetic corpora and indexes (they are removed after each size)
    #[arg(long)]
    pub keep: bool,

    /// Internal: time the queries on this index in this (fresh) process and print JSON
    #[arg(long, value_name = "INDEX", hide = true)]
    pub search_child: Option<PathBuf>,
    #[command(flatten)]
    pub embed: EmbedArgs,
    #[command(flatten)]
    pub fusion: FusionArgs,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Starts `medlit serve` on a free loopback port over the index, loads it from \
this process (the load generator shares the machine with the server), then stops it. A search \
counts as an error unless it is a 200 with JSON; a question is answered (200), rejected (a 503 \
with a JSON error and Retry-After: the queue bound at work) or an error (anything else)."
)]
pub struct BenchServeArgs {
    /// Questions: JSON lines with `question` (as the dev sets)
    #[arg(long, value_name = "FILE")]
    pub dataset: PathBuf,
    /// Concurrent search clients
    #[arg(long, default_value_t = 64)]
    pub search_concurrency: usize,
    /// Seconds of search load
    #[arg(long, default_value_t = 30.0)]
    pub search_secs: f64,
    /// Concurrent question clients
    #[arg(long, default_value_t = 8)]
    pub ask_concurrency: usize,
    /// Seconds of question load
    #[arg(long, default_value_t = 30.0)]
    pub ask_secs: f64,
    /// The server's --queue (questions waiting beyond the one answered); below the question
    /// clients, so the bound is exercised
    #[arg(long, default_value_t = 4)]
    pub queue: usize,
    #[command(flatten)]
    pub index: IndexDirArg,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Each thread count is measured in a child process (the worker pool is sized once per process), best of --runs; decode is timed as llama-bench times it: --gen-tokens single-token steps from an empty cache. The first run with the peer builds llama-bench under $MEDLIT_HOME/bench/llama.cpp (pip downloads the llama-cpp-python source distribution, cmake and ninja; a C++ compiler must be installed)."
)]
pub struct BenchGenerateArgs {
    /// Thread counts to measure, comma-separated
    #[arg(long, value_delimiter = ',', default_values_t = [1, 2])]
    pub threads: Vec<usize>,
    /// Prompt tokens for the prefill test (llama-bench's pp512)
    #[arg(long, default_value_t = 512)]
    pub prompt_tokens: usize,
    /// Generated tokens for the decode test (llama-bench's tg128)
    #[arg(long, default_value_t = 128)]
    pub gen_tokens: usize,
    /// Repetitions; the best run is reported, for medlit and for llama-bench alike
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// GGUF file or Hugging Face (Gemma 4) folder [default: the fetched default model]
    #[arg(long, value_name = "PATH", conflicts_with = "synthetic")]
    pub model: Option<PathBuf>,
    /// Measure a random-weight Gemma 4 at a published size instead of a real model:
    /// gemma4-e4b (7.5 B parameters; written as a 15 GB bf16 safetensors folder first) or
    /// gemma4-tiny (the parity fixture's shape, seconds)
    #[arg(long, value_name = "NAME")]
    pub synthetic: Option<String>,
    /// Folder the synthetic model is written into; must be new or empty [default: a new folder
    /// under $MEDLIT_HOME/bench/synthetic, removed after the run]
    #[arg(long, value_name = "DIR", requires = "synthetic")]
    pub synthetic_dir: Option<PathBuf>,
    /// Keep the synthetic model folder after the run (its path is printed)
    #[arg(long, requires = "synthetic")]
    pub keep: bool,
    /// Where a Hugging Face folder's model runs: cpu, cuda or cuda:N (a GGUF file runs on the
    /// CPU's int8 kernels)
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Precision of a Hugging Face folder's computation [default: bf16 for --synthetic; else
    /// f32 on the CPU, bf16 on a GPU]
    #[arg(long, value_enum)]
    pub dtype: Option<DTypeArg>,
    /// Skip llama.cpp
    #[arg(long)]
    pub no_peer: bool,
    /// Python interpreter used to create the build environment for llama.cpp
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Measure medlit alone in this process, on the first --threads value (used by the bench
    /// itself)
    #[arg(long, hide = true)]
    pub worker: bool,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchEmbedArgs {
    /// Passages to embed (real abstracts of the fetched sample, split as `index --dense` does)
    #[arg(long, default_value_t = 400)]
    pub passages: usize,
    /// CPU threads, for both sides
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// medlit's encoder: its own int8 MiniLM (`MEDLIT_KERNEL` forces a kernel path), the ONNX
    /// export on ONNX Runtime, or auto (as `medlit index` picks: int8 on the VNNI and AVX2 paths)
    #[arg(long, value_enum, default_value_t = medlit::cli::EncoderArg::Int8)]
    pub encoder: medlit::cli::EncoderArg,
    /// Where medlit's encoder runs: cpu, or cuda / cuda:N (a `--features cuda` build; the f32
    /// encoder, as `index --embed-device` runs it)
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// medlit's ONNX Runtime sessions side by side, sharing --threads (the peer runs one
    /// session on all its threads; --encoder onnx)
    #[arg(long, default_value_t = 2)]
    pub sessions: usize,
    /// Passages per call, for both sides [default: 16 with --encoder int8 (its batches carry no
    /// padding) and f32 on the CPU, 128 with f32 on a GPU, 1 with onnx]
    #[arg(long)]
    pub batch: Option<usize>,
    /// Skip the Python peer
    #[arg(long)]
    pub no_peer: bool,
    /// Python interpreter used to create the peer's virtual environment
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Each question is timed alone, end to end (query embedding included), \
best of --runs; the peer runs in a Python virtual environment of its own under \
$MEDLIT_HOME/bench/ and searches the same articles, the same stored vectors and the same \
questions. `speedup` is the peer's time over medlit's."
)]
pub struct BenchSearchArgs {
    /// Questions: JSON lines with `question` (or `query`) and `pmid`, as for `eval retrieval`
    #[arg(long, value_name = "FILE")]
    pub dataset: PathBuf,
    /// Results per question
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Passes over the questions; each question's fastest pass is kept
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Skip the Python peers
    #[arg(long)]
    pub no_peer: bool,
    /// Python interpreter used to create the peer's virtual environment
    #[arg(long, default_value = "python3")]
    pub python: String,
    #[command(flatten)]
    pub fusion: FusionArgs,
    #[command(flatten)]
    pub index: IndexDirArg,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchIngestArgs {
    /// Files to use [default: the fetched corpus files]
    #[arg(value_name = "FILES")]
    pub files: Vec<PathBuf>,
    /// Skip the Python peer (pubmed_parser.parse_medline_xml)
    #[arg(long)]
    pub no_peer: bool,
    /// Instead of timing: compare every field of every record with pubmed_parser's reading,
    /// put each difference down to an explained cause, and fail on any unexplained one
    #[arg(long, conflicts_with = "no_peer")]
    pub compare: bool,
    /// Runs of each medlit measurement; the best is reported (the peer runs once)
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Python interpreter used to create the peer's virtual environment
    #[arg(long, default_value = "python3")]
    pub python: String,
    #[command(flatten)]
    pub manifest: ManifestArg,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}
