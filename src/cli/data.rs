//! Flags of the commands that bring, build and look after the data: `fetch`, `index`,
//! `verify`, `compact`, `synth`, `export`, `policy train`.
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::common::*;

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
    EncoderWeights,
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
            KindArg::EncoderWeights => K::EncoderWeights,
            KindArg::Tokenizer => K::Tokenizer,
            KindArg::Runtime => K::Runtime,
            KindArg::Generator => K::Generator,
        }
    }
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
    /// Embed every passage (all-MiniLM-L6-v2) and build the dense HNSW index beside BM25: the
    /// default for a new index (the int8 encoder did the sample's 78,537 passages in 14
    /// minutes on 2 cores). With --update of a keyword-only index: give it its dense half (the
    /// articles already live are embedded with the first file applied)
    #[arg(long, conflicts_with = "bm25_only")]
    pub dense: bool,
    /// Keyword search only: no embedding (the sample in under a minute), but questions that
    /// reword the abstract's terms find less (dev paraphrased recall@10 0.567 against 0.867
    /// hybrid). An update keeps the index's own kind either way
    #[arg(long)]
    pub bm25_only: bool,
    #[command(flatten)]
    pub embed: EmbedArgs,
    /// Print a JSON report instead of text
    #[arg(long)]
    pub json: bool,
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
