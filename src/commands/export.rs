//! `medlit export qdrant`: the index as Qdrant bulk-upsert bodies, for a deployment that has
//! outgrown one machine (docs/scaling.md). One point per live passage (per article without a
//! dense half), with a payload (pmid, passage_no, title, journal, year, text); the format
//! itself (point ids, sparse term ids and weights, the collection body) is the indexer's
//! `qdrant` module, next to the analyser whose terms it hashes. A PMID's points are found,
//! replaced and deleted by the `pmid` payload field (indexed by `collection.json`).
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::cli::setup;
use medlit_indexer::{passages, qdrant};
use serde::Serialize;

use super::print_json;
use crate::cli::ExportQdrantArgs;
use crate::retrieve::bm25::Bm25Searcher;
use crate::retrieve::dense::DenseSearcher;

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
            let candidates = setup::encoders(
                &setup::manifest(&crate::cli::ManifestArg::default())?,
                2,
                d.model.max_tokens,
            );
            Some(DenseSearcher::open(index, &candidates).context("opening the dense index")?)
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
        &qdrant::collection_body(dim, manifest.dense.as_ref().map(|d| d.params.m)),
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
                "id": qdrant::point_id(u.pmid, u.no),
                "vector": qdrant::vectors(vector, &u.terms, avg),
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
