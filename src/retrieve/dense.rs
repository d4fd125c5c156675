//! Dense retrieval: embed the question, search the HNSW graph, keep each PMID's best passage.
use std::path::Path;
use std::sync::Arc;

use medlit_indexer::dense::{DenseError, DenseIndex};
use medlit_indexer::embed::{EmbedError, OnnxConfig, OnnxEmbedder, SharedEmbedder};
use medlit_indexer::{IndexDir, IndexError};

#[derive(Debug, thiserror::Error)]
pub enum DenseSearchError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Dense(#[from] DenseError),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error("index {0} has no dense part; rebuild it with `medlit index --dense --replace`")]
    NoDense(String),
}

/// One dense result: the article, the cosine of its best passage, and which passage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DenseHit {
    pub pmid: u64,
    pub score: f32,
    pub passage_no: u32,
}

pub struct DenseSearcher {
    embedder: Arc<SharedEmbedder>,
    index: DenseIndex,
}

impl DenseSearcher {
    /// Opens the dense half of the index in `dir` with the embedder of `cfg`, which must be the
    /// model the index was built with (checked by id and sha256).
    pub fn open(dir: &Path, mut cfg: OnnxConfig) -> Result<Self, DenseSearchError> {
        let layout = IndexDir::new(dir);
        let manifest = layout.manifest()?;
        let summary = manifest
            .dense
            .as_ref()
            .ok_or_else(|| DenseSearchError::NoDense(dir.display().to_string()))?;
        // Queries are split and truncated as the passages were.
        cfg.max_tokens = summary.model.max_tokens;
        let mut wanted = summary.model.clone();
        wanted.id = cfg.id.clone();
        wanted.sha256 = cfg.sha256.clone();
        let index = DenseIndex::open(&dir.join(&summary.dir), &wanted)?;
        let embedder = OnnxEmbedder::load(&cfg)?;
        Ok(Self {
            embedder: Arc::new(SharedEmbedder::new(Box::new(embedder))),
            index,
        })
    }

    /// The query embedder, for the other users of query vectors in this process (the safety
    /// screen): one model loaded, each question embedded once.
    pub fn embedder(&self) -> Arc<SharedEmbedder> {
        self.embedder.clone()
    }

    /// Token counter of the embedder (to re-split passages the way the index did).
    pub fn count_tokens(&self, text: &str) -> usize {
        self.embedder.count_tokens(text)
    }

    /// The opened dense index (vectors, docmap, graph).
    pub fn index(&self) -> &DenseIndex {
        &self.index
    }

    pub fn max_tokens(&self) -> usize {
        self.index.meta().model.max_tokens
    }

    /// The `k` best articles for `query`.
    pub fn rank(&self, query: &str, k: usize) -> Result<Vec<DenseHit>, DenseSearchError> {
        let q = self.embedder.embed_one(query)?;
        // Articles have several passages: ask for more rows than articles wanted.
        let rows = self.index.search(&q, k * 3, None);
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::with_capacity(k);
        for (id, score) in rows {
            let Some(r) = self.index.row(id) else {
                continue;
            };
            if seen.insert(r.pmid) {
                out.push(DenseHit {
                    pmid: r.pmid,
                    score,
                    passage_no: r.passage_no,
                });
                if out.len() == k {
                    break;
                }
            }
        }
        Ok(out)
    }
}
