//! Random-weight checkpoints: the tensors named for a config are those transformers writes,
//! the count is the decoder's own, and a written folder loads and decodes.
use std::collections::BTreeMap;
use std::path::Path;

use medlit_generate::gemma4::{Config, Gemma4};
use medlit_generate::synthetic::{self, StoredDType, SyntheticError};
use medlit_generate::{DType, Device};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/gemma4_tiny/model"
);

/// Names and shapes of a safetensors file, read from its header.
fn header_shapes(path: &Path) -> BTreeMap<String, Vec<usize>> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, v)| {
            let shape = v["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            (k.clone(), shape)
        })
        .collect()
}

#[test]
fn the_tensors_named_for_a_config_are_those_transformers_wrote() {
    let cfg = Config::load(&Path::new(FIXTURE).join("config.json")).unwrap();
    let ours: BTreeMap<String, Vec<usize>> = synthetic::tensors(&cfg)
        .unwrap()
        .into_iter()
        .map(|t| (t.name, t.shape))
        .collect();
    let theirs = header_shapes(&Path::new(FIXTURE).join("model.safetensors"));
    assert_eq!(ours, theirs);
}

#[test]
fn e4b_has_the_decoders_parameter_count_and_its_published_shape() {
    for name in synthetic::NAMES {
        let cfg = Config::from_value(synthetic::config(name).unwrap()).unwrap();
        let specs = synthetic::tensors(&cfg).unwrap();
        let n: usize = specs.iter().map(|t| t.len()).sum();
        assert_eq!(n, cfg.parameters(), "{name}");
    }
    let cfg = Config::from_value(synthetic::config("gemma4-e4b").unwrap()).unwrap();
    // "8B with embeddings", of which the per-layer table is 2.8 B.
    let total = cfg.parameters() as f64 / 1e9;
    assert!((7.0..8.5).contains(&total), "{total}");
    assert_eq!(cfg.per_layer_table_parameters(), 262_144 * 42 * 256);
    assert_eq!(
        (0..42).filter(|&i| cfg.head_dim(i) == 512).count(),
        7,
        "every sixth layer is a full-attention layer with 512-wide heads"
    );
    assert!(matches!(
        synthetic::config("gemma4-27b"),
        Err(SyntheticError::Unknown(_))
    ));
}

#[test]
fn a_written_checkpoint_loads_and_decodes_in_each_precision() {
    let config = synthetic::config("gemma4-tiny").unwrap();
    for (stored, compute) in [
        (StoredDType::F32, DType::F32),
        (StoredDType::BF16, DType::BF16),
        (StoredDType::BF16, DType::F32),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("model");
        let mut last = (0, 0);
        let written = synthetic::write(&dir, &config, stored, 1, |d, t| last = (d, t)).unwrap();
        assert_eq!(last.0, last.1, "progress reaches the total");
        assert_eq!(last.0, written.bytes);
        let file = std::fs::metadata(dir.join("model.safetensors"))
            .unwrap()
            .len();
        assert!(file > written.bytes && file < written.bytes + 64 * 1024);

        let model = Gemma4::load(&dir, 64, compute, &Device::Cpu).unwrap();
        let cfg = &model.cfg;
        assert_eq!(written.parameters, cfg.parameters());
        let prompt = synthetic::prompt_ids(cfg, 20);
        assert_eq!(prompt.len(), 20);
        assert!(prompt.iter().all(|&t| (t as usize) < cfg.vocab_size));
        let mut cache = model.new_cache().unwrap();
        let logits: Vec<f32> = model
            .forward(&prompt, &mut cache)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(logits.len(), cfg.vocab_size);
        assert!(logits.iter().all(|x| x.is_finite()), "{stored:?}");
        // Random weights still give a spread of logits, not a constant.
        let (lo, hi) = logits
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        assert!(hi - lo > 1e-3, "{lo} {hi}");
        // A step past the prompt works from the cache.
        let next: Vec<f32> = model.forward(&[5], &mut cache).unwrap().to_vec1().unwrap();
        assert!(next.iter().all(|x| x.is_finite()));
    }
}

#[test]
fn a_folder_that_holds_anything_is_refused_and_left_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let mine = tmp.path().join("notes.txt");
    std::fs::write(&mine, "mine").unwrap();
    let config = synthetic::config("gemma4-tiny").unwrap();
    let err = synthetic::write(tmp.path(), &config, StoredDType::BF16, 1, |_, _| {}).unwrap_err();
    assert!(matches!(err, SyntheticError::NotEmpty { .. }), "{err}");
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("notes.txt")]);
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), "mine");
}
