//! Text generation: the [`Generator`] trait and its backends (Gemma 3 GGUF and Gemma 4 on
//! candle, a remote OpenAI-compatible server). Needs nothing of the rest of medlit.
//!
//! Module map:
//! - this file: [`Generator`], [`GemmaGguf`], generation options and errors.
//! - [`tokenizer`]: SentencePiece tokenizer built from the GGUF metadata.
//! - [`activation`], [`bf16_matmul`], [`int8_matmul`]: re-exported from `medlit-kernels` (the fused
//!   feed-forward GELU; the bf16 and int8 products and their `MEDLIT_KERNEL` switch).
//! - [`device`]: `--device`, the compute precision, and the memory estimate before loading.
//! - [`gemma3`]: the decoder (quantized matrix products, KV cache, sliding-window attention).
//! - [`gemma4`]: the Gemma 4 text decoder (E2B/E4B features) over Hugging Face safetensors.
//! - [`linear`]: the Gemma 4 projections: candle's product, or the bf16 kernel for bf16 on
//!   the CPU.
//! - [`hf`]: a Hugging Face model folder (Gemma 4 weights, tokenizer.json, chat template) as a
//!   [`Generator`].
//! - [`remote`]: a model behind an OpenAI-compatible server, as a [`Generator`].
//! - [`sampler`]: greedy, temperature and top-p sampling with a seeded generator.
//! - [`span`]: span answers: decoding constrained to copy a stretch of the evidence.
//! - [`synthetic`]: random-weight Gemma 4 checkpoints at a published size (E4B), written as a
//!   model folder, for measuring load, memory and speed without the real weights.
pub mod device;
pub mod gemma3;
pub mod gemma4;
pub mod hf;
pub mod linear;
pub mod remote;
pub mod sampler;
pub mod span;
pub mod synthetic;
pub mod tokenizer;

pub use medlit_kernels::{activation, bf16_matmul, int8_matmul};

/// The tensor types callers name (a device to load on, a precision), so that they need no
/// candle dependency of their own.
pub use candle_core::{DType, Device, DeviceLocation, Tensor};

/// Whether this build can reach an NVIDIA GPU (the `cuda` feature and a device).
pub fn cuda_is_available() -> bool {
    candle_core::utils::cuda_is_available()
}

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::quantized::gguf_file::Content;

use gemma3::{Cache, Gemma3, ModelError};
use sampler::{Sampler, Sampling};
use tokenizer::{StreamDecoder, Tokenizer, TokenizerError};

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("model file {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("model file {path} is not a readable GGUF file: {reason}")]
    Gguf { path: PathBuf, reason: String },
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("model server {url}: {reason}")]
    Remote { url: String, reason: String },
    #[error("model folder {path}: {reason}")]
    Folder { path: PathBuf, reason: String },
    #[error(transparent)]
    Gemma4(#[from] gemma4::Gemma4Error),
}

/// What to generate and how.
#[derive(Debug, Clone)]
pub struct GenOptions {
    pub max_tokens: usize,
    pub sampling: Sampling,
}

/// How a prompt is presented to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptFormat {
    /// A Gemma user turn, answered in a model turn (instruction-tuned models).
    Chat,
    /// The prompt as plain text to continue (pretrained models), ending at the first blank
    /// line.
    Completion,
}

/// A finished generation.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Generated {
    pub text: String,
    pub prompt_tokens: usize,
    pub tokens: usize,
    /// Why it stopped: `end_of_turn`, `eos` or `max_tokens`.
    pub stop: &'static str,
    pub prefill_ms: f64,
    pub decode_ms: f64,
}

/// An answer copied from the evidence by [`Generator::extract`].
#[derive(Debug, Clone, Default)]
pub struct Span {
    pub text: String,
    /// Index of the passage (as given, i.e. by rank) the span was copied from.
    pub source: usize,
    pub prompt_tokens: usize,
    pub tokens: usize,
    /// The token budget, not the model, ended the span (it may stop inside a phrase).
    pub cut: bool,
    /// Mean log-probability of the chosen tokens under the whole vocabulary: how sure the
    /// model was of the copy (one of the answerability signals).
    pub mean_logprob: f32,
    /// Log-probability of the first token: how much the model wanted to start copying here.
    pub first_logprob: f32,
    /// Rank of the span's first token among the candidates' first tokens (0: the model's
    /// own greedy choice).
    pub rank: usize,
    pub prefill_ms: f64,
    pub decode_ms: f64,
}

/// A language model that continues a chat turn, streaming text as it goes.
pub trait Generator {
    /// A model-specific name for reports.
    fn name(&self) -> &str;

    /// Token count of `text` as a user message would hold it (for fitting the context).
    fn count_tokens(&self, text: &str) -> usize;

    /// Longest prompt + answer in tokens.
    fn context(&self) -> usize;

    /// Answers the user turn `user`; `on_text` receives each piece of text as it is decoded
    /// and may return `false` to stop.
    fn chat(
        &mut self,
        user: &str,
        opts: &GenOptions,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generated, GenerateError>;

    /// Whether span extraction suits this model better than free generation (a pretrained
    /// model that does not follow instructions).
    fn prefers_extraction(&self) -> bool {
        false
    }

    /// Answers `prompt` with a verbatim run of one of `passages`, at most `max_tokens` long;
    /// `None` when this backend cannot constrain its decoding (or nothing was chosen, or
    /// `on_piece` said stop: the client went away). `on_piece` hears each chosen token's text
    /// as it is chosen (and "" before the first, once the prompt is read).
    fn extract(
        &mut self,
        _prompt: &str,
        _passages: &[&str],
        _max_tokens: usize,
        _on_piece: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Option<Span>, GenerateError> {
        Ok(None)
    }

    /// Up to `n` spans from one reading of `prompt`: the greedy copy from each of the `n`
    /// likeliest first tokens, best first (for a ranker that weighs more than the model's
    /// preference). Nothing is streamed; `on_piece("")` is asked between tokens whether
    /// anyone still waits (an empty list when not). Backends that cannot branch give their
    /// one span.
    fn extract_candidates(
        &mut self,
        prompt: &str,
        passages: &[&str],
        max_tokens: usize,
        _n: usize,
        on_piece: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Vec<Span>, GenerateError> {
        Ok(self
            .extract(prompt, passages, max_tokens, &mut |_| on_piece(""))?
            .into_iter()
            .collect())
    }
}

/// Gemma 3 from a GGUF file, on the CPU (or a CUDA device with the `cuda` feature).
pub struct GemmaGguf {
    name: String,
    pub format: PromptFormat,
    pub tokenizer: Tokenizer,
    pub model: Gemma3,
    /// Prompt tokens run per forward call during prefill.
    pub prefill_chunk: usize,
}

impl GemmaGguf {
    /// Loads `path`; `context` caps prompt + answer tokens (memory for the KV cache and RoPE
    /// tables is sized to it).
    pub fn load(path: &Path, context: usize, device: &Device) -> Result<Self, GenerateError> {
        Self::load_with(path, context, device, false)
    }

    /// As [`GemmaGguf::load`], optionally with f32 weights (see [`Gemma3::load_with`]).
    pub fn load_with(
        path: &Path,
        context: usize,
        device: &Device,
        f32_weights: bool,
    ) -> Result<Self, GenerateError> {
        let file = File::open(path).map_err(|source| GenerateError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let mut reader = BufReader::new(file);
        let content = Content::read(&mut reader).map_err(|e| GenerateError::Gguf {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let tokenizer = Tokenizer::from_gguf(&content)?;
        let model = Gemma3::load_with(&content, &mut reader, context, device, f32_weights)?;
        let name = content
            .metadata
            .get("general.name")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_else(|| "gemma3".into());
        // Instruction-tuned files carry a chat template; a pretrained one continues text.
        let format = if content.metadata.contains_key("tokenizer.chat_template") {
            PromptFormat::Chat
        } else {
            PromptFormat::Completion
        };
        Ok(GemmaGguf {
            name,
            format,
            tokenizer,
            model,
            prefill_chunk: 256,
        })
    }

    /// The token ids of one user turn and the opening of the model's turn:
    /// `<bos><start_of_turn>user\n{user}<end_of_turn>\n<start_of_turn>model\n`. Control tokens
    /// are pushed as ids; the user text is encoded as text, so any control-token string in it
    /// stays text.
    pub fn chat_prompt(&self, user: &str) -> Vec<u32> {
        let sp = self.tokenizer.specials;
        let mut ids = Vec::with_capacity(user.len() / 3 + 16);
        if self.tokenizer.add_bos {
            ids.push(sp.bos);
        }
        ids.push(sp.start_of_turn);
        ids.extend(self.tokenizer.encode("user\n"));
        ids.extend(self.tokenizer.encode(user));
        ids.push(sp.end_of_turn);
        ids.extend(self.tokenizer.encode("\n"));
        ids.push(sp.start_of_turn);
        ids.extend(self.tokenizer.encode("model\n"));
        ids
    }

    /// `<bos>` and the text, for a pretrained model to continue.
    pub fn completion_prompt(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::with_capacity(text.len() / 3 + 2);
        if self.tokenizer.add_bos {
            ids.push(self.tokenizer.specials.bos);
        }
        ids.extend(self.tokenizer.encode(text));
        ids
    }

    /// The prompt's token ids as this model reads a span prompt.
    fn span_prompt(&self, prompt: &str) -> Vec<u32> {
        match self.format {
            PromptFormat::Completion => self.completion_prompt(prompt),
            PromptFormat::Chat => self.chat_prompt(prompt),
        }
    }

    /// The copy constraint over `passages`, each encoded after a space, as their words follow
    /// "Answer:" in the prompt.
    fn span_constraint(&self, passages: &[&str]) -> span::SpanConstraint {
        span::SpanConstraint::new(
            passages
                .iter()
                .map(|p| self.tokenizer.encode(&format!(" {p}")))
                .collect(),
        )
    }

    /// What ends a span: a new line, or the end of the text or of the turn.
    fn span_stops(&self) -> Vec<u32> {
        let sp = self.tokenizer.specials;
        let mut stops = self.tokenizer.encode("\n");
        stops.extend([sp.eos, sp.end_of_turn]);
        stops
    }

    /// Runs `prompt` through a new KV cache in chunks, once it is known to leave room for at
    /// least one answer token: the cache, the last position's logits and the milliseconds.
    fn prefill(
        &self,
        prompt: &[u32],
        max_tokens: usize,
    ) -> Result<(Cache, Tensor, f64), GenerateError> {
        let context = self.model.context;
        if prompt.len() + 1 > context {
            return Err(ModelError::ContextFull {
                prompt: prompt.len(),
                answer: max_tokens,
                context,
            }
            .into());
        }
        let mut cache = self.model.new_cache()?;
        let t0 = Instant::now();
        let mut logits = None;
        for chunk in prompt.chunks(self.prefill_chunk.max(1)) {
            logits = Some(self.model.forward(chunk, &mut cache)?);
        }
        let logits = logits.ok_or(ModelError::EmptyPrompt)?;
        Ok((cache, logits, t0.elapsed().as_secs_f64() * 1000.0))
    }

    /// Greedy or sampled continuation of `prompt` ids; `on_token` sees each new id.
    pub fn generate_ids(
        &self,
        prompt: &[u32],
        opts: &GenOptions,
        on_token: &mut dyn FnMut(u32) -> bool,
    ) -> Result<Generated, GenerateError> {
        let context = self.model.context;
        let (mut cache, logits, prefill_ms) = self.prefill(prompt, opts.max_tokens)?;
        let mut logits = Some(logits);
        let mut sampler = Sampler::new(opts.sampling);
        let t1 = Instant::now();
        let sp = self.tokenizer.specials;
        let mut out = Generated {
            prompt_tokens: prompt.len(),
            stop: "max_tokens",
            prefill_ms,
            ..Generated::default()
        };
        let budget = opts.max_tokens.min(context - prompt.len());
        while let Some(l) = logits.take() {
            if out.tokens == budget {
                break;
            }
            let next = sampler.sample(&l)?;
            if next == sp.end_of_turn {
                out.stop = "end_of_turn";
                break;
            }
            if next == sp.eos {
                out.stop = "eos";
                break;
            }
            out.tokens += 1;
            if !on_token(next) {
                out.stop = "stopped";
                break;
            }
            if out.tokens < budget {
                logits = Some(self.model.forward(&[next], &mut cache)?);
            }
        }
        out.decode_ms = t1.elapsed().as_secs_f64() * 1000.0;
        Ok(out)
    }
}

impl Generator for GemmaGguf {
    fn name(&self) -> &str {
        &self.name
    }

    fn count_tokens(&self, text: &str) -> usize {
        self.tokenizer.encode(text).len()
    }

    fn context(&self) -> usize {
        self.model.context
    }

    fn chat(
        &mut self,
        user: &str,
        opts: &GenOptions,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generated, GenerateError> {
        let completion = self.format == PromptFormat::Completion;
        let prompt = if completion {
            self.completion_prompt(user)
        } else {
            self.chat_prompt(user)
        };
        let mut stream = StreamDecoder::default();
        let mut text = String::new();
        let tok = &self.tokenizer;
        let mut g = self.generate_ids(&prompt, opts, &mut |id| {
            let before = text.len();
            text.push_str(&stream.push(tok, id));
            // A pretrained model does not end its turn: a blank line ends the answer.
            let lead = text.len() - text.trim_start().len();
            let cut = if completion {
                text[lead..].find("\n\n").map(|at| lead + at)
            } else {
                None
            };
            let end = cut.unwrap_or(text.len());
            let piece = text[before.min(end)..end].to_string();
            text.truncate(end);
            let go = piece.is_empty() || on_text(&piece);
            go && cut.is_none()
        })?;
        let rest = stream.finish();
        if !rest.is_empty() {
            on_text(&rest);
            text.push_str(&rest);
        }
        g.text = text;
        Ok(g)
    }

    fn prefers_extraction(&self) -> bool {
        self.format == PromptFormat::Completion
    }

    fn extract(
        &mut self,
        prompt: &str,
        passages: &[&str],
        max_tokens: usize,
        on_piece: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Option<Span>, GenerateError> {
        let prompt = self.span_prompt(prompt);
        let context = self.model.context;
        let (mut cache, logits, prefill_ms) = self.prefill(&prompt, max_tokens)?;
        let mut logits = Some(logits);
        let mut constraint = self.span_constraint(passages);
        let stops = self.span_stops();
        let budget = max_tokens.min(context - prompt.len()).max(1);
        let t1 = Instant::now();
        let mut chosen = Vec::new();
        let mut logprob_sum = 0f32;
        let mut first_logprob = 0f32;
        let mut told = String::new();
        while let Some(l) = logits.take() {
            // What the chosen tokens add to the text so far (decoded whole, so a character
            // split over tokens comes out once it is complete).
            let text = self.tokenizer.decode(&chosen);
            let piece = text.strip_prefix(told.as_str()).unwrap_or("");
            if !on_piece(piece) {
                return Ok(None);
            }
            told = text;
            let l: Vec<f32> = l.to_vec1()?;
            let allowed = constraint.allowed();
            // The first token must start a span: stopping before any is not an answer.
            let stop_set: &[u32] = if constraint.is_empty() { &[] } else { &stops };
            let Some((token, stop)) = span::best_choice(&l, &allowed, stop_set) else {
                break;
            };
            if stop || !constraint.push(token) {
                break;
            }
            let lp = span::log_probability(&l, token);
            if chosen.is_empty() {
                first_logprob = lp;
            }
            logprob_sum += lp;
            chosen.push(token);
            if chosen.len() < budget {
                logits = Some(self.model.forward(&[token], &mut cache)?);
            }
        }
        let Some(source) = constraint.source() else {
            return Ok(None);
        };
        Ok(Some(Span {
            text: self.tokenizer.decode(&chosen).trim().to_string(),
            source,
            prompt_tokens: prompt.len(),
            tokens: chosen.len(),
            cut: chosen.len() >= budget,
            mean_logprob: logprob_sum / chosen.len().max(1) as f32,
            first_logprob,
            rank: 0,
            prefill_ms,
            decode_ms: t1.elapsed().as_secs_f64() * 1000.0,
        }))
    }

    fn extract_candidates(
        &mut self,
        prompt: &str,
        passages: &[&str],
        max_tokens: usize,
        n: usize,
        on_piece: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Vec<Span>, GenerateError> {
        let prompt = self.span_prompt(prompt);
        let (mut cache, logits, prefill_ms) = self.prefill(&prompt, max_tokens)?;
        if !on_piece("") {
            return Ok(Vec::new());
        }
        let first_logits: Vec<f32> = logits.to_vec1()?;
        let base = self.span_constraint(passages);
        let stops = self.span_stops();
        let budget = max_tokens.min(self.model.context - prompt.len()).max(1);
        let score = |t: &u32| {
            first_logits
                .get(*t as usize)
                .copied()
                .unwrap_or(f32::NEG_INFINITY)
        };
        let mut firsts = base.allowed();
        firsts.sort_by(|a, b| score(b).total_cmp(&score(a)));
        firsts.truncate(n.max(1));
        let prompt_len = cache.len;
        let mut spans = Vec::with_capacity(firsts.len());
        for (rank, first) in firsts.into_iter().enumerate() {
            let t1 = Instant::now();
            // Each branch writes the positions after the prompt afresh: the cache is
            // preallocated and attention reads only the first `len` positions.
            cache.len = prompt_len;
            let mut constraint = base.clone();
            if !constraint.push(first) {
                continue;
            }
            let first_logprob = span::log_probability(&first_logits, first);
            let mut logprob_sum = first_logprob;
            let mut chosen = vec![first];
            while chosen.len() < budget {
                if !on_piece("") {
                    return Ok(Vec::new());
                }
                let last = chosen[chosen.len() - 1];
                let l: Vec<f32> = self.model.forward(&[last], &mut cache)?.to_vec1()?;
                match span::best_choice(&l, &constraint.allowed(), &stops) {
                    Some((token, false)) if constraint.push(token) => {
                        logprob_sum += span::log_probability(&l, token);
                        chosen.push(token);
                    }
                    _ => break,
                }
            }
            let Some(source) = constraint.source() else {
                continue;
            };
            spans.push(Span {
                text: self.tokenizer.decode(&chosen).trim().to_string(),
                source,
                prompt_tokens: prompt.len(),
                tokens: chosen.len(),
                cut: chosen.len() >= budget,
                mean_logprob: logprob_sum / chosen.len() as f32,
                first_logprob,
                rank,
                prefill_ms,
                decode_ms: t1.elapsed().as_secs_f64() * 1000.0,
            });
        }
        Ok(spans)
    }
}
