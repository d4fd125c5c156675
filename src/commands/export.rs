//! `medlit export qdrant`: the index as Qdrant bulk-upsert bodies, for a deployment that has
//! outgrown one machine (docs/scaling.md). One point per live passage (per article without a
//! dense half): a named dense vector `dense` (the stored MiniLM vector), a named sparse vector
//! `bm25` (BM25 term weights of the passage, for Qdrant's `idf` modifier), and a payload
//! (pmid, passage_no, title, journal, year, text).
//!
//! Point ids: `pmid << 16 | passage_no`, so a PMID's points are found, replaced and deleted by
//! the `pmid` payload field (indexed by `collection.json`). Sparse indices: FNV-1a (32-bit)
//! of each term as medlit's analyser produces it (lower-cased, stop words removed, Porter
//! stemmed); queries must hash their terms the same way.
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::cli::setup;
use medlit_indexer::passages;
use serde::Serialize;

use super::print_json;
use crate::cli::ExportQdrantArgs;
use crate::retrieve::bm25::Bm25Searcher;
use crate::retrieve::dense::DenseSearcher;

/// BM25 term-frequency saturation, as tantivy scores (Qdrant's `idf` modifier supplies IDF).
const K1: f32 = 1.2;
const B: f32 = 0.75;

#[derive(Debug, Serialize)]
pub struct ExportReport {
    pub out: String,
    pub points: u64,
    pub files: usize,
    pub articles: u64,
    /// Passages of live articles whose dense row was not found (none in a verified index).
    pub missing_rows: u64,
    pub dense: bool,
    pub avg_terms: f32,
}

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

pub fn run(args: &ExportQdrantArgs) -> Result<()> {
    let dir = setup::index_dir(&args.index)?;
    let report = export(&dir, &args.out, args.batch.max(1))?;
    if args.json {
        return print_json(&report);
    }
    println!(
        "{} points ({} articles{}) in {} files in {}",
        report.points,
        report.articles,
        if report.dense {
            ", dense + sparse"
        } else {
            ", sparse only"
        },
        report.files,
        report.out
    );
    println!(
        "create the collection with collection.json, then PUT each points-*.json to /collections/{}/points (see docs/scaling.md)",
        args.collection
    );
    Ok(())
}

pub fn export(index: &Path, out: &Path, batch: usize) -> Result<ExportReport> {
    if out.exists()
        && std::fs::read_dir(out)
            .with_context(|| format!("reading {}", out.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} is not empty: export into a new folder, so that batches of two exports never mix",
            out.display()
        );
    }
    let bm25 = Bm25Searcher::open(index)
        .with_context(|| format!("opening the index in {}", index.display()))?;
    let manifest = bm25.manifest().clone();
    let dense = match &manifest.dense {
        None => None,
        Some(d) => {
            let cfg = setup::onnx_config(
                &setup::manifest(&crate::cli::ManifestArg::default())?,
                2,
                1,
                1,
                d.model.max_tokens,
            )?;
            Some(DenseSearcher::open(index, cfg).context("opening the dense index")?)
        }
    };
    let rows: HashMap<(u64, u32), usize> = match &dense {
        None => HashMap::new(),
        Some(d) => {
            let ix = d.index();
            (0..ix.meta().rows)
                .filter(|&i| !ix.is_dead(i))
                .filter_map(|i| ix.row(i).map(|r| ((r.pmid, r.passage_no), i)))
                .collect()
        }
    };
    let dim = dense.as_ref().map(|d| d.index().meta().model.dim);
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    write_json(
        &out.join("collection.json"),
        &collection_body(dim, manifest.dense.as_ref().map(|d| d.params.m)),
    )?;
    // Bodies of `PUT /collections/{name}/index`: replace and delete by PMID, filter by year.
    write_json(
        &out.join("payload_indexes.json"),
        &serde_json::json!([
            { "field_name": "pmid", "field_schema": "integer" },
            { "field_name": "year", "field_schema": "integer" },
        ]),
    )?;

    let mut w = BatchWriter {
        out: out.to_path_buf(),
        batch,
        points: Vec::new(),
        files: 0,
        total: 0,
    };
    let (mut articles, mut missing_rows, mut terms_sum) = (0u64, 0u64, 0u64);
    // Average passage length for BM25's length normalisation: from the first 10,000 units.
    let mut lengths = Vec::new();
    let mut pending: Vec<Unit> = Vec::new();
    let flush_pending = |pending: &mut Vec<Unit>, w: &mut BatchWriter, avg: f32| -> Result<u64> {
        let mut missing = 0;
        for u in pending.drain(..) {
            let vector = match &dense {
                None => None,
                Some(d) => match rows.get(&(u.pmid, u.no)) {
                    Some(&row) => Some(d.index().vector(row).to_vec()),
                    None => {
                        missing += 1;
                        continue;
                    }
                },
            };
            w.push(serde_json::json!({
                "id": point_id(u.pmid, u.no),
                "vector": vectors(vector, &u.terms, avg),
                "payload": {
                    "pmid": u.pmid,
                    "passage_no": u.no,
                    "title": u.title,
                    "journal": u.journal,
                    "year": u.year,
                    "text": u.text,
                },
            }))?;
        }
        Ok(missing)
    };
    let mut avg: Option<f32> = None;
    bm25.for_each_article(|a| {
        let Ok(pmid) = a.pmid.parse::<u64>() else {
            return Ok(());
        };
        articles += 1;
        let units: Vec<(u32, String)> = match &dense {
            None => vec![(0, format!("{}\n{}", a.title, a.abstract_text))],
            Some(d) => {
                passages::of_abstract(pmid, &a.title, &a.abstract_text, d.max_tokens(), &mut |t| {
                    d.count_tokens(t)
                })
                .into_iter()
                .map(|p| (p.passage_no, p.embedding_text()))
                .collect()
            }
        };
        for (no, text) in units {
            let terms = bm25.analyse(&text);
            terms_sum += terms.len() as u64;
            if avg.is_none() {
                lengths.push(terms.len());
            }
            pending.push(Unit {
                pmid,
                no,
                title: a.title.clone(),
                journal: a.journal.clone(),
                year: a.year,
                text,
                terms,
            });
        }
        if avg.is_none() && lengths.len() >= 10_000 {
            avg = Some(mean(&lengths));
        }
        if let Some(avg) = avg {
            missing_rows +=
                flush_pending(&mut pending, &mut w, avg).map_err(std::io::Error::other)?;
        }
        Ok(())
    })?;
    let a = avg.unwrap_or_else(|| mean(&lengths));
    missing_rows += flush_pending(&mut pending, &mut w, a)?;
    w.finish()?;
    let report = ExportReport {
        out: out.display().to_string(),
        points: w.total,
        files: w.files,
        articles,
        missing_rows,
        dense: dense.is_some(),
        avg_terms: terms_sum as f32 / w.total.max(1) as f32,
    };
    write_json(&out.join("export.json"), &serde_json::to_value(&report)?)?;
    Ok(report)
}

/// A passage (or an article without a dense half) on its way to a batch.
struct Unit {
    pmid: u64,
    no: u32,
    title: String,
    journal: String,
    year: Option<i64>,
    text: String,
    terms: Vec<String>,
}

fn mean(v: &[usize]) -> f32 {
    (v.iter().sum::<usize>() as f32 / v.len().max(1) as f32).max(1.0)
}

/// The named vectors of a point: `dense` when there is one, and the `bm25` sparse vector.
fn vectors(dense: Option<Vec<f32>>, terms: &[String], avg_len: f32) -> serde_json::Value {
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
fn collection_body(dim: Option<usize>, m: Option<usize>) -> serde_json::Value {
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

struct BatchWriter {
    out: PathBuf,
    batch: usize,
    points: Vec<serde_json::Value>,
    files: usize,
    total: u64,
}

impl BatchWriter {
    fn push(&mut self, p: serde_json::Value) -> Result<()> {
        self.points.push(p);
        self.total += 1;
        if self.points.len() >= self.batch {
            self.write()?;
        }
        Ok(())
    }

    fn write(&mut self) -> Result<()> {
        if self.points.is_empty() {
            return Ok(());
        }
        self.files += 1;
        let path = self.out.join(format!("points-{:06}.json", self.files));
        let body = serde_json::json!({ "points": std::mem::take(&mut self.points) });
        write_json(&path, &body)
    }

    fn finish(&mut self) -> Result<()> {
        self.write()
    }
}

/// Written whole or not at all.
fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    super::write_atomically(path, &serde_json::to_vec(v)?)
}
