//! `medlit bench qdrant` on a small real hybrid index: a synthetic corpus recombined from the
//! fetched sample, indexed with the real MiniLM encoder, exported, loaded into Qdrant's own
//! engine (qdrant-edge, installed with pip) and queried with the bodies medlit sends a Qdrant
//! server. Titles as questions: each has one right answer in both engines.
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

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

fn run_json(cmd: &mut Command) -> Value {
    let out = cmd.output().expect("starting the command");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on standard output")
}

fn medlit(args: &[&str]) -> Value {
    run_json(Command::new(medlit_exe()).args(args))
}

/// One question per listed PMID: its title.
fn title_questions(index: &Path, pmids: &[String], out: &Path) {
    let mut args = vec!["show", "--json", "--index", index.to_str().unwrap()];
    args.extend(pmids.iter().map(String::as_str));
    let shown = medlit(&args);
    let lines: Vec<String> = shown["articles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| serde_json::json!({"question": a["title"], "pmid": a["pmid"]}).to_string())
        .collect();
    assert_eq!(lines.len(), pmids.len());
    std::fs::write(out, lines.join("\n") + "\n").unwrap();
}

#[test]
fn qdrant_edge_finds_what_medlit_finds_on_the_exported_collection() {
    for kind in [
        "corpus",
        "encoder-weights",
        "tokenizer",
        "embedding-model",
        "runtime",
    ] {
        medlit(&["fetch", "--only", kind, "--json"]);
    }
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    let synth = medlit(&[
        "synth",
        "--records",
        "1200",
        "--out",
        corpus.to_str().unwrap(),
        "--json",
    ]);
    let files: Vec<String> = synth["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    let index = tmp.path().join("index");
    let mut args = vec!["index", "--json", "--index", index.to_str().unwrap()];
    args.extend(files.iter().map(String::as_str));
    let built = medlit(&args);
    assert!(built["passages"].as_u64().unwrap() > 1200, "{built}");

    let pmids: Vec<String> = (0..30).map(|i| (90_000_001 + i * 37).to_string()).collect();
    let questions = tmp.path().join("titles.jsonl");
    title_questions(&index, &pmids, &questions);
    let work = tmp.path().join("work");
    let v = run_json(Command::new(env!("CARGO_BIN_EXE_medlit-bench")).args([
        "qdrant",
        "--json",
        "--dataset",
        questions.to_str().unwrap(),
        "--index",
        index.to_str().unwrap(),
        "--work",
        work.to_str().unwrap(),
    ]));
    assert_eq!(v["points"], built["passages"], "one point per passage: {v}");
    let d = &v["datasets"][0];
    let f = |path: &[&str]| -> f64 {
        path.iter()
            .fold(d, |v, k| &v[*k])
            .as_f64()
            .unwrap_or_else(|| panic!("{path:?} in {d}"))
    };
    // Both engines score cosine exactly on the same stored vectors.
    assert!(f(&["dense_exact", "equal_top10"]) >= 0.95, "{d}");
    assert!(f(&["dense_hnsw", "overlap_at_10"]) >= 0.95, "{d}");
    // BM25: passages under Qdrant's idf modifier against medlit's whole-article BM25.
    assert!(f(&["sparse_vs_bm25", "qdrant_source_first"]) >= 0.8, "{d}");
    assert!(f(&["sparse_vs_bm25", "same_first"]) >= 0.8, "{d}");
    assert!(f(&["hybrid", "qdrant_source_in_10"]) >= 0.9, "{d}");
    assert!(f(&["hybrid", "same_first"]) >= 0.8, "{d}");

    // The shard is reused while the index's generation is the same.
    let again = run_json(Command::new(env!("CARGO_BIN_EXE_medlit-bench")).args([
        "qdrant",
        "--json",
        "--dataset",
        questions.to_str().unwrap(),
        "--index",
        index.to_str().unwrap(),
        "--work",
        work.to_str().unwrap(),
    ]));
    assert!(again["load_seconds"].is_null(), "{again}");
    assert_eq!(again["datasets"][0]["dense_exact"], d["dense_exact"]);
}
