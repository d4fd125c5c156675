//! `medlit index`: parse the input files in parallel, apply them in order to a new BM25
//! generation, commit, and switch the manifest.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rayon::prelude::*;
use tantivy::{IndexWriter, TantivyDocument, Term};

use crate::article::Rejected;
use crate::bm25;
use crate::layout::{Counts, IndexDir, IndexManifest, InputRecord, FORMAT_VERSION};
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
    let (counts, inputs, rejected, xml_bytes) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&gen_dir);
            return Err(e);
        }
    };
    let manifest = IndexManifest {
        format_version: FORMAT_VERSION,
        generation,
        created_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        medlit_version: env!("CARGO_PKG_VERSION").to_string(),
        bm25_dir: format!(
            "{}/bm25",
            gen_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ),
        inputs,
        counts,
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
    })
}

type Built = (Counts, Vec<InputRecord>, Vec<Rejected>, u64);

fn build_generation(
    opts: &BuildOptions,
    gen_dir: &Path,
    on_event: &(dyn Fn(BuildEvent<'_>) + Sync),
) -> Result<Built, IndexError> {
    let bm25_dir = gen_dir.join("bm25");
    let (index, fields) = bm25::create(&bm25_dir)?;
    let mut writer: IndexWriter<TantivyDocument> =
        index.writer(opts.writer_memory_mib.max(16) * 1024 * 1024)?;

    let mut counts = Counts::default();
    // pmid -> has abstract, for the documents currently in the index.
    let mut live: HashMap<u64, bool> = HashMap::new();
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
                        if live.insert(a.pmid, a.has_abstract()).is_some() {
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
        }
    }
    on_event(BuildEvent::Committing);
    writer.commit()?;
    writer.wait_merging_threads()?;
    crate::layout::sync_dir(&bm25_dir)?;
    counts.indexed = live.len() as u64;
    counts.with_abstract = live.values().filter(|&&has| has).count() as u64;
    Ok((counts, inputs, rejected, xml_bytes))
}
