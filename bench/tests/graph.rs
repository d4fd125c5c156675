//! `medlit bench graph` on a small real run: rows mixed from MiniLM vectors of the fetched
//! sample, real titles as queries, one graph against three segments. What must hold whatever
//! the machine: the layouts are what was asked, a wider candidate list finds at least as many
//! of the exact neighbours on both, the wide list finds nearly all of them, and the timings
//! and ratios are real numbers. Usage errors name the bad value.
use serde_json::Value;

mod common;
use common::bench;

#[test]
fn a_wider_list_finds_more_of_the_exact_neighbours_in_both_layouts() {
    let work = tempfile::tempdir().unwrap();
    let out = bench(&[
        "graph",
        "--rows",
        "6000",
        "--segments",
        "3",
        "--ef",
        "10,200",
        "--queries",
        "40",
        "--embed-sample",
        "40",
        "--work",
        work.path().to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).expect("JSON on standard output");
    assert_eq!(r["rows"], 6000, "{r}");
    assert_eq!(r["single"]["segments"], 1, "{r}");
    assert_eq!(r["segmented"]["segments"], 3, "{r}");
    assert_eq!(r["queries"], 40, "{r}");
    let sweep = r["sweep"].as_array().unwrap();
    assert_eq!(sweep.len(), 2);
    for layout in ["single", "segmented"] {
        let recall = |i: usize| sweep[i][layout]["recall_at_10"].as_f64().unwrap();
        assert!(recall(1) >= recall(0), "{layout}: {r}");
        assert!(recall(1) >= 0.95, "{layout} at ef 200 over 6,000 rows: {r}");
        for e in sweep {
            let (p50, p95) = (
                e[layout]["p50_ms"].as_f64().unwrap(),
                e[layout]["p95_ms"].as_f64().unwrap(),
            );
            assert!(p50 > 0.0 && p95 >= p50, "{layout}: {e}");
        }
    }
    assert!(sweep.iter().all(|e| e["p95_ratio"].as_f64().unwrap() > 0.0));
    // Removed at the end without --keep.
    assert!(!work.path().join("single").exists());
    assert!(!work.path().join("segmented").exists());
}

#[test]
fn too_few_rows_one_segment_or_a_zero_ef_is_refused() {
    let out = bench(&["graph", "--rows", "1000", "--segments", "2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--rows 1000 is too few for --segments 2"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bench(&["graph", "--segments", "1"]);
    assert_eq!(out.status.code(), Some(2));
    let out = bench(&["graph", "--ef", "0,96"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ef"));
    let out = bench(&["graph", "--segment-rows", "5000"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--segments N splits --rows"));
}

/// `--work` may be a folder of the user's: one that holds anything an earlier run did not
/// mark is refused before anything is built, and left as it was.
#[test]
fn a_work_folder_it_did_not_write_is_left_alone() {
    let work = tempfile::tempdir().unwrap();
    let mine = work.path().join("segmented");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "a user's notes").unwrap();
    let out = bench(&[
        "graph",
        "--rows",
        "4000",
        "--work",
        work.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no `medlit bench` run made it") && err.contains("segmented"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(mine.join("notes.txt")).unwrap(),
        "a user's notes"
    );
    assert!(!work.path().join("single").exists(), "nothing built");
}

#[test]
fn a_pool_index_without_a_dense_half_is_named() {
    let work = tempfile::tempdir().unwrap();
    let not_an_index = work.path().join("nothing-here");
    std::fs::create_dir(&not_an_index).unwrap();
    let out = bench(&[
        "graph",
        "--rows",
        "4000",
        "--queries",
        "5",
        "--pool-index",
        not_an_index.to_str().unwrap(),
        "--work",
        work.path().join("w").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nothing-here"), "{err}");
    assert!(!work.path().join("w/single").exists(), "nothing built");
}
