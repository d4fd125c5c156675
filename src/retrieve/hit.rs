use serde::Serialize;

/// One search result: an article and why it matched.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Hit {
    /// 1-based rank.
    pub rank: usize,
    /// PubMed identifier, as a string (as PubMed and the evaluation sets write it).
    pub pmid: String,
    pub title: String,
    pub journal: String,
    pub year: Option<i64>,
    pub score: f32,
    /// A fragment of the abstract (or the title) around the matched terms.
    pub snippet: String,
    /// Byte ranges of `snippet` that matched query terms.
    pub highlights: Vec<[usize; 2]>,
}
