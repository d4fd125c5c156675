//! The Python peers and the build tools: a virtual environment per peer under
//! `$MEDLIT_HOME/bench/`, a peer's JSON output, a child process that must succeed.
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// A virtual environment of its own under $MEDLIT_HOME/bench/ with `packages` installed;
/// returns its python. `probe` is a module whose import shows the install is done.
pub fn peer_python(python: &str, name: &str, packages: &[&str], probe: &str) -> Result<PathBuf> {
    let venv = medlit::cli::setup::home()?.root().join("bench").join(name);
    let py = venv.join("bin").join("python");
    if !py.exists() {
        run_ok(
            Command::new(python).arg("-m").arg("venv").arg(&venv),
            "creating the peer's virtual environment",
        )?;
    }
    let ready = Command::new(&py)
        .args(["-c", &format!("import {probe}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ready {
        run_ok(
            Command::new(&py)
                .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
                .args(packages),
            "installing the peer's packages",
        )?;
    }
    Ok(py)
}

/// Runs a peer script and reads the JSON on the last line of its output.
pub fn peer_json<T: serde::de::DeserializeOwned>(cmd: &mut Command) -> Result<T> {
    let out = cmd.output().context("running the peer")?;
    if !out.status.success() {
        bail!(
            "the peer failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).with_context(|| format!("reading the peer's output {last:?}"))
}

pub fn run_ok(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd.output().with_context(|| what.to_string())?;
    if !out.status.success() {
        bail!("{what}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}
