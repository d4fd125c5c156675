//! Evaluation against the development sets (`medlit eval …`).
//!
//! - [`qa`]: exact match, citation accuracy and abstention of answers.
//! - [`retrieval`]: recall@k, MRR@10 and latency of each search mode on a QA dataset.
//! - [`safety`]: per-class recall, over- and under-refusal of the safety policy.
pub mod qa;
pub mod retrieval;
pub mod safety;
