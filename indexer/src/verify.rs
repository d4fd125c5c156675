//! `medlit verify`: checks that an index folder is whole and self-consistent.
//!
//! - every file of the live generation has the size and sha256 the manifest recorded;
//! - the BM25 half holds as many documents as the manifest counts, each PMID once;
//! - the dense half (when built) has as many vectors, docmap rows, tombstones and graph points
//!   as recorded, every live passage's PMID is in the BM25 half, and no live (PMID, passage)
//!   appears twice (a replaced article's old passages were tombstoned).
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Serialize;

use crate::layout::{FileSum, IndexDir, FORMAT_VERSION};
use crate::IndexError;

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub index: String,
    pub generation: u64,
    pub ok: bool,
    pub checks: Vec<Check>,
}

/// Runs every check on the index in `dir`; fails only when there is no index to check.
pub fn verify(dir: &Path) -> Result<VerifyReport, IndexError> {
    let layout = IndexDir::new(dir);
    let manifest = layout.manifest()?;
    let mut checks = Vec::new();
    let mut check = |name, ok, detail: String| checks.push(Check { name, ok, detail });

    check(
        "format",
        manifest.format_version == FORMAT_VERSION,
        format!(
            "format {} (this medlit reads {FORMAT_VERSION})",
            manifest.format_version
        ),
    );

    if manifest.files.is_empty() {
        check(
            "checksums",
            false,
            "the manifest records no file checksums (built by an older medlit): rebuild the index to verify it".into(),
        );
    } else {
        let bad = bad_files(dir, &manifest.files);
        check(
            "checksums",
            bad.is_empty(),
            if bad.is_empty() {
                format!(
                    "{} files, sizes and sha256 as recorded",
                    manifest.files.len()
                )
            } else {
                bad.join("; ")
            },
        );
    }

    let pmids = crate::bm25::live_pmids(&layout.bm25_dir(&manifest))?;
    let distinct: HashSet<u64> = pmids.iter().copied().collect();
    check(
        "bm25 count",
        pmids.len() as u64 == manifest.counts.indexed,
        format!(
            "{} documents, manifest counts {}",
            pmids.len(),
            manifest.counts.indexed
        ),
    );
    check(
        "unique pmids",
        distinct.len() == pmids.len(),
        format!(
            "{} documents, {} distinct PMIDs",
            pmids.len(),
            distinct.len()
        ),
    );

    if let Some(dense) = &manifest.dense {
        match crate::dense::DenseIndex::open(&dir.join(&dense.dir), &dense.model) {
            Err(e) => check("dense", false, e.to_string()),
            Ok(index) => {
                let meta = index.meta();
                let rows = meta.rows;
                let graph_rows = meta.graph_rows();
                let points = index.graph_points();
                check(
                    "dense count",
                    rows as u64 == dense.rows
                        && meta.dead as u64 == dense.dead
                        && points == graph_rows
                        && graph_rows as u64 == dense.graph_rows,
                    format!(
                        "{rows} vectors and docmap rows ({} tombstoned), {points} graph points over {graph_rows} rows; manifest records {} rows, {} tombstoned, graph over {}",
                        meta.dead, dense.rows, dense.dead, dense.graph_rows
                    ),
                );
                let mut live = HashSet::new();
                let (mut missing, mut doubled) = (0, 0);
                for i in (0..rows).filter(|&i| !index.is_dead(i)) {
                    let Some(r) = index.row(i) else { continue };
                    if !distinct.contains(&r.pmid) {
                        missing += 1;
                    }
                    if !live.insert((r.pmid, r.passage_no)) {
                        doubled += 1;
                    }
                }
                check(
                    "dense pmids",
                    missing == 0 && doubled == 0,
                    format!(
                        "{} live passages; {missing} name a PMID missing from BM25, {doubled} repeat a live (PMID, passage)",
                        live.len() + doubled
                    ),
                );
            }
        }
    }
    if !manifest.pending.is_empty() {
        // Whole but partial: not a failure, said so the reader knows.
        check(
            "complete",
            true,
            format!(
                "{} files applied; the run that built it stopped with {} left (next: {}); `medlit index` with the same files resumes it",
                manifest.inputs.len(),
                manifest.pending.len(),
                manifest.pending[0].name
            ),
        );
    }
    let ok = checks.iter().all(|c| c.ok);
    Ok(VerifyReport {
        index: dir.display().to_string(),
        generation: manifest.generation,
        ok,
        checks,
    })
}

/// Files whose size or sha256 differ from what was recorded, or that are gone.
fn bad_files(root: &Path, files: &BTreeMap<String, FileSum>) -> Vec<String> {
    let mut bad = Vec::new();
    for (rel, want) in files {
        let path = root.join(rel);
        match medlit_corpus::digest::sha256_file(&path) {
            Err(e) => bad.push(format!("{rel}: {e}")),
            Ok((_, bytes)) if bytes != want.bytes => {
                bad.push(format!("{rel}: {bytes} bytes, recorded {}", want.bytes))
            }
            Ok((sha, _)) if sha != want.sha256 => bad.push(format!("{rel}: sha256 differs")),
            Ok(_) => {}
        }
    }
    bad
}
