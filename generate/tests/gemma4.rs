//! Our Gemma 4 decoder against transformers' `gemma4_text` on a tiny random-weight model with
//! every E2B/E4B feature on (made once by `tests/fixtures/gemma4_tiny/make_fixture.py`).
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use medlit_generate::gemma4::{Gemma4, KvSharing};
use serde_json::Value;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gemma4_tiny")
}

/// Where the decoder runs: the CPU, or `MEDLIT_TEST_DEVICE=cuda` on a GPU (a `cuda` build;
/// `scripts/gpu-check.sh` runs these tests so), at the same tolerances.
fn device() -> Device {
    match std::env::var("MEDLIT_TEST_DEVICE").as_deref() {
        Ok("cuda") => Device::new_cuda(0).expect("MEDLIT_TEST_DEVICE=cuda: no GPU"),
        _ => Device::Cpu,
    }
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture().join("expected.json")).unwrap())
        .unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn argmax(v: &[f32]) -> u32 {
    v.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i as u32)
        .unwrap()
}

#[test]
fn config_reads_every_e4b_feature_of_the_fixture() {
    let m = Gemma4::load(&fixture().join("model"), 64, DType::F32, &device()).unwrap();
    let cfg = &m.cfg;
    assert_eq!(cfg.head_dim(0), 16, "sliding layers");
    assert_eq!(cfg.head_dim(2), 32, "full layers have their own head size");
    assert_eq!(
        cfg.kv_sharing().unwrap(),
        [
            KvSharing::Own,
            KvSharing::Own,
            KvSharing::Store,
            KvSharing::Store,
            KvSharing::Reuse(3),
            KvSharing::Reuse(2)
        ]
    );
    let want: Vec<String> = expected()["kv_sharing_modes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap_or("own").to_string())
        .collect();
    assert_eq!(want, ["own", "own", "store", "store", "reuse", "reuse"]);
    // The memory estimate counts exactly the parameters the checkpoint holds.
    let tensors =
        candle_core::safetensors::load(fixture().join("model/model.safetensors"), &Device::Cpu)
            .unwrap();
    let held: usize = tensors.values().map(|t| t.elem_count()).sum();
    assert_eq!(cfg.parameters(), held);
}

/// Every position's logits match transformers' (f32) in one prefill, and chunked prefill plus
/// token-by-token decoding (past the 8-token sliding window) gives the same numbers.
#[test]
fn logits_match_transformers_in_one_pass_in_chunks_and_token_by_token() {
    let e = expected();
    let prompt = ids(&e["prompt_ids"]);
    let want: Vec<Vec<f32>> = e["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    let m = Gemma4::load(&fixture().join("model"), 64, DType::F32, &device()).unwrap();
    let check = |got: &[Vec<f32>], how: &str| {
        let mut worst = 0f32;
        for (g, w) in got.iter().zip(&want) {
            for (a, b) in g.iter().zip(w) {
                worst = worst.max((a - b).abs());
            }
        }
        assert!(worst < 1e-4, "{how}: largest logit difference {worst}");
        eprintln!("{how}: largest logit difference {worst:.2e}");
    };
    let mut cache = m.new_cache().unwrap();
    let all: Vec<Vec<f32>> = m
        .forward_all(&prompt, &mut cache)
        .unwrap()
        .to_vec2()
        .unwrap();
    check(&all, "one pass");

    for chunk in [1usize, 5] {
        let mut cache = m.new_cache().unwrap();
        let mut got = Vec::new();
        for c in prompt.chunks(chunk) {
            got.extend(
                m.forward_all(c, &mut cache)
                    .unwrap()
                    .to_vec2::<f32>()
                    .unwrap(),
            );
        }
        check(&got, &format!("chunks of {chunk}"));
    }
}

#[test]
fn greedy_continuation_equals_transformers_token_for_token() {
    let e = expected();
    let prompt = ids(&e["prompt_ids"]);
    let want = ids(&e["greedy"]);
    let m = Gemma4::load(&fixture().join("model"), 64, DType::F32, &device()).unwrap();
    let mut cache = m.new_cache().unwrap();
    let mut logits = m.forward(&prompt, &mut cache).unwrap();
    let mut got = Vec::new();
    for _ in 0..want.len() {
        let next = argmax(&logits.to_vec1::<f32>().unwrap());
        got.push(next);
        logits = m.forward(&[next], &mut cache).unwrap();
    }
    assert_eq!(got, want);
}

/// The folder's chat template and tokenizer give the ids transformers'
/// `apply_chat_template` + tokenizer give (Greek letters, µ and ≥ included).
#[test]
fn chat_turns_render_and_tokenize_as_transformers_does() {
    use medlit_generate::hf::HfChat;
    let e = expected();
    let chat = HfChat::load(&fixture().join("model"), 64, DType::F32, &device()).unwrap();
    let text = chat.render(e["chat_question"].as_str().unwrap()).unwrap();
    assert_eq!(text, e["chat_text"].as_str().unwrap());
    assert_eq!(chat.encode(&text).unwrap(), ids(&e["chat_ids"]));
}

/// bf16 (the checkpoint's own precision, halving memory) runs on the CPU too, and its logits
/// are as close to transformers' bf16 logits as two bf16 computations get.
#[test]
fn bf16_runs_on_the_cpu_as_close_to_f32_as_transformers_bf16_is() {
    let e = expected();
    let prompt = ids(&e["prompt_ids"]);
    let m = Gemma4::load(&fixture().join("model"), 64, DType::BF16, &device()).unwrap();
    let mut cache = m.new_cache().unwrap();
    let got: Vec<f32> = m.forward(&prompt, &mut cache).unwrap().to_vec1().unwrap();
    let row = |v: &Value| -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    let f32_logits = row(e["logits"].as_array().unwrap().last().unwrap());
    let bf16_logits = row(&e["logits_bf16_last"]);
    let diff = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max)
    };
    let (ours, theirs) = (diff(&got, &f32_logits), diff(&bf16_logits, &f32_logits));
    eprintln!("bf16 vs f32: medlit {ours:.3}, transformers {theirs:.3}; medlit vs transformers in bf16 {:.3}", diff(&got, &bf16_logits));
    // Rounding to bf16 moves both sides about equally far from f32.
    assert!(ours < 2.0 * theirs.max(0.05), "{ours} vs {theirs}");
}

/// A checkpoint sharded over several files with an index (as the real models ship) loads the
/// files the index names, and only those.
#[test]
fn a_sharded_checkpoint_loads_through_its_index() {
    let src = fixture().join("model");
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
    ] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let tensors =
        candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let (a, b) = names.split_at(names.len() / 2);
    let mut map = serde_json::Map::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", a),
        ("model-00002-of-00002.safetensors", b),
    ] {
        let subset: std::collections::HashMap<String, candle_core::Tensor> = part
            .iter()
            .map(|n| ((*n).clone(), tensors[*n].clone()))
            .collect();
        candle_core::safetensors::save(&subset, dir.path().join(file)).unwrap();
        for n in part {
            map.insert((*n).clone(), Value::String(file.into()));
        }
    }
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        serde_json::json!({"metadata": {}, "weight_map": map}).to_string(),
    )
    .unwrap();
    // A file the index does not name is not read: this one, all zeros under the same names,
    // would win if every .safetensors file of the folder were mapped.
    let zeros: std::collections::HashMap<String, candle_core::Tensor> = tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.zeros_like().unwrap()))
        .collect();
    candle_core::safetensors::save(&zeros, dir.path().join("zz-stray.safetensors")).unwrap();

    let e = expected();
    let prompt = ids(&e["prompt_ids"]);
    let m = Gemma4::load(dir.path(), 64, DType::F32, &device()).unwrap();
    let mut cache = m.new_cache().unwrap();
    let got: Vec<f32> = m.forward(&prompt, &mut cache).unwrap().to_vec1().unwrap();
    let want = e["logits"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_array()
        .unwrap()
        .clone();
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w.as_f64().unwrap() as f32).abs() < 1e-4);
    }
}

/// Keys doubling as values on the full layers (`attention_k_eq_v`, with their own KV-head
/// count), as the larger Gemma 4 models have it: same logits and greedy run as transformers.
#[test]
fn keys_as_values_on_full_layers_match_transformers() {
    let e: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture().join("expected_keqv.json")).unwrap(),
    )
    .unwrap();
    let dir = fixture().join("model_keqv");
    let m = Gemma4::load(&dir, 64, DType::F32, &device()).unwrap();
    assert_eq!(m.cfg.kv_heads(2), 1);
    let tensors =
        candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    assert!(!tensors.contains_key("model.layers.2.self_attn.v_proj.weight"));
    let held: usize = tensors.values().map(|t| t.elem_count()).sum();
    assert_eq!(m.cfg.parameters(), held);

    let prompt = ids(&e["prompt_ids"]);
    let mut cache = m.new_cache().unwrap();
    let mut logits = m.forward(&prompt, &mut cache).unwrap();
    let got: Vec<f32> = logits.to_vec1().unwrap();
    for (g, w) in got.iter().zip(e["last_logits"].as_array().unwrap()) {
        assert!((g - w.as_f64().unwrap() as f32).abs() < 1e-4, "{g} vs {w}");
    }
    let mut greedy = Vec::new();
    for _ in 0..16 {
        let next = argmax(&logits.to_vec1::<f32>().unwrap());
        greedy.push(next);
        logits = m.forward(&[next], &mut cache).unwrap();
    }
    assert_eq!(greedy, ids(&e["greedy"]));
}
