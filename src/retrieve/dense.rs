//! Dense retrieval: embed the question, search the HNSW graph, keep each PMID's best passage.
use std::path::Path;
use std::sync::Arc;

use medlit_indexer::dense::{DenseError, DenseIndex};
use medlit_indexer::embed::{EmbedError, EncoderConfig, SharedEmbedder};
use medlit_indexer::{IndexDir, IndexError};

#[derive(Debug, thiserror::Error)]
pub enum DenseSearchError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Dense(#[from] DenseError),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error("index {0} has no dense part; add it with `medlit index --update --dense FILES`, or rebuild it hybrid with `medlit index --replace`")]
    NoDense(String),
    #[error("no embedding model is fetched (run `medlit fetch`)")]
    NoEncoder,
}

/// One dense result: the article, the cosine of its best passage, and which passage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DenseHit {
    pub pmid: u64,
    pub score: f32,
    pub passage_no: u32,
}

/// Up to this many rows a filtered search scores exactly: cheaper than a graph walk that
/// collects few of the rows it visits.
const EXACT_FILTERED_ROWS: usize = 20_000;

pub struct DenseSearcher {
    embedder: Arc<SharedEmbedder>,
    index: DenseIndex,
    /// HNSW candidate list length per segment, when not the index's stored one.
    search_ef: Option<usize>,
}

impl DenseSearcher {
    /// Opens the dense half of the index in `dir` with the encoder it was built with: the one
    /// of `candidates` whose id and weights' sha256 the index records (else the index's model
    /// check refuses, naming both).
    pub fn open(dir: &Path, candidates: &[EncoderConfig]) -> Result<Self, DenseSearchError> {
        let layout = IndexDir::new(dir);
        let manifest = layout.manifest()?;
        let summary = manifest
            .dense
            .as_ref()
            .ok_or_else(|| DenseSearchError::NoDense(dir.display().to_string()))?;
        // The int8 and f32 encoders read one weights file: the id tells them apart.
        let mut cfg = candidates
            .iter()
            .find(|c| c.made(&summary.model))
            .or_else(|| {
                candidates
                    .iter()
                    .find(|c| c.sha256() == summary.model.sha256)
            })
            .or(candidates.first())
            .cloned()
            .ok_or(DenseSearchError::NoEncoder)?;
        // Queries are split and truncated as the passages were.
        cfg.set_max_tokens(summary.model.max_tokens);
        let mut wanted = summary.model.clone();
        wanted.id = cfg.id().to_string();
        wanted.sha256 = cfg.sha256().to_string();
        let index = DenseIndex::open(&dir.join(&summary.dir), &wanted)?;
        let embedder = cfg.load()?;
        Ok(Self {
            embedder: Arc::new(SharedEmbedder::new(embedder)),
            index,
            search_ef: None,
        })
    }

    /// Walks each graph segment with a candidate list of `ef` (at least the rows asked for)
    /// instead of the index's stored `ef_search`: recall against latency, see `bench graph`.
    pub fn set_search_ef(&mut self, ef: Option<usize>) {
        self.search_ef = ef;
    }

    /// The candidate list length searches use.
    pub fn search_ef(&self) -> usize {
        self.search_ef.unwrap_or(self.index.meta().params.ef_search)
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
        self.rank_among(query, k, None)
    }

    /// The `k` articles whose passages are closest to any passage of `pmid` (each scored by
    /// its best pair), the article itself left out; empty when `pmid` has no passage here.
    pub fn similar_to(&self, pmid: u64, k: usize) -> Vec<DenseHit> {
        let own: Vec<usize> = (0..self.index.rows())
            .filter(|&i| {
                !self.index.is_dead(i) && self.index.row(i).is_some_and(|r| r.pmid == pmid)
            })
            .collect();
        let mut best: std::collections::HashMap<u64, DenseHit> = std::collections::HashMap::new();
        for &row in &own {
            let v = self.index.vector(row).to_vec();
            for (id, score) in self
                .index
                .search(&v, k * 3 + own.len(), Some(self.search_ef()))
            {
                let Some(r) = self.index.row(id) else {
                    continue;
                };
                if r.pmid == pmid {
                    continue;
                }
                let e = best.entry(r.pmid).or_insert(DenseHit {
                    pmid: r.pmid,
                    score,
                    passage_no: r.passage_no,
                });
                if score > e.score {
                    *e = DenseHit {
                        pmid: r.pmid,
                        score,
                        passage_no: r.passage_no,
                    };
                }
            }
        }
        let mut out: Vec<DenseHit> = best.into_values().collect();
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.pmid.cmp(&b.pmid)));
        out.truncate(k);
        out
    }

    /// The `k` best articles for `query` among `allowed` PMIDs (all when `None`), filtered
    /// inside the search so that `k` come back when that many are allowed: few allowed rows
    /// are scored exactly; otherwise the graph search keeps only allowed rows, its width
    /// grown by how selective the filter is.
    pub fn rank_among(
        &self,
        query: &str,
        k: usize,
        allowed: Option<&std::collections::HashSet<u64>>,
    ) -> Result<Vec<DenseHit>, DenseSearchError> {
        let q = self.embedder.embed_one(query)?;
        // Articles have several passages: ask for more rows than articles wanted.
        let rows = match allowed {
            None => self.index.search(&q, k * 3, Some(self.search_ef())),
            Some(set) => {
                let kept: Vec<usize> = (0..self.index.rows())
                    .filter(|&i| self.index.row(i).is_some_and(|r| set.contains(&r.pmid)))
                    .collect();
                let share = kept.len() as f64 / self.index.rows().max(1) as f64;
                if kept.len() <= EXACT_FILTERED_ROWS || share < 0.05 {
                    self.index.exact_rows(&q, &kept, k * 3)
                } else {
                    let ef = self.search_ef().max(k * 3);
                    let widened = ((ef as f64 / share).ceil() as usize).min(ef * 8);
                    self.index.search_where(&q, k * 3, Some(widened), |i| {
                        self.index.row(i).is_some_and(|r| set.contains(&r.pmid))
                    })
                }
            }
        };
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
