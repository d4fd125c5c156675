//! The Qdrant format of `medlit export qdrant`, next to the analyser whose terms it hashes:
//! point ids, sparse BM25 term ids and weights, and the collection's body. A point per live
//! passage: a named dense vector `dense` (the stored MiniLM vector) and a named sparse vector
//! `bm25` (BM25 term weights of the passage; Qdrant's `idf` modifier supplies the IDF).
//!
//! Point ids: `pmid << 16 | passage_no`. Sparse indices: FNV-1a (32-bit) of each term as the
//! BM25 analyser produces it (lower-cased, stop words removed, Porter stemmed); queries must
//! hash their terms the same way ([`query_body`] builds what medlit asks Qdrant).
use std::collections::BTreeMap;

/// BM25 term-frequency saturation, as tantivy scores (Qdrant's `idf` modifier supplies IDF).
const K1: f32 = 1.2;
const B: f32 = 0.75;

/// FNV-1a, 32-bit: the sparse index of a term.
pub fn term_id(term: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in term.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The point id of a passage.
pub fn point_id(pmid: u64, passage_no: u32) -> u64 {
    (pmid << 16) | u64::from(passage_no & 0xffff)
}

/// The named vectors of a point: `dense` when there is one, and the `bm25` sparse vector.
pub fn vectors(dense: Option<Vec<f32>>, terms: &[String], avg_len: f32) -> serde_json::Value {
    let mut tf: BTreeMap<u32, f32> = BTreeMap::new();
    for t in terms {
        *tf.entry(term_id(t)).or_default() += 1.0;
    }
    let norm = K1 * (1.0 - B + B * terms.len() as f32 / avg_len);
    let (indices, values): (Vec<u32>, Vec<f32>) = tf
        .into_iter()
        .map(|(i, f)| (i, f * (K1 + 1.0) / (f + norm)))
        .unzip();
    let mut v = serde_json::json!({ "bm25": { "indices": indices, "values": values } });
    if let Some(d) = dense {
        v["dense"] = serde_json::json!(d);
    }
    v
}

/// The body of `PUT /collections/{name}`: cosine dense vectors kept on disk with an int8
/// copy in RAM, and a sparse BM25 vector with IDF applied by Qdrant.
pub fn collection_body(dim: Option<usize>, m: Option<usize>) -> serde_json::Value {
    let mut body = serde_json::json!({
        "vectors": {},
        "sparse_vectors": { "bm25": { "modifier": "idf" } },
    });
    if let Some(dim) = dim {
        body["vectors"] = serde_json::json!({
            "dense": { "size": dim, "distance": "Cosine", "on_disk": true }
        });
        body["hnsw_config"] = serde_json::json!({ "m": m.unwrap_or(16), "ef_construct": 200 });
        body["quantization_config"] =
            serde_json::json!({ "scalar": { "type": "int8", "always_ram": true } });
    }
    body
}

/// The sparse query of analysed query terms: each distinct term's count (Qdrant's `idf`
/// modifier supplies the IDF, the points their saturated term frequencies).
pub fn sparse_query(terms: &[String]) -> serde_json::Value {
    let mut tf: BTreeMap<u32, f32> = BTreeMap::new();
    for t in terms {
        *tf.entry(term_id(t)).or_default() += 1.0;
    }
    let (indices, values): (Vec<u32>, Vec<f32>) = tf.into_iter().unzip();
    serde_json::json!({ "indices": indices, "values": values })
}

/// Which lists a query asks Qdrant for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum QueryShape {
    /// The dense vector's nearest passages; `exact` scans instead of walking the graph.
    Dense { exact: bool },
    /// The BM25 sparse vector's best passages.
    Sparse,
    /// Both lists, `depth` passages each, fused by Qdrant's (weighted) reciprocal rank fusion:
    /// each list adds `weight / (k + rank)`, BM25 weighing 1 and dense `dense_weight`.
    Hybrid {
        depth: usize,
        rrf_k: u32,
        dense_weight: f32,
    },
}

/// The body of `POST /collections/NAME/points/query` for a question: its MiniLM vector, its
/// analysed terms, the shape, `limit` passages and the payload fields wanted.
pub fn query_body(
    dense: &[f32],
    terms: &[String],
    shape: QueryShape,
    limit: usize,
    with_payload: &[&str],
) -> serde_json::Value {
    let payload = if with_payload.is_empty() {
        serde_json::json!(false)
    } else {
        serde_json::json!(with_payload)
    };
    let mut body = match shape {
        QueryShape::Dense { exact } => {
            let mut b = serde_json::json!({ "query": dense, "using": "dense" });
            if exact {
                b["params"] = serde_json::json!({ "exact": true });
            }
            b
        }
        QueryShape::Sparse => serde_json::json!({ "query": sparse_query(terms), "using": "bm25" }),
        QueryShape::Hybrid {
            depth,
            rrf_k,
            dense_weight,
        } => serde_json::json!({
            "prefetch": [
                { "query": sparse_query(terms), "using": "bm25", "limit": depth },
                { "query": dense, "using": "dense", "limit": depth },
            ],
            "query": { "rrf": { "k": rrf_k, "weights": [1.0, dense_weight] } },
        }),
    };
    body["limit"] = serde_json::json!(limit);
    body["with_payload"] = payload;
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_passage_keeps_its_pmid_in_the_high_bits_and_terms_weigh_by_bm25() {
        assert_eq!(point_id(12345, 3) >> 16, 12345);
        assert_eq!(point_id(12345, 3) & 0xffff, 3);
        assert_eq!(term_id("statin"), term_id("statin"));
        assert_ne!(term_id("statin"), term_id("statins"));
        let terms: Vec<String> = ["statin", "statin", "liver"].map(String::from).to_vec();
        let v = vectors(None, &terms, 3.0);
        let values: Vec<f64> = v["bm25"]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(values.len(), 2);
        // A term twice weighs more than once, and saturates below k1 + 1.
        let (twice, once) = if term_id("statin") < term_id("liver") {
            (values[0], values[1])
        } else {
            (values[1], values[0])
        };
        assert!(twice > once && twice < f64::from(K1 + 1.0), "{values:?}");
        assert!(v.get("dense").is_none());
        assert_eq!(
            collection_body(Some(384), None)["vectors"]["dense"]["size"],
            384
        );
    }

    #[test]
    fn query_bodies_name_the_exported_vectors() {
        let terms: Vec<String> = ["statin", "liver", "statin"].map(String::from).to_vec();
        let sparse = sparse_query(&terms);
        let indices = sparse["indices"].as_array().unwrap();
        assert_eq!(indices.len(), 2);
        let at = |t: &str| indices.iter().position(|i| i == term_id(t)).unwrap();
        assert_eq!(sparse["values"][at("statin")], 2.0);
        assert_eq!(sparse["values"][at("liver")], 1.0);
        let v = [0.5f32, -0.5];
        let dense = query_body(&v, &terms, QueryShape::Dense { exact: true }, 10, &[]);
        assert_eq!(
            (&dense["using"], &dense["limit"], &dense["params"]["exact"]),
            (
                &serde_json::json!("dense"),
                &serde_json::json!(10),
                &serde_json::json!(true)
            )
        );
        let hybrid = query_body(
            &v,
            &terms,
            QueryShape::Hybrid {
                depth: 60,
                rrf_k: 10,
                dense_weight: 2.0,
            },
            30,
            &["pmid"],
        );
        assert_eq!(hybrid["prefetch"][0]["using"], "bm25");
        assert_eq!(hybrid["prefetch"][1]["limit"], 60);
        assert_eq!(hybrid["query"]["rrf"]["weights"][1], 2.0);
        assert_eq!(hybrid["with_payload"][0], "pmid");
    }
}
