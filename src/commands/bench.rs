//! `medlit bench …`: runs the medlit-bench binary beside this one with the same words, as cargo
//! runs `cargo-<name>`. The benchmarks, their peers and the llama.cpp build live there, so the
//! user binary carries none of them.
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::cli::BenchLaunch;

pub fn run(args: &BenchLaunch) -> Result<()> {
    let exe = bench_exe()?;
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

fn bench_exe() -> Result<PathBuf> {
    let me = std::env::current_exe().context("finding the medlit executable")?;
    let exe = me.with_file_name(format!("medlit-bench{}", std::env::consts::EXE_SUFFIX));
    if !exe.is_file() {
        bail!(
            "{} does not exist: the benchmarks are a binary of their own; build it with `cargo build --release` (it builds both binaries)",
            exe.display()
        );
    }
    Ok(exe)
}
