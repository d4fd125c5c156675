//! Evaluation against the development sets (`medlit eval …`).
//!
//! - [`qa`]: exact match, citation accuracy and abstention of answers.
//! - [`retrieval`]: recall@k, MRR@10 and latency of each search mode on a QA dataset.
pub mod qa;
pub mod retrieval;
