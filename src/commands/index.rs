use std::sync::atomic::{AtomicU64, Ordering};

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::cli::setup;
use medlit_indexer::{
    build_index, BuildEvent, BuildMode, BuildOptions, BuildReport, IndexDir, Rejected, RunCounts,
};
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
    /// Live passages in the dense index, when it was built.
    passages: Option<u64>,
    /// Passages of replaced or deleted PMIDs, stored but never returned (`medlit compact`
    /// drops them).
    dead_passages: Option<u64>,
    generation: u64,
    index: String,
    /// What this run did; the fields above are the index's totals.
    run: RunCounts,
    applied: &'a [String],
    /// The index's state after each file this run committed.
    commits: &'a [medlit_indexer::Commit],
    skipped: &'a [String],
    /// Set when the run resumed an interrupted one: how many files that one had committed.
    resumed_after: Option<usize>,
    rejects: &'a [Rejected],
}

pub fn run(args: &IndexArgs) -> Result<()> {
    let files = if args.files.is_empty() {
        setup::corpus_files(&setup::manifest(&args.manifest)?)?
    } else {
        expand_folders(&args.files)?
    };
    let dir = setup::index_dir(&args.index)?;
    let mode = if args.update {
        BuildMode::Update { force: args.force }
    } else if args.replace {
        BuildMode::Rebuild
    } else {
        BuildMode::Build
    };
    // An update embeds with the index's own model, passage budget and graph settings.
    let existing_dense = if args.update {
        IndexDir::new(&dir)
            .manifest()
            .with_context(|| format!("updating {}", dir.display()))?
            .dense
    } else {
        None
    };
    let dense = match (&existing_dense, args.dense || existing_dense.is_some()) {
        (_, false) => None,
        (None, true) => Some(setup::dense_options(
            &setup::manifest(&args.manifest)?,
            &args.embed,
        )?),
        (Some(d), true) => {
            let mut o = setup::dense_options(&setup::manifest(&args.manifest)?, &args.embed)?;
            o.embedder.max_tokens = d.model.max_tokens;
            o.params = d.params;
            Some(o)
        }
    };
    let opts = BuildOptions {
        inputs: files,
        index_dir: dir.clone(),
        writer_memory_mib: args.writer_memory,
        dense,
        mode,
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
            passages: report.dense.as_ref().map(|d| d.rows - d.dead),
            dead_passages: report.dense.as_ref().map(|d| d.dead),
            generation: report.generation,
            index: dir.display().to_string(),
            run: report.run,
            applied: &report.applied,
            commits: &report.commits,
            skipped: &report.skipped,
            resumed_after: report.resumed_after,
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

/// Folders become their `*.xml` / `*.xml.gz` files in name order; files stay as given.
fn expand_folders(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if !p.is_dir() {
            out.push(p.clone());
            continue;
        }
        let mut found: Vec<PathBuf> = std::fs::read_dir(p)
            .with_context(|| format!("listing {}", p.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|f| {
                let n = f
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default();
                (n.ends_with(".xml") || n.ends_with(".xml.gz")) && f.is_file()
            })
            .collect();
        if found.is_empty() {
            bail!("{}: a folder with no .xml or .xml.gz files", p.display());
        }
        found.sort();
        out.extend(found);
    }
    Ok(out)
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
        BuildEvent::Committed { file, generation } => {
            tracing::info!(file, generation, "committed");
        }
    })
    .with_context(|| format!("indexing into {}", opts.index_dir.display()))?;
    bar.finish_and_clear();
    if let Some(eb) = embed_bar.get() {
        eb.finish_and_clear();
    }
    Ok(report)
}

pub fn print_report(r: &BuildReport) {
    if let Some(n) = r.resumed_after {
        println!("resumed an interrupted run after its {n} committed files");
    }
    for name in &r.skipped {
        println!("skipped {name}: already applied (same name and sha256)");
    }
    if r.run.files == 0 {
        println!("nothing to apply: the index is up to date");
    } else {
        let u = &r.run;
        println!(
            "this run: {} files, {} records, {} added, {} replaced, {} deleted ({} were present), {} rejected",
            u.files, u.records_read, u.added, u.replaced, u.deleted, u.removed, u.rejected
        );
        if u.passages_embedded + u.passages_tombstoned > 0 {
            println!(
                "          {} passages embedded, {} tombstoned",
                u.passages_embedded, u.passages_tombstoned
            );
        }
        println!("index totals:");
    }
    let c = &r.counts;
    println!("records read   {:>9}", c.records_read);
    println!("indexed PMIDs  {:>9}", c.indexed);
    println!("with abstract  {:>9}", c.with_abstract);
    println!("replaced       {:>9}", c.replaced);
    println!("deleted        {:>9}", c.deleted);
    println!("rejected       {:>9}", c.rejected);
    println!("seconds        {:>9.1}", r.seconds);
    if let Some(d) = &r.dense {
        println!(
            "passages       {:>9}  (dense, {})",
            d.rows - d.dead,
            d.model.id
        );
        if d.dead > 0 {
            println!(
                "tombstoned     {:>9}  (`medlit compact` drops them)",
                d.dead
            );
        }
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
