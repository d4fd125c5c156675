//! `medlit bench qdrant` on a small real hybrid index: a synthetic corpus recombined from the
//! fetched sample, indexed with the real MiniLM encoder, exported, loaded into Qdrant's own
//! engine (qdrant-edge, installed with pip) and queried with the bodies medlit sends a Qdrant
//! server. Titles as questions: each has one right answer in both engines. Then the same
//! engine behind those request shapes on a loopback port (a Qdrant server cannot be started
//! here: it is not in the package registries this project reaches), and `medlit search` and
//! `medlit serve` with `--retrieval qdrant` against it.
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

mod common;
use common::medlit_exe;

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

/// `medlit-bench qdrant --json` on one question file.
fn bench_qdrant(questions: &Path, index: &Path, work: &Path) -> Value {
    run_json(Command::new(env!("CARGO_BIN_EXE_medlit-bench")).args([
        "qdrant",
        "--json",
        "--dataset",
        questions.to_str().unwrap(),
        "--index",
        index.to_str().unwrap(),
        "--work",
        work.to_str().unwrap(),
    ]))
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
    let v = bench_qdrant(&questions, &index, &work);
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
    let again = bench_qdrant(&questions, &index, &work);
    assert!(again["load_seconds"].is_null(), "{again}");
    assert_eq!(again["datasets"][0]["dense_exact"], d["dense_exact"]);

    remote_retrieval(&index, &work, &pmids, &questions);
}

/// A child process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The first line a child prints, read as JSON or as the text it is.
fn first_line(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    line
}

fn remote_retrieval(index: &Path, work: &Path, pmids: &[String], questions: &Path) {
    let shard = std::fs::read_dir(work)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("shard-")
        })
        .expect("the shard the benchmark loaded");
    let home = medlit_corpus::MedlitHome::from_env().unwrap();
    let py = home.root().join("bench/qdrant-edge-0.9.0/bin/python");
    let mut shim = Running(
        Command::new(py)
            .arg(work.join("qdrant_edge_shim.py"))
            .args(["serve", shard.to_str().unwrap(), "0"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let listening: Value = serde_json::from_str(&first_line(&mut shim.0)).unwrap();
    let url = format!("http://127.0.0.1:{}", listening["listening"]);
    let index = index.to_str().unwrap();

    // `medlit search --retrieval qdrant`: Qdrant ranks, the index supplies the records.
    let titles: Vec<Value> = std::fs::read_to_string(questions)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for mode in ["bm25", "dense", "hybrid"] {
        let mut first = 0;
        for t in &titles {
            let q = t["question"].as_str().unwrap();
            let v = medlit(&[
                "search",
                q,
                "--json",
                "--index",
                index,
                "--mode",
                mode,
                "--retrieval",
                "qdrant",
                "--qdrant-url",
                &url,
            ]);
            let hits = v["hits"].as_array().unwrap();
            assert!(!hits.is_empty() && hits.len() <= 10, "{mode}: {v}");
            first += usize::from(hits[0]["pmid"] == t["pmid"]);
            if mode != "bm25" {
                assert!(
                    hits[0]["passage"].is_string(),
                    "{mode}: the passage from the payload"
                );
            }
        }
        assert!(
            first * 10 >= titles.len() * 8,
            "{mode}: {first} of {} first",
            titles.len()
        );
    }
    // A collection the server does not hold, and a server that is not there: exit 1, named.
    for (url, expected) in [
        (url.as_str(), "404"),
        ("http://127.0.0.1:9", "cannot reach the server"),
    ] {
        let out = Command::new(medlit_exe())
            .args([
                "search",
                "statin",
                "--index",
                index,
                "--retrieval",
                "qdrant",
            ])
            .args(["--qdrant-url", url, "--qdrant-collection", "nope"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected) && err.contains("Qdrant at"), "{err}");
    }

    // `medlit serve --retrieval qdrant`: search and a cited answer over HTTP.
    medlit(&["fetch", "--only", "generator", "--json"]);
    let mut server = Running(
        Command::new(medlit_exe())
            .args(["serve", "--addr", "127.0.0.1:0", "--index", index])
            .args(["--retrieval", "qdrant", "--qdrant-url", &url])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let line = first_line(&mut server.0);
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| {
            let mut err = String::new();
            let _ = server.0.stderr.as_mut().unwrap().read_to_string(&mut err);
            panic!("no address in {line:?}: {err}")
        })
        .trim_end_matches('/')
        .to_string();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let title = titles[0]["question"].as_str().unwrap();
    let mut r = agent
        .get(format!("{base}/api/search"))
        .query("q", title)
        .query("mode", "hybrid")
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.body_mut().read_json().unwrap();
    assert_eq!(v["hits"][0]["pmid"], titles[0]["pmid"], "{v}");
    let mut r = agent
        .post(format!("{base}/api/ask"))
        .send_json(
            serde_json::json!({"question": format!("What did the study titled {title} report?")}),
        )
        .unwrap();
    let status = r.status().as_u16();
    let v: Value = r.body_mut().read_json().unwrap();
    assert_eq!(status, 200, "{v}");
    let evidence: Vec<&str> = v["evidence"]
        .as_array()
        .unwrap_or_else(|| panic!("no evidence in {v}"))
        .iter()
        .filter_map(|e| e["pmid"].as_str())
        .collect();
    assert!(evidence.contains(&pmids[0].as_str()), "{v}");
    for c in v["citations"].as_array().into_iter().flatten() {
        let pmid = c["pmid"].as_str().unwrap_or_default();
        assert!(
            evidence.contains(&pmid),
            "a citation outside the evidence: {v}"
        );
    }
    // Qdrant gone: the server answers 502, naming it, and stays up.
    drop(shim);
    let mut r = agent
        .get(format!("{base}/api/search"))
        .query("q", "statin myopathy")
        .query("mode", "dense")
        .call()
        .unwrap();
    let status = r.status().as_u16();
    let body = r.body_mut().read_to_string().unwrap();
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("Qdrant at"), "{body}");
    let r = agent.get(format!("{base}/healthz")).call().unwrap();
    assert_eq!(r.status().as_u16(), 200);
}
