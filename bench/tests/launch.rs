//! The benchmarks' binary on its own and through `medlit bench`: usage errors are exit 2 and
//! name the bad value; `--help` lists every benchmark. (Being an integration test of this
//! crate, it also makes `cargo test --workspace` build `medlit-bench` beside `medlit`, which
//! the root crate's benchmark tests run through the launcher.)
use std::path::PathBuf;
use std::process::{Command, Output};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medlit-bench"))
        .args(args)
        .output()
        .expect("running medlit-bench")
}

/// The `medlit` binary of the same build, beside this one.
fn medlit_exe() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_medlit-bench"))
        .with_file_name(format!("medlit{}", std::env::consts::EXE_SUFFIX));
    assert!(
        exe.is_file(),
        "{} is missing: run `cargo build --release` (or the whole workspace's tests)",
        exe.display()
    );
    exe
}

#[test]
fn help_lists_every_benchmark() {
    let out = bench(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for name in ["ingest", "embed", "search", "generate", "serve", "scale"] {
        assert!(text.contains(name), "{name} missing from: {text}");
    }
}

#[test]
fn a_bad_size_is_a_usage_error_directly_and_through_medlit() {
    let out = bench(&["scale", "--sizes", "50q"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`50q` is not a count"));

    let out = Command::new(medlit_exe())
        .args(["bench", "scale", "--sizes", "50q"])
        .output()
        .expect("running medlit");
    assert_eq!(
        out.status.code(),
        Some(2),
        "the launcher passes the exit code on"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("`50q` is not a count"));
}
