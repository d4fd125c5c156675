//! `medlit compact`: drop deleted documents and tombstoned passages; graph segments that lost
//! a passage, or are under half full, are rebuilt and merged.
use anyhow::{Context, Result};

use crate::cli::setup;

use super::print_json;
use crate::cli::CompactArgs;

/// `medlit compact`.
pub fn run(args: &CompactArgs) -> Result<()> {
    let dir = setup::index_dir(&args.index)?;
    let r = medlit_indexer::compact(&dir, args.writer_memory)
        .with_context(|| format!("compacting {}", dir.display()))?;
    if args.json {
        return print_json(&r);
    }
    println!("index {} (generation {})", r.index, r.generation);
    println!(
        "bm25   {} segments -> {}, {} deleted documents purged",
        r.segments_before, r.segments_after, r.deleted_docs_purged
    );
    if r.passages_before > 0 {
        println!(
            "dense  {} passages -> {} ({} tombstoned dropped), graph segments {} -> {}",
            r.passages_before,
            r.passages_after,
            r.dead_dropped,
            r.graph_segments_before,
            r.graph_segments_after
        );
    }
    println!("seconds {:.1}", r.seconds);
    Ok(())
}
