//! `medlit index`: parse the input files in parallel, apply them in order to a new BM25
//! generation, commit, and switch the manifest.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rayon::prelude::*;
use tantivy::{IndexWriter, TantivyDocument, Term};

use crate::article::{Article, Rejected};
use crate::bm25;
use crate::dense::{self, HnswParams, RowRef};
use crate::embed::{EmbedError, Embedder, OnnxConfig, OnnxEmbedder};
use crate::layout::DenseSummary;
use crate::layout::{Counts, IndexDir, IndexManifest, InputRecord, FORMAT_VERSION};
use crate::passages;
use crate::pubmed::{parse_file, ParsedFile, Record};
use crate::IndexError;

/// How to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Input files, applied in this order.
    pub inputs: Vec<PathBuf>,
    pub index_dir: PathBuf,
    /// tantivy's indexing memory budget, in MiB.
    pub writer_memory_mib: usize,
    /// Also embed passages and build the dense (HNSW) index.
    pub dense: Option<DenseOptions>,
}

/// How the dense half is built.
#[derive(Debug, Clone)]
pub struct DenseOptions {
    pub embedder: OnnxConfig,
    pub params: HnswParams,
}

/// Progress, reported from worker threads as work finishes.
#[derive(Debug, Clone)]
pub enum BuildEvent<'a> {
    /// Total compressed bytes of all inputs, before any work.
    Start {
        files: usize,
        bytes: u64,
    },
    Parsed {
        file: &'a Path,
        bytes: u64,
        records: u64,
    },
    /// Passages embedded so far, and known so far to need embedding.
    Embedded {
        done: u64,
        total: u64,
    },
    Committing,
}

#[derive(Debug, Clone)]
pub struct BuildReport {
    pub counts: Counts,
    pub rejected: Vec<Rejected>,
    pub generation: u64,
    pub seconds: f64,
    /// Uncompressed XML bytes parsed.
    pub xml_bytes: u64,
    pub dense: Option<DenseSummary>,
}

/// Builds a new index generation from `opts.inputs` and makes it live. On error nothing changes:
/// the previous index (if any) stays live and the partial generation is removed.
pub fn build_index(
    opts: &BuildOptions,
    on_event: &(dyn Fn(BuildEvent<'_>) + Sync),
) -> Result<BuildReport, IndexError> {
    let started = Instant::now();
    if opts.inputs.is_empty() {
        return Err(IndexError::Index {
            dir: opts.index_dir.clone(),
            reason: "no input files".into(),
        });
    }
    let mut total = 0u64;
    for p in &opts.inputs {
        let md = std::fs::metadata(p).map_err(|e| IndexError::io("reading input", p, e))?;
        if !md.is_file() {
            return Err(IndexError::BadFile {
                file: p.clone(),
                reason: "not a regular file".into(),
            });
        }
        total += md.len();
    }
    on_event(BuildEvent::Start {
        files: opts.inputs.len(),
        bytes: total,
    });

    let dir = IndexDir::new(&opts.index_dir);
    let _lock = dir.lock()?;
    // Past every generation present, so a folder left by a crashed build is never reused.
    let generation = dir.next_generation();
    let gen_dir = dir.generation_dir(generation);
    let result = build_generation(opts, &gen_dir, on_event);
    let (counts, inputs, rejected, xml_bytes, dense_summary) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&gen_dir);
            return Err(e);
        }
    };
    let dense_report = dense_summary.clone();
    let manifest = IndexManifest {
        format_version: FORMAT_VERSION,
        generation,
        created_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        medlit_version: env!("CARGO_PKG_VERSION").to_string(),
        bm25_dir: format!("{}/bm25", generation_name_of(&gen_dir)),
        inputs,
        counts,
        dense: dense_summary,
        files: std::collections::BTreeMap::new(),
    };
    let manifest = match crate::layout::checksums(&opts.index_dir, &gen_dir) {
        Ok(files) => IndexManifest { files, ..manifest },
        Err(e) => {
            let _ = std::fs::remove_dir_all(&gen_dir);
            return Err(e);
        }
    };
    if let Err(e) = dir.commit(&manifest) {
        let _ = std::fs::remove_dir_all(&gen_dir);
        return Err(e);
    }
    Ok(BuildReport {
        counts,
        rejected,
        generation,
        seconds: started.elapsed().as_secs_f64(),
        xml_bytes,
        dense: dense_report,
    })
}

type Built = (
    Counts,
    Vec<InputRecord>,
    Vec<Rejected>,
    u64,
    Option<DenseSummary>,
);

/// The live version of a PMID: later records replace earlier ones, so dense rows remember
/// which record (by serial number) they came from.
#[derive(Clone, Copy)]
struct Live {
    has_abstract: bool,
    serial: u64,
}

/// Passages embedded so far, tagged with the serial of the record they came from.
struct DenseRows {
    embedder: OnnxEmbedder,
    budget: usize,
    pending: Vec<(u64, passages::Passage)>,
    rows: Vec<(u64, RowRef)>,
    vectors: Vec<Vec<f32>>,
    total: u64,
}

impl DenseRows {
    fn queue(&mut self, serial: u64, a: &Article) {
        let embedder = &self.embedder;
        for p in passages::split(a, self.budget, &mut |t| embedder.count_tokens(t)) {
            self.pending.push((serial, p));
        }
        self.total = self.rows.len() as u64 + self.pending.len() as u64;
    }

    /// Embeds the queued passages, shortest first so each batch carries little padding.
    fn flush(&mut self, on_event: &(dyn Fn(BuildEvent<'_>) + Sync)) -> Result<(), EmbedError> {
        let mut work: Vec<(usize, String, u64, RowRef)> = std::mem::take(&mut self.pending)
            .into_iter()
            .map(|(serial, p)| {
                let text = p.embedding_text();
                let row = RowRef {
                    pmid: p.pmid,
                    passage_no: p.passage_no,
                };
                (self.embedder.count_tokens(&text), text, serial, row)
            })
            .collect();
        work.sort_by_key(|w| w.0);
        for chunk in work.chunks(64) {
            let texts: Vec<&str> = chunk.iter().map(|w| w.1.as_str()).collect();
            let vecs = self.embedder.embed(&texts)?;
            for (w, v) in chunk.iter().zip(vecs) {
                self.rows.push((w.2, w.3));
                self.vectors.push(v);
            }
            on_event(BuildEvent::Embedded {
                done: self.rows.len() as u64,
                total: self.total,
            });
        }
        Ok(())
    }
}

fn build_generation(
    opts: &BuildOptions,
    gen_dir: &Path,
    on_event: &(dyn Fn(BuildEvent<'_>) + Sync),
) -> Result<Built, IndexError> {
    let bm25_dir = gen_dir.join("bm25");
    let (index, fields) = bm25::create(&bm25_dir)?;
    let mut writer: IndexWriter<TantivyDocument> =
        index.writer(opts.writer_memory_mib.max(16) * 1024 * 1024)?;

    let mut dense_rows = match &opts.dense {
        Some(d) => Some(DenseRows {
            embedder: OnnxEmbedder::load(&d.embedder).map_err(|e| embed_error(gen_dir, e))?,
            // Special tokens ([CLS], [SEP]) take two of the model's positions.
            budget: d.embedder.max_tokens.saturating_sub(2).max(8),
            pending: Vec::new(),
            rows: Vec::new(),
            vectors: Vec::new(),
            total: 0,
        }),
        None => None,
    };
    let mut serial = 0u64;
    let mut counts = Counts::default();
    // The documents currently in the index.
    let mut live: HashMap<u64, Live> = HashMap::new();
    let mut inputs = Vec::with_capacity(opts.inputs.len());
    let mut rejected = Vec::new();
    let mut xml_bytes = 0;

    // Parse a window of files in parallel, then apply them in the order given; the window
    // bounds memory when indexing hundreds of files.
    let window = rayon::current_num_threads().max(1);
    for chunk in opts.inputs.chunks(window) {
        let parsed: Vec<Result<ParsedFile, IndexError>> = chunk
            .par_iter()
            .map(|p| {
                let r = parse_file(p);
                if let Ok(f) = &r {
                    on_event(BuildEvent::Parsed {
                        file: p,
                        bytes: f.file_bytes,
                        records: f.records_read,
                    });
                }
                r
            })
            .collect();
        for file in parsed {
            let file = file?;
            let mut rec = InputRecord {
                path: file.path.display().to_string(),
                name: file
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                sha256: file.sha256.clone(),
                bytes: file.file_bytes,
                records_read: file.records_read,
                articles: 0,
                deletions: 0,
                rejected: file.rejected.len() as u64,
            };
            counts.records_read += file.records_read;
            counts.rejected += file.rejected.len() as u64;
            xml_bytes += file.xml_bytes;
            for r in file.records {
                match r {
                    Record::Article(a) => {
                        rec.articles += 1;
                        serial += 1;
                        if let Some(d) = dense_rows.as_mut() {
                            d.queue(serial, &a);
                        }
                        let now = Live {
                            has_abstract: a.has_abstract(),
                            serial,
                        };
                        if live.insert(a.pmid, now).is_some() {
                            // Deletes apply to documents added before them, so this removes
                            // the earlier record and keeps the one added next.
                            writer.delete_term(Term::from_field_text(
                                fields.pmid,
                                &a.pmid.to_string(),
                            ));
                            counts.replaced += 1;
                        }
                        writer.add_document(bm25::document(&fields, &a))?;
                    }
                    Record::Delete(pmids) => {
                        for pmid in pmids {
                            rec.deletions += 1;
                            counts.deleted += 1;
                            if live.remove(&pmid).is_some() {
                                writer.delete_term(Term::from_field_text(
                                    fields.pmid,
                                    &pmid.to_string(),
                                ));
                            }
                        }
                    }
                }
            }
            rejected.extend(file.rejected);
            inputs.push(rec);
            if let Some(d) = dense_rows.as_mut() {
                d.flush(on_event).map_err(|e| embed_error(gen_dir, e))?;
            }
        }
    }
    on_event(BuildEvent::Committing);
    writer.commit()?;
    writer.wait_merging_threads()?;
    crate::layout::sync_dir(&bm25_dir)?;
    counts.indexed = live.len() as u64;
    counts.with_abstract = live.values().filter(|l| l.has_abstract).count() as u64;
    let summary = match (dense_rows, &opts.dense) {
        (Some(d), Some(dopts)) => Some(write_dense(d, &live, gen_dir, dopts.params)?),
        _ => None,
    };
    Ok((counts, inputs, rejected, xml_bytes, summary))
}

/// Keeps the rows of live records only (replaced and deleted PMIDs never reach the graph) and
/// writes the dense index.
fn write_dense(
    d: DenseRows,
    live: &HashMap<u64, Live>,
    gen_dir: &Path,
    params: HnswParams,
) -> Result<DenseSummary, IndexError> {
    let mut rows = Vec::with_capacity(d.rows.len());
    let mut vectors = Vec::with_capacity(d.vectors.len());
    for ((serial, row), v) in d.rows.into_iter().zip(d.vectors) {
        if live.get(&row.pmid).is_some_and(|l| l.serial == serial) {
            rows.push(row);
            vectors.push(v);
        }
    }
    let dir = gen_dir.join("dense");
    let meta = dense::write(&dir, d.embedder.info(), &rows, &vectors, params).map_err(|e| {
        IndexError::Index {
            dir: dir.clone(),
            reason: e.to_string(),
        }
    })?;
    Ok(DenseSummary {
        dir: format!("{}/dense", generation_name_of(gen_dir)),
        model: meta.model,
        rows: meta.rows as u64,
        params: meta.params,
    })
}

fn generation_name_of(gen_dir: &Path) -> String {
    gen_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn embed_error(gen_dir: &Path, e: EmbedError) -> IndexError {
    IndexError::Index {
        dir: gen_dir.to_path_buf(),
        reason: format!("embedding: {e}"),
    }
}
