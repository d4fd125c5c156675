//! Evaluation against the development sets (`medlit eval …`).
//!
//! - [`retrieval`]: recall@k, MRR@10 and latency of each search mode on a QA dataset.
pub mod retrieval;
