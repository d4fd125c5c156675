//! One module per subcommand, plus what they share: where data lives and which manifest to use.
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use medlit_corpus::{fetch::assets_present, AssetKind, DataManifest, MedlitHome};

use crate::cli::{IndexDirArg, ManifestArg};

pub mod bench;
pub mod demo;
pub mod eval;
pub mod fetch;
pub mod index;
pub mod search;

pub fn home() -> Result<MedlitHome> {
    MedlitHome::from_env().context("locating MEDLIT_HOME")
}

pub fn manifest(arg: &ManifestArg) -> Result<DataManifest> {
    match &arg.manifest {
        Some(p) => DataManifest::load(p).with_context(|| format!("loading {}", p.display())),
        None => DataManifest::embedded().context("loading the built-in data manifest"),
    }
}

pub fn index_dir(arg: &IndexDirArg) -> Result<PathBuf> {
    match &arg.index {
        Some(d) => Ok(d.clone()),
        None => Ok(home()?.index()),
    }
}

/// The fetched corpus files in manifest order; an error that says how to fetch them if absent.
pub fn corpus_files(manifest: &DataManifest) -> Result<Vec<PathBuf>> {
    let assets = home()?.assets();
    if !assets_present(manifest, &assets, &[AssetKind::Corpus]) {
        bail!(
            "the corpus is not fetched (looked in {}); run `medlit fetch --only corpus` first, or name the files to index",
            assets.display()
        );
    }
    Ok(manifest
        .corpus_files()
        .into_iter()
        .map(|f| assets.join(&f.dest))
        .collect())
}

pub fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Human-readable byte count.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
