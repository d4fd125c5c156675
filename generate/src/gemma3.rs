//! Our Gemma 3 decoder over a GGUF file, on candle's quantized matrix products.
//!
//! Choices that differ from a straight port, each for a measured reason (see DESIGN.md):
//! - one RoPE table per kind (local, global), sized to the context actually used, not one
//!   131k-position table per layer;
//! - Q5_0 and Q8_0 matrices (every 640-wide projection and the tied output matrix), which
//!   candle multiplies row by row, go through our tiled int8 kernel ([`super::int8_matmul`]);
//! - the KV cache is preallocated and written in place, never re-concatenated per token;
//! - prefill runs in chunks at any position, with a mask that is causal and, on the local
//!   layers, limited to the sliding window; decode reads only the window on those layers.
//!
//! Norm weights in GGUF already include Gemma's `1 +`, so RMS norm multiplies by them directly.
use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};
use std::io::{Read, Seek};
use std::sync::Arc;

use super::activation::gelu_mul;
use super::int8_matmul::{Int8Error, Int8Matrix};

/// Every sixth layer attends globally; the others see a sliding window.
const GLOBAL_EVERY: usize = 6;
/// RoPE base of the local layers (the GGUF records only the global one).
const LOCAL_ROPE_BASE: f32 = 10_000.0;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("the GGUF file has no `{0}`")]
    Missing(String),
    #[error("the GGUF file is a `{0}` model, not gemma3")]
    Architecture(String),
    #[error("the prompt ({prompt} tokens) and answer ({answer} tokens) exceed the context of {context} tokens")]
    ContextFull {
        prompt: usize,
        answer: usize,
        context: usize,
    },
    #[error("the prompt has no tokens")]
    EmptyPrompt,
    #[error("tensor {name}: {source}")]
    Int8 {
        name: String,
        #[source]
        source: Int8Error,
    },
}

/// Hyper-parameters read from the GGUF metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub ffn: usize,
    pub eps: f64,
    pub rope_global_base: f32,
    pub rope_local_base: f32,
    pub sliding_window: usize,
    /// The model's trained context.
    pub max_context: usize,
    pub vocab: usize,
}

impl Config {
    pub fn from_gguf(content: &Content) -> Result<Self, ModelError> {
        let md = &content.metadata;
        let arch = md
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_default();
        if arch != "gemma3" {
            return Err(ModelError::Architecture(arch));
        }
        let u = |key: &str| -> Result<usize, ModelError> {
            md.get(&format!("gemma3.{key}"))
                .and_then(|v| v.to_u32().ok())
                .map(|v| v as usize)
                .ok_or_else(|| ModelError::Missing(format!("gemma3.{key}")))
        };
        let f = |key: &str| -> Result<f32, ModelError> {
            md.get(&format!("gemma3.{key}"))
                .and_then(|v| v.to_f32().ok())
                .ok_or_else(|| ModelError::Missing(format!("gemma3.{key}")))
        };
        let vocab = content
            .tensor_infos
            .get("token_embd.weight")
            .map(|t| t.shape.dims()[0])
            .ok_or_else(|| ModelError::Missing("token_embd.weight".into()))?;
        Ok(Config {
            layers: u("block_count")?,
            hidden: u("embedding_length")?,
            heads: u("attention.head_count")?,
            kv_heads: u("attention.head_count_kv")?,
            head_dim: u("attention.key_length")?,
            ffn: u("feed_forward_length")?,
            eps: f("attention.layer_norm_rms_epsilon")? as f64,
            rope_global_base: f("rope.freq_base").unwrap_or(1_000_000.0),
            rope_local_base: LOCAL_ROPE_BASE,
            sliding_window: u("attention.sliding_window").unwrap_or(512),
            max_context: u("context_length")?,
            vocab,
        })
    }

    fn is_local(&self, layer: usize) -> bool {
        !(layer + 1).is_multiple_of(GLOBAL_EVERY)
    }
}

struct Layer {
    attn_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    q_norm: Tensor,
    k_norm: Tensor,
    post_attn_norm: Tensor,
    ffn_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
    post_ffn_norm: Tensor,
    local: bool,
}

/// Cosine and sine tables for positions `0..len`, `(len, head_dim / 2)`.
struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    fn new(base: f32, head_dim: usize, len: usize, dev: &Device) -> candle_core::Result<Self> {
        let inv: Vec<f32> = (0..head_dim / 2)
            .map(|i| 1.0 / base.powf(2.0 * i as f32 / head_dim as f32))
            .collect();
        let inv = Tensor::from_vec(inv, (1, head_dim / 2), dev)?;
        let pos = Tensor::arange(0u32, len as u32, dev)?
            .to_dtype(DType::F32)?
            .reshape((len, 1))?;
        let angles = pos.broadcast_mul(&inv)?;
        Ok(Rope {
            cos: angles.cos()?,
            sin: angles.sin()?,
        })
    }

    fn apply(&self, x: &Tensor, pos: usize) -> candle_core::Result<Tensor> {
        let t = x.dim(2)?;
        candle_nn::rotary_emb::rope(
            &x.contiguous()?,
            &self.cos.narrow(0, pos, t)?,
            &self.sin.narrow(0, pos, t)?,
        )
    }
}

/// Keys and values of every layer, preallocated for the whole context.
pub struct Cache {
    k: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Positions filled.
    pub len: usize,
    pub capacity: usize,
}

pub struct Gemma3 {
    pub cfg: Config,
    /// The embedding, also the output projection (Gemma ties them).
    tied: Tied,
    layers: Vec<Layer>,
    final_norm: Tensor,
    rope_local: Rope,
    rope_global: Rope,
    /// Longest context this instance serves (RoPE tables and caches are this long).
    pub context: usize,
    device: Device,
}

impl Gemma3 {
    /// Loads the model; `context` caps the tokens of prompt + answer.
    pub fn load<R: Read + Seek>(
        content: &Content,
        reader: &mut R,
        context: usize,
        device: &Device,
    ) -> Result<Self, ModelError> {
        Self::load_with(content, reader, context, device, false)
    }

    /// As [`Gemma3::load`]; with `f32_weights` every matrix is dequantised to f32 and
    /// multiplied in f32 (slow and large: a numerical reference for tests, since quantized
    /// products also round the activations, differently for one row and for many).
    pub fn load_with<R: Read + Seek>(
        content: &Content,
        reader: &mut R,
        context: usize,
        device: &Device,
        f32_weights: bool,
    ) -> Result<Self, ModelError> {
        let matmul = |name: &str, t: QTensor| -> Result<Linear, ModelError> {
            if f32_weights {
                Ok(Linear::Candle(QMatMul::Tensor(t.dequantize(&t.device())?)))
            } else {
                Linear::new(name, t)
            }
        };
        let cfg = Config::from_gguf(content)?;
        let context = context.clamp(1, cfg.max_context);
        let mut tensor = |name: &str| -> Result<QTensor, ModelError> {
            if !content.tensor_infos.contains_key(name) {
                return Err(ModelError::Missing(name.to_string()));
            }
            Ok(content.tensor(reader, name, device)?)
        };
        let mut layers = Vec::with_capacity(cfg.layers);
        for i in 0..cfg.layers {
            let p = format!("blk.{i}");
            let mut linear = |kind: &str| -> Result<Linear, ModelError> {
                let name = format!("{p}.{kind}.weight");
                let t = tensor(&name)?;
                matmul(&name, t)
            };
            let (q, k, v, o) = (
                linear("attn_q")?,
                linear("attn_k")?,
                linear("attn_v")?,
                linear("attn_output")?,
            );
            let (gate, up, down) = (linear("ffn_gate")?, linear("ffn_up")?, linear("ffn_down")?);
            layers.push(Layer {
                attn_norm: tensor(&format!("{p}.attn_norm.weight"))?.dequantize(device)?,
                q_norm: tensor(&format!("{p}.attn_q_norm.weight"))?.dequantize(device)?,
                k_norm: tensor(&format!("{p}.attn_k_norm.weight"))?.dequantize(device)?,
                post_attn_norm: tensor(&format!("{p}.post_attention_norm.weight"))?
                    .dequantize(device)?,
                ffn_norm: tensor(&format!("{p}.ffn_norm.weight"))?.dequantize(device)?,
                post_ffn_norm: tensor(&format!("{p}.post_ffw_norm.weight"))?.dequantize(device)?,
                q,
                k,
                v,
                o,
                gate,
                up,
                down,
                local: cfg.is_local(i),
            });
        }
        let final_norm = tensor("output_norm.weight")?.dequantize(device)?;
        let embed = tensor("token_embd.weight")?;
        // The output projection is tied to the embedding (Gemma has no output.weight).
        let tied = if f32_weights {
            let dense = embed.dequantize(device)?;
            Tied::Candle(Arc::new(embed), QMatMul::Tensor(dense))
        } else if int8_suits(&embed) {
            Tied::Int8(int8_matrix("token_embd.weight", &embed)?)
        } else {
            let embed = Arc::new(embed);
            Tied::Candle(embed.clone(), QMatMul::QTensor(embed))
        };
        let rope_local = Rope::new(cfg.rope_local_base, cfg.head_dim, context, device)?;
        let rope_global = Rope::new(cfg.rope_global_base, cfg.head_dim, context, device)?;
        Ok(Gemma3 {
            cfg,
            tied,
            layers,
            final_norm,
            rope_local,
            rope_global,
            context,
            device: device.clone(),
        })
    }

    /// An empty cache for this model's context.
    pub fn new_cache(&self) -> Result<Cache, ModelError> {
        let shape = (1, self.cfg.kv_heads, self.context, self.cfg.head_dim);
        let mut k = Vec::with_capacity(self.cfg.layers);
        let mut v = Vec::with_capacity(self.cfg.layers);
        for _ in 0..self.cfg.layers {
            k.push(Tensor::zeros(shape, DType::F32, &self.device)?);
            v.push(Tensor::zeros(shape, DType::F32, &self.device)?);
        }
        Ok(Cache {
            k,
            v,
            len: 0,
            capacity: self.context,
        })
    }

    /// Runs `tokens` at the cache's next positions and returns the logits of the last one,
    /// `(vocab,)`.
    pub fn forward(&self, tokens: &[u32], cache: &mut Cache) -> Result<Tensor, ModelError> {
        let t = tokens.len();
        let pos = cache.len;
        if t == 0 || pos + t > cache.capacity {
            return Err(ModelError::ContextFull {
                prompt: pos,
                answer: t,
                context: cache.capacity,
            });
        }
        let cfg = &self.cfg;
        let ids = Tensor::new(tokens, &self.device)?;
        let mut x = self
            .tied
            .embed(&ids, tokens)?
            .reshape((1, t, cfg.hidden))?
            .affine((cfg.hidden as f64).sqrt(), 0.0)?;
        for (i, layer) in self.layers.iter().enumerate() {
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, cfg.eps as f32)?;
            let h = self.attention(layer, &h, pos, &cache.k[i], &cache.v[i])?;
            let h = candle_nn::ops::rms_norm(&h, &layer.post_attn_norm, cfg.eps as f32)?;
            x = (x + h)?;
            let h = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, cfg.eps as f32)?;
            let gate = layer.gate.forward(&h)?;
            let up = layer.up.forward(&h)?;
            let h = layer.down.forward(&gelu_mul(&gate, &up)?)?;
            let h = candle_nn::ops::rms_norm(&h, &layer.post_ffn_norm, cfg.eps as f32)?;
            x = (x + h)?;
        }
        cache.len += t;
        let last = x.narrow(1, t - 1, 1)?;
        let last = candle_nn::ops::rms_norm(&last, &self.final_norm, cfg.eps as f32)?;
        Ok(self.tied.logits(&last)?.flatten_all()?)
    }

    fn attention(
        &self,
        layer: &Layer,
        x: &Tensor,
        pos: usize,
        k_cache: &Tensor,
        v_cache: &Tensor,
    ) -> Result<Tensor, ModelError> {
        let cfg = &self.cfg;
        let (_, t, _) = x.dims3()?;
        let (h, kvh, d) = (cfg.heads, cfg.kv_heads, cfg.head_dim);
        let q = layer.q.forward(x)?.reshape((1, t, h, d))?;
        let k = layer.k.forward(x)?.reshape((1, t, kvh, d))?;
        let v = layer.v.forward(x)?.reshape((1, t, kvh, d))?;
        let q = candle_nn::ops::rms_norm(&q, &layer.q_norm, cfg.eps as f32)?.transpose(1, 2)?;
        let k = candle_nn::ops::rms_norm(&k, &layer.k_norm, cfg.eps as f32)?.transpose(1, 2)?;
        let v = v.transpose(1, 2)?.contiguous()?;
        let rope = if layer.local {
            &self.rope_local
        } else {
            &self.rope_global
        };
        let q = rope.apply(&q, pos)?;
        let k = rope.apply(&k, pos)?;
        k_cache.slice_set(&k, 2, pos)?;
        v_cache.slice_set(&v, 2, pos)?;

        // Keys visible to any query of this chunk: all earlier ones on global layers, the
        // window before the chunk's first query on local ones.
        let end = pos + t;
        let start = if layer.local {
            (pos + 1).saturating_sub(cfg.sliding_window)
        } else {
            0
        };
        let s = end - start;
        let keys = k_cache.narrow(2, start, s)?.contiguous()?;
        let values = v_cache.narrow(2, start, s)?;
        // Query heads grouped under their key head: one matmul per key head, no copies of K/V.
        let group = h / kvh;
        let q = q.contiguous()?.reshape((1, kvh, group * t, d))?;
        let scale = 1.0 / (d as f64).sqrt();
        let scores = (q.matmul(&keys.t()?)? * scale)?;
        // A single decode step sees exactly its window: only chunks need a mask.
        let scores = if t > 1 {
            let mask = self.mask(layer.local, pos, t, start, s)?;
            scores
                .reshape((1, kvh, group, t, s))?
                .broadcast_add(&mask)?
                .reshape((1, kvh, group * t, s))?
        } else {
            scores
        };
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let out = probs.matmul(&values.contiguous()?)?; // (1, kvh, group * t, d)
        let out = out
            .reshape((1, h, t, d))?
            .transpose(1, 2)?
            .reshape((1, t, h * d))?;
        Ok(layer.o.forward(&out)?)
    }

    /// `(t, s)` additive mask: query `pos + i` sees key `start + j` when it is not in the
    /// future and, on a local layer, within the window.
    fn mask(
        &self,
        local: bool,
        pos: usize,
        t: usize,
        start: usize,
        s: usize,
    ) -> Result<Tensor, ModelError> {
        let window = local.then_some(self.cfg.sliding_window);
        Ok(attention_mask(window, pos, t, start, s, &self.device)?)
    }
}

/// `(t, s)` additive mask: query `pos + i` sees key `start + j` when it is not in the future
/// and, with a `window`, less than `window` positions back. Gemma 3 and Gemma 4 alike.
pub(crate) fn attention_mask(
    window: Option<usize>,
    pos: usize,
    t: usize,
    start: usize,
    s: usize,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let mut m = vec![0f32; t * s];
    for i in 0..t {
        let qpos = pos + i;
        for j in 0..s {
            let kpos = start + j;
            if kpos > qpos || window.is_some_and(|w| qpos - kpos >= w) {
                m[i * s + j] = f32::NEG_INFINITY;
            }
        }
    }
    Tensor::from_vec(m, (t, s), device)
}

/// A weight matrix and the product that suits its type.
enum Linear {
    /// Q8_0 and Q5_0 (every 640-wide row, since those cannot be k-quants) on the CPU: candle
    /// multiplies them row by row (70% of prefill time, measured); our tiled int8 kernel does
    /// not.
    Int8(Int8Matrix),
    /// k-quants keep candle's tiled Q4_K/Q6_K kernels; other devices keep candle's products.
    Candle(QMatMul),
}

impl Linear {
    fn new(name: &str, t: QTensor) -> Result<Self, ModelError> {
        if int8_suits(&t) {
            return Ok(Linear::Int8(int8_matrix(name, &t)?));
        }
        Ok(Linear::Candle(QMatMul::from_qtensor(t)?))
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Linear::Candle(m) => m.forward(x),
            Linear::Int8(m) => int8_forward(m, x),
        }
    }
}

/// Whether `t` goes to the int8 kernel: a Q8_0 or Q5_0 matrix on the CPU.
fn int8_suits(t: &QTensor) -> bool {
    matches!(t.dtype(), GgmlDType::Q5_0 | GgmlDType::Q8_0) && t.device().is_cpu()
}

fn int8_matrix(name: &str, t: &QTensor) -> Result<Int8Matrix, ModelError> {
    let (rows, cols) = t.shape().dims2()?;
    Int8Matrix::from_gguf(t.dtype(), rows, cols, &t.data()?).map_err(|source| ModelError::Int8 {
        name: name.to_string(),
        source,
    })
}

/// `x · mᵀ` over the last dimension of `x`.
fn int8_forward(m: &Int8Matrix, x: &Tensor) -> candle_core::Result<Tensor> {
    let mut dims = x.dims().to_vec();
    let rows = x.elem_count() / m.cols();
    let input = x.flatten_all()?.to_vec1::<f32>()?;
    let mut out = vec![0f32; rows * m.rows()];
    m.matmul(&input, rows, &mut out);
    if let Some(last) = dims.last_mut() {
        *last = m.rows();
    }
    Tensor::from_vec(out, dims, x.device())
}

/// The embedding matrix, read by token for the input and multiplied for the logits.
enum Tied {
    Int8(Int8Matrix),
    /// The quantized tensor for lookups, and its product (f32 in the reference mode).
    Candle(Arc<QTensor>, QMatMul),
}

impl Tied {
    fn embed(&self, ids: &Tensor, tokens: &[u32]) -> candle_core::Result<Tensor> {
        match self {
            Tied::Candle(t, _) => t.embedding(ids),
            Tied::Int8(m) => {
                let mut out = vec![0f32; tokens.len() * m.cols()];
                for (row, &id) in out.chunks_mut(m.cols()).zip(tokens) {
                    if id as usize >= m.rows() {
                        candle_core::bail!(
                            "token id {id} is outside the vocabulary of {}",
                            m.rows()
                        );
                    }
                    m.row(id as usize, row);
                }
                Tensor::from_vec(out, (tokens.len(), m.cols()), ids.device())
            }
        }
    }

    fn logits(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Tied::Candle(_, m) => m.forward(x),
            Tied::Int8(m) => int8_forward(m, x),
        }
    }
}
