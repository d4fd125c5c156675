//! Retrieval: finding the passages that answer a question.
//!
//! - [`bm25`]: keyword search over the tantivy index, with year filters and snippets.
//! - [`dense`]: question embedding and HNSW search, best passage per PMID.
//! - [`filter`]: field filters (journal, author, MeSH, publication type, language, year,
//!   has-abstract) from flags or PubMed field tags in the query.
//! - [`fuse`]: reciprocal rank fusion of the BM25 and dense lists.
//! - [`hybrid`]: the search modes (bm25, dense, hybrid) over one index.
//! - [`qdrant`]: the candidates from a Qdrant server holding the index's export instead.
//! - [`hit`]: `Hit`, one search result.
//! - [`query_syntax`]: quoted phrases (required) and NOT / -word (excluded) in a query.

pub mod bm25;
pub mod dense;
pub mod filter;
pub mod fuse;
pub mod hit;
pub mod hybrid;
pub mod qdrant;
pub mod query_syntax;

pub use bm25::{Bm25Searcher, YearRange};
pub use filter::Filters;
pub use hit::Hit;
