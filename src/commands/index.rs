use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use medlit_indexer::{build_index, BuildEvent, BuildOptions, BuildReport, Rejected};
use serde::Serialize;

use super::print_json;
use crate::cli::IndexArgs;
use crate::progress;

/// How many rejected records the text report lists (all are in `--json`).
const SHOWN_REJECTS: usize = 20;

#[derive(Serialize)]
struct IndexJson<'a> {
    records_read: u64,
    indexed: u64,
    with_abstract: u64,
    replaced: u64,
    deleted: u64,
    rejected: u64,
    seconds: f64,
    /// Embedded passages in the dense index, when it was built.
    passages: Option<u64>,
    generation: u64,
    index: String,
    rejects: &'a [Rejected],
}

pub fn run(args: &IndexArgs) -> Result<()> {
    let files = if args.files.is_empty() {
        super::corpus_files(&super::manifest(&args.manifest)?)?
    } else {
        args.files.clone()
    };
    let dir = super::index_dir(&args.index)?;
    let dense = if args.dense {
        Some(super::dense_options(
            &super::manifest(&args.manifest)?,
            &args.embed,
        )?)
    } else {
        None
    };
    let opts = BuildOptions {
        inputs: files,
        index_dir: dir.clone(),
        writer_memory_mib: args.writer_memory,
        dense,
    };
    let report = build(&opts, args.json)?;
    if args.json {
        let c = report.counts;
        return print_json(&IndexJson {
            records_read: c.records_read,
            indexed: c.indexed,
            with_abstract: c.with_abstract,
            replaced: c.replaced,
            deleted: c.deleted,
            rejected: c.rejected,
            seconds: report.seconds,
            passages: report.dense.as_ref().map(|d| d.rows),
            generation: report.generation,
            index: dir.display().to_string(),
            rejects: &report.rejected,
        });
    }
    print_report(&report);
    println!(
        "index: {} (generation {})",
        dir.display(),
        report.generation
    );
    Ok(())
}

/// Builds with a progress bar on a terminal; shared by `index`, `demo` and `bench`.
pub fn build(opts: &BuildOptions, json: bool) -> Result<BuildReport> {
    let bar = progress::bytes(json, 0, "parsing");
    let embed_bar = std::sync::OnceLock::new();
    let done = AtomicU64::new(0);
    let heartbeat = progress::Heartbeat::new(std::time::Duration::from_secs(60));
    let report = build_index(opts, &|ev| match ev {
        BuildEvent::Start { bytes, .. } => bar.set_length(bytes),
        BuildEvent::Parsed { bytes, .. } => {
            let total = done.fetch_add(bytes, Ordering::Relaxed) + bytes;
            bar.set_position(total);
        }
        BuildEvent::Embedded { done, total } => {
            let eb = embed_bar.get_or_init(|| {
                bar.finish_and_clear();
                progress::items(json, total, "embedding")
            });
            eb.set_length(total);
            eb.set_position(done);
            heartbeat.beat("embedded passages", done, total);
        }
        BuildEvent::Committing => match embed_bar.get() {
            Some(eb) => eb.set_message("committing"),
            None => bar.set_message("committing"),
        },
    })
    .with_context(|| format!("indexing into {}", opts.index_dir.display()))?;
    bar.finish_and_clear();
    if let Some(eb) = embed_bar.get() {
        eb.finish_and_clear();
    }
    Ok(report)
}

pub fn print_report(r: &BuildReport) {
    let c = &r.counts;
    println!("records read   {:>9}", c.records_read);
    println!("indexed PMIDs  {:>9}", c.indexed);
    println!("with abstract  {:>9}", c.with_abstract);
    println!("replaced       {:>9}", c.replaced);
    println!("deleted        {:>9}", c.deleted);
    println!("rejected       {:>9}", c.rejected);
    println!("seconds        {:>9.1}", r.seconds);
    if let Some(d) = &r.dense {
        println!("passages       {:>9}  (dense, {})", d.rows, d.model.id);
    }
    for rej in r.rejected.iter().take(SHOWN_REJECTS) {
        eprintln!("skipped: {rej}");
    }
    if r.rejected.len() > SHOWN_REJECTS {
        eprintln!(
            "… and {} more skipped records (all are listed by --json)",
            r.rejected.len() - SHOWN_REJECTS
        );
    }
}
