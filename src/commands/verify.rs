//! `medlit verify`: is the index whole and self-consistent?
use anyhow::{bail, Context, Result};

use crate::cli::setup;

use super::print_json;
use crate::cli::VerifyArgs;

pub fn run(args: &VerifyArgs) -> Result<()> {
    let dir = setup::index_dir(&args.index)?;
    let report = medlit_indexer::verify::verify(&dir)
        .with_context(|| format!("verifying {}", dir.display()))?;
    if args.json {
        print_json(&report)?;
    } else {
        println!("index {} (generation {})", report.index, report.generation);
        for c in &report.checks {
            println!(
                "{:<5} {:<13} {}",
                if c.ok { "ok" } else { "FAIL" },
                c.name,
                c.detail
            );
        }
    }
    if !report.ok {
        bail!("the index failed verification");
    }
    Ok(())
}
