//! `medlit bench …`: runs the medlit-bench binary beside this one with the same words, as cargo
//! runs `cargo-<name>`. The benchmarks, their peers and the llama.cpp build live there, so the
//! user binary carries none of them.
use std::process::Command;

use anyhow::{Context, Result};

use crate::cli::BenchLaunch;

pub fn run(args: &BenchLaunch) -> Result<()> {
    let exe =
        crate::cli::setup::sibling_exe("medlit-bench", "the benchmarks are a binary of their own")?;
    let status = Command::new(&exe)
        .args(&args.args)
        .status()
        .with_context(|| format!("running {}", exe.display()))?;
    if status.success() {
        return Ok(());
    }
    // The benchmark printed its own error; pass its exit code on (2 for a usage error).
    std::process::exit(status.code().unwrap_or(1));
}
