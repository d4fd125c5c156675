//! Shared by the server tests: the sample index, a running `medlit serve`, HTTP helpers.
#![allow(dead_code)] // each test binary uses its own subset

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

pub const BRUCELLA: &str = "In mice infected with Brucella melitensis, which antibiotic cured nearly all animals after three weeks?";

pub fn medlit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medlit"))
        .args(args)
        .output()
        .expect("running medlit")
}

pub fn ok_json(args: &[&str]) -> Value {
    let out = medlit(args);
    assert!(
        out.status.success(),
        "medlit {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// The sample indexed once for this test binary, with every asset the server loads fetched.
pub fn sample_index() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        for kind in [
            "corpus",
            "generator",
            "embedding-model",
            "tokenizer",
            "runtime",
        ] {
            let fetched = ok_json(&["fetch", "--only", kind, "--json"]);
            assert!(!fetched["files"].as_array().unwrap().is_empty(), "{kind}");
        }
        let dir = tempfile::tempdir().unwrap();
        let idx = dir.path().join("index");
        let report = ok_json(&["index", "--index", idx.to_str().unwrap(), "--json"]);
        assert_eq!(report["indexed"], 50_783);
        dir
    })
    .path()
}

pub fn index_path() -> PathBuf {
    sample_index().join("index")
}

/// A running server; killed when dropped.
pub struct Server {
    child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn start(extra: &[&str]) -> Server {
        let index = index_path();
        let mut child = Command::new(env!("CARGO_BIN_EXE_medlit"))
            .args(["serve", "--addr", "127.0.0.1:0", "--index"])
            .arg(&index)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting medlit serve");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let base = line
            .trim()
            .strip_prefix("medlit serve: listening on ")
            .unwrap_or_else(|| panic!("no address line: {line:?}"))
            .to_string();
        Server { child, base }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// Status, Retry-After and body (JSON) of a GET.
pub fn get(url: &str) -> (u16, Value) {
    let mut r = agent().get(url).call().unwrap();
    let status = r.status().as_u16();
    let body = r.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

pub fn post(url: &str, body: &Value) -> (u16, Option<String>, String) {
    let mut r = agent().post(url).send_json(body).unwrap();
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (status, retry, r.body_mut().read_to_string().unwrap())
}

pub fn post_json(url: &str, body: &Value) -> (u16, Value) {
    let (status, _, text) = post(url, body);
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, v)
}

/// The PMIDs of an answer's evidence, after checking that every citation is one of them.
pub fn evidence_cited_only(a: &Value) -> Vec<String> {
    let evidence: Vec<String> = a["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pmid"].as_str().unwrap().to_string())
        .collect();
    for c in a["citations"].as_array().unwrap() {
        let pmid = c["pmid"].as_str().unwrap();
        assert!(
            evidence.iter().any(|e| e == pmid),
            "{pmid} is not evidence: {a}"
        );
    }
    evidence
}
