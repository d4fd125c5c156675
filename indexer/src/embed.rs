//! Dense embeddings: the [`Embedder`] trait, [`EncoderConfig`] (which backend: medlit's int8
//! MiniLM in [`crate::minilm`], or all-MiniLM-L6-v2's int8 ONNX export run by ONNX Runtime
//! through fastembed, here).
//!
//! ONNX Runtime is loaded at run time from the shared library that `medlit fetch` takes from
//! the `onnxruntime` wheel; nothing is downloaded at build time. ort panics when it cannot load
//! the library on first use, so the file is checked and loaded explicitly first, and a missing
//! or incompatible library is an error, not a crash.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use fastembed::{
    InitOptionsUserDefined, Pooling, TextEmbedding, TokenizerFiles, UserDefinedEmbeddingModel,
};
use serde::{Deserialize, Serialize};

/// Identifies an embedding model; an index records it and refuses queries from another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub id: String,
    /// sha256 of the model file.
    pub sha256: String,
    pub dim: usize,
    /// Longest input in tokens (special tokens included); longer input is truncated.
    pub max_tokens: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("{what} not found at {path} (run `medlit fetch --only embedding-model --only tokenizer --only runtime`)")]
    Missing { what: &'static str, path: PathBuf },
    #[error("ONNX Runtime library {path}: {reason}")]
    Runtime { path: PathBuf, reason: String },
    #[error("embedding model: {0}")]
    Model(String),
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Turns texts into unit-length vectors. Queries and passages go through the same call.
pub trait Embedder: Send {
    fn info(&self) -> &ModelInfo;
    /// One vector per text, L2-normalised, `info().dim` wide.
    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
    /// Tokens `text` takes (special tokens excluded), without truncation: for passage splitting.
    fn count_tokens(&self, text: &str) -> usize;
    /// How many texts a bulk caller (indexing) should pass per call: enough for the encoder's
    /// own batching to fill its device.
    fn call_size(&self) -> usize {
        64
    }
}

/// Where the MiniLM backend finds its files.
#[derive(Debug, Clone)]
pub struct OnnxConfig {
    /// Folder with `model.onnx`, `tokenizer.json`, `config.json`, `special_tokens_map.json`,
    /// `tokenizer_config.json`.
    pub model_dir: PathBuf,
    /// The ONNX Runtime shared library (`libonnxruntime.so.*`).
    pub runtime_lib: PathBuf,
    /// Model id recorded in the index.
    pub id: String,
    /// sha256 of `model.onnx` (from the data manifest; recorded in the index).
    pub sha256: String,
    pub max_tokens: usize,
    /// CPU threads in all.
    pub threads: usize,
    /// ONNX Runtime sessions run side by side, each on `threads / sessions` intra-op threads.
    /// Throughput work (indexing) wants one per core: a 1-thread session has no
    /// synchronisation inside a small matrix product. Latency work (a query) wants one session
    /// with every thread.
    pub sessions: usize,
    pub batch_size: usize,
}

/// Which encoder embeds, with its files: medlit's int8 MiniLM (the default) or ONNX Runtime's.
/// An index records the encoder's id and sha256; queries on it load the same one.
#[derive(Debug, Clone)]
pub enum EncoderConfig {
    Int8(crate::minilm::Int8Config),
    Onnx(OnnxConfig),
    /// f32 on candle, on the CPU or a GPU.
    Candle(crate::minilm_candle::CandleConfig),
}

impl EncoderConfig {
    pub fn load(&self) -> Result<Box<dyn Embedder>, EmbedError> {
        Ok(match self {
            EncoderConfig::Int8(c) => Box::new(crate::minilm::MiniLmInt8::load(c)?),
            EncoderConfig::Onnx(c) => Box::new(OnnxEmbedder::load(c)?),
            EncoderConfig::Candle(c) => Box::new(crate::minilm_candle::MiniLmCandle::load(c)?),
        })
    }

    /// The id an index built with this encoder records.
    pub fn id(&self) -> &str {
        match self {
            EncoderConfig::Int8(c) => &c.id,
            EncoderConfig::Onnx(c) => &c.id,
            EncoderConfig::Candle(c) => &c.id,
        }
    }

    /// sha256 of the weights file an index built with this encoder records.
    pub fn sha256(&self) -> &str {
        match self {
            EncoderConfig::Int8(c) => &c.sha256,
            EncoderConfig::Onnx(c) => &c.sha256,
            EncoderConfig::Candle(c) => &c.sha256,
        }
    }

    /// Whether this encoder made vectors that `model` describes (one weights file serves two
    /// encoders, so the id counts as well as the sha256).
    pub fn made(&self, model: &ModelInfo) -> bool {
        self.id() == model.id && self.sha256() == model.sha256
    }

    pub fn max_tokens(&self) -> usize {
        match self {
            EncoderConfig::Int8(c) => c.max_tokens,
            EncoderConfig::Onnx(c) => c.max_tokens,
            EncoderConfig::Candle(c) => c.max_tokens,
        }
    }

    pub fn set_max_tokens(&mut self, n: usize) {
        match self {
            EncoderConfig::Int8(c) => c.max_tokens = n,
            EncoderConfig::Onnx(c) => c.max_tokens = n,
            EncoderConfig::Candle(c) => c.max_tokens = n,
        }
    }

    /// Short name for reports: `int8`, `onnx` or `f32`.
    pub fn kind(&self) -> &'static str {
        match self {
            EncoderConfig::Int8(_) => "int8",
            EncoderConfig::Onnx(_) => "onnx",
            EncoderConfig::Candle(_) => "f32",
        }
    }
}

/// all-MiniLM-L6-v2 through fastembed: mean pooling, L2 normalisation, 384 dimensions.
pub struct OnnxEmbedder {
    /// At least one.
    models: Vec<TextEmbedding>,
    /// The same tokenizer without truncation, for counting.
    counter: tokenizers::Tokenizer,
    info: ModelInfo,
    batch_size: usize,
}

/// ONNX Runtime can be loaded once per process.
static RUNTIME: Mutex<Option<PathBuf>> = Mutex::new(None);

fn load_runtime(lib: &Path) -> Result<(), EmbedError> {
    let mut loaded = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if loaded.is_some() {
        return Ok(());
    }
    if !lib.is_file() {
        return Err(EmbedError::Missing {
            what: "ONNX Runtime library",
            path: lib.to_path_buf(),
        });
    }
    ort::init_from(lib).map_err(|e| EmbedError::Runtime {
        path: lib.to_path_buf(),
        reason: e.to_string(),
    })?;
    *loaded = Some(lib.to_path_buf());
    Ok(())
}

/// The file `name` of a model folder, or which file is missing.
pub(crate) fn read(dir: &Path, name: &'static str) -> Result<Vec<u8>, EmbedError> {
    let path = dir.join(name);
    if !path.is_file() {
        return Err(EmbedError::Missing { what: name, path });
    }
    std::fs::read(&path).map_err(|source| EmbedError::Io { path, source })
}

impl OnnxEmbedder {
    pub fn load(cfg: &OnnxConfig) -> Result<Self, EmbedError> {
        let files = TokenizerFiles {
            tokenizer_file: read(&cfg.model_dir, "tokenizer.json")?,
            config_file: read(&cfg.model_dir, "config.json")?,
            special_tokens_map_file: read(&cfg.model_dir, "special_tokens_map.json")?,
            tokenizer_config_file: read(&cfg.model_dir, "tokenizer_config.json")?,
        };
        let onnx = read(&cfg.model_dir, "model.onnx")?;
        load_runtime(&cfg.runtime_lib)?;
        // The tokenizer's own rayon pool would spin beside ONNX Runtime's threads for a
        // one-text batch; our parallelism is across sessions instead.
        tokenizers::utils::parallelism::set_parallelism(false);
        let sessions = cfg.sessions.clamp(1, cfg.threads.max(1));
        let intra = (cfg.threads.max(1) / sessions).max(1);
        let models = (0..sessions)
            .map(|_| {
                let user_model = UserDefinedEmbeddingModel::new(onnx.clone(), files.clone())
                    .with_pooling(Pooling::Mean);
                let options = InitOptionsUserDefined::new()
                    .with_max_length(cfg.max_tokens)
                    .with_intra_threads(intra);
                TextEmbedding::try_new_from_user_defined(user_model, options)
                    .map_err(|e| EmbedError::Model(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut counter = models[0].tokenizer.clone();
        counter
            .with_truncation(None)
            .map_err(|e| EmbedError::Model(e.to_string()))?;
        counter.with_padding(None);
        let mut me = Self {
            models,
            counter,
            info: ModelInfo {
                id: cfg.id.clone(),
                sha256: cfg.sha256.clone(),
                dim: 0,
                max_tokens: cfg.max_tokens,
            },
            batch_size: cfg.batch_size.max(1),
        };
        // The width comes from the model itself, not from a constant.
        let probe = me.embed(&["dimension probe"])?;
        me.info.dim = probe.first().map_or(0, Vec::len);
        Ok(me)
    }
}

impl Embedder for OnnxEmbedder {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let batch = self.batch_size;
        if self.models.len() == 1 || texts.len() <= batch {
            return self.models[0]
                .embed(texts, Some(batch))
                .map_err(|e| EmbedError::Model(e.to_string()));
        }
        // Each session takes the next batch until none is left, so a session that drew
        // short texts is not left idle.
        let batches: Vec<&[&str]> = texts.chunks(batch).collect();
        let next = AtomicUsize::new(0);
        let results: Vec<Result<Vec<Numbered>, EmbedError>> = std::thread::scope(|scope| {
            let workers: Vec<_> = self
                .models
                .iter_mut()
                .map(|model| {
                    let (batches, next) = (&batches, &next);
                    scope.spawn(move || {
                        let mut done = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(b) = batches.get(i) else {
                                return Ok(done);
                            };
                            let v = model
                                .embed(*b, Some(batch))
                                .map_err(|e| EmbedError::Model(e.to_string()))?;
                            done.push((i, v));
                        }
                    })
                })
                .collect();
            joined(workers)
        });
        in_order(results, batches.len(), texts.len())
    }

    fn count_tokens(&self, text: &str) -> usize {
        count_with(&self.counter, text)
    }
}

/// Tokens of `text` by an untruncated tokenizer (special tokens excluded); a text it cannot
/// encode counts two per word.
pub(crate) fn count_with(counter: &tokenizers::Tokenizer, text: &str) -> usize {
    counter
        .encode(text, false)
        .map(|e| e.get_ids().len())
        .unwrap_or_else(|_| text.split_whitespace().count() * 2)
}

/// What the embedding worker threads returned, a panicked one as an error.
pub(crate) fn joined(
    workers: Vec<std::thread::ScopedJoinHandle<'_, Result<Vec<Numbered>, EmbedError>>>,
) -> Vec<Result<Vec<Numbered>, EmbedError>> {
    workers
        .into_iter()
        .map(|w| {
            w.join()
                .unwrap_or_else(|_| Err(EmbedError::Model("an embedding thread panicked".into())))
        })
        .collect()
}

/// One embedder for a whole process, shared by everything that embeds queries (the safety
/// screen, dense retrieval): the model is loaded once, and a question that the screen has
/// embedded is not embedded again by retrieval a moment later.
pub struct SharedEmbedder {
    info: ModelInfo,
    inner: Mutex<Box<dyn Embedder>>,
    /// The last few texts embedded one at a time, newest last.
    recent: Mutex<std::collections::VecDeque<(String, Vec<f32>)>>,
}

/// Queries remembered: a request is screened, then retrieved, within a few calls.
const RECENT: usize = 16;

impl SharedEmbedder {
    pub fn new(embedder: Box<dyn Embedder>) -> Self {
        SharedEmbedder {
            info: embedder.info().clone(),
            inner: Mutex::new(embedder),
            recent: Mutex::new(std::collections::VecDeque::with_capacity(RECENT)),
        }
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The vector of one text; a text embedded one at a time lately is answered from memory.
    pub fn embed_one(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let lock = || self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, v)) = lock().iter().find(|(t, _)| t == text) {
            return Ok(v.clone());
        }
        let v = self.embed_many(&[text])?.pop().unwrap_or_default();
        let mut recent = lock();
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back((text.to_string(), v.clone()));
        Ok(v)
    }

    /// Vectors of many texts (not remembered).
    pub fn embed_many(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        // A panic elsewhere while embedding leaves the embedder usable: take it back.
        let mut e = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        e.embed(texts)
    }

    pub fn count_tokens(&self, text: &str) -> usize {
        let e = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        e.count_tokens(text)
    }
}

/// A batch's vectors with the batch's position in the input.
pub(crate) type Numbered = (usize, Vec<Vec<f32>>);

/// The vectors of `batches` batches, as worker threads returned them, back in input order.
pub(crate) fn in_order(
    results: Vec<Result<Vec<Numbered>, EmbedError>>,
    batches: usize,
    texts: usize,
) -> Result<Vec<Vec<f32>>, EmbedError> {
    let mut slots: Vec<Option<Vec<Vec<f32>>>> = vec![None; batches];
    for r in results {
        for (i, v) in r? {
            if let Some(slot) = slots.get_mut(i) {
                *slot = Some(v);
            }
        }
    }
    let mut out = Vec::with_capacity(texts);
    for s in slots {
        out.extend(s.ok_or_else(|| EmbedError::Model("a batch was not embedded".into()))?);
    }
    Ok(out)
}

/// Cosine similarity of two unit vectors.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
