//! Retrieval: finding the passages that answer a question.
//!
//! - [`bm25`]: keyword search over the tantivy index, with year filters and snippets.
//! - [`hit`]: `Hit`, one search result.

pub mod bm25;
pub mod hit;

pub use bm25::{Bm25Searcher, YearRange};
pub use hit::Hit;
