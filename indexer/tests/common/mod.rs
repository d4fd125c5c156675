//! Shared by the indexer's tests that need the fetched assets: where they are, the
//! embedder's configuration, and how two encoders' vectors are compared.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::PathBuf;
use std::sync::OnceLock;

use medlit_corpus::fetch::ensure_embedded;
use medlit_corpus::{AssetKind, DataManifest};
use medlit_indexer::embed::{dot, OnnxConfig};
use medlit_indexer::minilm::Int8Config;

/// The corpus, the embedding model, its tokenizer and ONNX Runtime, fetched through the same
/// code path as `medlit fetch`; a test fails loudly when they cannot be.
pub fn assets() -> &'static PathBuf {
    static A: OnceLock<PathBuf> = OnceLock::new();
    A.get_or_init(|| {
        ensure_embedded(&[
            AssetKind::Corpus,
            AssetKind::EmbeddingModel,
            AssetKind::EncoderWeights,
            AssetKind::Tokenizer,
            AssetKind::Runtime,
        ])
        .unwrap_or_else(|e| panic!("fetching the model assets failed: {e}"))
    })
}

/// MiniLM as the index builds with it (one session, batch 1).
pub fn config() -> OnnxConfig {
    let m = DataManifest::embedded().unwrap();
    let file = |kind| {
        m.of_kind(kind)
            .flat_map(|a| a.files.iter())
            .next()
            .unwrap()
            .clone()
    };
    let model = file(AssetKind::EmbeddingModel);
    let runtime = file(AssetKind::Runtime);
    OnnxConfig {
        model_dir: assets().join(&model.dest).parent().unwrap().to_path_buf(),
        runtime_lib: assets().join(&runtime.dest),
        id: "all-minilm-l6-v2-int8".into(),
        sha256: model.sha256,
        max_tokens: 256,
        threads: 2,
        sessions: 1,
        batch_size: 1,
    }
}

/// medlit's int8 MiniLM encoder as the index builds with it.
pub fn int8_config() -> Int8Config {
    let m = DataManifest::embedded().unwrap();
    let weights = m
        .of_kind(AssetKind::EncoderWeights)
        .flat_map(|a| a.files.iter())
        .next()
        .unwrap()
        .clone();
    Int8Config {
        model_dir: assets().join(&weights.dest).parent().unwrap().to_path_buf(),
        id: "all-minilm-l6-v2/medlit-int8".into(),
        sha256: weights.sha256,
        max_tokens: 256,
        threads: 2,
        batch_size: 16,
        precision: Default::default(),
    }
}

/// Mean and worst cosine of paired unit vectors.
pub fn cosines(a: &[Vec<f32>], b: &[Vec<f32>]) -> (f32, f32) {
    let c: Vec<f32> = a.iter().zip(b).map(|(x, y)| dot(x, y)).collect();
    (
        c.iter().sum::<f32>() / c.len() as f32,
        c.iter().copied().fold(1f32, f32::min),
    )
}
