//! `medlit index`: input files are applied one at a time, each as a new generation that is
//! committed (manifest switched) before the next file starts. A fresh build, a resumed build
//! and `--update` differ only in where they start and which files they take (see [`crate::plan`]).
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rayon::prelude::*;
use serde::Serialize;
use tantivy::{IndexWriter, ReloadPolicy, TantivyDocument, Term};

use crate::article::{Article, Rejected};
use crate::bm25;
use crate::dense::{DenseWriter, HnswParams, RowRef};
use crate::embed::{EmbedError, Embedder, EncoderConfig};
use crate::layout::{
    Counts, DenseSummary, IndexDir, IndexManifest, InputRecord, PendingInput, FORMAT_VERSION,
};
use crate::passages;
use crate::plan::{plan, Plan};
use crate::pubmed::{parse_file, ParsedFile, Record};
use crate::IndexError;

/// How to build.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Input files, applied in this order.
    pub inputs: Vec<PathBuf>,
    pub index_dir: PathBuf,
    /// tantivy's indexing memory budget, in MiB.
    pub writer_memory_mib: usize,
    /// Also embed passages and build the dense (HNSW) index.
    pub dense: Option<DenseOptions>,
    pub mode: BuildMode,
}

/// Where a run starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BuildMode {
    /// A new index from the inputs, or, when a run over the same inputs was interrupted,
    /// its continuation from the first file it had not committed. An index of other inputs
    /// in the folder is never replaced by this mode: the build is refused, naming `Update`
    /// and `Rebuild`.
    #[default]
    Build,
    /// A new index from the inputs that replaces whatever the folder holds. The old index stays
    /// live (searchable, and what a crash leaves) until the new one is complete: its
    /// generations are committed to a staging manifest and switched in at the last file.
    Rebuild,
    /// The inputs applied to the existing index: files already applied (same name and
    /// sha256) are skipped; a file older than one applied is refused unless `force`.
    Update { force: bool },
}

/// How the dense half is built.
#[derive(Debug, Clone)]
pub struct DenseOptions {
    pub embedder: EncoderConfig,
    pub params: HnswParams,
}

/// Progress, reported from worker threads as work finishes.
#[derive(Debug, Clone)]
pub enum BuildEvent<'a> {
    /// Total compressed bytes of the files this run applies, before any work.
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
    /// A file's generation is live.
    Committed {
        file: &'a str,
        generation: u64,
    },
}

/// What one run did (the index's totals are in [`BuildReport::counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RunCounts {
    pub files: u64,
    pub records_read: u64,
    /// PMIDs new to the index.
    pub added: u64,
    /// Records that replaced a live record with the same PMID.
    pub replaced: u64,
    /// PMIDs listed in `DeleteCitation` blocks.
    pub deleted: u64,
    /// Listed PMIDs that were in the index and left it.
    pub removed: u64,
    pub rejected: u64,
    pub passages_embedded: u64,
    /// Passages of replaced or deleted PMIDs marked dead in the dense half.
    pub passages_tombstoned: u64,
}

/// One committed file of a run: the state the index was in from then on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Commit {
    pub file: String,
    pub generation: u64,
    pub counts: Counts,
    /// Dense passages (tombstoned ones included) and tombstoned passages, when dense.
    pub passages: Option<(u64, u64)>,
}

#[derive(Debug, Clone)]
pub struct BuildReport {
    /// The index's totals after the run.
    pub counts: Counts,
    /// What this run applied.
    pub run: RunCounts,
    /// Names of the files this run applied, in order.
    pub applied: Vec<String>,
    /// The state after each file this run committed.
    pub commits: Vec<Commit>,
    /// Names of the files skipped as already applied (same name and sha256).
    pub skipped: Vec<String>,
    /// When the run continued an interrupted one: how many files that one had committed.
    pub resumed_after: Option<usize>,
    pub rejected: Vec<Rejected>,
    pub generation: u64,
    pub seconds: f64,
    /// Uncompressed XML bytes parsed.
    pub xml_bytes: u64,
    pub dense: Option<DenseSummary>,
}

/// Rows left out of the graph at a per-file commit are searched exactly; the graph takes them
/// in when they reach this many, or a quarter of the last segment (so a run rewrites a
/// segment a logarithmic number of times), and always at the run's last file.
const GRAPH_TAIL_MIN: usize = 50_000;

/// Applies `opts.inputs` to the index, one committed generation per file. On error the index
/// stays at the last committed file (a whole index, which `medlit verify` accepts); the failed
/// file's partial generation is removed. Inputs are checked before anything is written.
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
    for p in &opts.inputs {
        check_input(p)?;
    }
    let dir = IndexDir::new(&opts.index_dir);
    let created = !opts.index_dir.exists();
    let lock = dir.lock()?;
    let result = build_locked(opts, &dir, on_event, started);
    drop(lock);
    // A build that failed before its first commit leaves no folder of its own behind.
    if result.is_err() && created && dir.read_manifest().ok().flatten().is_none() {
        let _ = std::fs::remove_dir_all(&opts.index_dir);
    }
    result
}

fn build_locked(
    opts: &BuildOptions,
    dir: &IndexDir,
    on_event: &(dyn Fn(BuildEvent<'_>) + Sync),
    started: Instant,
) -> Result<BuildReport, IndexError> {
    let sums: Vec<(String, String, u64)> = opts
        .inputs
        .par_iter()
        .map(|p| {
            let (sha, bytes) = medlit_corpus::digest::sha256_file(p)
                .map_err(|e| IndexError::io("reading input", p, e))?;
            Ok((file_name(p), sha, bytes))
        })
        .collect::<Result<_, IndexError>>()?;
    let Plan {
        base,
        todo,
        skipped,
        resumed_after,
        keep_pending,
        staged,
    } = plan(dir, opts, &sums)?;
    on_event(BuildEvent::Start {
        files: todo.len(),
        bytes: todo.iter().map(|&i| sums[i].2).sum(),
    });

    let mut run = Run::start(opts, dir)?;
    let mut state = base;
    let mut report = BuildReport {
        counts: state.as_ref().map(|m| m.counts).unwrap_or_default(),
        run: RunCounts::default(),
        applied: Vec::new(),
        commits: Vec::new(),
        skipped,
        resumed_after,
        rejected: Vec::new(),
        generation: state.as_ref().map_or(0, |m| m.generation),
        seconds: 0.0,
        xml_bytes: 0,
        dense: state.as_ref().and_then(|m| m.dense.clone()),
    };
    // Parse a window of files in parallel, then apply them in order; the window bounds memory.
    let window = rayon::current_num_threads().max(1);
    let mut position = 0;
    for chunk in todo.chunks(window) {
        let parsed: Vec<Result<ParsedFile, IndexError>> = chunk
            .par_iter()
            .map(|&i| {
                let p = &opts.inputs[i];
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
            position += 1;
            let pending: Vec<PendingInput> = if keep_pending {
                todo[position..]
                    .iter()
                    .map(|&i| PendingInput {
                        name: sums[i].0.clone(),
                        sha256: sums[i].1.clone(),
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let last = position == todo.len();
            let name = file_name(&file.path);
            report.xml_bytes += file.xml_bytes;
            let (manifest, rejected) = run.apply(
                state.as_ref(),
                file,
                pending,
                last,
                staged && !last,
                &mut report.run,
                on_event,
            )?;
            report.rejected.extend(rejected);
            report.applied.push(name.clone());
            report.commits.push(Commit {
                file: name.clone(),
                generation: manifest.generation,
                counts: manifest.counts,
                passages: manifest.dense.as_ref().map(|d| (d.rows, d.dead)),
            });
            on_event(BuildEvent::Committed {
                file: &name,
                generation: manifest.generation,
            });
            state = Some(manifest);
        }
    }
    if let Some(m) = &state {
        report.counts = m.counts;
        report.generation = m.generation;
        report.dense = m.dense.clone();
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Refuses what cannot be a PubMed file before anything is written.
fn check_input(p: &Path) -> Result<(), IndexError> {
    let md = std::fs::metadata(p).map_err(|e| IndexError::io("reading input", p, e))?;
    let bad = |reason: &str| IndexError::BadFile {
        file: p.to_path_buf(),
        reason: reason.into(),
    };
    if !md.is_file() {
        return Err(bad("not a regular file"));
    }
    if md.len() == 0 {
        return Err(bad("empty file: not PubMed XML"));
    }
    Ok(())
}

pub(crate) fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// What stays loaded across the files of a run.
struct Run<'a> {
    opts: &'a BuildOptions,
    dir: &'a IndexDir,
    dense: Option<DenseRun>,
    embedded: u64,
    to_embed: u64,
}

struct DenseRun {
    embedder: Box<dyn Embedder>,
    /// Token budget of a passage.
    budget: usize,
    params: HnswParams,
}

impl<'a> Run<'a> {
    fn start(opts: &'a BuildOptions, dir: &'a IndexDir) -> Result<Self, IndexError> {
        let dense = match &opts.dense {
            Some(d) => Some(DenseRun {
                embedder: d.embedder.load().map_err(|e| embed_error(dir.root(), e))?,
                // Special tokens ([CLS], [SEP]) take two of the model's positions.
                budget: passages::window_budget(d.embedder.max_tokens()),
                params: d.params,
            }),
            None => None,
        };
        Ok(Self {
            opts,
            dir,
            dense,
            embedded: 0,
            to_embed: 0,
        })
    }

    /// Applies one file on top of `base` as a new generation and makes it live (or, `staging`,
    /// commits it to the staging manifest, leaving the live index as it is).
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &mut self,
        base: Option<&IndexManifest>,
        file: ParsedFile,
        pending: Vec<PendingInput>,
        last: bool,
        staging: bool,
        run: &mut RunCounts,
        on_event: &(dyn Fn(BuildEvent<'_>) + Sync),
    ) -> Result<(IndexManifest, Vec<Rejected>), IndexError> {
        let generation = self.dir.next_generation();
        let gen_dir = self.dir.generation_dir(generation);
        let mut counted = *run;
        let result = self
            .write_generation(
                base,
                file,
                &gen_dir,
                generation,
                pending,
                last,
                &mut counted,
                on_event,
            )
            .and_then(|(m, rejected)| {
                if staging {
                    self.dir.commit_staging(&m)
                } else {
                    self.dir.commit(&m)
                }
                .map(|()| (m, rejected))
            });
        match result {
            Ok(r) => {
                *run = counted;
                Ok(r)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&gen_dir);
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn write_generation(
        &mut self,
        base: Option<&IndexManifest>,
        file: ParsedFile,
        gen_dir: &Path,
        generation: u64,
        pending: Vec<PendingInput>,
        last: bool,
        run: &mut RunCounts,
        on_event: &(dyn Fn(BuildEvent<'_>) + Sync),
    ) -> Result<(IndexManifest, Vec<Rejected>), IndexError> {
        let root = self.dir.root();
        let bm25_dir = gen_dir.join("bm25");
        let (index, fields) = match base {
            Some(m) => {
                link_bm25(&self.dir.bm25_dir(m), &bm25_dir)?;
                bm25::open(&bm25_dir)?
            }
            None => bm25::create(&bm25_dir)?,
        };
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let before = reader.searcher();

        // The file's net effect: per PMID it touches, its last record (an article or a delete).
        let mut rec = InputRecord {
            path: file.path.display().to_string(),
            name: file_name(&file.path),
            sha256: file.sha256.clone(),
            bytes: file.file_bytes,
            records_read: file.records_read,
            articles: 0,
            deletions: 0,
            rejected: file.rejected.len() as u64,
        };
        let mut last_of: HashMap<u64, Option<usize>> = HashMap::new();
        let mut articles: Vec<Box<Article>> = Vec::new();
        // PMIDs live before this file that it replaces or deletes.
        let mut was_live: HashSet<u64> = HashSet::new();
        let mut live_now =
            |pmid: u64, last_of: &HashMap<u64, Option<usize>>| -> Result<bool, IndexError> {
                Ok(match last_of.get(&pmid) {
                    Some(s) => s.is_some(),
                    None => {
                        let live = bm25::is_live(&before, &fields, pmid)?;
                        if live {
                            was_live.insert(pmid);
                        }
                        live
                    }
                })
            };
        let (mut replaced, mut deleted, mut removed) = (0u64, 0u64, 0u64);
        for r in file.records {
            match r {
                Record::Article(a) => {
                    rec.articles += 1;
                    if live_now(a.pmid, &last_of)? {
                        replaced += 1;
                    }
                    last_of.insert(a.pmid, Some(articles.len()));
                    articles.push(a);
                }
                Record::Delete(pmids) => {
                    for pmid in pmids {
                        rec.deletions += 1;
                        deleted += 1;
                        if live_now(pmid, &last_of)? {
                            removed += 1;
                        }
                        last_of.insert(pmid, None);
                    }
                }
            }
        }
        let mut keep: Vec<usize> = last_of.values().flatten().copied().collect();
        keep.sort_unstable();
        let added = keep
            .iter()
            .filter(|&&i| !was_live.contains(&articles[i].pmid))
            .count() as u64;

        let mut writer: IndexWriter<TantivyDocument> =
            index.writer(self.opts.writer_memory_mib.max(16) * 1024 * 1024)?;
        // Deletes apply to documents committed before them, so the earlier version goes and
        // the one added next stays.
        for &pmid in &was_live {
            writer.delete_term(Term::from_field_text(fields.pmid, &pmid.to_string()));
        }
        for &i in &keep {
            writer.add_document(bm25::document(&fields, &articles[i]))?;
        }
        on_event(BuildEvent::Committing);
        writer.commit()?;
        writer.wait_merging_threads()?;
        crate::layout::sync_dir(&bm25_dir)?;
        reader.reload()?;
        let (indexed, with_abstract) = bm25::live_counts(&reader.searcher(), &fields)?;

        let dense = match self.dense.as_mut() {
            None => None,
            Some(d) => {
                let dense_dir = gen_dir.join("dense");
                let model = d.embedder.info().clone();
                let mut w = match base.and_then(|m| m.dense.as_ref()) {
                    Some(s) => DenseWriter::from_base(&dense_dir, &root.join(&s.dir), &model),
                    None => DenseWriter::create(&dense_dir, &model, d.params),
                }
                .map_err(|e| dense_error(&dense_dir, e))?;
                let dead = w
                    .live_rows_of(&was_live)
                    .map_err(|e| dense_error(&dense_dir, e))?;
                w.tombstone(&dead);
                run.passages_tombstoned += dead.len() as u64;
                // An update that gives a keyword-only index its dense half embeds the articles
                // already live first: those this file does not touch (it replaces or deletes
                // every PMID in `last_of`).
                let earlier: Vec<Article> = match base {
                    Some(m) if m.dense.is_none() => bm25::live_articles(&before, &fields)?
                        .into_iter()
                        .filter(|a| !last_of.contains_key(&a.pmid))
                        .collect(),
                    _ => Vec::new(),
                };
                let (rows, vectors) = embed_articles(
                    d,
                    earlier.iter().chain(keep.iter().map(|&i| &*articles[i])),
                    &mut self.embedded,
                    &mut self.to_embed,
                    on_event,
                )
                .map_err(|e| embed_error(gen_dir, e))?;
                run.passages_embedded += rows.len() as u64;
                w.append(&rows, &vectors)
                    .map_err(|e| dense_error(&dense_dir, e))?;
                let graph_rows = w.meta().graphs.last().map_or(0, |g| g.len());
                let extend = last || w.tail() >= GRAPH_TAIL_MIN.max(graph_rows / 4);
                let meta = w.finish(extend).map_err(|e| dense_error(&dense_dir, e))?;
                Some(DenseSummary {
                    dir: format!("{}/dense", generation_name_of(gen_dir)),
                    graph_rows: meta.graph_rows() as u64,
                    graph_segments: meta.graphs.len() as u64,
                    model: meta.model,
                    rows: meta.rows as u64,
                    params: meta.params,
                    dead: meta.dead as u64,
                })
            }
        };

        let mut counts = base.map(|m| m.counts).unwrap_or_default();
        counts.records_read += file.records_read;
        counts.rejected += file.rejected.len() as u64;
        counts.replaced += replaced;
        counts.deleted += deleted;
        counts.indexed = indexed;
        counts.with_abstract = with_abstract;
        run.files += 1;
        run.records_read += file.records_read;
        run.rejected += file.rejected.len() as u64;
        run.added += added;
        run.replaced += replaced;
        run.deleted += deleted;
        run.removed += removed;

        let mut inputs = base.map(|m| m.inputs.clone()).unwrap_or_default();
        inputs.push(rec);
        let previous = base.map(|m| (self.dir.generation_dir(m.generation), &m.files));
        let files = crate::layout::checksums_reusing(
            root,
            gen_dir,
            previous.as_ref().map(|(d, f)| (d.as_path(), *f)),
        )?;
        let manifest = IndexManifest {
            format_version: FORMAT_VERSION,
            generation,
            created_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            medlit_version: env!("CARGO_PKG_VERSION").to_string(),
            bm25_dir: format!("{}/bm25", generation_name_of(gen_dir)),
            inputs,
            counts,
            dense,
            files,
            pending,
        };
        Ok((manifest, file.rejected))
    }
}

/// Splits articles into passages and embeds them, shortest first so each batch carries
/// little padding; rows come back in that order.
fn embed_articles<'a>(
    d: &mut DenseRun,
    articles: impl Iterator<Item = &'a Article>,
    done: &mut u64,
    total: &mut u64,
    on_event: &(dyn Fn(BuildEvent<'_>) + Sync),
) -> Result<(Vec<RowRef>, Vec<Vec<f32>>), EmbedError> {
    let embedder = &d.embedder;
    let mut work: Vec<(usize, String, RowRef)> = Vec::new();
    for a in articles {
        for p in passages::split(a, d.budget, &mut |t| embedder.count_tokens(t)) {
            let text = p.embedding_text();
            let row = RowRef {
                pmid: p.pmid,
                passage_no: p.passage_no,
            };
            work.push((embedder.count_tokens(&text), text, row));
        }
    }
    *total += work.len() as u64;
    work.sort_by_key(|w| w.0);
    let mut rows = Vec::with_capacity(work.len());
    let mut vectors = Vec::with_capacity(work.len());
    for chunk in work.chunks(d.embedder.call_size().max(1)) {
        let texts: Vec<&str> = chunk.iter().map(|w| w.1.as_str()).collect();
        let vecs = d.embedder.embed(&texts)?;
        for (w, v) in chunk.iter().zip(vecs) {
            rows.push(w.2);
            vectors.push(v);
        }
        *done += chunk.len() as u64;
        on_event(BuildEvent::Embedded {
            done: *done,
            total: *total,
        });
    }
    Ok((rows, vectors))
}

/// The new generation's BM25 folder starts as the last one's: segment files are immutable in
/// tantivy, so they are hard-linked; the small files tantivy rewrites are copied.
pub(crate) fn link_bm25(from: &Path, to: &Path) -> Result<(), IndexError> {
    std::fs::create_dir_all(to).map_err(|e| IndexError::io("creating index folder", to, e))?;
    for e in std::fs::read_dir(from).map_err(|e| IndexError::io("listing", from, e))? {
        let e = e.map_err(|e| IndexError::io("listing", from, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".lock") {
            continue;
        }
        let (src, dst) = (e.path(), to.join(&name));
        let copied = if name == "meta.json" || name == ".managed.json" {
            std::fs::copy(&src, &dst).map(|_| ())
        } else {
            std::fs::hard_link(&src, &dst)
        };
        copied.map_err(|e| IndexError::io("linking index file", &dst, e))?;
    }
    Ok(())
}

pub(crate) fn generation_name_of(gen_dir: &Path) -> String {
    gen_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn embed_error(dir: &Path, e: EmbedError) -> IndexError {
    IndexError::Index {
        dir: dir.to_path_buf(),
        reason: format!("embedding: {e}"),
    }
}

pub(crate) fn dense_error(dir: &Path, e: crate::dense::DenseError) -> IndexError {
    IndexError::Index {
        dir: dir.to_path_buf(),
        reason: e.to_string(),
    }
}
