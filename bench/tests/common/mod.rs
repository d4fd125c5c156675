//! What the benchmark tests share: the two binaries of the same build.
// Each test file is a crate of its own and uses only some of these.
#![allow(dead_code)]
use std::path::PathBuf;
use std::process::{Command, Output};

/// `medlit-bench ARGS`, run to its end.
pub fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medlit-bench"))
        .args(args)
        .output()
        .expect("running medlit-bench")
}

/// The `medlit` binary of the same build, beside `medlit-bench`.
pub fn medlit_exe() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_medlit-bench"))
        .with_file_name(format!("medlit{}", std::env::consts::EXE_SUFFIX));
    assert!(
        exe.is_file(),
        "{} is missing: run `cargo build --release` (or the whole workspace's tests)",
        exe.display()
    );
    exe
}
