//! medlit's own all-MiniLM-L6-v2 encoder: the model's f32 safetensors weights quantised at load
//! to int8 with one scale per row (per output channel) and multiplied by the decoder's int8
//! kernels (`medlit-kernels`: AVX-512 VNNI, AVX-VNNI, AVX2 or portable, `MEDLIT_KERNEL` forces
//! one). ONNX Runtime runs the int8 ONNX export with f32 arithmetic (its weights are
//! dequantised before each product); here the activations are quantised per 32 values too, so
//! every matrix product is an integer one. Per-row weight scales (not the decoder's per-32
//! blocks) halve the f32 work per block and put the vectors at cosine 0.999 to ONNX Runtime's.
//!
//! No padding: the tokens of a batch's passages are stacked into one matrix for the dense
//! layers (the products see thousands of rows), and attention runs per passage. Each worker
//! thread takes the next batch, tokenizes it and runs it alone, so the tokenizer is off the
//! critical path and the two cores never wait on each other inside a layer.
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use medlit_kernels::activation::gelu_erf_in_place;
use medlit_kernels::amx_matmul::TileInt8Matrix;
use medlit_kernels::attention::self_attention;
use medlit_kernels::int8_matmul::{Int8Matrix, Kernel};

use crate::embed::{count_with, in_order, joined, read, EmbedError, Embedder, ModelInfo, Numbered};

pub(crate) const HIDDEN: usize = 384;
pub(crate) const HEADS: usize = 12;
pub(crate) const HEAD_DIM: usize = HIDDEN / HEADS;
pub(crate) const FFN: usize = 1536;
pub(crate) const LAYERS: usize = 6;
pub(crate) const MAX_POSITIONS: usize = 512;
pub(crate) const LN_EPS: f32 = 1e-12;

/// Where the encoder finds its files and how it runs.
#[derive(Debug, Clone)]
pub struct Int8Config {
    /// Folder with `model.safetensors` and `tokenizer.json`.
    pub model_dir: PathBuf,
    /// Model id recorded in the index.
    pub id: String,
    /// sha256 of `model.safetensors` (from the data manifest; recorded in the index).
    pub sha256: String,
    pub max_tokens: usize,
    /// Worker threads (each runs whole batches).
    pub threads: usize,
    /// Passages per batch.
    pub batch_size: usize,
    pub precision: Precision,
}

/// How the products run: int8 (the encoder), or f32 weights and activations through candle's
/// GEMM (the reference the int8 path is measured against; not for indexing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    Int8,
    /// The AMX path's numbers (one scale per 64 values of each weight and activation row), which
    /// `Int8` uses when the AMX path runs; elsewhere through the portable loop, so that their
    /// accuracy is tested on every CPU. Slow off AMX: not for indexing.
    Int8Tile,
    F32Reference,
}

enum Weight {
    /// One scale per row.
    Int8(Int8Matrix),
    /// One scale per 64 values of a row on both sides, for AMX's tile products.
    Tile(TileInt8Matrix),
    /// `rows × cols`, for the reference.
    F32(candle_core::Tensor),
}

/// One product `x · Wᵀ + b`.
struct Linear {
    w: Weight,
    rows: usize,
    b: Vec<f32>,
}

impl Linear {
    /// Into `out`, a buffer of an earlier layer of the same batch: the int8 product writes
    /// every value, so a buffer of the right length is not cleared first (zeroing a fresh one
    /// per product was 5% of the encoder's time on a Zen 5).
    fn forward_into(&self, x: &[f32], m: usize, out: &mut Vec<f32>) -> Result<(), EmbedError> {
        let rows = self.rows;
        out.resize(m * rows, 0.0);
        match &self.w {
            Weight::Int8(w) => w.matmul_single_thread(x, m, out),
            Weight::Tile(w) => {
                out.fill(0.0);
                w.matmul_single_thread(Kernel::selected(), x, m, out)
            }
            Weight::F32(w) => {
                let cols = x.len() / m.max(1);
                *out = candle_core::Tensor::from_slice(x, (m, cols), w.device())
                    .and_then(|x| x.matmul(&w.t()?))
                    .and_then(|p| p.flatten_all()?.to_vec1::<f32>())
                    .map_err(model_error)?;
            }
        }
        for row in out.chunks_exact_mut(rows) {
            for (o, b) in row.iter_mut().zip(&self.b) {
                *o += b;
            }
        }
        Ok(())
    }
}

struct Norm {
    w: Vec<f32>,
    b: Vec<f32>,
}

impl Norm {
    fn apply(&self, x: &mut [f32]) {
        for row in x.chunks_exact_mut(HIDDEN) {
            let mean = sum_lanes(row) / HIDDEN as f32;
            let mut centred = [0f32; HIDDEN];
            for (c, &v) in centred.iter_mut().zip(row.iter()) {
                *c = (v - mean) * (v - mean);
            }
            let var = sum_lanes(&centred) / HIDDEN as f32;
            let inv = 1.0 / (var + LN_EPS).sqrt();
            for ((v, w), b) in row.iter_mut().zip(&self.w).zip(&self.b) {
                *v = (*v - mean) * inv * w + b;
            }
        }
    }
}

/// A sum over chunks of 8 lanes: a sum in one chain cannot be vectorised (float addition is
/// not reassociated).
#[inline(always)]
fn sum_lanes(values: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = values.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += v;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

struct Layer {
    /// Query, key and value stacked: 1,152 output rows.
    qkv: Linear,
    attn_out: Linear,
    attn_norm: Norm,
    up: Linear,
    down: Linear,
    ffn_norm: Norm,
}

struct Weights {
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    norm: Norm,
    layers: Vec<Layer>,
}

/// all-MiniLM-L6-v2 on int8 kernels: mean pooling, L2 normalisation, 384 dimensions.
pub struct MiniLmInt8 {
    weights: Arc<Weights>,
    tokenizer: tokenizers::Tokenizer,
    counter: tokenizers::Tokenizer,
    info: ModelInfo,
    threads: usize,
    batch_size: usize,
}

/// Each layer of a batch allocates buffers of several MB (13 MB for the query-key-value
/// product of 16 passages). glibc serves blocks that large by `mmap` and returns them to the
/// kernel when freed, so every layer page-faults its buffers in afresh: 33 million faults and
/// 81 s of system time over the sample's 78,537 passages, and 13% of `bench embed`'s rate.
/// Raising its thresholds (once per process) keeps freed blocks for the next layer.
fn keep_freed_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // 32 MB is glibc's largest mmap threshold on 64-bit; 256 MB of free heap top may
            // stay before it is trimmed.
            // SAFETY: mallopt only changes allocator parameters; it is called once, before
            // the encoder's threads allocate.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
            }
        });
    }
}

/// The passage tokenizer (truncating at `max_tokens`, never padding: the shipped file pads to
/// 128) and an untruncated copy for counting, from `tokenizer.json`'s bytes.
pub(crate) fn tokenizers_for(
    json: &[u8],
    max_tokens: usize,
) -> Result<(tokenizers::Tokenizer, tokenizers::Tokenizer), EmbedError> {
    let mut tokenizer = tokenizers::Tokenizer::from_bytes(json).map_err(model_error)?;
    // Its own rayon pool would spin beside the encoder's threads.
    tokenizers::utils::parallelism::set_parallelism(false);
    tokenizer.with_padding(None);
    let mut counter = tokenizer.clone();
    tokenizer
        .with_truncation(Some(tokenizers::TruncationParams {
            max_length: max_tokens,
            ..Default::default()
        }))
        .map_err(model_error)?;
    counter.with_truncation(None).map_err(model_error)?;
    Ok((tokenizer, counter))
}

/// Rows of the word-embedding table in `model.safetensors`' bytes.
pub(crate) fn vocabulary(bytes: &[u8]) -> Result<usize, EmbedError> {
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| model_error(format!("model.safetensors: {e}")))?;
    st_rows(&st, "embeddings.word_embeddings")
}

fn model_error(what: impl std::fmt::Display) -> EmbedError {
    EmbedError::Model(what.to_string())
}

fn tensor(
    st: &safetensors::SafeTensors<'_>,
    name: &str,
    shape: &[usize],
) -> Result<Vec<f32>, EmbedError> {
    let t = st
        .tensor(name)
        .map_err(|e| model_error(format!("model.safetensors: {name}: {e}")))?;
    if t.dtype() != safetensors::Dtype::F32 || t.shape() != shape {
        return Err(model_error(format!(
            "model.safetensors: {name} is {:?} {:?}, expected F32 {shape:?}",
            t.dtype(),
            t.shape()
        )));
    }
    Ok(t.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// How many bits a product's activations need on the AVX2 path.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ActivationBits {
    Eight,
    /// Seven bits suffice (AVX2's products run 1.4× as fast). Measured per product kind on 1,000
    /// sample passages (cosine to ONNX Runtime's vectors, mean/worst): eight bits everywhere
    /// 0.99917/0.99873; seven in both feed-forward products 0.99841/0.99748; seven everywhere
    /// 0.99777/0.99648, and 0.99310 worst to the f32 model, the query, key and value inputs
    /// (layer-norm outputs with BERT's outlier dimensions) losing the most.
    SevenOnAvx2,
}

fn linear(
    st: &safetensors::SafeTensors<'_>,
    names: &[String],
    cols: usize,
    precision: Precision,
    bits: ActivationBits,
) -> Result<Linear, EmbedError> {
    let mut w = Vec::new();
    let mut b = Vec::new();
    let mut rows = 0;
    for name in names {
        let bias = tensor(st, &format!("{name}.bias"), &[st_rows(st, name)?])?;
        rows += bias.len();
        w.extend(tensor(st, &format!("{name}.weight"), &[bias.len(), cols])?);
        b.extend(bias);
    }
    let w = match precision {
        Precision::Int8 if !Kernel::selected().is_amx() => {
            let m = Int8Matrix::from_f32_per_row(rows, cols, &w).map_err(model_error)?;
            Weight::Int8(match bits {
                ActivationBits::Eight => m,
                ActivationBits::SevenOnAvx2 => m.with_narrow_activations_on_avx2(),
            })
        }
        Precision::Int8 | Precision::Int8Tile => {
            Weight::Tile(TileInt8Matrix::from_f32(rows, cols, &w).map_err(model_error)?)
        }
        Precision::F32Reference => Weight::F32(
            candle_core::Tensor::from_vec(w, (rows, cols), &candle_core::Device::Cpu)
                .map_err(model_error)?,
        ),
    };
    Ok(Linear { w, rows, b })
}

fn st_rows(st: &safetensors::SafeTensors<'_>, name: &str) -> Result<usize, EmbedError> {
    st.tensor(&format!("{name}.weight"))
        .map(|t| t.shape().first().copied().unwrap_or(0))
        .map_err(|e| model_error(format!("model.safetensors: {name}.weight: {e}")))
}

fn norm(st: &safetensors::SafeTensors<'_>, name: &str) -> Result<Norm, EmbedError> {
    Ok(Norm {
        w: tensor(st, &format!("{name}.weight"), &[HIDDEN])?,
        b: tensor(st, &format!("{name}.bias"), &[HIDDEN])?,
    })
}

impl MiniLmInt8 {
    pub fn load(cfg: &Int8Config) -> Result<Self, EmbedError> {
        keep_freed_buffers();
        let bytes = read(&cfg.model_dir, "model.safetensors")?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| model_error(format!("model.safetensors: {e}")))?;
        let vocab = st_rows(&st, "embeddings.word_embeddings")?;
        let token_type = tensor(&st, "embeddings.token_type_embeddings.weight", &[2, HIDDEN])?;
        let pr = cfg.precision;
        use ActivationBits::{Eight, SevenOnAvx2 as Seven};
        let mut layers = Vec::with_capacity(LAYERS);
        for i in 0..LAYERS {
            let p = format!("encoder.layer.{i}");
            let qkv = ["query", "key", "value"].map(|n| format!("{p}.attention.self.{n}"));
            layers.push(Layer {
                qkv: linear(&st, &qkv, HIDDEN, pr, Eight)?,
                attn_out: linear(
                    &st,
                    &[format!("{p}.attention.output.dense")],
                    HIDDEN,
                    pr,
                    Eight,
                )?,
                attn_norm: norm(&st, &format!("{p}.attention.output.LayerNorm"))?,
                up: linear(&st, &[format!("{p}.intermediate.dense")], HIDDEN, pr, Seven)?,
                down: linear(&st, &[format!("{p}.output.dense")], FFN, pr, Seven)?,
                ffn_norm: norm(&st, &format!("{p}.output.LayerNorm"))?,
            });
        }
        let weights = Weights {
            word: tensor(&st, "embeddings.word_embeddings.weight", &[vocab, HIDDEN])?,
            position: tensor(
                &st,
                "embeddings.position_embeddings.weight",
                &[MAX_POSITIONS, HIDDEN],
            )?,
            token_type: token_type[..HIDDEN].to_vec(),
            norm: norm(&st, "embeddings.LayerNorm")?,
            layers,
        };
        let json = read(&cfg.model_dir, "tokenizer.json")?;
        let max_tokens = cfg.max_tokens.clamp(2, MAX_POSITIONS);
        let (tokenizer, counter) = tokenizers_for(&json, max_tokens)?;
        Ok(MiniLmInt8 {
            weights: Arc::new(weights),
            tokenizer,
            counter,
            info: ModelInfo {
                id: cfg.id.clone(),
                sha256: cfg.sha256.clone(),
                dim: HIDDEN,
                max_tokens,
            },
            threads: cfg.threads.max(1),
            batch_size: cfg.batch_size.max(1),
        })
    }

    /// The vectors of one batch, on the calling thread.
    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut ids: Vec<Vec<u32>> = Vec::with_capacity(texts.len());
        for t in texts {
            let enc = self.tokenizer.encode(*t, true).map_err(model_error)?;
            ids.push(enc.get_ids().to_vec());
        }
        encode(&self.weights, &ids)
    }
}

/// Token ids of each passage (special tokens included) to unit vectors.
fn encode(w: &Weights, seqs: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, EmbedError> {
    let lens: Vec<usize> = seqs.iter().map(|s| s.len().min(MAX_POSITIONS)).collect();
    let total: usize = lens.iter().sum();
    let vocab = w.word.len() / HIDDEN;
    let mut x = Vec::with_capacity(total * HIDDEN);
    for (seq, &n) in seqs.iter().zip(&lens) {
        for (p, &id) in seq.iter().take(n).enumerate() {
            // An id past the vocabulary (a damaged tokenizer file) reads as [UNK]'s row 100.
            let id = if (id as usize) < vocab {
                id as usize
            } else {
                100
            };
            let word = &w.word[id * HIDDEN..][..HIDDEN];
            let pos = &w.position[p * HIDDEN..][..HIDDEN];
            x.extend((0..HIDDEN).map(|c| word[c] + pos[c] + w.token_type[c]));
        }
    }
    w.norm.apply(&mut x);
    // One set of buffers for the six layers: each product and attention overwrites its output.
    let (mut qkv, mut h, mut up, mut out) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut ctx = vec![0f32; total * HIDDEN];
    for layer in &w.layers {
        layer.qkv.forward_into(&x, total, &mut qkv)?;
        self_attention::<HEAD_DIM>(Kernel::selected(), HEADS, &qkv, &lens, &mut ctx);
        layer.attn_out.forward_into(&ctx, total, &mut h)?;
        for (a, b) in h.iter_mut().zip(&x) {
            *a += b;
        }
        layer.attn_norm.apply(&mut h);
        layer.up.forward_into(&h, total, &mut up)?;
        gelu_erf_in_place(&mut up);
        layer.down.forward_into(&up, total, &mut out)?;
        for (a, b) in out.iter_mut().zip(&h) {
            *a += b;
        }
        layer.ffn_norm.apply(&mut out);
        std::mem::swap(&mut x, &mut out);
    }
    let mut vectors = Vec::with_capacity(seqs.len());
    let mut row = 0;
    for &n in &lens {
        let mut v = vec![0f32; HIDDEN];
        for t in 0..n {
            for (a, b) in v.iter_mut().zip(&x[(row + t) * HIDDEN..][..HIDDEN]) {
                *a += b;
            }
        }
        row += n;
        let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|a| *a /= norm);
        }
        vectors.push(v);
    }
    Ok(vectors)
}

impl Embedder for MiniLmInt8 {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let batches: Vec<&[&str]> = texts.chunks(self.batch_size).collect();
        let workers = self.threads.min(batches.len());
        if workers <= 1 {
            let mut out = Vec::with_capacity(texts.len());
            for b in &batches {
                out.extend(self.embed_batch(b)?);
            }
            return Ok(out);
        }
        // Each worker takes the next batch until none is left.
        let next = AtomicUsize::new(0);
        let this = &*self;
        let results: Vec<Result<Vec<Numbered>, EmbedError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    let (batches, next) = (&batches, &next);
                    scope.spawn(move || {
                        let mut done = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(b) = batches.get(i) else {
                                return Ok(done);
                            };
                            done.push((i, this.embed_batch(b)?));
                        }
                    })
                })
                .collect();
            joined(handles)
        });
        in_order(results, batches.len(), texts.len())
    }

    fn count_tokens(&self, text: &str) -> usize {
        count_with(&self.counter, text)
    }
}
