//! The f32 MiniLM encoder on candle (the GPU encoder) against the int8 crate's own f32
//! reference — two implementations of the same model — and against ONNX Runtime, on real
//! passages of the sample. `MEDLIT_TEST_DEVICE=cuda` runs it on a GPU (a `cuda` build); the
//! default is the CPU.

mod common;

use common::{assets, config, cosines, int8_config};
use medlit_indexer::embed::{dot, Embedder, OnnxEmbedder};
use medlit_indexer::minilm::{MiniLmInt8, Precision};
use medlit_indexer::minilm_candle::{CandleConfig, MiniLmCandle};
use medlit_indexer::passages;
use medlit_indexer::pubmed::{parse_file, Record};

fn device() -> candle_core::Device {
    match std::env::var("MEDLIT_TEST_DEVICE").as_deref() {
        Ok("cuda") => candle_core::Device::new_cuda(0).expect("MEDLIT_TEST_DEVICE=cuda: no GPU"),
        _ => candle_core::Device::Cpu,
    }
}

fn candle_config(batch_size: usize) -> CandleConfig {
    let int8 = int8_config();
    CandleConfig {
        model_dir: int8.model_dir,
        id: "all-minilm-l6-v2/medlit-f32".into(),
        sha256: int8.sha256,
        max_tokens: 256,
        batch_size,
        device: device(),
    }
}

/// Passages of the 2021 sample file (the int8 test reads the 2020 one), split as `medlit
/// index` splits them, every `step`-th kept so lengths vary.
fn passages(n: usize, step: usize, encoder: &dyn Embedder) -> Vec<String> {
    let path = assets().join("corpus/pubmed21n1298.xml.gz");
    let mut out = Vec::new();
    let mut seen = 0;
    for r in parse_file(&path).unwrap().records {
        if let Record::Article(a) = r {
            let max = encoder.info().max_tokens;
            let mut count = |t: &str| encoder.count_tokens(t);
            for p in passages::of_abstract(a.pmid, &a.title, &a.abstract_text, max, &mut count) {
                seen += 1;
                if seen % step == 0 {
                    out.push(p.text);
                    if out.len() == n {
                        return out;
                    }
                }
            }
        }
    }
    out
}

#[test]
fn candle_f32_vectors_equal_the_f32_reference_and_agree_with_onnx_runtime() {
    let mut candle = MiniLmCandle::load(&candle_config(32)).expect("loading the candle encoder");
    let mut cfg = int8_config();
    cfg.precision = Precision::F32Reference;
    let mut reference = MiniLmInt8::load(&cfg).expect("loading the f32 reference");
    let mut onnx = OnnxEmbedder::load(&config()).expect("loading MiniLM on ONNX Runtime");
    let texts = passages(100, 7, &candle);
    assert_eq!(texts.len(), 100);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let ours = candle.embed(&refs).unwrap();
    let (ref_mean, ref_worst) = cosines(&ours, &reference.embed(&refs).unwrap());
    let (onnx_mean, onnx_worst) = cosines(&ours, &onnx.embed(&refs).unwrap());
    eprintln!(
        "100 passages on {:?}: against the f32 reference mean {ref_mean:.6} worst {ref_worst:.6}; against ONNX Runtime mean {onnx_mean:.5} worst {onnx_worst:.5}",
        device()
    );
    // Same model, same precision, other code: only summation order differs.
    assert!(
        ref_worst >= 0.9999,
        "worst cosine to the f32 reference {ref_worst}"
    );
    // ONNX Runtime's export has int8 weights: as close as the int8 encoder is (README).
    assert!(
        onnx_mean >= 0.996,
        "mean cosine to ONNX Runtime {onnx_mean}"
    );
    assert!(
        onnx_worst >= 0.994,
        "worst cosine to ONNX Runtime {onnx_worst}"
    );
    for v in &ours {
        assert_eq!(v.len(), 384);
        assert!((dot(v, v) - 1.0).abs() < 1e-4);
    }
}

#[test]
fn padding_changes_no_vector_and_order_is_kept() {
    let mut batched = MiniLmCandle::load(&candle_config(64)).expect("loading");
    let texts = passages(24, 3, &batched);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    // One padded batch of 24 passages of mixed lengths, in the caller's order...
    let together = batched.embed(&refs).unwrap();
    // ...against each passage alone (no padding at all).
    let mut single = MiniLmCandle::load(&candle_config(1)).expect("loading");
    let lengths: Vec<usize> = refs.iter().map(|t| single.count_tokens(t)).collect();
    assert!(
        lengths.iter().max().unwrap() > &(2 * lengths.iter().min().unwrap()),
        "the batch should mix lengths: {lengths:?}"
    );
    for (i, t) in refs.iter().enumerate() {
        let alone = single.embed(&[t]).unwrap().remove(0);
        let c = dot(&alone, &together[i]);
        assert!(
            c > 0.99999,
            "passage {i} ({} tokens): cosine {c}",
            lengths[i]
        );
    }
    assert!(batched.embed(&[]).unwrap().is_empty());
}
