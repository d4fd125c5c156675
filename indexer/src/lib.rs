//! PubMed ingestion and index building for medlit.
//!
//! Module map:
//! - [`article`]: `Article` (one citation) and `Rejected` (a skipped record and why).
//! - [`pubmed`]: the streaming PubMed XML parser (`.xml` and `.xml.gz`).
//! - [`source`]: buffered input that skips unused subtrees (reference lists, affiliations)
//!   without tokenizing them.
//! - [`utf8`]: makes input valid UTF-8, recording where it was not (so one record is skipped,
//!   not the file).
//! - [`passages`]: `Passage`, the sentence-aligned, overlapping passage splitter, and the one
//!   passage rule (`of_abstract`) every user of passages follows.
//! - [`embed`]: the `Embedder` trait, the MiniLM ONNX backend (fastembed, ONNX Runtime
//!   loaded at run time), and `SharedEmbedder`, one query embedder per process.
//! - [`minilm`]: medlit's own MiniLM encoder: safetensors weights quantised to int8 blocks at
//!   load, every product on the int8 kernels, no padding, one batch per worker thread.
//! - [`minilm_candle`]: the same model in f32 on candle's tensor operations, on any candle
//!   device: the GPU encoder (`cuda` build), length-sorted padded batches.
//! - [`dense`]: passage vectors (f32 and int8), docmap, tombstones and the HNSW graph in
//!   bounded segments (write, extend, adopt, open, search across segments, exact).
//! - [`links`]: the graph's links written flat and searched memory-mapped.
//! - [`bm25`]: the tantivy schema, analyzer and document conversion.
//! - [`qdrant`]: the Qdrant export format (point ids, sparse BM25 term ids and weights, the
//!   collection body) and the query bodies medlit sends, next to the analyser whose terms it
//!   hashes.
//! - [`layout`]: the index folder, its manifest and atomic generation switch.
//! - [`plan`]: which files a run applies on top of which state (fresh, resumed, update;
//!   skip already-applied files, refuse out-of-order ones).
//! - [`build`]: `medlit index`: parallel parse, then one committed generation per file.
//! - [`compact`]: `medlit compact`: merged segments, tombstones dropped, clean graph
//!   segments kept and the rest rebuilt and merged.
//! - [`verify`]: `medlit verify`: checksums, counts and PMID uniqueness of an index.
//! - [`error`]: the crate's error type.

pub mod article;
pub mod bm25;
mod bufio;
pub mod build;
pub mod compact;
pub mod dense;
pub mod embed;
pub mod error;
pub mod layout;
pub mod links;
pub mod minilm;
pub mod minilm_candle;
pub mod passages;
pub mod plan;
pub mod pubmed;
pub mod qdrant;
pub mod source;
pub mod utf8;
pub mod verify;

pub use article::{Article, Author, MeshHeading, Rejected};
pub use build::{
    build_index, BuildEvent, BuildMode, BuildOptions, BuildReport, Commit, DenseOptions, RunCounts,
};
pub use compact::{compact, CompactReport};
pub use error::IndexError;
pub use layout::{Counts, DenseSummary, IndexDir, IndexManifest, PendingInput};
