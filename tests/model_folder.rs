//! `ask --model FOLDER` on the tiny Gemma 4 fixture of the generate crate: the whole query path
//! on the Hugging Face backend, and what cannot work refused up front.
use crate::common;

use std::path::{Path, PathBuf};

use serde_json::Value;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("generate/tests/fixtures/gemma4_tiny")
}

/// `ask --model FOLDER` runs the whole query path on the Gemma 4 backend; what cannot work
/// (a model too large for this machine, a CUDA device in a CPU build) is refused up front.
#[test]
fn ask_runs_on_a_model_folder_and_refuses_what_cannot_fit() {
    for kind in ["embedding-model", "encoder-weights", "tokenizer", "runtime"] {
        assert!(common::medlit(&["fetch", "--only", kind, "--json"])
            .status
            .success());
    }
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index");
    let xml = Path::new(env!("CARGO_MANIFEST_DIR")).join("indexer/tests/fixtures");
    let out = common::medlit(&[
        "index",
        "--index",
        index.to_str().unwrap(),
        xml.join("update_a.xml").to_str().unwrap(),
        xml.join("update_b.xml").to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let model = fixture().join("model");
    let ask = |model: &Path, extra: &[&str]| {
        let mut args = vec![
            "ask",
            "Do vitamin D supplements raise bone mineral density in women?",
            "--index",
            index.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        common::medlit(&args)
    };
    let out = ask(
        &model,
        &["--max-tokens", "12", "--min-coverage", "0", "--json"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("GiB of weights"),
        "the estimate comes first: {err}"
    );
    let a: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(a["model"], "Gemma 4 (model)", "{a}");
    assert_eq!(
        a["prompt_template"], "research_rag",
        "an instruction model writes free text"
    );
    assert!(a["answer_tokens"].as_u64().unwrap() >= 1, "{a}");
    common::evidence_cited_only(&a);

    // The same architecture at a size this machine cannot hold: refused before loading.
    let big = tempfile::tempdir().unwrap();
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    cfg["hidden_size"] = 65536.into();
    cfg["intermediate_size"] = 262144.into();
    cfg["vocab_size"] = 262144.into();
    std::fs::write(big.path().join("config.json"), cfg.to_string()).unwrap();
    let out = ask(big.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("GiB available"), "{err}");

    if !medlit::generate::cuda_is_available() {
        let out = ask(&model, &["--device", "cuda"]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--features cuda"), "{err}");
    }
}
