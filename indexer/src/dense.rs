//! The dense half of the index: passage vectors, their PMIDs, and an HNSW graph over them.
//!
//! On disk, in a generation's `dense/` folder:
//! - `vectors-NNNNNN.bin`: little-endian f32 rows, one unit-length vector per passage, one file
//!   per chunk (a chunk is what one input file added); rows are numbered across chunks in order
//!   (row = dense id). Kept so the graph can be rebuilt and candidates re-scored exactly;
//! - `docmap-NNNNNN.bin`: per row of the chunk, the PMID (u64) and passage number (u32);
//! - `tombstones.bin`: sorted row ids (u64) of passages whose PMID was replaced or deleted
//!   since they were written; never returned, dropped by `medlit compact`;
//! - `dense.json`: the model, HNSW parameters, the chunks, the graph and the tombstone count;
//! - `vectors-NNNNNN.i8`: the int8 copy of each vector (384 bytes a MiniLM passage;
//!   [`quantize`]), what the graph is built and searched on;
//! - the graph, in **segments** of at most `params.segment_rows` consecutive rows, each an HNSW
//!   graph of its own over local ids (row − segment start): `<graph>.hnsw.graph` / `.hnsw.data`,
//!   the hnsw_rs dump (kept to extend the last segment), and `links-*.bin`, the same graph flat
//!   ([`crate::links`]), what searches walk. hnsw_rs holds a graph in memory while it builds
//!   it (about 5 KB a row at the peak), so the segment size, not the corpus, bounds the
//!   build's memory. Rows past the last segment (the *tail*, added since the graph was last
//!   extended) are searched exactly.
//!
//! Opened for search, everything large is memory-mapped: resident memory is the docmap and
//! the pages queries touch. A search walks every segment (in parallel) and merges; graph
//! candidates are re-scored on the exact f32 vectors.
//!
//! Chunk and graph files are never rewritten: a new generation hard-links them from the last
//! one, adds its own chunk, and writes only `tombstones.bin` and `dense.json` anew.
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

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

/// Cosine distance of int8 vectors (the graph's copy, see [`quantize`]). Each vector has its
/// own scale, so the distance normalises by both norms; integer sums are exact.
#[derive(Debug, Clone, Copy, Default)]
pub struct I8Cosine;

impl Distance<i8> for I8Cosine {
    fn eval(&self, va: &[i8], vb: &[i8]) -> f32 {
        let aa = dot_i8(va, va);
        cosine_distance(dot_i8(va, vb), aa, dot_i8(vb, vb))
    }
}

fn cosine_distance(ab: i32, aa: i32, bb: i32) -> f32 {
    if aa == 0 || bb == 0 {
        return 1.0;
    }
    (1.0 - ab as f32 / ((aa as f32).sqrt() * (bb as f32).sqrt())).max(0.0)
}

/// The distance of a query's int8 vector to graph rows: its norm is computed once, not at
/// every node the search visits (a third of [`I8Cosine`]'s multiply-adds).
pub struct QueryCosine {
    q: Vec<i8>,
    qq: i32,
}

impl QueryCosine {
    pub fn new(q: Vec<i8>) -> Self {
        let qq = dot_i8(&q, &q);
        QueryCosine { q, qq }
    }

    /// As `I8Cosine.eval(query, row)`.
    pub fn distance(&self, row: &[i8]) -> f32 {
        cosine_distance(dot_i8(&self.q, row), self.qq, dot_i8(row, row))
    }
}

/// Σ a·b over int8 vectors, in i16 products summed into i32 lanes; compiled for AVX2 too and
/// chosen at run time where the CPU has it (the portable build targets SSE2).
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    {
        static AVX2: OnceLock<bool> = OnceLock::new();
        if *AVX2.get_or_init(|| std::arch::is_x86_feature_detected!("avx2")) {
            // SAFETY: the CPU has AVX2 (checked above).
            return unsafe { dot_i8_avx2(a, b) };
        }
    }
    dot_i8_plain(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_i8_avx2(a: &[i8], b: &[i8]) -> i32 {
    dot_i8_plain(a, b)
}

#[inline(always)]
fn dot_i8_plain(a: &[i8], b: &[i8]) -> i32 {
    let mut lanes = [0i32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: i32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, &y)| i32::from(x) * i32::from(y))
        .sum();
    for (xa, xb) in ca.zip(cb) {
        for ((l, &x), &y) in lanes.iter_mut().zip(xa).zip(xb) {
            *l += i32::from(i16::from(x) * i16::from(y));
        }
    }
    lanes.iter().sum::<i32>() + tail
}

/// The graph's int8 copy of a vector: scaled so its largest component is ±127. 384 bytes per
/// MiniLM passage instead of 1,536; candidates are re-scored on the exact f32 vectors.
pub fn quantize(v: &[f32]) -> Vec<i8> {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    if max == 0.0 {
        return vec![0; v.len()];
    }
    let s = 127.0 / max;
    v.iter()
        .map(|x| (x * s).round().clamp(-127.0, 127.0) as i8)
        .collect()
}

/// HNSW build and search parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswParams {
    /// Neighbours kept per node and layer.
    pub m: usize,
    pub ef_construction: usize,
    /// Candidate list length at query time (at least k).
    pub ef_search: usize,
    /// Most rows in one graph segment (indexes from before segments: one segment).
    #[serde(default = "default_segment_rows")]
    pub segment_rows: usize,
}

/// Rows per graph segment by default: hnsw_rs peaks near 5 KB a row while building, so a
/// 2M-row segment stays under 16 GB (see README, `bench scale`).
pub const DEFAULT_SEGMENT_ROWS: usize = 2_000_000;

fn default_segment_rows() -> usize {
    DEFAULT_SEGMENT_ROWS
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: 16,
            ef_construction: 200,
            ef_search: 96,
            segment_rows: DEFAULT_SEGMENT_ROWS,
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
#[serde(from = "MetaOnDisk")]
pub struct DenseMeta {
    pub model: ModelInfo,
    /// Rows in all chunks, tombstoned ones included.
    pub rows: usize,
    pub params: HnswParams,
    pub chunks: Vec<Chunk>,
    /// The graph segments, consecutive from row 0; empty before the first is built.
    pub graphs: Vec<GraphInfo>,
    /// Rows listed in `tombstones.bin`.
    pub dead: usize,
}

impl DenseMeta {
    /// Rows covered by the graph segments (the tail starts here).
    pub fn graph_rows(&self) -> usize {
        self.graphs.last().map_or(0, |g| g.end)
    }
}

/// `dense.json` as read: indexes from before segments record one `graph` from row 0.
#[derive(Deserialize)]
struct MetaOnDisk {
    model: ModelInfo,
    rows: usize,
    params: HnswParams,
    chunks: Vec<Chunk>,
    #[serde(default)]
    graphs: Vec<GraphInfo>,
    #[serde(default)]
    graph: Option<GraphInfo>,
    dead: usize,
}

impl From<MetaOnDisk> for DenseMeta {
    fn from(m: MetaOnDisk) -> Self {
        let graphs = if m.graphs.is_empty() {
            m.graph.into_iter().collect()
        } else {
            m.graphs
        };
        DenseMeta {
            model: m.model,
            rows: m.rows,
            params: m.params,
            chunks: m.chunks,
            graphs,
            dead: m.dead,
        }
    }
}

/// One chunk of rows: `vectors-<stem>.bin` and `docmap-<stem>.bin`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    pub stem: String,
    pub rows: usize,
}

impl Chunk {
    fn vectors(&self) -> String {
        format!("vectors-{}.bin", self.stem)
    }
    fn docmap(&self) -> String {
        format!("docmap-{}.bin", self.stem)
    }
    fn int8(&self) -> String {
        format!("vectors-{}.i8", self.stem)
    }
}

/// One graph segment: the hnsw_rs dump (to extend it) and its flat links (to search it),
/// over rows `start..end` (local id = row − start).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphInfo {
    pub basename: String,
    pub links: String,
    #[serde(default)]
    pub start: usize,
    /// One past the last row (`rows` in indexes from before segments, which start at 0).
    #[serde(alias = "rows")]
    pub end: usize,
}

impl GraphInfo {
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    fn files(&self) -> [String; 3] {
        [
            format!("{}.hnsw.graph", self.basename),
            format!("{}.hnsw.data", self.basename),
            self.links.clone(),
        ]
    }
}

/// One row of the docmap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowRef {
    pub pmid: u64,
    pub passage_no: u32,
}

const TOMBSTONES: &str = "tombstones.bin";
const META: &str = "dense.json";

/// Writes a whole dense index (one chunk, graph over every row) from rows in dense-id order.
pub fn write(
    dir: &Path,
    model: &ModelInfo,
    rows: &[RowRef],
    vectors: &[Vec<f32>],
    params: HnswParams,
) -> Result<DenseMeta, DenseError> {
    let mut w = DenseWriter::create(dir, model, params)?;
    w.append(rows, vectors)?;
    w.finish(true)
}

/// Builds a dense folder for a new generation: fresh, or linked from the last generation's.
pub struct DenseWriter {
    dir: PathBuf,
    meta: DenseMeta,
    /// Sorted, distinct.
    dead: Vec<u64>,
    /// The PMID of every row, read on first need (to find the rows of replaced PMIDs).
    pmids: Option<Vec<u64>>,
}

impl DenseWriter {
    /// An empty dense index in `dir` (created).
    pub fn create(dir: &Path, model: &ModelInfo, params: HnswParams) -> Result<Self, DenseError> {
        std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            meta: DenseMeta {
                model: model.clone(),
                rows: 0,
                params,
                chunks: Vec::new(),
                graphs: Vec::new(),
                dead: 0,
            },
            dead: Vec::new(),
            pmids: Some(Vec::new()),
        })
    }

    /// `dir` (created) starts as the dense index in `base`: chunk and graph files hard-linked,
    /// tombstones read. `model` must be the one `base` was built with.
    pub fn from_base(dir: &Path, base: &Path, model: &ModelInfo) -> Result<Self, DenseError> {
        let meta = read_meta(base)?;
        check_model(&meta, model)?;
        std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
        let mut names: Vec<String> = meta
            .chunks
            .iter()
            .flat_map(|c| [c.vectors(), c.docmap(), c.int8()])
            .collect();
        for g in &meta.graphs {
            names.extend(g.files());
        }
        for name in names {
            let (from, to) = (base.join(&name), dir.join(&name));
            std::fs::hard_link(&from, &to).map_err(io("linking", &to))?;
        }
        let dead = read_u64s(&base.join(TOMBSTONES))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            meta,
            dead,
            pmids: None,
        })
    }

    pub fn meta(&self) -> &DenseMeta {
        &self.meta
    }

    /// Live rows whose PMID is in `pmids`.
    pub fn live_rows_of(&mut self, pmids: &HashSet<u64>) -> Result<Vec<u64>, DenseError> {
        if pmids.is_empty() {
            return Ok(Vec::new());
        }
        if self.pmids.is_none() {
            let mut all = Vec::with_capacity(self.meta.rows);
            for c in &self.meta.chunks {
                all.extend(
                    read_docmap(&self.dir.join(c.docmap()))?
                        .iter()
                        .map(|r| r.pmid),
                );
            }
            self.pmids = Some(all);
        }
        let all = self.pmids.as_deref().unwrap_or_default();
        Ok((0..all.len() as u64)
            .filter(|&i| pmids.contains(&all[i as usize]) && self.dead.binary_search(&i).is_err())
            .collect())
    }

    /// Marks rows dead: they are never returned again.
    pub fn tombstone(&mut self, rows: &[u64]) {
        self.dead.extend_from_slice(rows);
        self.dead.sort_unstable();
        self.dead.dedup();
        self.meta.dead = self.dead.len();
    }

    /// Writes `rows` and their vectors as a new chunk (nothing when empty).
    pub fn append(&mut self, rows: &[RowRef], vectors: &[Vec<f32>]) -> Result<(), DenseError> {
        let dir = self.dir.clone();
        let invalid = |reason: String| DenseError::Invalid { dir, reason };
        if rows.len() != vectors.len() {
            return Err(invalid(format!(
                "{} rows but {} vectors",
                rows.len(),
                vectors.len()
            )));
        }
        if let Some(bad) = vectors.iter().position(|v| v.len() != self.meta.model.dim) {
            return Err(invalid(format!(
                "vector {bad} has {} dimensions, the model {}",
                vectors[bad].len(),
                self.meta.model.dim
            )));
        }
        if rows.is_empty() {
            return Ok(());
        }
        let chunk = Chunk {
            stem: format!("{:06}", self.meta.chunks.len() + 1),
            rows: rows.len(),
        };
        let vpath = self.dir.join(chunk.vectors());
        let mut w = BufWriter::new(File::create(&vpath).map_err(io("writing", &vpath))?);
        for v in vectors {
            for x in v {
                w.write_all(&x.to_le_bytes())
                    .map_err(io("writing", &vpath))?;
            }
        }
        finish(w, &vpath)?;
        let qpath = self.dir.join(chunk.int8());
        let mut w = BufWriter::new(File::create(&qpath).map_err(io("writing", &qpath))?);
        for v in vectors {
            let q: Vec<u8> = quantize(v).into_iter().map(|x| x as u8).collect();
            w.write_all(&q).map_err(io("writing", &qpath))?;
        }
        finish(w, &qpath)?;
        let mpath = self.dir.join(chunk.docmap());
        let mut w = BufWriter::new(File::create(&mpath).map_err(io("writing", &mpath))?);
        for r in rows {
            w.write_all(&r.pmid.to_le_bytes())
                .and_then(|_| w.write_all(&r.passage_no.to_le_bytes()))
                .map_err(io("writing", &mpath))?;
        }
        finish(w, &mpath)?;
        if let Some(p) = self.pmids.as_mut() {
            p.extend(rows.iter().map(|r| r.pmid));
        }
        self.meta.rows += rows.len();
        self.meta.chunks.push(chunk);
        Ok(())
    }

    /// Rows not yet in the graph.
    pub fn tail(&self) -> usize {
        self.meta.rows - self.meta.graph_rows()
    }

    /// Writes tombstones and `dense.json`; with `extend_graph`, first inserts the tail into the
    /// graph (loaded from the linked dump, or new) and dumps it under a new name.
    pub fn finish(mut self, extend_graph: bool) -> Result<DenseMeta, DenseError> {
        if extend_graph {
            self.extend_graph_to(self.meta.rows)?;
        }
        let tpath = self.dir.join(TOMBSTONES);
        let mut w = BufWriter::new(File::create(&tpath).map_err(io("writing", &tpath))?);
        for d in &self.dead {
            w.write_all(&d.to_le_bytes())
                .map_err(io("writing", &tpath))?;
        }
        finish(w, &tpath)?;
        let jpath = self.dir.join(META);
        let text = serde_json::to_vec_pretty(&self.meta).map_err(|e| DenseError::Invalid {
            dir: self.dir.clone(),
            reason: e.to_string(),
        })?;
        let mut f = File::create(&jpath).map_err(io("writing", &jpath))?;
        f.write_all(&text)
            .and_then(|_| f.sync_all())
            .map_err(io("writing", &jpath))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io("syncing", &self.dir))?;
        Ok(self.meta)
    }

    /// Takes rows up to `until` into the graph: the last segment is filled while it has
    /// room (its dump loaded and extended), then new segments of at most `segment_rows` are
    /// built, each from its own rows only.
    fn extend_graph_to(&mut self, until: usize) -> Result<(), DenseError> {
        let cap = self.meta.params.segment_rows.max(1);
        while self.meta.graph_rows() < until.min(self.meta.rows) {
            let from = self.meta.graph_rows();
            let open = self.meta.graphs.last().filter(|g| g.len() < cap).cloned();
            let start = open.as_ref().map_or(from, |g| g.start);
            let end = (start + cap).min(until).min(self.meta.rows);
            self.build_segment(open, start, from, end)?;
        }
        Ok(())
    }

    /// Inserts rows `from..end` into the segment starting at `start`: `open` (its dump
    /// loaded) or a new one.
    fn build_segment(
        &mut self,
        open: Option<GraphInfo>,
        start: usize,
        from: usize,
        end: usize,
    ) -> Result<(), DenseError> {
        let dir = self.dir.clone();
        let invalid = |reason: String| DenseError::Invalid {
            dir: dir.clone(),
            reason,
        };
        let dim = self.meta.model.dim;
        // The graph is built on the int8 copies `append` wrote.
        let rows = self.read_int8_rows(from, end)?;
        let data: Vec<(&[i8], usize)> = rows.chunks_exact(dim).zip(from - start..).collect();
        let params = self.meta.params;
        let (stem, links) = self.fresh_graph_names(start);
        let links_path = self.dir.join(&links);
        // Outlives the graph it loads (hnsw_rs borrows from its loader).
        let mut loader = open.as_ref().map(|g| HnswIo::new(&self.dir, &g.basename));
        let hnsw: Hnsw<i8, I8Cosine> = match (&open, loader.as_mut()) {
            (None, _) | (_, None) => Hnsw::new(
                params.m,
                (end - start).max(1),
                16,
                params.ef_construction,
                I8Cosine,
            ),
            (Some(g), Some(loader)) => loader
                .load_hnsw()
                .map_err(|e| invalid(format!("loading the HNSW graph {}: {e}", g.basename)))?,
        };
        hnsw.parallel_insert_slice(&data);
        drop(data);
        drop(rows);
        crate::links::write(&hnsw, end - start, &links_path)?;
        let basename = hnsw
            .file_dump(&self.dir, &stem)
            .map_err(|e| invalid(format!("writing the HNSW graph: {e}")))?;
        drop(hnsw);
        // The extended segment's old dump (linked from the last generation, or written
        // earlier in this one) is not part of this generation.
        if let Some(g) = &open {
            for name in g.files() {
                let p = self.dir.join(name);
                std::fs::remove_file(&p).map_err(io("removing", &p))?;
            }
            self.meta.graphs.pop();
        }
        let graph = GraphInfo {
            basename,
            links,
            start,
            end,
        };
        for name in graph.files() {
            let p = self.dir.join(name);
            File::open(&p)
                .and_then(|f| f.sync_all())
                .map_err(io("syncing", &p))?;
        }
        self.meta.graphs.push(graph);
        Ok(())
    }

    /// Names for a new segment's dump and links that no file in the folder has (segments
    /// adopted from another generation keep theirs).
    fn fresh_graph_names(&self, start: usize) -> (String, String) {
        let chunks = self.meta.chunks.len();
        (0..)
            .map(|n| {
                let tag = if n == 0 {
                    format!("{chunks:06}-{start:010}")
                } else {
                    format!("{chunks:06}-{start:010}-{n}")
                };
                (format!("graph-{tag}"), format!("links-{tag}.bin"))
            })
            .find(|(stem, links)| {
                !self.dir.join(links).exists()
                    && !self.dir.join(format!("{stem}.hnsw.graph")).exists()
                    && !self.dir.join(format!("{stem}.hnsw.data")).exists()
            })
            .unwrap_or_default()
    }

    /// The int8 copies of rows `from..end`, read from their chunks (only those bytes: a
    /// chunk may hold millions of rows).
    fn read_int8_rows(&self, from: usize, end: usize) -> Result<Vec<i8>, DenseError> {
        use std::io::{Seek, SeekFrom};
        let dim = self.meta.model.dim;
        let mut out = vec![0u8; (end - from) * dim];
        let mut filled = 0;
        let mut chunk_start = 0;
        for c in &self.meta.chunks {
            let chunk_end = chunk_start + c.rows;
            let (a, b) = (from.max(chunk_start), end.min(chunk_end));
            if a < b {
                let path = self.dir.join(c.int8());
                let mut f = File::open(&path).map_err(io("reading", &path))?;
                f.seek(SeekFrom::Start(((a - chunk_start) * dim) as u64))
                    .map_err(io("reading", &path))?;
                let bytes = (b - a) * dim;
                f.read_exact(&mut out[filled..filled + bytes])
                    .map_err(io("reading", &path))?;
                filled += bytes;
            }
            chunk_start = chunk_end;
        }
        if filled != out.len() {
            return Err(DenseError::Invalid {
                dir: self.dir.clone(),
                reason: format!("rows {from}..{end} are not all in the chunks"),
            });
        }
        Ok(out.into_iter().map(|b| b as i8).collect())
    }

    /// Makes `graph`, a segment of the dense index in `base`, this index's segment over the
    /// rows just appended (its last `graph.len()` rows, which must be the same vectors in
    /// the same order): its files are hard-linked, not rebuilt. Rows before them that no
    /// segment covers yet are first taken into the graph. What `medlit compact` keeps of
    /// a segment that lost no row.
    pub fn adopt_segment(&mut self, base: &Path, graph: &GraphInfo) -> Result<(), DenseError> {
        let start = self
            .meta
            .rows
            .checked_sub(graph.len())
            .ok_or_else(|| DenseError::Invalid {
                dir: self.dir.clone(),
                reason: format!(
                    "a segment of {} rows adopted into {} rows",
                    graph.len(),
                    self.meta.rows
                ),
            })?;
        self.extend_graph_to(start)?;
        if self.meta.graph_rows() != start {
            return Err(DenseError::Invalid {
                dir: self.dir.clone(),
                reason: format!(
                    "a segment adopted at row {start}, but the graph reaches row {}",
                    self.meta.graph_rows()
                ),
            });
        }
        for name in graph.files() {
            let (from, to) = (base.join(&name), self.dir.join(&name));
            if to.exists() {
                return Err(DenseError::Invalid {
                    dir: self.dir.clone(),
                    reason: format!("{name} already exists"),
                });
            }
            std::fs::hard_link(&from, &to).map_err(io("linking", &to))?;
        }
        self.meta.graphs.push(GraphInfo {
            start,
            end: self.meta.rows,
            ..graph.clone()
        });
        Ok(())
    }
}

fn finish(w: BufWriter<File>, path: &Path) -> Result<(), DenseError> {
    let f = w.into_inner().map_err(|e| DenseError::Io {
        context: "writing",
        path: path.to_path_buf(),
        source: e.into_error(),
    })?;
    f.sync_all().map_err(io("syncing", path))
}

fn read_meta(dir: &Path) -> Result<DenseMeta, DenseError> {
    let jpath = dir.join(META);
    let text = std::fs::read(&jpath).map_err(io("reading", &jpath))?;
    serde_json::from_slice(&text).map_err(|e| DenseError::Invalid {
        dir: dir.to_path_buf(),
        reason: format!("{META}: {e}"),
    })
}

fn check_model(meta: &DenseMeta, model: &ModelInfo) -> Result<(), DenseError> {
    if meta.model.id != model.id || meta.model.sha256 != model.sha256 {
        return Err(DenseError::ModelMismatch {
            index: meta.model.id.clone(),
            index_sha: meta.model.sha256.clone(),
            asked: model.id.clone(),
            asked_sha: model.sha256.clone(),
        });
    }
    Ok(())
}

/// An opened dense index. Nothing large is read: the f32 vectors, their int8 copies and the
/// graph's links are memory-mapped, so resident memory is the docmap, the tombstone bits, the
/// upper layers of the graph and the pages queries touch.
pub struct DenseIndex {
    meta: DenseMeta,
    /// One map per chunk (f32 and int8), and the first row of each chunk.
    vectors: Vec<memmap2::Mmap>,
    int8: Vec<memmap2::Mmap>,
    starts: Vec<usize>,
    rows: Vec<RowRef>,
    /// One bit per row: set when tombstoned.
    dead: Vec<u64>,
    /// The graph segments: first row, links.
    graphs: Vec<(usize, crate::links::Links)>,
}

impl DenseIndex {
    /// Opens the dense index in `dir`; `model` must be the one it was built with.
    pub fn open(dir: &Path, model: &ModelInfo) -> Result<Self, DenseError> {
        let invalid = |reason: String| DenseError::Invalid {
            dir: dir.to_path_buf(),
            reason,
        };
        let meta = read_meta(dir)?;
        check_model(&meta, model)?;
        let dim = meta.model.dim;
        let mut vectors = Vec::with_capacity(meta.chunks.len());
        let mut int8 = Vec::with_capacity(meta.chunks.len());
        let mut starts = Vec::with_capacity(meta.chunks.len());
        let mut rows = Vec::with_capacity(meta.rows);
        for c in &meta.chunks {
            let v = map_f32s(&dir.join(c.vectors()))?;
            let q = map_bytes(&dir.join(c.int8()))?;
            let m = read_docmap(&dir.join(c.docmap()))?;
            if v.len() != c.rows * dim * 4 || q.len() != c.rows * dim || m.len() != c.rows {
                return Err(invalid(format!(
                    "chunk {} holds {} bytes of vectors and {} docmap rows, expected {} rows × {dim} f32",
                    c.stem,
                    v.len(),
                    m.len(),
                    c.rows
                )));
            }
            starts.push(rows.len());
            vectors.push(v);
            int8.push(q);
            rows.extend_from_slice(&m);
        }
        if rows.len() != meta.rows {
            return Err(invalid(format!(
                "the chunks hold {} rows, expected {}",
                rows.len(),
                meta.rows
            )));
        }
        let mut dead = vec![0u64; meta.rows.div_ceil(64)];
        let tombstones = read_u64s(&dir.join(TOMBSTONES))?;
        if tombstones.len() != meta.dead {
            return Err(invalid(format!(
                "{TOMBSTONES} lists {} rows, expected {}",
                tombstones.len(),
                meta.dead
            )));
        }
        for t in tombstones {
            let t = usize::try_from(t).unwrap_or(usize::MAX);
            if t >= meta.rows {
                return Err(invalid(format!(
                    "{TOMBSTONES} names row {t} of {}",
                    meta.rows
                )));
            }
            dead[t / 64] |= 1 << (t % 64);
        }
        let mut graphs = Vec::with_capacity(meta.graphs.len());
        let mut next = 0;
        for g in &meta.graphs {
            if g.start != next || g.end <= g.start || g.end > meta.rows {
                return Err(invalid(format!(
                    "graph segment {} covers rows {}..{}: segments must follow each other from row 0 within {} rows",
                    g.basename, g.start, g.end, meta.rows
                )));
            }
            let links = crate::links::Links::open(&dir.join(&g.links))?;
            if links.rows() != g.len() {
                return Err(invalid(format!(
                    "the links of graph segment {} cover {} rows, dense.json says {}",
                    g.basename,
                    links.rows(),
                    g.len()
                )));
            }
            graphs.push((g.start, links));
            next = g.end;
        }
        Ok(Self {
            meta,
            vectors,
            int8,
            starts,
            rows,
            dead,
            graphs,
        })
    }

    pub fn meta(&self) -> &DenseMeta {
        &self.meta
    }

    /// Points in the HNSW graph segments (`meta().graph_rows()` in a whole index).
    pub fn graph_points(&self) -> usize {
        self.graphs.iter().map(|(_, g)| g.rows()).sum()
    }

    /// Graph segments.
    pub fn segments(&self) -> usize {
        self.graphs.len()
    }

    pub fn row(&self, id: usize) -> Option<RowRef> {
        self.rows.get(id).copied()
    }

    /// Whether row `id` was tombstoned (its PMID replaced or deleted).
    pub fn is_dead(&self, id: usize) -> bool {
        self.dead
            .get(id / 64)
            .is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    /// The chunk holding row `id`, and the byte range of its vector there for `width`-byte
    /// components.
    fn locate(&self, id: usize, width: usize) -> (usize, std::ops::Range<usize>) {
        let d = self.meta.model.dim * width;
        let c = self.starts.partition_point(|&s| s <= id).saturating_sub(1);
        let local = id - self.starts[c];
        (c, local * d..(local + 1) * d)
    }

    /// The int8 copy of row `id` (see [`quantize`]).
    fn vector_i8(&self, id: usize) -> &[i8] {
        let (c, range) = self.locate(id, 1);
        let bytes = self.int8[c].get(range).unwrap_or(&[]);
        // Safety: i8 and u8 have the same size and alignment, and every bit pattern is valid.
        unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<i8>(), bytes.len()) }
    }

    /// The vector of row `id` (unit length).
    pub fn vector(&self, id: usize) -> &[f32] {
        let (c, range) = self.locate(id, 4);
        self.vectors[c].get(range).map(as_f32s).unwrap_or_default()
    }

    /// Approximate nearest live rows to `query`: (row id, cosine), best first, re-scored
    /// exactly. Rows past the graph are scored exactly.
    pub fn search(&self, query: &[f32], k: usize, ef: Option<usize>) -> Vec<(usize, f32)> {
        self.search_where(query, k, ef, |_| true)
    }

    /// [`search`](Self::search) among the rows `keep` accepts: the graph is walked through
    /// every row, but only kept rows are collected (a filter applied inside the search, so
    /// `k` kept rows come back when the graph reaches them; a caller widens `ef` for a
    /// selective filter, or scores the few kept rows with [`exact_rows`](Self::exact_rows)).
    pub fn search_where(
        &self,
        query: &[f32],
        k: usize,
        ef: Option<usize>,
        keep: impl Fn(usize) -> bool + Sync,
    ) -> Vec<(usize, f32)> {
        let ef = ef.unwrap_or(self.meta.params.ef_search).max(k);
        let graph_rows = self.meta.graph_rows();
        // The graph ranks by int8 distances: take more candidates than asked and let the
        // exact f32 re-scoring choose. Each segment may hold all k of the best.
        let wanted = (2 * k).max(k + 10).min(ef);
        let q = QueryCosine::new(quantize(query));
        let segment = |(start, g): &(usize, crate::links::Links)| -> Vec<(usize, f32)> {
            g.search(
                wanted,
                ef,
                |local| q.distance(self.vector_i8(start + local as usize)),
                |local| {
                    let row = start + local as usize;
                    self.is_dead(row) || !keep(row)
                },
            )
            .into_iter()
            .map(|(local, _)| start + local as usize)
            .filter(|&id| id < graph_rows && !self.is_dead(id))
            .map(|id| (id, dot(query, self.vector(id))))
            .collect()
        };
        let mut out: Vec<(usize, f32)> = match self.graphs.as_slice() {
            [] => Vec::new(),
            [only] => segment(only),
            // Segments are claimed one at a time from a shared counter by the calling thread
            // and by as many pool tasks as there are other segments (at most one a worker).
            // The caller never parks while work is left: a `par_iter` from outside the pool
            // parked it, and a worker slow to wake then doubled the tail (README, `bench
            // graph`); a task that wakes after the caller took its segment finds none left.
            graphs => {
                let next = AtomicUsize::new(0);
                let parts: Vec<OnceLock<Vec<(usize, f32)>>> =
                    graphs.iter().map(|_| OnceLock::new()).collect();
                let walk = || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(g) = graphs.get(i) else { break };
                    let _ = parts[i].set(segment(g));
                };
                let helpers = (graphs.len() - 1).min(rayon::current_num_threads());
                rayon::in_place_scope(|scope| {
                    for _ in 0..helpers {
                        scope.spawn(|_| walk());
                    }
                    walk();
                });
                parts
                    .into_iter()
                    .filter_map(OnceLock::into_inner)
                    .flatten()
                    .collect()
            }
        };
        out.extend(
            (graph_rows..self.meta.rows)
                .filter(|&i| !self.is_dead(i) && keep(i))
                .map(|i| (i, dot(query, self.vector(i)))),
        );
        top_k(out, k)
    }

    /// The `k` nearest of the given rows, scored exactly (dead rows skipped).
    pub fn exact_rows(&self, query: &[f32], rows: &[usize], k: usize) -> Vec<(usize, f32)> {
        let all: Vec<(usize, f32)> = rows
            .iter()
            .copied()
            .filter(|&i| i < self.meta.rows && !self.is_dead(i))
            .map(|i| (i, dot(query, self.vector(i))))
            .collect();
        top_k(all, k)
    }

    /// Rows in the index (live and dead).
    pub fn rows(&self) -> usize {
        self.meta.rows
    }

    /// Exact nearest live rows by brute force (the reference for recall, and for small indexes).
    pub fn exact(&self, query: &[f32], k: usize) -> Vec<(usize, f32)> {
        let all: Vec<(usize, f32)> = (0..self.meta.rows)
            .filter(|&i| !self.is_dead(i))
            .map(|i| (i, dot(query, self.vector(i))))
            .collect();
        top_k(all, k)
    }
}

fn top_k(mut all: Vec<(usize, f32)>, k: usize) -> Vec<(usize, f32)> {
    let k = k.min(all.len());
    if k == 0 {
        return Vec::new();
    }
    all.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
    all.truncate(k);
    all.sort_by(|a, b| b.1.total_cmp(&a.1));
    all
}

fn read_all(path: &Path) -> Result<Vec<u8>, DenseError> {
    let mut buf = Vec::new();
    BufReader::new(File::open(path).map_err(io("reading", path))?)
        .read_to_end(&mut buf)
        .map_err(io("reading", path))?;
    Ok(buf)
}

fn map_bytes(path: &Path) -> Result<memmap2::Mmap, DenseError> {
    let f = File::open(path).map_err(io("reading", path))?;
    // Safety: index files are never modified in place.
    unsafe { memmap2::Mmap::map(&f) }.map_err(io("mapping", path))
}

/// Maps a file of little-endian f32s (checked to be whole floats and aligned).
fn map_f32s(path: &Path) -> Result<memmap2::Mmap, DenseError> {
    let f = File::open(path).map_err(io("reading", path))?;
    // Safety: index files are never modified in place (a new generation writes new files),
    // so the mapping cannot change under us while the index is open.
    let map = unsafe { memmap2::Mmap::map(&f) }.map_err(io("mapping", path))?;
    if map.len() % 4 != 0 || map.as_ptr().align_offset(4) != 0 {
        return Err(DenseError::Invalid {
            dir: path.to_path_buf(),
            reason: format!("{} bytes is not a whole number of f32", map.len()),
        });
    }
    Ok(map)
}

#[cfg(target_endian = "little")]
fn as_f32s(bytes: &[u8]) -> &[f32] {
    // Safety: every bit pattern is an f32; length and alignment are checked by `map_f32s`;
    // the file is little-endian, as this target.
    let (pre, mid, _) = unsafe { bytes.align_to::<f32>() };
    if pre.is_empty() {
        mid
    } else {
        &[]
    }
}

fn read_u64s(path: &Path) -> Result<Vec<u64>, DenseError> {
    let bytes = read_all(path)?;
    Ok(bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
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

    #[test]
    fn the_query_distance_equals_the_graph_distance() {
        let v = |seed: i32, n: usize| -> Vec<i8> {
            (0..n)
                .map(|i| ((i as i32 * 37 + seed * 11) % 255 - 127) as i8)
                .collect()
        };
        for n in [384usize, 385, 7] {
            let (a, b) = (v(1, n), v(2, n));
            let q = QueryCosine::new(a.clone());
            assert_eq!(q.distance(&b), I8Cosine.eval(&a, &b), "n {n}");
            let plain: i32 = a
                .iter()
                .zip(&b)
                .map(|(&x, &y)| i32::from(x) * i32::from(y))
                .sum();
            assert_eq!(dot_i8(&a, &b), plain, "n {n}");
        }
        // Extremes: 384 × 127 × 127 does not overflow the i32 lanes.
        let max = vec![127i8; 384];
        assert_eq!(dot_i8(&max, &max), 384 * 127 * 127);
        assert_eq!(QueryCosine::new(vec![0; 4]).distance(&[1, 2, 3, 4]), 1.0);
    }

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

    /// A filter applied inside the graph walk: every row returned passes it, and the walk
    /// finds what exact scoring of the kept rows finds.
    #[test]
    fn a_filtered_search_returns_only_kept_rows_and_finds_the_exact_ones() {
        let dir = tempfile::tempdir().unwrap();
        let n = 3000;
        let vs = vectors(n, 24, 11);
        let rows: Vec<RowRef> = (0..n)
            .map(|i| RowRef {
                pmid: 1 + i as u64,
                passage_no: 0,
            })
            .collect();
        let m = model(24);
        write(dir.path(), &m, &rows, &vs, HnswParams::default()).unwrap();
        let idx = DenseIndex::open(dir.path(), &m).unwrap();
        // One row in five kept.
        let keep = |i: usize| i.is_multiple_of(5);
        let kept: Vec<usize> = (0..n).filter(|&i| keep(i)).collect();
        let (mut found, mut total) = (0, 0);
        for q in vectors(20, 24, 99) {
            let got = idx.search_where(&q, 10, Some(96 * 5), keep);
            assert_eq!(got.len(), 10);
            assert!(got.iter().all(|&(i, _)| keep(i)), "{got:?}");
            let want = idx.exact_rows(&q, &kept, 10);
            total += want.len();
            found += want
                .iter()
                .filter(|w| got.iter().any(|g| g.0 == w.0))
                .count();
        }
        let recall = found as f64 / total as f64;
        assert!(recall >= 0.95, "filtered recall@10 {recall}");
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

    fn rows(pmids: std::ops::Range<u64>) -> Vec<RowRef> {
        pmids
            .map(|pmid| RowRef {
                pmid,
                passage_no: 0,
            })
            .collect()
    }

    /// A generation linked from the last: its tail is searched exactly, its graph extended on
    /// request, tombstoned rows never come back, and the last generation's files are untouched.
    #[test]
    fn generations_extend_the_graph_and_hide_tombstones() {
        let root = tempfile::tempdir().unwrap();
        let (g1, g2, g3) = (
            root.path().join("g1"),
            root.path().join("g2"),
            root.path().join("g3"),
        );
        let m = model(16);
        let vs = vectors(600, 16, 11);
        write(&g1, &m, &rows(0..300), &vs[..300], HnswParams::default()).unwrap();
        let g1_files: Vec<_> = std::fs::read_dir(&g1)
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                (p.clone(), std::fs::read(&p).unwrap())
            })
            .collect();

        // g2: 200 more rows in the tail, row 7 (PMID 7) tombstoned.
        let mut w = DenseWriter::from_base(&g2, &g1, &m).unwrap();
        let seven = w.live_rows_of(&HashSet::from([7])).unwrap();
        assert_eq!(seven, vec![7]);
        w.tombstone(&seven);
        w.append(&rows(300..500), &vs[300..500]).unwrap();
        assert_eq!(w.tail(), 200);
        let meta = w.finish(false).unwrap();
        assert_eq!((meta.rows, meta.dead, meta.graph_rows()), (500, 1, 300));
        let idx = DenseIndex::open(&g2, &m).unwrap();
        assert_eq!(
            idx.search(&vs[420], 3, None)[0].0,
            420,
            "tail rows are found"
        );
        assert_ne!(
            idx.search(&vs[7], 3, None)[0].0,
            7,
            "a tombstone is never returned"
        );
        assert!(idx.exact(&vs[7], 600).iter().all(|h| h.0 != 7));
        assert_eq!(idx.exact(&vs[7], 600).len(), 499);

        // g3: the graph takes in the tail.
        let mut w = DenseWriter::from_base(&g3, &g2, &m).unwrap();
        assert!(w.live_rows_of(&HashSet::from([7])).unwrap().is_empty());
        w.append(&rows(500..600), &vs[500..600]).unwrap();
        let meta = w.finish(true).unwrap();
        assert_eq!(meta.graph_rows(), 600);
        let idx = DenseIndex::open(&g3, &m).unwrap();
        assert_eq!(idx.graph_points(), 600);
        for probe in [3, 333, 450, 599] {
            assert_eq!(idx.search(&vs[probe], 1, None)[0].0, probe);
        }
        assert!(idx.search(&vs[7], 600, Some(600)).iter().all(|h| h.0 != 7));

        // Nothing of g1 changed (its files are shared by hard links).
        for (p, bytes) in g1_files {
            assert_eq!(std::fs::read(&p).unwrap(), bytes, "{}", p.display());
        }
        DenseIndex::open(&g1, &m).unwrap();
    }

    fn segmented(segment_rows: usize) -> HnswParams {
        HnswParams {
            segment_rows,
            ..HnswParams::default()
        }
    }

    fn recall_at_10(idx: &DenseIndex, queries: &[Vec<f32>]) -> f64 {
        let (mut found, mut total) = (0, 0);
        for q in queries {
            let want = idx.exact(q, 10);
            let got = idx.search(q, 10, None);
            total += want.len();
            found += want
                .iter()
                .filter(|w| got.iter().any(|g| g.0 == w.0))
                .count();
        }
        found as f64 / total as f64
    }

    /// Segments of bounded size, consecutive from row 0: each built from its own rows, the
    /// last filled before a new one starts, and the merged search as good as one graph's.
    #[test]
    fn the_graph_is_built_in_bounded_segments_and_searched_across_them() {
        let root = tempfile::tempdir().unwrap();
        let m = model(24);
        let vs = vectors(1000, 24, 5);
        let (g1, g2) = (root.path().join("g1"), root.path().join("g2"));
        let meta = write(&g1, &m, &rows(0..750), &vs[..750], segmented(200)).unwrap();
        let spans: Vec<_> = meta.graphs.iter().map(|g| (g.start, g.end)).collect();
        assert_eq!(spans, [(0, 200), (200, 400), (400, 600), (600, 750)]);
        let idx = DenseIndex::open(&g1, &m).unwrap();
        assert_eq!((idx.segments(), idx.graph_points()), (4, 750));
        for probe in [0, 199, 200, 401, 749] {
            assert_eq!(idx.search(&vs[probe], 1, None)[0].0, probe, "row {probe}");
        }
        let queries = vectors(40, 24, 77);
        let one = tempfile::tempdir().unwrap();
        write(one.path(), &m, &rows(0..750), &vs[..750], segmented(10_000)).unwrap();
        let single = DenseIndex::open(one.path(), &m).unwrap();
        assert_eq!(single.segments(), 1);
        let (seg, whole) = (
            recall_at_10(&idx, &queries),
            recall_at_10(&single, &queries),
        );
        assert!(
            seg >= 0.95 && seg >= whole - 0.02,
            "segments {seg}, one graph {whole}"
        );

        // The next generation fills the last segment (150 → 200 rows), then starts another.
        let mut w = DenseWriter::from_base(&g2, &g1, &m).unwrap();
        w.append(&rows(750..1000), &vs[750..1000]).unwrap();
        let meta = w.finish(true).unwrap();
        let spans: Vec<_> = meta.graphs.iter().map(|g| (g.start, g.end)).collect();
        assert_eq!(spans[3..], [(600, 800), (800, 1000)]);
        let idx = DenseIndex::open(&g2, &m).unwrap();
        for probe in [3, 650, 799, 800, 999] {
            assert_eq!(idx.search(&vs[probe], 1, None)[0].0, probe, "row {probe}");
        }
        // The last generation still opens: its own last segment's files are untouched.
        let old = DenseIndex::open(&g1, &m).unwrap();
        assert_eq!(old.search(&vs[700], 1, None)[0].0, 700);
    }

    /// A segment adopted by a new index over the same rows at another start searches as it
    /// did; rows before it that no segment covered are built into segments first.
    #[test]
    fn an_adopted_segment_keeps_its_graph_at_a_new_start() {
        let root = tempfile::tempdir().unwrap();
        let m = model(16);
        let vs = vectors(500, 16, 9);
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        let meta = write(&a, &m, &rows(0..500), &vs, segmented(250)).unwrap();
        let second = meta.graphs[1].clone();
        // b: 100 rows of the first segment, then the second segment whole.
        let mut w = DenseWriter::create(&b, &m, segmented(250)).unwrap();
        w.append(&rows(0..100), &vs[..100]).unwrap();
        w.append(&rows(250..500), &vs[250..500]).unwrap();
        w.adopt_segment(&a, &second).unwrap();
        let meta = w.finish(true).unwrap();
        let spans: Vec<_> = meta.graphs.iter().map(|g| (g.start, g.end)).collect();
        assert_eq!(spans, [(0, 100), (100, 350)]);
        assert_eq!(meta.graphs[1].links, second.links);
        let idx = DenseIndex::open(&b, &m).unwrap();
        for (row, original) in [(0, 0), (99, 99), (100, 250), (349, 499)] {
            assert_eq!(idx.search(&vs[original], 1, None)[0].0, row);
        }
        // Adopting a segment larger than the rows there is refused.
        let c = root.path().join("c");
        let mut w = DenseWriter::create(&c, &m, segmented(250)).unwrap();
        w.append(&rows(0..10), &vs[..10]).unwrap();
        assert!(w.adopt_segment(&a, &second).is_err());
    }

    /// `dense.json` of an index from before segments: one `graph` from row 0.
    #[test]
    fn an_index_from_before_segments_reads_as_one_segment() {
        let dir = tempfile::tempdir().unwrap();
        let m = model(16);
        let vs = vectors(300, 16, 3);
        write(dir.path(), &m, &rows(0..300), &vs, HnswParams::default()).unwrap();
        let path = dir.path().join(META);
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let g = v["graphs"][0].clone();
        let obj = v.as_object_mut().unwrap();
        obj.remove("graphs");
        obj.insert(
            "graph".into(),
            serde_json::json!({"basename": g["basename"], "links": g["links"], "rows": 300}),
        );
        obj["params"]
            .as_object_mut()
            .unwrap()
            .remove("segment_rows");
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        let idx = DenseIndex::open(dir.path(), &m).unwrap();
        assert_eq!((idx.segments(), idx.graph_points()), (1, 300));
        assert_eq!(idx.meta().params.segment_rows, DEFAULT_SEGMENT_ROWS);
        assert_eq!(idx.search(&vs[123], 1, None)[0].0, 123);
    }

    /// `medlit compact`'s dense rewrite: full segments that lost no row keep their graph
    /// files; a segment with tombstones and a small last one are rebuilt from their live
    /// rows, pooled with their neighbours'.
    #[test]
    fn compaction_keeps_clean_segments_and_rebuilds_the_rest() {
        let root = tempfile::tempdir().unwrap();
        let m = model(16);
        let vs = vectors(430, 16, 21);
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        let mut w = DenseWriter::create(&a, &m, segmented(100)).unwrap();
        w.append(&rows(0..430), &vs).unwrap();
        w.tombstone(&[120, 150, 199]);
        let before = w.finish(true).unwrap();
        let spans = |meta: &DenseMeta| -> Vec<(usize, usize)> {
            meta.graphs.iter().map(|g| (g.start, g.end)).collect()
        };
        assert_eq!(
            spans(&before),
            [(0, 100), (100, 200), (200, 300), (300, 400), (400, 430)]
        );
        let old = DenseIndex::open(&a, &m).unwrap();
        let after = crate::compact::rewrite_dense(&old, &a, &b).unwrap();
        assert_eq!(
            spans(&after),
            [(0, 100), (100, 197), (197, 297), (297, 397), (397, 427)]
        );
        let links = |meta: &DenseMeta, i: usize| meta.graphs[i].links.clone();
        for (new, old) in [(0, 0), (2, 2), (3, 3)] {
            assert_eq!(
                links(&after, new),
                links(&before, old),
                "kept segment {old}"
            );
        }
        assert_ne!(links(&after, 1), links(&before, 1));
        assert_eq!((after.rows, after.dead), (427, 0));
        let idx = DenseIndex::open(&b, &m).unwrap();
        // Row r of the old index is row r − (tombstones before it) of the new one.
        for (old_row, new_row) in [(5, 5), (121, 120), (200, 197), (350, 347), (429, 426)] {
            assert_eq!(idx.search(&vs[old_row], 1, None)[0].0, new_row);
            assert_eq!(idx.row(new_row).unwrap().pmid, old_row as u64);
        }
        assert!(idx.exact(&vs[150], 427).iter().all(|h| h.1 < 0.9999));
        drop(old);
        DenseIndex::open(&a, &m).unwrap();
    }

    /// A `dense.json` whose segments leave a gap, or whose links disagree with it, is refused
    /// with the segment named; nothing is opened half.
    #[test]
    fn segments_that_do_not_follow_each_other_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let m = model(16);
        let vs = vectors(300, 16, 4);
        write(dir.path(), &m, &rows(0..300), &vs, segmented(100)).unwrap();
        let path = dir.path().join(META);
        let good = std::fs::read(&path).unwrap();
        for (field, value, expected) in [
            ("start", 150, "segments must follow each other"),
            // Segment 1 then holds 150 rows by dense.json, 100 by its links.
            ("end", 250, "cover 100 rows"),
        ] {
            let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
            v["graphs"][1][field] = serde_json::json!(value);
            std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
            let Err(err) = DenseIndex::open(dir.path(), &m) else {
                panic!("{field} {value} must be refused")
            };
            let text = err.to_string();
            assert!(text.contains(expected) && text.contains("graph-"), "{text}");
        }
        let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
        v["graphs"][2]["end"] = serde_json::json!(290);
        v["rows"] = serde_json::json!(300);
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        let Err(err) = DenseIndex::open(dir.path(), &m) else {
            panic!("links of 100 rows under a segment of 90 must be refused")
        };
        assert!(err.to_string().contains("cover 100 rows"), "{err}");
    }
}
