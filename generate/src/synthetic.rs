//! Random-weight Gemma 4 checkpoints at a published configuration, written as a Hugging Face
//! folder (config.json + one safetensors file), so that load time, memory, prefill and decode
//! can be measured at real size on machines that do not hold the real weights.
//!
//! The tensor names and shapes come from the config by the same rules the loader
//! ([`crate::gemma4::Gemma4::load`]) reads them with; a test holds them against a checkpoint
//! that transformers wrote.
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use half::bf16;
use serde_json::{json, Value};

use crate::gemma4::{Config, KvSharing};

#[derive(Debug, thiserror::Error)]
pub enum SyntheticError {
    #[error("unknown synthetic model `{0}` (gemma4-e4b, gemma4-tiny)")]
    Unknown(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not empty: a synthetic model is written only into a new or empty folder")]
    NotEmpty { path: PathBuf },
    #[error("{path}: {need:.1} GB are needed for the weights and {free:.1} GB are free")]
    NoSpace { path: PathBuf, need: f64, free: f64 },
    #[error("the config does not describe a Gemma 4 text model: {0}")]
    Config(String),
}

/// The precisions a synthetic checkpoint is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredDType {
    F32,
    BF16,
}

impl StoredDType {
    fn bytes(self) -> usize {
        match self {
            StoredDType::F32 => 4,
            StoredDType::BF16 => 2,
        }
    }
    fn name(self) -> &'static str {
        match self {
            StoredDType::F32 => "F32",
            StoredDType::BF16 => "BF16",
        }
    }
}

/// The configurations `--synthetic` knows.
pub const NAMES: [&str; 2] = ["gemma4-e4b", "gemma4-tiny"];

/// config.json of a known configuration.
///
/// `gemma4-e4b`: the text model of Gemma 4 E4B as its model description publishes it (42
/// layers of 2560, MLP 10240, 8 query and 2 KV heads, head size 256 on the sliding layers and
/// 512 on every sixth, full, layer; per-layer inputs of 256 over the 262,144-token vocabulary;
/// the last 18 layers reuse earlier keys and values). `gemma4-tiny`: the shape of the parity
/// fixture, for tests of the machinery.
pub fn config(name: &str) -> Result<Value, SyntheticError> {
    let (
        layers,
        period,
        hidden,
        mlp,
        heads,
        kv,
        head,
        global_head,
        window,
        vocab,
        per_layer,
        shared,
    ) = match name {
        "gemma4-e4b" => (42, 6, 2560, 10240, 8, 2, 256, 512, 512, 262_144, 256, 18),
        "gemma4-tiny" => (6, 3, 64, 96, 4, 2, 16, 32, 8, 512, 8, 2),
        other => return Err(SyntheticError::Unknown(other.to_string())),
    };
    // Sliding-window layers, then one full-attention layer, every `period` layers.
    let layer_types: Vec<&str> = (0..layers)
        .map(|i| {
            if i % period == period - 1 {
                "full_attention"
            } else {
                "sliding_attention"
            }
        })
        .collect();
    Ok(json!({
        "architectures": ["Gemma4ForCausalLM"],
        "model_type": "gemma4_text",
        "synthetic": format!("{name}: random weights, for measuring speed and memory only"),
        "attention_bias": false,
        "attention_k_eq_v": false,
        "bos_token_id": 2,
        "eos_token_id": 1,
        "pad_token_id": 0,
        "enable_moe_block": false,
        "final_logit_softcapping": 30.0,
        "head_dim": head,
        "global_head_dim": global_head,
        "hidden_activation": "gelu_pytorch_tanh",
        "hidden_size": hidden,
        "hidden_size_per_layer_input": per_layer,
        "intermediate_size": mlp,
        "layer_types": layer_types,
        "max_position_embeddings": 131_072,
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "num_key_value_heads": kv,
        "num_kv_shared_layers": shared,
        "rms_norm_eps": 1e-6,
        "rope_parameters": {
            "full_attention": {
                "partial_rotary_factor": 0.25,
                "rope_theta": 1_000_000.0,
                "rope_type": "proportional"
            },
            "sliding_attention": {"rope_theta": 10_000.0, "rope_type": "default"}
        },
        "sliding_window": window,
        "tie_word_embeddings": true,
        "use_double_wide_mlp": false,
        "vocab_size": vocab,
        "vocab_size_per_layer_input": vocab
    }))
}

/// How a tensor is filled: norms and layer scalars with ones (Gemma 4's norms multiply by
/// their weight directly, so ones keep activations at scale), the rest with uniform noise of
/// the config's initialiser scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    Ones,
    Noise,
}

/// One tensor of the checkpoint: its full name, shape and fill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub fill: Fill,
}

impl TensorSpec {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Every tensor the loader reads for `cfg`, under transformers' `model.` prefix.
pub fn tensors(cfg: &Config) -> Result<Vec<TensorSpec>, SyntheticError> {
    let sharing = cfg.kv_sharing().map_err(SyntheticError::Config)?;
    let h = cfg.hidden_size;
    let mut out = Vec::new();
    let mut add = |name: String, shape: Vec<usize>, fill: Fill| {
        out.push(TensorSpec {
            name: format!("model.{name}"),
            shape,
            fill,
        })
    };
    add(
        "embed_tokens.weight".into(),
        vec![cfg.vocab_size, h],
        Fill::Noise,
    );
    let per_layer = cfg
        .hidden_size_per_layer_input
        .filter(|&p| p > 0)
        .map(|p| (p, cfg.vocab_size_per_layer_input.unwrap_or(cfg.vocab_size)));
    if let Some((p, rows)) = per_layer {
        let width = p * cfg.num_hidden_layers;
        add(
            "embed_tokens_per_layer.weight".into(),
            vec![rows, width],
            Fill::Noise,
        );
        add(
            "per_layer_model_projection.weight".into(),
            vec![width, h],
            Fill::Noise,
        );
        add(
            "per_layer_projection_norm.weight".into(),
            vec![p],
            Fill::Ones,
        );
    }
    add("norm.weight".into(), vec![h], Fill::Ones);
    for (i, mode) in sharing.iter().enumerate() {
        let (d, kv, heads) = (cfg.head_dim(i), cfg.kv_heads(i), cfg.num_attention_heads);
        let reuse = matches!(mode, KvSharing::Reuse(_));
        let sliding = cfg.layer_types[i] == "sliding_attention";
        let l = |s: &str| format!("layers.{i}.{s}");
        for norm in [
            "input_layernorm",
            "post_attention_layernorm",
            "pre_feedforward_layernorm",
            "post_feedforward_layernorm",
        ] {
            add(l(&format!("{norm}.weight")), vec![h], Fill::Ones);
        }
        add(l("layer_scalar"), vec![1], Fill::Ones);
        let wide = if reuse && cfg.use_double_wide_mlp {
            2
        } else {
            1
        };
        let m = cfg.intermediate_size * wide;
        add(l("mlp.gate_proj.weight"), vec![m, h], Fill::Noise);
        add(l("mlp.up_proj.weight"), vec![m, h], Fill::Noise);
        add(l("mlp.down_proj.weight"), vec![h, m], Fill::Noise);
        if let Some((p, _)) = per_layer {
            add(l("per_layer_input_gate.weight"), vec![p, h], Fill::Noise);
            add(l("per_layer_projection.weight"), vec![h, p], Fill::Noise);
            add(l("post_per_layer_input_norm.weight"), vec![h], Fill::Ones);
        }
        add(
            l("self_attn.q_proj.weight"),
            vec![heads * d, h],
            Fill::Noise,
        );
        add(l("self_attn.q_norm.weight"), vec![d], Fill::Ones);
        add(
            l("self_attn.o_proj.weight"),
            vec![h, heads * d],
            Fill::Noise,
        );
        if !reuse {
            add(l("self_attn.k_proj.weight"), vec![kv * d, h], Fill::Noise);
            add(l("self_attn.k_norm.weight"), vec![d], Fill::Ones);
            if !cfg.attention_k_eq_v || sliding {
                add(l("self_attn.v_proj.weight"), vec![kv * d, h], Fill::Noise);
            }
        }
    }
    if !cfg.tie_word_embeddings {
        out.push(TensorSpec {
            name: "lm_head.weight".into(),
            shape: vec![cfg.vocab_size, h],
            fill: Fill::Noise,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// What [`write`] made.
#[derive(Debug, Clone)]
pub struct Written {
    pub parameters: usize,
    pub bytes: u64,
}

/// Writes `config` and random weights in `dtype` into `dir` (created if missing; refused if it
/// holds anything, so nothing of the user's is overwritten). `progress(done, total)` is called
/// in bytes as the weights are written. A failed write removes the files it made.
pub fn write(
    dir: &Path,
    config: &Value,
    dtype: StoredDType,
    seed: u64,
    mut progress: impl FnMut(u64, u64),
) -> Result<Written, SyntheticError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SyntheticError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    if std::fs::read_dir(dir).map_err(io(dir))?.next().is_some() {
        return Err(SyntheticError::NotEmpty {
            path: dir.to_path_buf(),
        });
    }
    let cfg = Config::from_value(config.clone()).map_err(SyntheticError::Config)?;
    let specs = tensors(&cfg)?;
    let parameters: usize = specs.iter().map(TensorSpec::len).sum();
    let total = (parameters * dtype.bytes()) as u64;
    if let Some(free) = free_bytes(dir) {
        // The weights plus a margin, so the disk is never filled to the last byte.
        if total + (1 << 30) > free {
            return Err(SyntheticError::NoSpace {
                path: dir.to_path_buf(),
                need: total as f64 / 1e9,
                free: free as f64 / 1e9,
            });
        }
    }
    let weights = dir.join("model.safetensors");
    let config_path = dir.join("config.json");
    let result = (|| {
        write_safetensors(&weights, &specs, dtype, seed, &mut progress)?;
        let text = serde_json::to_string_pretty(config)
            .map_err(|e| SyntheticError::Config(e.to_string()))?;
        std::fs::write(&config_path, text).map_err(io(&config_path))
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&weights);
        let _ = std::fs::remove_file(&config_path);
        return Err(e);
    }
    Ok(Written {
        parameters,
        bytes: total,
    })
}

/// Values per generated block: large enough to keep the writer busy, small enough for memory.
const BLOCK: usize = 1 << 22;

fn write_safetensors(
    path: &Path,
    specs: &[TensorSpec],
    dtype: StoredDType,
    seed: u64,
    progress: &mut impl FnMut(u64, u64),
) -> Result<(), SyntheticError> {
    let io = |source| SyntheticError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for s in specs {
        let end = offset + s.len() * dtype.bytes();
        header.insert(
            s.name.clone(),
            json!({"dtype": dtype.name(), "shape": s.shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    header.insert("__metadata__".into(), json!({"format": "pt"}));
    let mut text = Value::Object(header).to_string().into_bytes();
    // The data that follows starts on an 8-byte boundary.
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let file = std::fs::File::create(path).map_err(io)?;
    let mut out = BufWriter::with_capacity(1 << 22, file);
    out.write_all(&(text.len() as u64).to_le_bytes())
        .map_err(io)?;
    out.write_all(&text).map_err(io)?;
    let total = offset as u64;
    let mut done = 0u64;
    let mut rng = SplitMix64(seed);
    let mut bytes = Vec::with_capacity(BLOCK * 4);
    // std 0.02 as transformers initialises Gemma: uniform on ±0.02·√3.
    let scale = 0.02f32 * 3f32.sqrt();
    for s in specs {
        let mut left = s.len();
        while left > 0 {
            let n = left.min(BLOCK);
            bytes.clear();
            for _ in 0..n {
                let v = match s.fill {
                    Fill::Ones => 1.0,
                    Fill::Noise => rng.uniform() * scale,
                };
                match dtype {
                    StoredDType::F32 => bytes.extend_from_slice(&v.to_le_bytes()),
                    StoredDType::BF16 => {
                        bytes.extend_from_slice(&bf16::from_f32(v).to_bits().to_le_bytes())
                    }
                }
            }
            out.write_all(&bytes).map_err(io)?;
            left -= n;
            done += bytes.len() as u64;
            progress(done, total);
        }
    }
    out.flush().map_err(io)?;
    out.into_inner()
        .map_err(|e| io(e.into_error()))?
        .sync_all()
        .map_err(io)?;
    Ok(())
}

/// A small, fast, seeded generator: the weights only need to be reproducible noise.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        crate::sampler::splitmix64(&mut self.0)
    }
    /// Uniform on [-1, 1).
    fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Free bytes on the file system holding `dir`, where the platform tells.
fn free_bytes(dir: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
        let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: `c` is a valid NUL-terminated path and `st` is written by statvfs before it
        // is read (only on success).
        let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
        if rc != 0 {
            return None;
        }
        // SAFETY: statvfs returned 0, so it filled `st`.
        let st = unsafe { st.assume_init() };
        // The field types differ between platforms (u32 on some 32-bit ones).
        #[allow(clippy::unnecessary_cast)]
        Some(st.f_bavail as u64 * st.f_frsize as u64)
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

/// A deterministic prompt of `n` token ids for a model without a tokenizer: BOS, then ids
/// spread over the vocabulary (speed does not depend on which ids they are).
pub fn prompt_ids(cfg: &Config, n: usize) -> Vec<u32> {
    let mut rng = SplitMix64(7);
    let vocab = cfg.vocab_size.max(8) as u64;
    let mut ids = vec![cfg.bos_token_id.unwrap_or(2)];
    while ids.len() < n {
        ids.push((4 + rng.next() % (vocab - 4)) as u32);
    }
    ids
}
