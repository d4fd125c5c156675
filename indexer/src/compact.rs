//! `medlit compact`: a new generation with the BM25 segments merged into one (deleted
//! documents purged) and the dense half rewritten without tombstoned passages, its graph
//! rebuilt over the live ones. Nothing is re-embedded.
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tantivy::{IndexWriter, TantivyDocument};

use crate::build::{dense_error, generation_name_of, link_bm25};
use crate::dense::{DenseError, DenseIndex, DenseMeta, DenseWriter, RowRef};
use crate::layout::{DenseSummary, IndexDir, IndexManifest};
use crate::IndexError;

#[derive(Debug, Clone, Serialize)]
pub struct CompactReport {
    pub index: String,
    pub generation: u64,
    pub segments_before: usize,
    pub segments_after: usize,
    /// Deleted BM25 documents the merge purged.
    pub deleted_docs_purged: u64,
    pub passages_before: u64,
    pub passages_after: u64,
    /// Tombstoned passages dropped.
    pub dead_dropped: u64,
    /// Dense graph segments before and after (clean full segments are kept, the rest rebuilt
    /// and merged).
    pub graph_segments_before: usize,
    pub graph_segments_after: usize,
    pub seconds: f64,
}

/// Compacts the index in `index_dir` into a new generation and makes it live.
pub fn compact(
    index_dir: &std::path::Path,
    writer_memory_mib: usize,
) -> Result<CompactReport, IndexError> {
    let started = Instant::now();
    let dir = IndexDir::new(index_dir);
    let _lock = dir.lock()?;
    let base = dir.manifest()?;
    let generation = dir.next_generation();
    let gen_dir = dir.generation_dir(generation);
    let result = write(&dir, &base, &gen_dir, generation, writer_memory_mib)
        .and_then(|(m, r)| dir.commit(&m).map(|()| r));
    match result {
        Ok(mut r) => {
            r.seconds = started.elapsed().as_secs_f64();
            Ok(r)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&gen_dir);
            Err(e)
        }
    }
}

fn write(
    dir: &IndexDir,
    base: &IndexManifest,
    gen_dir: &std::path::Path,
    generation: u64,
    writer_memory_mib: usize,
) -> Result<(IndexManifest, CompactReport), IndexError> {
    let bm25_dir = gen_dir.join("bm25");
    link_bm25(&dir.bm25_dir(base), &bm25_dir)?;
    let (index, _) = crate::bm25::open(&bm25_dir)?;
    let metas = index.searchable_segment_metas()?;
    let segments_before = metas.len();
    let deleted_docs_purged: u64 = metas.iter().map(|m| u64::from(m.num_deleted_docs())).sum();
    let mut writer: IndexWriter<TantivyDocument> =
        index.writer(writer_memory_mib.max(16) * 1024 * 1024)?;
    let ids: Vec<_> = metas.iter().map(|m| m.id()).collect();
    if ids.len() > 1 || deleted_docs_purged > 0 {
        writer.merge(&ids).wait()?;
    }
    writer.wait_merging_threads()?;
    crate::layout::sync_dir(&bm25_dir)?;
    let segments_after = index.searchable_segment_metas()?.len();

    let (mut passages_before, mut passages_after, mut dead_dropped) = (0, 0, 0);
    let (mut graph_segments_before, mut graph_segments_after) = (0, 0);
    let dense = match &base.dense {
        None => None,
        Some(s) => {
            let from = dir.root().join(&s.dir);
            let old = DenseIndex::open(&from, &s.model).map_err(|e| dense_error(&from, e))?;
            let meta = old.meta().clone();
            let to = gen_dir.join("dense");
            let new = rewrite_dense(&old, &from, &to).map_err(|e| dense_error(&to, e))?;
            drop(old);
            passages_before = meta.rows as u64;
            passages_after = new.rows as u64;
            dead_dropped = meta.dead as u64;
            graph_segments_before = meta.graphs.len();
            graph_segments_after = new.graphs.len();
            Some(DenseSummary {
                dir: format!("{}/dense", generation_name_of(gen_dir)),
                graph_rows: new.graph_rows() as u64,
                graph_segments: new.graphs.len() as u64,
                model: new.model,
                rows: new.rows as u64,
                params: new.params,
                dead: 0,
            })
        }
    };
    let previous = dir.generation_dir(base.generation);
    let files = crate::layout::checksums_reusing(
        dir.root(),
        gen_dir,
        Some((previous.as_path(), &base.files)),
    )?;
    let manifest = IndexManifest {
        generation,
        created_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        bm25_dir: format!("{}/bm25", generation_name_of(gen_dir)),
        dense,
        files,
        ..base.clone()
    };
    let report = CompactReport {
        index: dir.root().display().to_string(),
        generation,
        segments_before,
        segments_after,
        deleted_docs_purged,
        passages_before,
        passages_after,
        dead_dropped,
        graph_segments_before,
        graph_segments_after,
        seconds: 0.0,
    };
    Ok((manifest, report))
}

/// Rows copied per chunk of the compacted dense index: the copy holds this many vectors in
/// memory at a time, whatever the index's size.
const COPY_ROWS: usize = 1 << 18;

/// Writes `old` without its tombstoned rows into `to`, segment by segment: a segment that
/// lost no row and is at least half full keeps its graph (files hard-linked, start moved);
/// the others' live rows are pooled with their neighbours' and built into new segments, so
/// small segments merge.
pub(crate) fn rewrite_dense(
    old: &DenseIndex,
    from: &std::path::Path,
    to: &std::path::Path,
) -> Result<DenseMeta, DenseError> {
    let meta = old.meta();
    let mut w = DenseWriter::create(to, &meta.model, meta.params)?;
    let mut spans: Vec<(std::ops::Range<usize>, Option<&crate::dense::GraphInfo>)> = meta
        .graphs
        .iter()
        .map(|g| (g.start..g.end, Some(g)))
        .collect();
    spans.push((meta.graph_rows()..meta.rows, None));
    let half = meta.params.segment_rows.max(1).div_ceil(2);
    for (range, graph) in spans {
        let live: Vec<usize> = range.clone().filter(|&id| !old.is_dead(id)).collect();
        let kept = graph.filter(|g| live.len() == range.len() && g.len() >= half);
        for batch in live.chunks(COPY_ROWS) {
            let rows: Vec<RowRef> = batch.iter().filter_map(|&id| old.row(id)).collect();
            let vectors: Vec<Vec<f32>> = batch.iter().map(|&id| old.vector(id).to_vec()).collect();
            w.append(&rows, &vectors)?;
        }
        if let Some(g) = kept {
            w.adopt_segment(from, g)?;
        }
    }
    w.finish(true)
}
