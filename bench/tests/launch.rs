//! The benchmarks' binary on its own and through `medlit bench`: usage errors are exit 2 and
//! name the bad value; `--help` lists every benchmark. (Being an integration test of this
//! crate, it also makes `cargo test --workspace` build `medlit-bench` beside `medlit`, which
//! the root crate's benchmark tests run through the launcher.)
use std::process::Command;

mod common;
use common::{bench, medlit_exe};

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

/// A `--work` folder of the user's that holds anything is refused before a corpus is written
/// or `index --replace` runs there, and keeps its contents; a new folder is marked, and the
/// mark lets the next run reuse it.
#[test]
fn a_users_work_folder_is_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("mine");
    std::fs::create_dir_all(work.join("index-1000")).unwrap();
    std::fs::write(work.join("index-1000/notes.txt"), "a user's notes").unwrap();
    let out = bench(&["scale", "--sizes", "1000", "--work", work.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no `medlit bench` run made it") && err.contains("index-1000"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(work.join("index-1000/notes.txt")).unwrap(),
        "a user's notes"
    );
    assert_eq!(
        std::fs::read_dir(&work).unwrap().count(),
        1,
        "nothing written"
    );

    // A new folder is taken and marked, and taken again by the next run (each run here stops
    // right after, at the missing corpus of an empty MEDLIT_HOME).
    let fresh = tmp.path().join("fresh");
    for _ in 0..2 {
        let out = Command::new(env!("CARGO_BIN_EXE_medlit-bench"))
            .args(["graph", "--rows", "4000", "--work", fresh.to_str().unwrap()])
            .env("MEDLIT_HOME", tmp.path().join("empty-home"))
            .output()
            .expect("running medlit-bench");
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("the corpus is not fetched"), "{err}");
    }
    assert!(fresh.join(".medlit-bench").is_file());
}
