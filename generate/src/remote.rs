//! A model behind any OpenAI-compatible server (vLLM, llama.cpp's server, Ollama, or another
//! medlit): the filled prompt goes out as one user message, the reply streams back. For the
//! large models users run where they have GPUs; retrieval, verification and safety stay here.
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{GenOptions, GenerateError, Generated, Generator};

/// Attempts per request when the server cannot be reached or says it is busy.
const ATTEMPTS: u32 = 4;
/// First wait between attempts; doubled each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait a server's Retry-After may impose between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

pub struct RemoteChat {
    url: String,
    model: String,
    name: String,
    context: usize,
    agent: ureq::Agent,
    /// Ask for the reply as server-sent events (tokens as they come) or in one piece.
    stream: bool,
}

impl RemoteChat {
    /// `endpoint`: the server's base URL (`http://host:8000` or `…/v1`), or the full
    /// `…/chat/completions` URL. `timeout` bounds each request, reply included.
    pub fn new(endpoint: &str, model: &str, context: usize, timeout: Duration) -> Self {
        let base = endpoint.trim_end_matches('/');
        let url = if base.ends_with("/chat/completions") {
            base.to_string()
        } else if base.ends_with("/v1") {
            format!("{base}/chat/completions")
        } else {
            format!("{base}/v1/chat/completions")
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(timeout))
            .build()
            .into();
        RemoteChat {
            name: format!("{model} at {base}"),
            url,
            model: model.to_string(),
            context,
            agent,
            stream: true,
        }
    }

    /// The same backend asking for whole replies (`"stream": false`), for servers or proxies
    /// that do not pass server-sent events through.
    pub fn whole_replies(mut self) -> Self {
        self.stream = false;
        self
    }

    fn error(&self, reason: impl Into<String>) -> GenerateError {
        GenerateError::Remote {
            url: self.url.clone(),
            reason: reason.into(),
        }
    }

    /// Sends the request, retrying with backoff while the server is unreachable or busy.
    fn send(&self, body: &Value) -> Result<ureq::http::Response<ureq::Body>, GenerateError> {
        let mut wait = FIRST_BACKOFF;
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            match self.agent.post(&self.url).send_json(body) {
                Ok(r) if r.status().is_success() => return Ok(r),
                Ok(mut r) => {
                    let status = r.status().as_u16();
                    let text = r.body_mut().read_to_string().unwrap_or_default();
                    let message = serde_json::from_str::<Value>(&text)
                        .ok()
                        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                        .unwrap_or(text);
                    last = format!("the server answered {status}: {}", message.trim());
                    if !(status == 429 || status >= 500) {
                        return Err(self.error(last));
                    }
                    if let Some(s) = r
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                    {
                        wait = Duration::from_secs(s).min(MAX_BACKOFF);
                    }
                }
                Err(e) => last = format!("cannot reach the model server: {e}"),
            }
            if attempt < ATTEMPTS {
                tracing::warn!("{last}; retrying in {:.1} s", wait.as_secs_f64());
                std::thread::sleep(wait);
                wait = (wait * 2).min(MAX_BACKOFF);
            }
        }
        Err(self.error(format!("{last} (tried {ATTEMPTS} times)")))
    }
}

impl Generator for RemoteChat {
    fn name(&self) -> &str {
        &self.name
    }

    /// An estimate (the remote tokenizer is not here): about three bytes a token, which
    /// overcounts English, so evidence is trimmed early rather than late.
    fn count_tokens(&self, text: &str) -> usize {
        text.len().div_ceil(3)
    }

    fn context(&self) -> usize {
        self.context
    }

    fn chat(
        &mut self,
        user: &str,
        opts: &GenOptions,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generated, GenerateError> {
        let mut body = json!({
            "model": self.model,
            "messages": [{"role": "user", "content": user}],
            "max_tokens": opts.max_tokens,
            "temperature": opts.sampling.temperature,
            "stream": self.stream,
        });
        if opts.sampling.temperature > 0.0 {
            body["top_p"] = json!(opts.sampling.top_p);
            body["seed"] = json!(opts.sampling.seed);
        }
        let t = Instant::now();
        let response = self.send(&body)?;
        let first_byte_ms = t.elapsed().as_secs_f64() * 1000.0;
        let mut out = Generated {
            prompt_tokens: self.count_tokens(user),
            stop: "eos",
            prefill_ms: first_byte_ms,
            ..Generated::default()
        };
        if !self.stream {
            let text = response
                .into_body()
                .read_to_string()
                .map_err(|e| self.error(format!("reading the reply: {e}")))?;
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| self.error(format!("the reply is not JSON ({e}): {text}")))?;
            let choice = &v["choices"][0];
            let content = choice["message"]["content"]
                .as_str()
                .ok_or_else(|| self.error(format!("the reply has no message content: {text}")))?;
            out.text = content.to_string();
            out.tokens = v["usage"]["completion_tokens"]
                .as_u64()
                .map_or_else(|| self.count_tokens(content), |n| n as usize);
            if let Some(n) = v["usage"]["prompt_tokens"].as_u64() {
                out.prompt_tokens = n as usize;
            }
            out.stop = if choice["finish_reason"].as_str() == Some("length") {
                "max_tokens"
            } else {
                "eos"
            };
            if !content.is_empty() {
                on_text(content);
            }
            out.decode_ms = 0.0;
            return Ok(out);
        }
        let reader = BufReader::new(response.into_body().into_reader());
        // A reply is whole when the server said so ([DONE] or a finish reason); a stream that
        // ends before is a server that went away mid-answer, and half an answer is not one.
        let mut finished = false;
        for line in reader.lines() {
            let line = line.map_err(|e| {
                self.error(format!(
                    "the reply broke off after {} pieces: {e}",
                    out.tokens
                ))
            })?;
            let Some(data) = line.strip_prefix("data:").map(str::trim) else {
                continue;
            };
            if data == "[DONE]" {
                finished = true;
                break;
            }
            let chunk: Value = serde_json::from_str(data)
                .map_err(|e| self.error(format!("a reply chunk is not JSON ({e}): {data}")))?;
            if let Some(message) = chunk["error"]["message"].as_str() {
                return Err(self.error(format!("the server failed: {message}")));
            }
            let choice = &chunk["choices"][0];
            if let Some(piece) = choice["delta"]["content"].as_str() {
                if !piece.is_empty() {
                    out.text.push_str(piece);
                    out.tokens += 1;
                    if !on_text(piece) {
                        out.stop = "stopped";
                        finished = true;
                        break;
                    }
                }
            }
            if let Some(reason) = choice["finish_reason"].as_str() {
                finished = true;
                out.stop = if reason == "length" {
                    "max_tokens"
                } else {
                    "eos"
                };
            }
        }
        if !finished {
            return Err(self.error(format!(
                "the server closed the reply before it finished ({} pieces received); no answer is made from half a reply",
                out.tokens
            )));
        }
        out.decode_ms = t.elapsed().as_secs_f64() * 1000.0 - first_byte_ms;
        Ok(out)
    }
}
