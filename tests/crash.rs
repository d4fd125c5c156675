//! Crash safety of `medlit index`: the process is killed with SIGKILL at 24 points spread over
//! a dense build of a synthetic corpus (revisions and deletions included). After each kill the
//! index must open, be one of the states the uninterrupted run committed (or no index at all,
//! before the first commit), pass `medlit verify`, and running the same command again must end
//! in the uninterrupted run's final state: same counts, PMIDs, live passages and vectors.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::common::{medlit, ok_json};
use medlit_indexer::dense::DenseIndex;
use medlit_indexer::IndexDir;
use serde_json::Value;

const KILL_POINTS: usize = 24;

fn index_args<'a>(corpus: &'a str, index: &'a str) -> Vec<&'a str> {
    vec!["index", "--dense", "--index", index, corpus, "--json"]
}

/// What identifies a committed state: the manifest's inputs and counts, and the dense rows.
fn state_of(manifest: &medlit_indexer::IndexManifest) -> Value {
    serde_json::json!({
        "files": manifest.inputs.len(),
        "counts": manifest.counts,
        "passages": manifest.dense.as_ref().map(|d| (d.rows, d.dead)),
    })
}

/// Every live BM25 PMID and every live dense passage with its vector.
type Content = (Vec<u64>, BTreeMap<(u64, u32), Vec<f32>>);

fn content(index: &Path) -> Content {
    let layout = IndexDir::new(index);
    let m = layout.manifest().unwrap();
    let mut pmids = medlit_indexer::bm25::live_pmids(&layout.bm25_dir(&m)).unwrap();
    pmids.sort_unstable();
    let d = m.dense.unwrap();
    let dense = DenseIndex::open(&index.join(&d.dir), &d.model).unwrap();
    let mut passages = BTreeMap::new();
    for id in (0..dense.meta().rows).filter(|&i| !dense.is_dead(i)) {
        let r = dense.row(id).unwrap();
        let old = passages.insert((r.pmid, r.passage_no), dense.vector(id).to_vec());
        assert!(old.is_none(), "live passage {r:?} twice");
    }
    (pmids, passages)
}

fn assert_same_content(got: &Content, want: &Content, what: &str) {
    assert_eq!(got.0, want.0, "{what}: BM25 PMIDs");
    assert_eq!(
        got.1.keys().collect::<Vec<_>>(),
        want.1.keys().collect::<Vec<_>>(),
        "{what}: live passages"
    );
    for (k, v) in &got.1 {
        let w = &want.1[k];
        let diff = v
            .iter()
            .zip(w)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-4, "{what}: vector of {k:?} differs by {diff}");
    }
}

#[test]
fn sigkill_at_24_points_leaves_a_committed_state_and_resuming_ends_where_a_clean_run_does() {
    for kind in [
        "corpus",
        "embedding-model",
        "encoder-weights",
        "tokenizer",
        "runtime",
    ] {
        ok_json(&["fetch", "--only", kind, "--json"]);
    }
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    let synth = ok_json(&[
        "synth",
        "--records",
        "72",
        "--per-file",
        "12",
        "--revise",
        "0.25",
        "--delete",
        "0.1",
        "--out",
        corpus.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(synth["files"].as_array().unwrap().len(), 6);
    assert!(synth["revisions"].as_u64().unwrap() > 0);
    assert!(synth["deletions"].as_u64().unwrap() > 0);
    let corpus = corpus.to_str().unwrap();

    // The uninterrupted run: its commits are the states a killed run may be left in.
    let clean = tmp.path().join("clean");
    let started = Instant::now();
    let report = ok_json(&index_args(corpus, clean.to_str().unwrap()));
    let run_time = started.elapsed();
    let committed: Vec<Value> = report["commits"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            serde_json::json!({
                "files": i + 1,
                "counts": c["counts"],
                "passages": c["passages"],
            })
        })
        .collect();
    assert_eq!(committed.len(), 6);
    assert!(
        report["dead_passages"].as_u64().unwrap() > 0,
        "revisions tombstone passages"
    );
    let final_state = state_of(&IndexDir::new(&clean).manifest().unwrap());
    assert_eq!(&final_state, committed.last().unwrap());
    let final_content = content(&clean);

    let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
    for point in 0..KILL_POINTS {
        let index = tmp.path().join(format!("killed-{point}"));
        let idx = index.to_str().unwrap();
        // Spread over the run, from just after start to just before its end.
        let delay = run_time.mul_f64((point as f64 + 0.5) / KILL_POINTS as f64);
        let mut child = Command::new(env!("CARGO_BIN_EXE_medlit"))
            .args(index_args(corpus, idx))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let finished_first = child.try_wait().unwrap().is_some();
        child.kill().ok(); // SIGKILL on Unix
        child.wait().unwrap();

        let files = match IndexDir::new(&index).read_manifest().unwrap() {
            None => 0,
            Some(m) => {
                let state = state_of(&m);
                let files = m.inputs.len();
                assert!(
                    files >= 1 && state == committed[files - 1],
                    "kill point {point} ({delay:?}): {state} is not a committed state"
                );
                let v = medlit(&["verify", "--index", idx, "--json"]);
                assert!(
                    v.status.success(),
                    "kill point {point}: verify failed: {}",
                    String::from_utf8_lossy(&v.stdout)
                );
                files
            }
        };
        *seen.entry(files).or_default() += 1;

        let resumed = ok_json(&index_args(corpus, idx));
        let expect_resume = files > 0 && files < 6;
        assert_eq!(
            resumed["resumed_after"].as_u64(),
            expect_resume.then_some(files as u64),
            "kill point {point}: {resumed}"
        );
        if files == 6 {
            assert_eq!(resumed["run"]["files"], 0, "a finished index is up to date");
        }
        assert_eq!(
            state_of(&IndexDir::new(&index).manifest().unwrap()),
            final_state,
            "kill point {point}: resumed state"
        );
        assert!(medlit(&["verify", "--index", idx]).status.success());
        assert_same_content(
            &content(&index),
            &final_content,
            &format!("kill point {point}"),
        );
        if finished_first {
            eprintln!("kill point {point}: the run had already finished");
        }
        std::fs::remove_dir_all(&index).unwrap();
    }
    eprintln!("committed files at the kill points: {seen:?} (run took {run_time:?})");
    // The kills must have landed inside the run, not all before or after it.
    assert!(
        seen.keys().filter(|&&k| k > 0 && k < 6).count() >= 2,
        "kills left {seen:?}: too few inside the run"
    );
}
