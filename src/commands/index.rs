//! `medlit index`: PubMed files into the index (build, resume, update, staged rebuild).
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use medlit_indexer::{BuildMode, BuildOptions, IndexDir, Rejected, RunCounts};
use serde::Serialize;

use super::print_json;
use crate::cli::{jobs, setup, IndexArgs};

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
    // New indexes are hybrid unless --bm25-only; an update keeps the index's kind (or asks
    // for a dense half with --dense, which the plan refuses with what to do instead).
    let want_dense = if args.update {
        args.dense || existing_dense.is_some()
    } else {
        !args.bm25_only
    };
    let dense = match (&existing_dense, want_dense) {
        (_, false) => None,
        (None, true) => Some(setup::dense_options(
            &setup::manifest(&args.manifest)?,
            &args.embed,
        )?),
        (Some(d), true) => {
            let manifest = setup::manifest(&args.manifest)?;
            let mut o = setup::dense_options(&manifest, &args.embed)?;
            // The encoder the index records, whichever `--encoder` says (on the asked device
            // when it is that encoder).
            if !o.embedder.made(&d.model) {
                if let Some(e) =
                    setup::encoders(&manifest, args.embed.embed_threads, d.model.max_tokens)
                        .into_iter()
                        .find(|e| e.made(&d.model))
                {
                    o.embedder = e;
                }
            }
            o.embedder.set_max_tokens(d.model.max_tokens);
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
    let report = jobs::build(&opts, args.json)?;
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
    jobs::print_report(&report);
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
