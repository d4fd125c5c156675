//! A Hugging Face model folder as a [`Generator`]: Gemma 4 weights (safetensors), the
//! tokenizer (tokenizer.json) and the chat template the folder ships, rendered as
//! transformers' `apply_chat_template` renders it.
use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device};

use super::gemma4::{Gemma4, Gemma4Error};
use super::sampler::Sampler;
use super::{GenOptions, GenerateError, Generated, Generator};

/// Prompt tokens run per forward pass during prefill.
const PREFILL_CHUNK: usize = 256;

pub struct HfChat {
    name: String,
    pub model: Gemma4,
    tokenizer: tokenizers::Tokenizer,
    template: String,
    bos: String,
    eos: String,
    stops: Vec<u32>,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> GenerateError + '_ {
    move |source| GenerateError::Open {
        path: path.to_path_buf(),
        source,
    }
}

fn bad(path: &Path, reason: impl Into<String>) -> GenerateError {
    GenerateError::Folder {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// A special token as tokenizer_config.json writes it: a string or `{"content": …}`.
fn token_text(v: &serde_json::Value) -> Option<String> {
    v.as_str().map(str::to_string).or_else(|| {
        v.get("content")
            .and_then(|c| c.as_str())
            .map(str::to_string)
    })
}

/// Ids in `eos_token_id`, a number or a list.
fn ids(v: &serde_json::Value) -> Vec<u32> {
    match v {
        serde_json::Value::Number(n) => n.as_u64().map(|n| vec![n as u32]).unwrap_or_default(),
        serde_json::Value::Array(a) => a.iter().flat_map(ids).collect(),
        _ => Vec::new(),
    }
}

fn read_json(path: &Path) -> Result<serde_json::Value, GenerateError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(|e| bad(path, e.to_string()))
}

impl HfChat {
    /// Whether `dir` looks like a Hugging Face model folder.
    pub fn is_folder(dir: &Path) -> bool {
        dir.is_dir() && dir.join("config.json").is_file()
    }

    pub fn load(
        dir: &Path,
        context: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Self, GenerateError> {
        let model = Gemma4::load(dir, context, dtype, device)?;
        let tok_path = dir.join("tokenizer.json");
        let tokenizer = tokenizers::Tokenizer::from_file(&tok_path)
            .map_err(|e| bad(&tok_path, format!("not a tokenizer: {e}")))?;
        let config_path = dir.join("tokenizer_config.json");
        let tok_config = if config_path.is_file() {
            read_json(&config_path)?
        } else {
            serde_json::Value::Null
        };
        let jinja = dir.join("chat_template.jinja");
        let template = if jinja.is_file() {
            std::fs::read_to_string(&jinja).map_err(io(&jinja))?
        } else {
            tok_config["chat_template"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| {
                    bad(
                        dir,
                        "no chat template (chat_template.jinja or tokenizer_config.json)",
                    )
                })?
        };
        let bos = token_text(&tok_config["bos_token"]).unwrap_or_else(|| "<bos>".into());
        let eos = token_text(&tok_config["eos_token"]).unwrap_or_else(|| "<eos>".into());
        let mut stops = ids(model
            .cfg
            .eos_token_id
            .as_ref()
            .unwrap_or(&serde_json::Value::Null));
        let gen_config = dir.join("generation_config.json");
        if gen_config.is_file() {
            stops.extend(ids(&read_json(&gen_config)?["eos_token_id"]));
        }
        stops.extend(tokenizer.token_to_id(&eos));
        stops.sort_unstable();
        stops.dedup();
        let name = format!(
            "Gemma 4 ({})",
            dir.file_name().map_or_else(
                || dir.display().to_string(),
                |n| n.to_string_lossy().into_owned()
            )
        );
        let chat = HfChat {
            name,
            model,
            tokenizer,
            template,
            bos,
            eos,
            stops,
        };
        // A template that cannot render fails here, not on the first question.
        chat.render("test")?;
        Ok(chat)
    }

    /// The user turn as the folder's chat template writes it, ready for the model's answer.
    pub fn render(&self, user: &str) -> Result<String, GenerateError> {
        let mut env = minijinja::Environment::new();
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        env.add_template("chat", &self.template)
            .map_err(|e| bad(Path::new("chat template"), e.to_string()))?;
        let ctx = minijinja::context! {
            messages => vec![minijinja::context! { role => "user", content => user }],
            add_generation_prompt => true,
            bos_token => &self.bos,
            eos_token => &self.eos,
        };
        env.get_template("chat")
            .and_then(|t| t.render(ctx))
            .map_err(|e| bad(Path::new("chat template"), e.to_string()))
    }

    /// Token ids of `text`, special-token strings in it included (the rendered template holds
    /// the turn markers as text; questions and evidence are neutralised before they get here).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, GenerateError> {
        self.tokenizer
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| bad(Path::new("tokenizer"), e.to_string()))
    }

    fn decode(&self, ids: &[u32]) -> String {
        self.tokenizer.decode(ids, true).unwrap_or_default()
    }
}

impl Generator for HfChat {
    fn name(&self) -> &str {
        &self.name
    }

    fn count_tokens(&self, text: &str) -> usize {
        self.encode(text).map_or(text.len(), |ids| ids.len())
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
        let prompt = self.encode(&self.render(user)?)?;
        let context = self.model.context;
        if prompt.is_empty() || prompt.len() + 1 > context {
            return Err(GenerateError::Gemma4(Gemma4Error::ContextFull {
                prompt: prompt.len(),
                answer: opts.max_tokens,
                context,
            }));
        }
        let t0 = Instant::now();
        let mut cache = self.model.new_cache()?;
        let mut logits = None;
        for chunk in prompt.chunks(PREFILL_CHUNK) {
            logits = Some(self.model.forward(chunk, &mut cache)?);
        }
        let prefill_ms = t0.elapsed().as_secs_f64() * 1000.0;
        let mut sampler = Sampler::new(opts.sampling);
        let budget = opts.max_tokens.min(context - prompt.len());
        let t1 = Instant::now();
        let (mut ids, mut shown, mut stop) = (Vec::new(), String::new(), "max_tokens");
        while let Some(l) = logits.take() {
            let next = sampler.sample(&l)?;
            if self.stops.contains(&next) {
                stop = "eos";
                break;
            }
            ids.push(next);
            // Show what decodes to whole characters (byte-fallback tokens come in pieces).
            let text = self.decode(&ids);
            if !text.ends_with('\u{FFFD}') && text.len() > shown.len() && text.starts_with(&shown) {
                let piece = text[shown.len()..].to_string();
                shown = text;
                if !on_text(&piece) {
                    stop = "stopped";
                    break;
                }
            }
            if ids.len() < budget {
                logits = Some(self.model.forward(&[next], &mut cache)?);
            }
        }
        let text = self.decode(&ids);
        if text.len() > shown.len() && text.starts_with(&shown) {
            on_text(&text[shown.len()..]);
        }
        Ok(Generated {
            text,
            prompt_tokens: prompt.len(),
            tokens: ids.len(),
            stop,
            prefill_ms,
            decode_ms: t1.elapsed().as_secs_f64() * 1000.0,
        })
    }
}
