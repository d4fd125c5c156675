//! The dense half of the index: passage vectors, their PMIDs, and an HNSW graph over them.
//!
//! On disk, in a generation folder:
//! - `vectors.bin`: little-endian f32 rows, one unit-length vector per passage (row = dense id),
//!   kept so the graph can be rebuilt and candidates re-scored exactly;
//! - `docmap.bin`: per row, the PMID (u64) and passage number (u32), little-endian;
//! - `dense.json`: dimensions, row count, HNSW parameters, the graph's file name, the model;
//! - `<basename>.hnsw.graph` / `.hnsw.data`: the hnsw_rs dump.
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use hnsw_rs::prelude::{AnnT, Distance, Hnsw, HnswIo};
use serde::{Deserialize, Serialize};

use crate::embed::{dot, ModelInfo};

/// Cosine distance of unit vectors, `1 - a·b`, clamped at 0. hnsw_rs's own `UnitCosine` asserts
/// the distance is non-negative, which rounding breaks for a vector and itself: a panic on a
/// query equal to an indexed passage.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnitCosine;

impl Distance<f32> for UnitCosine {
    fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
        (1.0 - dot(va, vb)).max(0.0)
    }
}

/// HNSW build and search parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswParams {
    /// Neighbours kept per node and layer.
    pub m: usize,
    pub ef_construction: usize,
    /// Candidate list length at query time (at least k).
    pub ef_search: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: 16,
            ef_construction: 200,
            ef_search: 96,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DenseError {
    #[error("{context}: {path}: {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("dense index {dir}: {reason}")]
    Invalid { dir: PathBuf, reason: String },
    #[error("the index was built with embedding model `{index}` (sha256 {index_sha}), not `{asked}` (sha256 {asked_sha}); rebuild the index or use its model")]
    ModelMismatch {
        index: String,
        index_sha: String,
        asked: String,
        asked_sha: String,
    },
}

fn io<'a>(context: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> DenseError + 'a {
    move |source| DenseError::Io {
        context,
        path: path.to_path_buf(),
        source,
    }
}

/// What `dense.json` records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenseMeta {
    pub model: ModelInfo,
    pub rows: usize,
    pub params: HnswParams,
    pub graph_basename: String,
}

/// One row of the docmap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowRef {
    pub pmid: u64,
    pub passage_no: u32,
}

/// Writes a dense index from rows in dense-id order.
pub fn write(
    dir: &Path,
    model: &ModelInfo,
    rows: &[RowRef],
    vectors: &[Vec<f32>],
    params: HnswParams,
) -> Result<DenseMeta, DenseError> {
    let invalid = |reason: String| DenseError::Invalid {
        dir: dir.to_path_buf(),
        reason,
    };
    if rows.len() != vectors.len() {
        return Err(invalid(format!(
            "{} rows but {} vectors",
            rows.len(),
            vectors.len()
        )));
    }
    if let Some(bad) = vectors.iter().position(|v| v.len() != model.dim) {
        return Err(invalid(format!(
            "vector {bad} has {} dimensions, the model {}",
            vectors[bad].len(),
            model.dim
        )));
    }
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;

    let vpath = dir.join("vectors.bin");
    let mut w = BufWriter::new(File::create(&vpath).map_err(io("writing", &vpath))?);
    for v in vectors {
        for x in v {
            w.write_all(&x.to_le_bytes())
                .map_err(io("writing", &vpath))?;
        }
    }
    finish(w, &vpath)?;

    let mpath = dir.join("docmap.bin");
    let mut w = BufWriter::new(File::create(&mpath).map_err(io("writing", &mpath))?);
    for r in rows {
        w.write_all(&r.pmid.to_le_bytes())
            .and_then(|_| w.write_all(&r.passage_no.to_le_bytes()))
            .map_err(io("writing", &mpath))?;
    }
    finish(w, &mpath)?;

    let hnsw: Hnsw<f32, UnitCosine> = Hnsw::new(
        params.m,
        vectors.len().max(1),
        16,
        params.ef_construction,
        UnitCosine,
    );
    let data: Vec<(&Vec<f32>, usize)> = vectors.iter().zip(0..).collect();
    hnsw.parallel_insert(&data);
    let graph_basename = hnsw
        .file_dump(dir, "dense")
        .map_err(|e| invalid(format!("writing the HNSW graph: {e}")))?;

    let meta = DenseMeta {
        model: model.clone(),
        rows: rows.len(),
        params,
        graph_basename,
    };
    let jpath = dir.join("dense.json");
    let text = serde_json::to_vec_pretty(&meta).map_err(|e| invalid(e.to_string()))?;
    std::fs::write(&jpath, text).map_err(io("writing", &jpath))?;
    Ok(meta)
}

fn finish(w: BufWriter<File>, path: &Path) -> Result<(), DenseError> {
    let f = w.into_inner().map_err(|e| DenseError::Io {
        context: "writing",
        path: path.to_path_buf(),
        source: e.into_error(),
    })?;
    f.sync_all().map_err(io("syncing", path))
}

/// An opened dense index.
pub struct DenseIndex {
    meta: DenseMeta,
    vectors: Vec<f32>,
    rows: Vec<RowRef>,
    graph: Hnsw<'static, f32, UnitCosine>,
}

impl DenseIndex {
    /// Opens the dense index in `dir`; `model` must be the one it was built with.
    pub fn open(dir: &Path, model: &ModelInfo) -> Result<Self, DenseError> {
        let invalid = |reason: String| DenseError::Invalid {
            dir: dir.to_path_buf(),
            reason,
        };
        let jpath = dir.join("dense.json");
        let text = std::fs::read(&jpath).map_err(io("reading", &jpath))?;
        let meta: DenseMeta =
            serde_json::from_slice(&text).map_err(|e| invalid(format!("dense.json: {e}")))?;
        if meta.model.id != model.id || meta.model.sha256 != model.sha256 {
            return Err(DenseError::ModelMismatch {
                index: meta.model.id.clone(),
                index_sha: meta.model.sha256.clone(),
                asked: model.id.clone(),
                asked_sha: model.sha256.clone(),
            });
        }
        let dim = meta.model.dim;
        let vectors = read_f32s(&dir.join("vectors.bin"))?;
        if vectors.len() != meta.rows * dim {
            return Err(invalid(format!(
                "vectors.bin holds {} floats, expected {} rows × {dim}",
                vectors.len(),
                meta.rows
            )));
        }
        let rows = read_docmap(&dir.join("docmap.bin"))?;
        if rows.len() != meta.rows {
            return Err(invalid(format!(
                "docmap.bin holds {} rows, expected {}",
                rows.len(),
                meta.rows
            )));
        }
        // hnsw_rs ties the graph's lifetime to its loader; one loader per opened index is
        // kept alive for the life of the process.
        let loader: &'static mut HnswIo =
            Box::leak(Box::new(HnswIo::new(dir, &meta.graph_basename)));
        let mut graph: Hnsw<'static, f32, UnitCosine> = loader
            .load_hnsw()
            .map_err(|e| invalid(format!("loading the HNSW graph: {e}")))?;
        graph.set_searching_mode(true);
        Ok(Self {
            meta,
            vectors,
            rows,
            graph,
        })
    }

    pub fn meta(&self) -> &DenseMeta {
        &self.meta
    }

    /// Points in the HNSW graph (equal to the rows in a whole index).
    pub fn graph_points(&self) -> usize {
        self.graph.get_nb_point()
    }

    pub fn row(&self, id: usize) -> Option<RowRef> {
        self.rows.get(id).copied()
    }

    fn vector(&self, id: usize) -> &[f32] {
        let d = self.meta.model.dim;
        &self.vectors[id * d..(id + 1) * d]
    }

    /// Approximate nearest rows to `query`: (row id, cosine), best first, re-scored exactly.
    pub fn search(&self, query: &[f32], k: usize, ef: Option<usize>) -> Vec<(usize, f32)> {
        let ef = ef.unwrap_or(self.meta.params.ef_search).max(k);
        let mut out: Vec<(usize, f32)> = self
            .graph
            .search(query, k, ef)
            .into_iter()
            .filter(|n| n.d_id < self.meta.rows)
            .map(|n| (n.d_id, dot(query, self.vector(n.d_id))))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        out
    }

    /// Exact nearest rows by brute force (the reference for recall, and for small indexes).
    pub fn exact(&self, query: &[f32], k: usize) -> Vec<(usize, f32)> {
        let mut all: Vec<(usize, f32)> = (0..self.meta.rows)
            .map(|i| (i, dot(query, self.vector(i))))
            .collect();
        let k = k.min(all.len());
        if k == 0 {
            return Vec::new();
        }
        all.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
        all.truncate(k);
        all.sort_by(|a, b| b.1.total_cmp(&a.1));
        all
    }
}

fn read_all(path: &Path) -> Result<Vec<u8>, DenseError> {
    let mut buf = Vec::new();
    BufReader::new(File::open(path).map_err(io("reading", path))?)
        .read_to_end(&mut buf)
        .map_err(io("reading", path))?;
    Ok(buf)
}

fn read_f32s(path: &Path) -> Result<Vec<f32>, DenseError> {
    let bytes = read_all(path)?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn read_docmap(path: &Path) -> Result<Vec<RowRef>, DenseError> {
    let bytes = read_all(path)?;
    Ok(bytes
        .chunks_exact(12)
        .map(|c| RowRef {
            pmid: u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
            passage_no: u32::from_le_bytes([c[8], c[9], c[10], c[11]]),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(dim: usize) -> ModelInfo {
        ModelInfo {
            id: "test".into(),
            sha256: "0".repeat(64),
            dim,
            max_tokens: 8,
        }
    }

    /// Deterministic pseudo-random unit vectors.
    fn vectors(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                let mut v: Vec<f32> = (0..dim)
                    .map(|_| {
                        s = s
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5
                    })
                    .collect();
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter_mut().for_each(|x| *x /= n);
                v
            })
            .collect()
    }

    #[test]
    fn round_trip_and_model_check() {
        let dir = tempfile::tempdir().unwrap();
        let vs = vectors(300, 16, 7);
        let rows: Vec<RowRef> = (0..300)
            .map(|i| RowRef {
                pmid: 1000 + i as u64 / 2,
                passage_no: (i % 2) as u32,
            })
            .collect();
        let m = model(16);
        write(dir.path(), &m, &rows, &vs, HnswParams::default()).unwrap();
        let idx = DenseIndex::open(dir.path(), &m).unwrap();
        assert_eq!(
            idx.row(3),
            Some(RowRef {
                pmid: 1001,
                passage_no: 1
            })
        );
        // A stored vector finds itself first.
        let hits = idx.search(&vs[42], 5, None);
        assert_eq!(hits[0].0, 42);
        assert!((hits[0].1 - 1.0).abs() < 1e-5);
        assert_eq!(idx.exact(&vs[42], 1)[0].0, 42);

        let mut other = m.clone();
        other.sha256 = "1".repeat(64);
        let Err(err) = DenseIndex::open(dir.path(), &other) else {
            panic!("a different model must be refused")
        };
        assert!(matches!(err, DenseError::ModelMismatch { .. }), "{err}");
    }

    #[test]
    fn mismatched_inputs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let vs = vectors(3, 4, 1);
        let rows = vec![
            RowRef {
                pmid: 1,
                passage_no: 0
            };
            2
        ];
        assert!(write(dir.path(), &model(4), &rows, &vs, HnswParams::default()).is_err());
        let rows = vec![
            RowRef {
                pmid: 1,
                passage_no: 0
            };
            3
        ];
        assert!(write(dir.path(), &model(5), &rows, &vs, HnswParams::default()).is_err());
    }
}
