//! Our Gemma 4 text decoder (`gemma4_text`, the language half of Gemma 4 E2B/E4B and of
//! OpenMedResearch-Gemma-4E4N) over a Hugging Face folder of safetensors.
//!
//! What the E-variants add to Gemma 3, each checked against transformers' reference by the
//! tiny-model fixture (`generate/tests/fixtures/gemma4_tiny/`):
//! - per-layer input embeddings: a second, packed embedding table gives every layer a small
//!   token-identity vector, mixed with a projection of the input embedding, that gates a
//!   residual branch after the MLP;
//! - KV sharing: the last `num_kv_shared_layers` layers compute no keys or values and attend to
//!   those of the last earlier layer of their kind (sliding or full);
//! - the sharing layers' MLP is twice as wide;
//! - per-kind attention: full layers have their own head size and a "proportional" RoPE that
//!   rotates only a fraction of each head; values are RMS-normalised; no 1/√d scaling;
//! - a learned scalar per layer, and soft-capped final logits.
//!
//! The vision and audio towers are not loaded: only tensors under the language model's prefix
//! are read, from memory-mapped files.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Module, Tensor};

use crate::activation::gelu_mul;
use crate::linear::Linear;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum Gemma4Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a Gemma 4 config: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("{0} is not supported by this decoder")]
    Unsupported(String),
    #[error("the checkpoint has no tensor `{0}`")]
    Missing(String),
    #[error("the prompt ({prompt} tokens) and answer ({answer} tokens) exceed the context of {context} tokens")]
    ContextFull {
        prompt: usize,
        answer: usize,
        context: usize,
    },
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}

/// RoPE settings of one layer kind, as `rope_parameters` in config.json.
#[derive(Debug, Clone, Deserialize)]
pub struct RopeParams {
    pub rope_theta: f64,
    #[serde(default = "default_rope_type")]
    pub rope_type: String,
    #[serde(default)]
    pub partial_rotary_factor: Option<f64>,
    #[serde(default)]
    pub factor: Option<f64>,
}

fn default_rope_type() -> String {
    "default".into()
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct LayerOverride {
    pub head_dim: Option<usize>,
    pub num_key_value_heads: Option<usize>,
}

/// The text config (`gemma4_text`), read from config.json (alone, or as `text_config` of a
/// `gemma4` multimodal config).
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    #[serde(default)]
    pub global_head_dim: Option<usize>,
    #[serde(default)]
    pub num_global_key_value_heads: Option<usize>,
    #[serde(default)]
    pub per_layer_config: HashMap<String, LayerOverride>,
    #[serde(default = "default_activation")]
    pub hidden_activation: String,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    pub sliding_window: usize,
    pub layer_types: Vec<String>,
    pub rope_parameters: HashMap<String, RopeParams>,
    #[serde(default)]
    pub final_logit_softcapping: Option<f64>,
    #[serde(default)]
    pub vocab_size_per_layer_input: Option<usize>,
    #[serde(default)]
    pub hidden_size_per_layer_input: Option<usize>,
    #[serde(default)]
    pub attention_k_eq_v: bool,
    #[serde(default)]
    pub num_kv_shared_layers: usize,
    #[serde(default)]
    pub use_double_wide_mlp: bool,
    #[serde(default)]
    pub enable_moe_block: bool,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub use_bidirectional_attention: Option<String>,
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<serde_json::Value>,
}

fn default_activation() -> String {
    "gelu_pytorch_tanh".into()
}
fn default_eps() -> f64 {
    1e-6
}
fn default_true() -> bool {
    true
}

/// How a layer's keys and values come about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvSharing {
    /// Its own, kept for itself.
    Own,
    /// Its own, and later layers of its kind reuse them.
    Store,
    /// None of its own: those of layer `0` (the last earlier layer of its kind).
    Reuse(usize),
}

impl Config {
    /// Reads config.json; a multimodal config's `text_config` is taken.
    pub fn load(path: &Path) -> Result<Self, Gemma4Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Gemma4Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let bad = |reason: String| Gemma4Error::Config {
            path: path.to_path_buf(),
            reason,
        };
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        Self::from_value(v).map_err(bad)
    }

    /// A config from parsed config.json (a multimodal config's `text_config` is taken), with
    /// the same checks as [`Config::load`]; the error says why it is not a Gemma 4 text model.
    pub fn from_value(v: serde_json::Value) -> Result<Self, String> {
        let text_config = match v.get("text_config") {
            Some(t) => t.clone(),
            None => v,
        };
        let model_type = text_config["model_type"].as_str().unwrap_or_default();
        if model_type != "gemma4_text" {
            return Err(format!("model_type is `{model_type}`, not gemma4_text"));
        }
        let cfg: Config = serde_json::from_value(text_config).map_err(|e| e.to_string())?;
        cfg.check()?;
        Ok(cfg)
    }

    fn check(&self) -> Result<(), String> {
        if self.enable_moe_block {
            return Err("mixture-of-experts layers (enable_moe_block) are not supported".into());
        }
        if self.attention_bias {
            return Err("attention biases are not supported".into());
        }
        if self.use_bidirectional_attention.as_deref() == Some("all") {
            return Err("bidirectional attention is not a text decoder".into());
        }
        if self.hidden_activation != "gelu_pytorch_tanh" {
            return Err(format!(
                "activation {} (only gelu_pytorch_tanh)",
                self.hidden_activation
            ));
        }
        if self.layer_types.len() != self.num_hidden_layers {
            return Err("layer_types does not name every layer".into());
        }
        for kind in &self.layer_types {
            let rope = self
                .rope_parameters
                .get(kind)
                .ok_or_else(|| format!("no rope_parameters for {kind}"))?;
            if !matches!(rope.rope_type.as_str(), "default" | "proportional") {
                return Err(format!("rope_type {}", rope.rope_type));
            }
        }
        self.kv_sharing()?;
        Ok(())
    }

    fn is_sliding(&self, layer: usize) -> bool {
        self.layer_types[layer] == "sliding_attention"
    }

    fn layer_override(&self, layer: usize) -> LayerOverride {
        if let Some(o) = self.per_layer_config.get(&layer.to_string()) {
            return o.clone();
        }
        // A config written without per_layer_config: full layers take the global sizes.
        if self.is_sliding(layer) {
            LayerOverride::default()
        } else {
            LayerOverride {
                head_dim: self.global_head_dim,
                num_key_value_heads: self
                    .num_global_key_value_heads
                    .filter(|_| self.attention_k_eq_v),
            }
        }
    }

    pub fn head_dim(&self, layer: usize) -> usize {
        self.layer_override(layer).head_dim.unwrap_or(self.head_dim)
    }

    pub fn kv_heads(&self, layer: usize) -> usize {
        self.layer_override(layer)
            .num_key_value_heads
            .unwrap_or(self.num_key_value_heads)
    }

    /// Per layer: own keys and values, stored for reuse, or reused from an earlier layer.
    pub fn kv_sharing(&self) -> Result<Vec<KvSharing>, String> {
        let n = self.num_hidden_layers;
        let first_shared = n.saturating_sub(self.num_kv_shared_layers);
        let mut modes = vec![KvSharing::Own; n];
        for layer in first_shared..n {
            let kind = &self.layer_types[layer];
            let producer = (0..first_shared)
                .rev()
                .find(|&p| &self.layer_types[p] == kind)
                .ok_or_else(|| format!("no earlier {kind} layer to share keys and values with"))?;
            modes[producer] = KvSharing::Store;
            modes[layer] = KvSharing::Reuse(producer);
        }
        Ok(modes)
    }

    /// Parameters of the per-layer embedding table, which stays in the mapped file.
    pub fn per_layer_table_parameters(&self) -> usize {
        match (
            self.vocab_size_per_layer_input,
            self.hidden_size_per_layer_input,
        ) {
            (Some(v), Some(p)) => v * self.num_hidden_layers * p,
            _ => 0,
        }
    }

    /// Parameters of the text model, for the memory estimate.
    pub fn parameters(&self) -> usize {
        let h = self.hidden_size;
        let sharing = self.kv_sharing().unwrap_or_default();
        let mut n = self.vocab_size * h + h;
        if let (Some(v), Some(p)) = (
            self.vocab_size_per_layer_input,
            self.hidden_size_per_layer_input,
        ) {
            n += v * self.num_hidden_layers * p + h * self.num_hidden_layers * p + p;
        }
        for layer in 0..self.num_hidden_layers {
            let (d, kv) = (self.head_dim(layer), self.kv_heads(layer));
            let reuse = matches!(sharing.get(layer), Some(KvSharing::Reuse(_)));
            n += 2 * h * self.num_attention_heads * d + d;
            if !reuse {
                // Keys (and their norm); values too unless keys double as values.
                let shared_v = self.attention_k_eq_v && !self.is_sliding(layer);
                n += if shared_v { 1 } else { 2 } * h * kv * d + d;
            }
            let wide = if reuse && self.use_double_wide_mlp {
                2
            } else {
                1
            };
            n += 3 * h * self.intermediate_size * wide + 4 * h + 1;
            if let Some(p) = self.hidden_size_per_layer_input {
                n += 2 * h * p + h;
            }
        }
        n
    }
}

/// Tensors of the language model in a folder of safetensors, read on demand.
struct Weights {
    files: MmapedSafetensors,
    prefix: String,
    dtype: DType,
    device: Device,
}

impl Weights {
    fn open(dir: &Path, dtype: DType, device: &Device) -> Result<Self, Gemma4Error> {
        let mut paths = Self::shards(dir)?;
        paths.sort();
        if paths.is_empty() {
            return Err(Gemma4Error::Io {
                path: dir.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no .safetensors files in the model folder",
                ),
            });
        }
        Self::map(paths, dtype, device)
    }

    /// The shards the index file names (a sharded checkpoint), else every .safetensors file.
    fn shards(dir: &Path) -> Result<Vec<PathBuf>, Gemma4Error> {
        let index = dir.join("model.safetensors.index.json");
        if index.is_file() {
            let bad = |reason: String| Gemma4Error::Config {
                path: index.clone(),
                reason,
            };
            let text = std::fs::read_to_string(&index).map_err(|source| Gemma4Error::Io {
                path: index.clone(),
                source,
            })?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
            let map = v["weight_map"]
                .as_object()
                .ok_or_else(|| bad("no weight_map".into()))?;
            let mut files: Vec<PathBuf> = map
                .values()
                .filter_map(|f| f.as_str())
                .map(|f| dir.join(f))
                .collect();
            files.sort();
            files.dedup();
            return Ok(files);
        }
        Ok(std::fs::read_dir(dir)
            .map_err(|source| Gemma4Error::Io {
                path: dir.to_path_buf(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .collect())
    }

    fn map(paths: Vec<PathBuf>, dtype: DType, device: &Device) -> Result<Self, Gemma4Error> {
        // SAFETY: the files are mapped read-only; medlit never writes them, and a model
        // folder changed by another process while it is loaded is outside what we support.
        let files = unsafe { MmapedSafetensors::multi(&paths)? };
        let names: Vec<String> = files.tensors().into_iter().map(|(n, _)| n).collect();
        let prefix = [
            "model.language_model.",
            "language_model.model.",
            "model.",
            "",
        ]
        .into_iter()
        .find(|p| {
            names
                .iter()
                .any(|n| *n == format!("{p}embed_tokens.weight"))
        })
        .ok_or_else(|| Gemma4Error::Missing("embed_tokens.weight".into()))?
        .to_string();
        Ok(Weights {
            files,
            prefix,
            dtype,
            device: device.clone(),
        })
    }

    fn get(&self, name: &str) -> Result<Tensor, Gemma4Error> {
        let full = format!("{}{name}", self.prefix);
        let t = self
            .files
            .load(&full, &self.device)
            .map_err(|_| Gemma4Error::Missing(full.clone()))?;
        Ok(t.to_dtype(self.dtype)?)
    }

    fn linear(&self, name: &str) -> Result<Linear, Gemma4Error> {
        Ok(Linear::new(self.get(&format!("{name}.weight"))?)?)
    }
}

/// RMS norm as Gemma 4 writes it: the weight multiplies directly (no `1 +`); a norm without
/// a weight (the values') has ones, made once at load.
struct Norm {
    weight: Tensor,
    eps: f32,
}

impl Norm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::rms_norm(&x.contiguous()?, &self.weight, self.eps)
    }
}

struct Attention {
    q: Linear,
    q_norm: Norm,
    /// Keys, values and their norms; `None` on a layer that reuses another's.
    kv: Option<(Linear, Option<Linear>, Norm, Norm)>,
    o: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

struct Layer {
    attn: Attention,
    input_norm: Norm,
    post_attn_norm: Norm,
    pre_ffn_norm: Norm,
    post_ffn_norm: Norm,
    gate: Linear,
    up: Linear,
    down: Linear,
    /// Per-layer input: gate (hidden → small), projection (small → hidden), norm.
    per_layer: Option<(Linear, Linear, Norm)>,
    scalar: Tensor,
    sliding: bool,
    sharing: KvSharing,
}

/// Cosine and sine for positions `0..len`, `(len, head_dim / 2)`.
struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    /// `inv_freq` has `head_dim / 2` entries; zeros leave those dimensions unrotated.
    fn new(inv_freq: Vec<f32>, len: usize, dev: &Device) -> candle_core::Result<Self> {
        let half = inv_freq.len();
        let inv = Tensor::from_vec(inv_freq, (1, half), dev)?;
        let pos = Tensor::arange(0u32, len as u32, dev)?
            .to_dtype(DType::F32)?
            .reshape((len, 1))?;
        let angles = pos.broadcast_mul(&inv)?;
        Ok(Rope {
            cos: angles.cos()?,
            sin: angles.sin()?,
        })
    }

    fn for_kind(
        p: &RopeParams,
        head_dim: usize,
        len: usize,
        dev: &Device,
    ) -> candle_core::Result<Self> {
        let base = p.rope_theta;
        let factor = p.factor.unwrap_or(1.0);
        let inv: Vec<f32> = if p.rope_type == "proportional" {
            // Only the first `partial_rotary_factor` of the pairs rotate, at the frequencies
            // they would have in a full-width head.
            let rotated = (p.partial_rotary_factor.unwrap_or(1.0) * head_dim as f64 / 2.0) as usize;
            (0..head_dim / 2)
                .map(|i| {
                    if i < rotated {
                        (1.0 / base.powf(2.0 * i as f64 / head_dim as f64) / factor) as f32
                    } else {
                        0.0
                    }
                })
                .collect()
        } else {
            (0..head_dim / 2)
                .map(|i| (1.0 / base.powf(2.0 * i as f64 / head_dim as f64)) as f32)
                .collect()
        };
        Self::new(inv, len, dev)
    }

    fn apply(&self, x: &Tensor, pos: usize) -> candle_core::Result<Tensor> {
        let t = x.dim(2)?;
        let dt = x.dtype();
        candle_nn::rotary_emb::rope(
            &x.contiguous()?,
            &self.cos.narrow(0, pos, t)?.to_dtype(dt)?,
            &self.sin.narrow(0, pos, t)?.to_dtype(dt)?,
        )
    }
}

/// Keys and values of the layers that compute them, preallocated for the whole context.
pub struct Cache {
    kv: Vec<Option<(Tensor, Tensor)>>,
    pub len: usize,
    pub capacity: usize,
}

/// The packed per-layer embedding table, `(vocab, layers × small)`, left in the mapped file:
/// 2.8 B parameters in E4B of which a token needs one row, so only those rows are read.
struct RowTable {
    name: String,
    row_len: usize,
    rows: usize,
}

impl RowTable {
    /// Rows `ids` as `(ids, row_len)` in `dtype`.
    fn rows(
        &self,
        files: &MmapedSafetensors,
        ids: &[u32],
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor, Gemma4Error> {
        let view = files.get(&self.name)?;
        let data = view.data();
        let width = match view.dtype() {
            safetensors::Dtype::F32 => 4,
            safetensors::Dtype::BF16 | safetensors::Dtype::F16 => 2,
            other => {
                return Err(Gemma4Error::Unsupported(format!(
                    "a {other:?} per-layer table"
                )))
            }
        };
        let mut out = Vec::with_capacity(ids.len() * self.row_len);
        for &id in ids {
            let id = id as usize;
            if id >= self.rows {
                return Err(Gemma4Error::Unsupported(format!(
                    "token id {id} beyond the per-layer table's {} rows",
                    self.rows
                )));
            }
            let bytes = &data[id * self.row_len * width..][..self.row_len * width];
            match view.dtype() {
                safetensors::Dtype::F32 => out.extend(
                    bytes
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                ),
                safetensors::Dtype::BF16 => out.extend(
                    bytes
                        .chunks_exact(2)
                        .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()),
                ),
                _ => out.extend(
                    bytes
                        .chunks_exact(2)
                        .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()),
                ),
            }
        }
        Ok(Tensor::from_vec(out, (ids.len(), self.row_len), device)?.to_dtype(dtype)?)
    }
}

pub struct Gemma4 {
    pub cfg: Config,
    embed: Tensor,
    /// The per-layer table (read row by row from `files`), the projection of the input
    /// embedding and its norm.
    per_layer: Option<(RowTable, Linear, Norm)>,
    files: MmapedSafetensors,
    layers: Vec<Layer>,
    final_norm: Norm,
    lm_head: Linear,
    rope_sliding: Rope,
    rope_full: Rope,
    pub context: usize,
    dtype: DType,
    device: Device,
}

impl Gemma4 {
    /// Loads the text model of the folder `dir` (config.json and *.safetensors) for a context
    /// of `context` tokens, computing in `dtype`.
    pub fn load(
        dir: &Path,
        context: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Self, Gemma4Error> {
        let cfg = Config::load(&dir.join("config.json"))?;
        let w = Weights::open(dir, dtype, device)?;
        let context = context.clamp(1, cfg.max_position_embeddings);
        let sharing = cfg.kv_sharing().map_err(Gemma4Error::Unsupported)?;
        let eps = cfg.rms_norm_eps as f32;
        let norm = |name: &str| -> Result<Norm, Gemma4Error> {
            Ok(Norm {
                weight: w.get(name)?,
                eps,
            })
        };
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for (i, &sharing) in sharing.iter().enumerate() {
            let p = format!("layers.{i}");
            let sliding = cfg.is_sliding(i);
            let kv = if matches!(sharing, KvSharing::Reuse(_)) {
                None
            } else {
                let v = if cfg.attention_k_eq_v && !sliding {
                    None
                } else {
                    Some(w.linear(&format!("{p}.self_attn.v_proj"))?)
                };
                Some((
                    w.linear(&format!("{p}.self_attn.k_proj"))?,
                    v,
                    norm(&format!("{p}.self_attn.k_norm.weight"))?,
                    Norm {
                        weight: Tensor::ones(cfg.head_dim(i), dtype, device)?,
                        eps,
                    },
                ))
            };
            let per_layer = match cfg.hidden_size_per_layer_input {
                Some(s) if s > 0 => Some((
                    w.linear(&format!("{p}.per_layer_input_gate"))?,
                    w.linear(&format!("{p}.per_layer_projection"))?,
                    norm(&format!("{p}.post_per_layer_input_norm.weight"))?,
                )),
                _ => None,
            };
            layers.push(Layer {
                attn: Attention {
                    q: w.linear(&format!("{p}.self_attn.q_proj"))?,
                    q_norm: norm(&format!("{p}.self_attn.q_norm.weight"))?,
                    kv,
                    o: w.linear(&format!("{p}.self_attn.o_proj"))?,
                    heads: cfg.num_attention_heads,
                    kv_heads: cfg.kv_heads(i),
                    head_dim: cfg.head_dim(i),
                },
                input_norm: norm(&format!("{p}.input_layernorm.weight"))?,
                post_attn_norm: norm(&format!("{p}.post_attention_layernorm.weight"))?,
                pre_ffn_norm: norm(&format!("{p}.pre_feedforward_layernorm.weight"))?,
                post_ffn_norm: norm(&format!("{p}.post_feedforward_layernorm.weight"))?,
                gate: w.linear(&format!("{p}.mlp.gate_proj"))?,
                up: w.linear(&format!("{p}.mlp.up_proj"))?,
                down: w.linear(&format!("{p}.mlp.down_proj"))?,
                per_layer,
                scalar: w
                    .get(&format!("{p}.layer_scalar"))
                    .or_else(|_| Tensor::ones(1, dtype, device).map_err(Gemma4Error::from))?,
                sliding,
                sharing,
            });
        }
        let embed = w.get("embed_tokens.weight")?;
        let per_layer = match cfg.hidden_size_per_layer_input {
            Some(s) if s > 0 => {
                let name = format!("{}embed_tokens_per_layer.weight", w.prefix);
                let shape = w
                    .files
                    .get(&name)
                    .map_err(|_| Gemma4Error::Missing(name.clone()))?
                    .shape()
                    .to_vec();
                let [rows, row_len] = shape[..] else {
                    return Err(Gemma4Error::Unsupported(format!(
                        "a per-layer table of shape {shape:?}"
                    )));
                };
                if row_len != s * cfg.num_hidden_layers {
                    return Err(Gemma4Error::Unsupported(format!(
                        "a per-layer table {row_len} wide for {} layers of {s}",
                        cfg.num_hidden_layers
                    )));
                }
                Some((
                    RowTable {
                        name,
                        row_len,
                        rows,
                    },
                    w.linear("per_layer_model_projection")?,
                    norm("per_layer_projection_norm.weight")?,
                ))
            }
            _ => None,
        };
        let lm_head = if cfg.tie_word_embeddings {
            Linear::new(embed.clone())?
        } else {
            // An untied head lives beside the language model, not under its prefix.
            let head = w
                .files
                .load("lm_head.weight", device)
                .map_err(|_| Gemma4Error::Missing("lm_head.weight".into()))?
                .to_dtype(dtype)?;
            Linear::new(head)?
        };
        let kind = |k: &str| {
            cfg.rope_parameters
                .get(k)
                .cloned()
                .ok_or_else(|| Gemma4Error::Unsupported(format!("a config without {k} RoPE")))
        };
        let sliding_dim = (0..cfg.num_hidden_layers)
            .find(|&i| cfg.is_sliding(i))
            .map_or(cfg.head_dim, |i| cfg.head_dim(i));
        let full_dim = (0..cfg.num_hidden_layers)
            .find(|&i| !cfg.is_sliding(i))
            .map_or(cfg.head_dim, |i| cfg.head_dim(i));
        let rope_sliding =
            Rope::for_kind(&kind("sliding_attention")?, sliding_dim, context, device)?;
        let rope_full = Rope::for_kind(&kind("full_attention")?, full_dim, context, device)?;
        Ok(Gemma4 {
            final_norm: norm("norm.weight")?,
            cfg,
            embed,
            per_layer,
            files: w.files,
            layers,
            lm_head,
            rope_sliding,
            rope_full,
            context,
            dtype,
            device: device.clone(),
        })
    }

    pub fn new_cache(&self) -> Result<Cache, Gemma4Error> {
        let mut kv = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            kv.push(if layer.attn.kv.is_some() {
                let shape = (1, layer.attn.kv_heads, self.context, layer.attn.head_dim);
                Some((
                    Tensor::zeros(shape, self.dtype, &self.device)?,
                    Tensor::zeros(shape, self.dtype, &self.device)?,
                ))
            } else {
                None
            });
        }
        Ok(Cache {
            kv,
            len: 0,
            capacity: self.context,
        })
    }

    /// Runs `tokens` at the cache's next positions; the logits of every one of them,
    /// `(tokens, vocab)`, in f32.
    pub fn forward_all(&self, tokens: &[u32], cache: &mut Cache) -> Result<Tensor, Gemma4Error> {
        let h = self.hidden(tokens, cache)?;
        Ok(self.logits(&h)?)
    }

    /// As [`Gemma4::forward_all`], the last token's logits only, `(vocab,)`.
    pub fn forward(&self, tokens: &[u32], cache: &mut Cache) -> Result<Tensor, Gemma4Error> {
        let h = self.hidden(tokens, cache)?;
        let t = h.dim(1)?;
        Ok(self.logits(&h.narrow(1, t - 1, 1)?)?.flatten_all()?)
    }

    fn logits(&self, h: &Tensor) -> candle_core::Result<Tensor> {
        let logits = self.lm_head.forward(h)?.to_dtype(DType::F32)?;
        let logits = match self.cfg.final_logit_softcapping {
            Some(cap) if cap > 0.0 => ((logits / cap)?.tanh()? * cap)?,
            _ => logits,
        };
        logits.squeeze(0)
    }

    /// The final-normed hidden states of `tokens`, `(1, t, hidden)`.
    fn hidden(&self, tokens: &[u32], cache: &mut Cache) -> Result<Tensor, Gemma4Error> {
        let t = tokens.len();
        let pos = cache.len;
        if t == 0 || pos + t > cache.capacity {
            return Err(Gemma4Error::ContextFull {
                prompt: pos,
                answer: t,
                context: cache.capacity,
            });
        }
        let cfg = &self.cfg;
        let ids = Tensor::new(tokens, &self.device)?;
        let scale = (cfg.hidden_size as f64).sqrt();
        let embeds = (self.embed.embedding(&ids)? * scale)?.reshape((1, t, cfg.hidden_size))?;
        let per_layer_inputs = match (&self.per_layer, cfg.hidden_size_per_layer_input) {
            (Some((table, projection, norm)), Some(small)) => {
                let n = cfg.num_hidden_layers;
                let identity = (table.rows(&self.files, tokens, self.dtype, &self.device)?
                    * (small as f64).sqrt())?
                .reshape((1, t, n, small))?;
                let context = (projection.forward(&embeds)? * (cfg.hidden_size as f64).powf(-0.5))?
                    .reshape((1, t, n, small))?;
                let context = norm.forward(&context)?;
                Some(((context + identity)? * 0.5f64.sqrt())?)
            }
            _ => None,
        };
        let mut x = embeds;
        for (i, layer) in self.layers.iter().enumerate() {
            let residual = x.clone();
            let hs = layer.input_norm.forward(&x)?;
            let hs = self.attention(layer, i, &hs, pos, cache)?;
            let hs = layer.post_attn_norm.forward(&hs)?;
            x = (residual + hs)?;
            let residual = x.clone();
            let hs = layer.pre_ffn_norm.forward(&x)?;
            let hs = layer.down.forward(&gelu_mul(
                &layer.gate.forward(&hs)?,
                &layer.up.forward(&hs)?,
            )?)?;
            let hs = layer.post_ffn_norm.forward(&hs)?;
            x = (residual + hs)?;
            if let (Some((gate, projection, norm)), Some(inputs)) =
                (&layer.per_layer, &per_layer_inputs)
            {
                let residual = x.clone();
                let own = inputs.narrow(2, i, 1)?.squeeze(2)?;
                let hs = gelu_mul(&gate.forward(&x)?, &own)?;
                let hs = norm.forward(&projection.forward(&hs)?)?;
                x = (residual + hs)?;
            }
            x = x.broadcast_mul(&layer.scalar)?;
        }
        cache.len += t;
        Ok(self.final_norm.forward(&x)?)
    }

    fn attention(
        &self,
        layer: &Layer,
        index: usize,
        x: &Tensor,
        pos: usize,
        cache: &mut Cache,
    ) -> Result<Tensor, Gemma4Error> {
        let a = &layer.attn;
        let (_, t, _) = x.dims3()?;
        let (h, kvh, d) = (a.heads, a.kv_heads, a.head_dim);
        let rope = if layer.sliding {
            &self.rope_sliding
        } else {
            &self.rope_full
        };
        let q = a.q.forward(x)?.reshape((1, t, h, d))?;
        let q = a.q_norm.forward(&q)?.transpose(1, 2)?;
        let q = rope.apply(&q, pos)?;
        let source = match layer.sharing {
            KvSharing::Reuse(producer) => producer,
            _ => index,
        };
        if let Some((k_proj, v_proj, k_norm, v_norm)) = &a.kv {
            let k_raw = k_proj.forward(x)?.reshape((1, t, kvh, d))?;
            let v_raw = match v_proj {
                Some(v) => v.forward(x)?.reshape((1, t, kvh, d))?,
                // Keys double as values on the full layers of k_eq_v models.
                None => k_raw.clone(),
            };
            let k = k_norm.forward(&k_raw)?.transpose(1, 2)?;
            let k = rope.apply(&k, pos)?;
            let v = v_norm.forward(&v_raw)?.transpose(1, 2)?.contiguous()?;
            if let Some((kc, vc)) = &cache.kv[index] {
                kc.slice_set(&k, 2, pos)?;
                vc.slice_set(&v, 2, pos)?;
            }
        }
        let Some((k_cache, v_cache)) = &cache.kv[source] else {
            return Err(Gemma4Error::Unsupported(format!(
                "layer {index} reuses layer {source}, which keeps no keys"
            )));
        };
        let end = pos + t;
        let w = self.cfg.sliding_window;
        let start = if layer.sliding {
            (pos + 1).saturating_sub(w)
        } else {
            0
        };
        let s = end - start;
        let keys = k_cache.narrow(2, start, s)?.contiguous()?;
        let values = v_cache.narrow(2, start, s)?.contiguous()?;
        let group = h / kvh;
        let q = q.contiguous()?.reshape((1, kvh, group * t, d))?;
        // Gemma 4 normalises queries and keys instead of scaling by 1/√d.
        let scores = q.matmul(&keys.t()?)?.to_dtype(DType::F32)?;
        let scores = if t > 1 {
            let window = layer.sliding.then_some(w);
            let mask = super::gemma3::attention_mask(window, pos, t, start, s, &self.device)?;
            scores
                .reshape((1, kvh, group, t, s))?
                .broadcast_add(&mask)?
                .reshape((1, kvh, group * t, s))?
        } else {
            scores
        };
        let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(self.dtype)?;
        let out = probs.matmul(&values)?;
        let out = out
            .reshape((1, h, t, d))?
            .transpose(1, 2)?
            .reshape((1, t, h * d))?;
        Ok(a.o.forward(&out)?)
    }
}
