use serde::Serialize;

/// One search result: an article and why it matched.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Hit {
    /// 1-based rank.
    pub rank: usize,
    /// PubMed identifier (a string in JSON, as PubMed and the evaluation sets write it).
    #[serde(serialize_with = "crate::prompt::pmid_string")]
    pub pmid: u64,
    pub title: String,
    pub journal: String,
    pub year: Option<i64>,
    pub score: f32,
    /// A fragment of the abstract (or the title) around the matched terms.
    pub snippet: String,
    /// Byte ranges of `snippet` that matched query terms.
    pub highlights: Vec<[usize; 2]>,
    /// Rank in the BM25 list (hybrid and bm25 modes).
    pub bm25_rank: Option<usize>,
    /// Rank in the dense list (hybrid and dense modes).
    pub dense_rank: Option<usize>,
    /// Cosine between the question and the best-matching passage (when in the dense list):
    /// how close the evidence is in meaning, whatever the wording.
    pub similarity: Option<f32>,
    /// The best-matching passage (dense and hybrid modes), the evidence for an answer.
    pub passage: Option<String>,
}
