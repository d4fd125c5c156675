//! Candidates from a Qdrant server holding `medlit export qdrant`'s collection
//! (`--retrieval qdrant`): the question is embedded and analysed here, Qdrant ranks the
//! passages (its HNSW for dense, the BM25 sparse vectors under its `idf` modifier, its
//! weighted RRF for hybrid), and an article is ranked at its best passage. Everything after
//! retrieval (safety, prompting, generation, citation checks) stays local.
use std::time::Duration;

use medlit_indexer::qdrant::{query_body, QueryShape};
use serde_json::Value;

use super::hybrid::{Fusion, Mode};

#[derive(Debug, thiserror::Error)]
pub enum QdrantError {
    #[error("--qdrant-url `{0}` is not an http:// or https:// URL")]
    BadUrl(String),
    #[error("Qdrant at {url}: {reason}")]
    Request { url: String, reason: String },
}

/// One passage Qdrant returned.
#[derive(Debug, Clone, PartialEq)]
pub struct RemotePoint {
    pub pmid: u64,
    pub passage_no: u32,
    pub score: f32,
    /// The passage text, from the point's payload.
    pub text: Option<String>,
}

/// A Qdrant server's collection, over REST.
pub struct QdrantRemote {
    url: String,
    agent: ureq::Agent,
}

/// Passages asked for per article wanted: an article has about two.
const PASSAGES_PER_ARTICLE: usize = 3;

impl QdrantRemote {
    /// The collection `collection` of the server at `base` (e.g. `http://127.0.0.1:6333`);
    /// `timeout` bounds each request, reply included.
    pub fn new(base: &str, collection: &str, timeout: Duration) -> Result<Self, QdrantError> {
        let base = base.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(QdrantError::BadUrl(base.to_string()));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(timeout))
            .build()
            .into();
        Ok(Self {
            url: format!("{base}/collections/{collection}/points/query"),
            agent,
        })
    }

    fn error(&self, reason: impl Into<String>) -> QdrantError {
        QdrantError::Request {
            url: self.url.clone(),
            reason: reason.into(),
        }
    }

    /// The passages for a question in `mode`, best first: enough for `articles` articles.
    pub fn passages(
        &self,
        vector: &[f32],
        terms: &[String],
        mode: Mode,
        fusion: &Fusion,
        articles: usize,
    ) -> Result<Vec<RemotePoint>, QdrantError> {
        let limit = articles.max(1) * PASSAGES_PER_ARTICLE;
        let shape = match mode {
            Mode::Bm25 => QueryShape::Sparse,
            Mode::Dense => QueryShape::Dense { exact: false },
            Mode::Hybrid => QueryShape::Hybrid {
                depth: fusion.depth.max(articles) * PASSAGES_PER_ARTICLE,
                rrf_k: fusion.rrf_k.round().max(1.0) as u32,
                dense_weight: fusion.dense_weight,
            },
        };
        let body = query_body(vector, terms, shape, limit, &["pmid", "passage_no", "text"]);
        self.query(&body)
    }

    /// `POST …/points/query` with `body`; the points of the answer.
    pub fn query(&self, body: &Value) -> Result<Vec<RemotePoint>, QdrantError> {
        let mut r = self
            .agent
            .post(&self.url)
            .send_json(body)
            .map_err(|e| self.error(format!("cannot reach the server: {e}")))?;
        let status = r.status().as_u16();
        let text = r
            .body_mut()
            .read_to_string()
            .map_err(|e| self.error(format!("reading the answer: {e}")))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| {
            self.error(format!(
                "answered {status} with a body that is not JSON ({e}): {}",
                text.chars().take(200).collect::<String>()
            ))
        })?;
        if !(200..300).contains(&status) {
            let reason = v["status"]["error"].as_str().unwrap_or(text.as_str());
            return Err(self.error(format!("answered {status}: {}", reason.trim())));
        }
        let points = v["result"]["points"]
            .as_array()
            .ok_or_else(|| self.error("the answer has no result.points"))?;
        points
            .iter()
            .map(|p| {
                let pmid = p["payload"]["pmid"].as_u64();
                let no = p["payload"]["passage_no"].as_u64();
                let score = p["score"].as_f64();
                match (pmid, no, score) {
                    (Some(pmid), Some(no), Some(score)) => Ok(RemotePoint {
                        pmid,
                        passage_no: u32::try_from(no).unwrap_or(u32::MAX),
                        score: score as f32,
                        text: p["payload"]["text"].as_str().map(str::to_string),
                    }),
                    _ => Err(self.error(format!(
                        "a point without payload pmid, passage_no and score: {p}"
                    ))),
                }
            })
            .collect()
    }
}

/// Articles in the order of their best passage, each with that passage.
pub fn best_passages(points: Vec<RemotePoint>) -> Vec<RemotePoint> {
    let mut seen = std::collections::HashSet::new();
    points.into_iter().filter(|p| seen.insert(p.pmid)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_must_be_http_and_articles_keep_their_best_passage() {
        assert!(matches!(
            QdrantRemote::new("localhost:6333", "medlit", Duration::from_secs(1)),
            Err(QdrantError::BadUrl(_))
        ));
        let r =
            QdrantRemote::new("http://127.0.0.1:6333/", "medlit", Duration::from_secs(1)).unwrap();
        assert_eq!(
            r.url,
            "http://127.0.0.1:6333/collections/medlit/points/query"
        );
        let p = |pmid, passage_no, score| RemotePoint {
            pmid,
            passage_no,
            score,
            text: None,
        };
        let best = best_passages(vec![p(7, 1, 0.9), p(8, 0, 0.8), p(7, 0, 0.7)]);
        assert_eq!(best, vec![p(7, 1, 0.9), p(8, 0, 0.8)]);
    }
}
