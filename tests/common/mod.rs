//! The one harness of the integration tests: the `medlit` binary, the real sample indexed
//! once for the whole test binary, the fixtures, a running `medlit serve`, HTTP helpers.

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
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "medlit {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("indexer/tests/fixtures")
        .join(name)
}

/// The sample indexed once for this test binary.
pub fn sample_index() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let fetched = ok_json(&["fetch", "--only", "corpus", "--json"]);
        assert_eq!(fetched["files"].as_array().map(Vec::len), Some(2));
        let dir = tempfile::tempdir().unwrap();
        let idx = dir.path().join("index");
        // Keyword-only: the tests of BM25 search, answers and serving share it; the default
        // (hybrid) build is `demo`'s test.
        let report = ok_json(&[
            "index",
            "--bm25-only",
            "--index",
            idx.to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(report["records_read"], 50_788);
        assert_eq!(report["indexed"], 50_783);
        assert_eq!(report["with_abstract"], 33_272);
        assert_eq!(report["replaced"], 5);
        assert_eq!(report["deleted"], 20);
        assert_eq!(report["rejected"], 0);
        assert!(report["seconds"].as_f64().unwrap() > 0.0);
        dir
    })
    .path()
}

/// The MiniLM embedder's assets (the safety classifier and dense retrieval need them).
pub fn fetch_embedder() -> Value {
    ok_json(&[
        "fetch",
        "--only",
        "embedding-model",
        "--only",
        "encoder-weights",
        "--only",
        "tokenizer",
        "--only",
        "runtime",
        "--json",
    ])
}

pub fn index_arg() -> String {
    sample_index().join("index").display().to_string()
}

/// Every asset a server or an answer needs (the model, the embedder), fetched once.
pub fn serving_assets() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        for kind in [
            "generator",
            "embedding-model",
            "encoder-weights",
            "tokenizer",
            "runtime",
        ] {
            let fetched = ok_json(&["fetch", "--only", kind, "--json"]);
            assert!(!fetched["files"].as_array().unwrap().is_empty(), "{kind}");
        }
    });
}

/// The sample index's folder, with every asset the server loads fetched.
pub fn index_path() -> PathBuf {
    serving_assets();
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

/// A Python with `packages` installed, in a virtual environment of the tests' own under
/// `$MEDLIT_HOME/test-venvs/NAME`; `probe` is an import that shows the install is done.
pub fn test_python(name: &str, packages: &[&str], probe: &str) -> PathBuf {
    let venv = medlit_corpus::MedlitHome::from_env()
        .unwrap()
        .root()
        .join("test-venvs")
        .join(name);
    let py = venv.join("bin/python");
    let run = |cmd: &mut Command, what: &str| {
        let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    if !py.exists() {
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            &format!("creating the virtual environment {}", venv.display()),
        );
    }
    let ready = Command::new(&py)
        .args(["-c", &format!("import {probe}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ready {
        run(
            Command::new(&py)
                .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
                .args(packages),
            &format!("installing {} with pip", packages.join(" ")),
        );
    }
    py
}
