//! The search modes over one index: BM25, dense, and their reciprocal rank fusion.
use std::collections::HashMap;

use medlit_indexer::passages;

use super::bm25::{Bm25Searcher, SearchError};
use super::dense::{DenseHit, DenseSearchError, DenseSearcher};
use super::filter::{parse_tags, FilterError, Filters, TaggedQuery};
use super::fuse::{weighted_rrf, Fused};
use super::Hit;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Bm25,
    Dense,
    Hybrid,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Bm25, Mode::Dense, Mode::Hybrid];

    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Bm25 => "bm25",
            Mode::Dense => "dense",
            Mode::Hybrid => "hybrid",
        }
    }
}

/// Fusion settings.
#[derive(Debug, Clone, Copy)]
pub struct Fusion {
    pub rrf_k: f32,
    /// Candidates taken from each list.
    pub depth: usize,
    /// Weight of the dense list (BM25's is 1).
    pub dense_weight: f32,
}

#[derive(Debug, thiserror::Error)]
pub enum RetrieveError {
    #[error(transparent)]
    Bm25(#[from] SearchError),
    #[error(transparent)]
    Dense(#[from] DenseSearchError),
    #[error(
        "mode `{0:?}` needs the dense index; rebuild it with `medlit index --dense --replace`"
    )]
    NoDense(Mode),
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error(transparent)]
    Remote(#[from] super::qdrant::QdrantError),
    #[error(transparent)]
    Embed(#[from] medlit_indexer::embed::EmbedError),
}

pub struct Retriever {
    pub bm25: Bm25Searcher,
    pub dense: Option<DenseSearcher>,
    pub fusion: Fusion,
    /// Candidates from a Qdrant server instead of this index's lists (`--retrieval qdrant`):
    /// the index still embeds and analyses the question and holds the articles' records.
    pub remote: Option<super::qdrant::QdrantRemote>,
}

impl Retriever {
    /// Hybrid when the index has a dense part, else BM25.
    pub fn default_mode(&self) -> Mode {
        if self.dense.is_some() {
            Mode::Hybrid
        } else {
            Mode::Bm25
        }
    }

    /// The query with its PubMed field tags read out, and `filters` with theirs added: what
    /// [`search`](Self::search) ranks and filters by (and what a CLI tells its user).
    pub fn read_query(&self, query: &str, filters: &Filters) -> Result<TaggedQuery, RetrieveError> {
        let mut t = parse_tags(query, &|field, value| self.bm25.knows(field, value))?;
        t.filters = filters.clone().and(t.filters)?;
        Ok(t)
    }

    /// The `k` best articles for `query` in `mode` among those `filters` (and the query's
    /// field tags) let through. Filters apply inside each list, before fusion.
    pub fn search(
        &self,
        query: &str,
        k: usize,
        mode: Mode,
        filters: &Filters,
    ) -> Result<Vec<Hit>, RetrieveError> {
        let t = self.read_query(query, filters)?;
        let (query, filters) = (t.text.as_str(), &t.filters);
        // Field tags only: nothing to rank by meaning; the filtered articles, newest first.
        let tags_only = self.bm25.analyse(query).is_empty() && !filters.is_empty();
        match mode {
            _ if tags_only => self.bm25_hits(query, k, filters),
            _ if self.remote.is_some() => self.remote_hits(query, k, mode, filters),
            Mode::Bm25 => self.bm25_hits(query, k, filters),
            Mode::Dense | Mode::Hybrid => {
                let dense = self.dense.as_ref().ok_or(RetrieveError::NoDense(mode))?;
                let depth = self.fusion.depth.max(k);
                let allowed = self.bm25.allowed_pmids(filters)?;
                let (b, d) =
                    self.candidate_lists(dense, query, depth, mode, filters, allowed.as_ref())?;
                let by_pmid: HashMap<u64, (usize, DenseHit)> = d
                    .iter()
                    .enumerate()
                    .map(|(i, h)| (h.pmid, (i + 1, *h)))
                    .collect();
                let candidates: Vec<(u64, f32, Option<usize>)> = match b {
                    None => d.iter().map(|h| (h.pmid, h.score, None)).collect(),
                    Some(b) => self
                        .fuse(&b, &d)
                        .into_iter()
                        .map(|f| (f.pmid, f.score, f.ranks[0]))
                        .collect(),
                };
                let scored: Vec<(u64, f32)> = candidates.iter().map(|c| (c.0, c.1)).collect();
                let bm25_ranks: HashMap<u64, usize> = candidates
                    .iter()
                    .filter_map(|c| c.2.map(|r| (c.0, r)))
                    .collect();
                let mut hits = self.bm25.hits_for(query, &scored)?;
                hits.truncate(k);
                for (i, h) in hits.iter_mut().enumerate() {
                    h.rank = i + 1;
                    let pmid = h.pmid;
                    h.bm25_rank = bm25_ranks.get(&pmid).copied();
                    if let Some(&(rank, dh)) = by_pmid.get(&pmid) {
                        h.dense_rank = Some(rank);
                        h.similarity = Some(dh.score);
                        h.passage = self.passage_text(dense, pmid, dh.passage_no)?;
                    }
                }
                Ok(hits)
            }
        }
    }

    /// [`search`](Self::search) with the candidates from Qdrant: its passages, an article at
    /// its best one, filtered by this index's filters (applied to what Qdrant returned, so a
    /// selective filter can leave fewer than `k`).
    fn remote_hits(
        &self,
        query: &str,
        k: usize,
        mode: Mode,
        filters: &Filters,
    ) -> Result<Vec<Hit>, RetrieveError> {
        let allowed = self.bm25.allowed_pmids(filters)?;
        let depth = match &allowed {
            Some(_) => self.fusion.depth.max(k) * 4,
            None => k,
        };
        let best = self.remote_articles(query, depth, mode)?;
        let best: Vec<_> = best
            .into_iter()
            .filter(|p| allowed.as_ref().is_none_or(|a| a.contains(&p.pmid)))
            .collect();
        let scored: Vec<(u64, f32)> = best.iter().map(|p| (p.pmid, p.score)).collect();
        let mut hits = self.bm25.hits_for(query, &scored)?;
        hits.truncate(k);
        for (i, h) in hits.iter_mut().enumerate() {
            h.rank = i + 1;
            if let Some(p) = best.iter().find(|p| p.pmid == h.pmid) {
                if mode == Mode::Dense {
                    h.similarity = Some(p.score);
                }
                if mode != Mode::Bm25 {
                    h.passage = p.text.clone();
                }
            }
        }
        Ok(hits)
    }

    /// Qdrant's best `k` articles for `query`, each at its best passage.
    fn remote_articles(
        &self,
        query: &str,
        k: usize,
        mode: Mode,
    ) -> Result<Vec<super::qdrant::RemotePoint>, RetrieveError> {
        let Some(remote) = &self.remote else {
            return Ok(Vec::new());
        };
        let terms = self.bm25.analyse(query);
        let vector = match (mode, &self.dense) {
            (Mode::Bm25, _) => Vec::new(),
            (_, Some(d)) => d.embedder().embed_one(query)?,
            (_, None) => return Err(RetrieveError::NoDense(mode)),
        };
        let points = remote.passages(&vector, &terms, mode, &self.fusion, k)?;
        Ok(super::qdrant::best_passages(points))
    }

    fn bm25_hits(
        &self,
        query: &str,
        k: usize,
        filters: &Filters,
    ) -> Result<Vec<Hit>, RetrieveError> {
        let mut hits = self.bm25.search(query, k, filters)?;
        for h in &mut hits {
            h.bm25_rank = Some(h.rank);
        }
        Ok(hits)
    }

    /// Articles like `pmid`: its passages' vectors against the dense index fused with BM25
    /// more-like-this on its distinctive words (BM25 alone on a keyword-only index); the
    /// article itself left out. `None` when the index does not hold `pmid`.
    pub fn similar(&self, pmid: u64, k: usize) -> Result<Option<Vec<Hit>>, RetrieveError> {
        if k == 0 {
            return Err(SearchError::ZeroK.into());
        }
        let depth = self.fusion.depth.max(k);
        let Some(super::bm25::MoreLikeThis { terms, scored: mlt }) =
            self.bm25.more_like_this(pmid, depth)?
        else {
            return Ok(None);
        };
        let bm25: Vec<u64> = mlt.iter().map(|m| m.0).collect();
        let dense = self.dense.as_ref().map(|d| (d, d.similar_to(pmid, depth)));
        let scored: Vec<(u64, f32)> = match &dense {
            Some((_, d)) if !d.is_empty() => self
                .fuse(&bm25, d)
                .into_iter()
                .map(|f| (f.pmid, f.score))
                .collect(),
            _ => mlt.clone(),
        };
        let mut hits = self.bm25.hits_for(&terms, &scored)?;
        hits.truncate(k);
        for (i, h) in hits.iter_mut().enumerate() {
            h.rank = i + 1;
            h.bm25_rank = bm25.iter().position(|&p| p == h.pmid).map(|r| r + 1);
            if let Some((searcher, d)) = &dense {
                if let Some((r, dh)) = d.iter().enumerate().find(|(_, x)| x.pmid == h.pmid) {
                    h.dense_rank = Some(r + 1);
                    h.similarity = Some(dh.score);
                    h.passage = self.passage_text(searcher, h.pmid, dh.passage_no)?;
                }
            }
        }
        Ok(Some(hits))
    }

    /// The `k` best PMIDs for `query`, best first: ranking only, no snippets or stored
    /// documents. What evaluation and benchmarks measure.
    pub fn rank(&self, query: &str, k: usize, mode: Mode) -> Result<Vec<u64>, RetrieveError> {
        if self.remote.is_some() {
            let mut best = self.remote_articles(query, k, mode)?;
            best.truncate(k);
            return Ok(best.into_iter().map(|p| p.pmid).collect());
        }
        if mode == Mode::Bm25 {
            return Ok(self
                .bm25
                .rank(query, k, &Filters::default())?
                .into_iter()
                .map(|h| h.0)
                .collect());
        }
        let dense = self.dense.as_ref().ok_or(RetrieveError::NoDense(mode))?;
        let depth = match mode {
            Mode::Dense => k,
            _ => self.fusion.depth.max(k),
        };
        let (b, d) = self.candidate_lists(dense, query, depth, mode, &Filters::default(), None)?;
        Ok(match b {
            None => d.iter().take(k).map(|h| h.pmid).collect(),
            Some(b) => self
                .fuse(&b, &d)
                .into_iter()
                .take(k)
                .map(|f| f.pmid)
                .collect(),
        })
    }

    /// Weighted reciprocal rank fusion of the BM25 and dense lists, in that order.
    fn fuse(&self, bm25: &[u64], dense: &[DenseHit]) -> Vec<Fused> {
        let d: Vec<u64> = dense.iter().map(|h| h.pmid).collect();
        weighted_rrf(
            &[bm25, &d],
            &[1.0, self.fusion.dense_weight],
            self.fusion.rrf_k,
        )
    }

    /// The dense candidates, and for hybrid the BM25 candidates too. The two are independent,
    /// so hybrid runs them on two threads: the query embedding dominates and BM25 hides
    /// behind it.
    #[allow(clippy::type_complexity)]
    fn candidate_lists(
        &self,
        dense: &DenseSearcher,
        query: &str,
        depth: usize,
        mode: Mode,
        filters: &Filters,
        allowed: Option<&std::collections::HashSet<u64>>,
    ) -> Result<(Option<Vec<u64>>, Vec<DenseHit>), RetrieveError> {
        if mode == Mode::Dense {
            return Ok((None, dense.rank_among(query, depth, allowed)?));
        }
        let (b, d) = rayon::join(
            || self.bm25.rank(query, depth, filters),
            || dense.rank_among(query, depth, allowed),
        );
        // A question of stop words only has no BM25 terms; the dense half still answers it.
        let b = match b {
            Err(SearchError::EmptyQuery(_)) => Vec::new(),
            b => b?.into_iter().map(|h| h.0).collect(),
        };
        Ok((Some(b), d?))
    }

    /// Re-splits the stored abstract the way the index did and returns passage `no`.
    fn passage_text(
        &self,
        dense: &DenseSearcher,
        pmid: u64,
        no: u32,
    ) -> Result<Option<String>, RetrieveError> {
        let Some((title, abstract_text)) = self.bm25.abstract_of(pmid)? else {
            return Ok(None);
        };
        let parts =
            passages::of_abstract(pmid, &title, &abstract_text, dense.max_tokens(), &mut |t| {
                dense.count_tokens(t)
            });
        Ok(parts.into_iter().find(|p| p.passage_no == no).map(|p| {
            if p.text.is_empty() {
                p.title
            } else {
                p.text
            }
        }))
    }
}
