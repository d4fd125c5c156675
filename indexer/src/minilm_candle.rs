//! all-MiniLM-L6-v2 in f32 on candle's tensor operations, on any candle device: the GPU
//! encoder (`--embed-device cuda[:N]`, the `cuda` build) and, on the CPU, the same arithmetic
//! for querying an index a GPU built.
//!
//! A GPU wants large, dense batches: the passages of one call are sorted by token count and
//! cut into batches of `batch_size`, each padded to its longest passage, so padding stays small
//! and every product is one large matrix multiplication. Padded keys are masked out of
//! attention and padded tokens out of the mean.
use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};

use crate::embed::{count_with, read, EmbedError, Embedder, ModelInfo};
use crate::minilm::{tokenizers_for, FFN, HEADS, HEAD_DIM, HIDDEN, LAYERS, LN_EPS, MAX_POSITIONS};

/// Where the candle encoder finds its files and where it runs.
#[derive(Debug, Clone)]
pub struct CandleConfig {
    /// Folder with `model.safetensors` and `tokenizer.json`.
    pub model_dir: std::path::PathBuf,
    /// Model id recorded in the index.
    pub id: String,
    /// sha256 of `model.safetensors` (recorded in the index).
    pub sha256: String,
    pub max_tokens: usize,
    /// Passages per padded batch.
    pub batch_size: usize,
    pub device: Device,
}

struct Layer {
    /// Query, key and value stacked: 1,152 output rows.
    qkv: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    up: Linear,
    down: Linear,
    ffn_norm: LayerNorm,
}

/// all-MiniLM-L6-v2 on candle: mean pooling, L2 normalisation, 384 dimensions.
pub struct MiniLmCandle {
    word: Embedding,
    position: Embedding,
    /// Row 0 of the token-type table (every passage is one segment), `1 × 384`.
    token_type: Tensor,
    norm: LayerNorm,
    layers: Vec<Layer>,
    tokenizer: tokenizers::Tokenizer,
    counter: tokenizers::Tokenizer,
    info: ModelInfo,
    batch_size: usize,
    device: Device,
}

fn model_error(what: impl std::fmt::Display) -> EmbedError {
    EmbedError::Model(what.to_string())
}

/// `names`' products stacked into one, each `rows × cols`.
fn linear(
    vb: &VarBuilder<'_>,
    names: &[&str],
    rows: usize,
    cols: usize,
) -> candle_core::Result<Linear> {
    let mut ws = Vec::with_capacity(names.len());
    let mut bs = Vec::with_capacity(names.len());
    for name in names {
        ws.push(vb.get((rows, cols), &format!("{name}.weight"))?);
        bs.push(vb.get(rows, &format!("{name}.bias"))?);
    }
    Ok(Linear::new(
        Tensor::cat(&ws, 0)?,
        Some(Tensor::cat(&bs, 0)?),
    ))
}

fn layer_norm(vb: &VarBuilder<'_>, name: &str) -> candle_core::Result<LayerNorm> {
    Ok(LayerNorm::new(
        vb.get(HIDDEN, &format!("{name}.weight"))?,
        vb.get(HIDDEN, &format!("{name}.bias"))?,
        LN_EPS as f64,
    ))
}

impl MiniLmCandle {
    pub fn load(cfg: &CandleConfig) -> Result<Self, EmbedError> {
        let bytes = read(&cfg.model_dir, "model.safetensors")?;
        let json = read(&cfg.model_dir, "tokenizer.json")?;
        let max_tokens = cfg.max_tokens.clamp(2, MAX_POSITIONS);
        let (tokenizer, counter) = tokenizers_for(&json, max_tokens)?;
        let vocab = crate::minilm::vocabulary(&bytes)?;
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &cfg.device)
            .map_err(|e| model_error(format!("model.safetensors: {e}")))?;
        let weights = (|| -> candle_core::Result<_> {
            let word = vb.get((vocab, HIDDEN), "embeddings.word_embeddings.weight")?;
            let position = vb.get(
                (MAX_POSITIONS, HIDDEN),
                "embeddings.position_embeddings.weight",
            )?;
            let token_type = vb
                .get((2, HIDDEN), "embeddings.token_type_embeddings.weight")?
                .narrow(0, 0, 1)?;
            let norm = layer_norm(&vb, "embeddings.LayerNorm")?;
            let mut layers = Vec::with_capacity(LAYERS);
            for i in 0..LAYERS {
                let p = format!("encoder.layer.{i}");
                let qkv = ["query", "key", "value"].map(|n| format!("{p}.attention.self.{n}"));
                let qkv: Vec<&str> = qkv.iter().map(String::as_str).collect();
                layers.push(Layer {
                    qkv: linear(&vb, &qkv, HIDDEN, HIDDEN)?,
                    attn_out: linear(
                        &vb,
                        &[&format!("{p}.attention.output.dense")],
                        HIDDEN,
                        HIDDEN,
                    )?,
                    attn_norm: layer_norm(&vb, &format!("{p}.attention.output.LayerNorm"))?,
                    up: linear(&vb, &[&format!("{p}.intermediate.dense")], FFN, HIDDEN)?,
                    down: linear(&vb, &[&format!("{p}.output.dense")], HIDDEN, FFN)?,
                    ffn_norm: layer_norm(&vb, &format!("{p}.output.LayerNorm"))?,
                });
            }
            Ok((
                Embedding::new(word, HIDDEN),
                Embedding::new(position, HIDDEN),
                token_type,
                norm,
                layers,
            ))
        })()
        .map_err(|e| model_error(format!("model.safetensors: {e}")))?;
        let (word, position, token_type, norm, layers) = weights;
        Ok(MiniLmCandle {
            word,
            position,
            token_type,
            norm,
            layers,
            tokenizer,
            counter,
            info: ModelInfo {
                id: cfg.id.clone(),
                sha256: cfg.sha256.clone(),
                dim: HIDDEN,
                max_tokens,
            },
            batch_size: cfg.batch_size.max(1),
            device: cfg.device.clone(),
        })
    }

    /// Unit vectors of passages given as token ids, padded to the longest of the batch.
    fn forward(&self, seqs: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
        let b = seqs.len();
        let n = seqs.iter().map(|s| s.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![0u32; b * n];
        let mut keep = vec![0f32; b * n];
        for (i, s) in seqs.iter().enumerate() {
            ids[i * n..i * n + s.len()].copy_from_slice(s);
            keep[i * n..i * n + s.len()].fill(1.0);
        }
        let dev = &self.device;
        let ids = Tensor::from_vec(ids, (b, n), dev)?;
        let keep = Tensor::from_vec(keep, (b, n), dev)?;
        let positions = Tensor::arange(0u32, n as u32, dev)?;
        let x = self
            .word
            .forward(&ids)?
            .broadcast_add(&self.position.forward(&positions)?.unsqueeze(0)?)?
            .broadcast_add(&self.token_type)?;
        let mut x = self.norm.forward(&x)?;
        // 0 where a key is a token, a large negative number where it is padding: added to the
        // scores before the softmax, `b × 1 × 1 × n`.
        let mask = ((keep.clone() - 1.0)? * 1e9)?.reshape((b, 1, 1, n))?;
        let scale = 1.0 / (HEAD_DIM as f64).sqrt();
        for layer in &self.layers {
            let qkv = layer.qkv.forward(&x)?;
            let heads = |i: usize| -> candle_core::Result<Tensor> {
                qkv.narrow(D::Minus1, i * HIDDEN, HIDDEN)?
                    .reshape((b, n, HEADS, HEAD_DIM))?
                    .transpose(1, 2)?
                    .contiguous()
            };
            let (q, k, v) = (heads(0)?, heads(1)?, heads(2)?);
            let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&mask)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let ctx = probs
                .matmul(&v)?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((b, n, HIDDEN))?;
            let h = layer
                .attn_norm
                .forward(&(layer.attn_out.forward(&ctx)? + &x)?)?;
            let up = layer.up.forward(&h)?.gelu_erf()?;
            x = layer.ffn_norm.forward(&(layer.down.forward(&up)? + &h)?)?;
        }
        let keep = keep.unsqueeze(2)?;
        let sum = x.broadcast_mul(&keep)?.sum(1)?;
        let mean = sum.broadcast_div(&keep.sum(1)?)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        mean.broadcast_div(&norm)?.to_dtype(DType::F32)?.to_vec2()
    }
}

impl Embedder for MiniLmCandle {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut ids = Vec::with_capacity(texts.len());
        for t in texts {
            let enc = self.tokenizer.encode(*t, true).map_err(model_error)?;
            ids.push(enc.get_ids().to_vec());
        }
        // Shortest first, so each padded batch holds passages of nearly one length.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| ids[i].len());
        let mut out = vec![Vec::new(); texts.len()];
        for batch in order.chunks(self.batch_size) {
            let seqs: Vec<&[u32]> = batch.iter().map(|&i| ids[i].as_slice()).collect();
            let vectors = self.forward(&seqs).map_err(model_error)?;
            for (&i, v) in batch.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    fn count_tokens(&self, text: &str) -> usize {
        count_with(&self.counter, text)
    }

    fn call_size(&self) -> usize {
        // A call is cut into batches here; on a GPU several full batches per call keep it busy.
        if self.device.is_cpu() {
            64
        } else {
            4 * self.batch_size
        }
    }
}
