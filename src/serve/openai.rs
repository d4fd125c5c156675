//! The OpenAI-compatible chat API, so agents and notebooks can ask medlit as they ask a model.
//!
//! The last user message is the question; the reply is the verified, cited answer with its
//! references in the text and, as an extra field, `citations`. Streaming sends the verified
//! reply in pieces after verification, not the raw draft: a chat client shows what it
//! receives, and an unverified draft may carry a PMID that verification removes.
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::api::wait_for_answer;
use super::error::ApiError;
use super::queue::AskRequest;
use super::AppState;
use crate::answer::Answer;
use crate::render::{answer_text, NOTICE};

/// The model id clients name (any id is accepted: there is one model behind the server).
pub const MODEL_ID: &str = "medlit";

fn model_object(s: &AppState) -> Value {
    json!({
        "id": MODEL_ID,
        "object": "model",
        "created": unix_now(),
        "owned_by": "medlit",
        "description": format!("cited answers from PubMed by {}", s.model),
    })
}

pub async fn models(State(s): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({ "object": "list", "data": [model_object(&s)] }))
}

/// `GET /v1/models/{id}`: the one model, or OpenAI's `model_not_found`.
pub async fn model(
    State(s): State<Arc<AppState>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<Value>, ApiError> {
    if id == MODEL_ID {
        return Ok(Json(model_object(&s)));
    }
    Err(ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        format!("the model `{id}` does not exist; this server serves `{MODEL_ID}`"),
    )
    .with_code("model_not_found")
    .with_param("model"))
}

#[derive(Debug, Deserialize)]
pub struct ChatBody {
    #[serde(default)]
    messages: Vec<Message>,
    #[serde(default)]
    stream: bool,
    max_tokens: Option<usize>,
    max_completion_tokens: Option<usize>,
    /// Choices asked for: medlit gives one verified answer.
    n: Option<u32>,
    stream_options: Option<StreamOptions>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Debug, Deserialize)]
struct Message {
    role: String,
    /// A string, or a list of parts of which the text ones count.
    content: Value,
}

impl Message {
    fn text(&self) -> String {
        match &self.content {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        }
    }
}

pub async fn chat_completions(
    State(s): State<Arc<AppState>>,
    body: Result<Json<ChatBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body?;
    if b.n.is_some_and(|n| n != 1) {
        return Err(ApiError::bad_request(
            "n must be 1: medlit gives one verified, cited answer per request",
        )
        .with_param("n")
        .with_code("unsupported_value"));
    }
    let question = b
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map(Message::text)
        .ok_or_else(|| ApiError::bad_request("no user message: the last one is the question"))?;
    let request = AskRequest {
        question: s.check_question(&question)?,
        k: None,
        mode: s.mode(None)?,
        max_tokens: b
            .max_completion_tokens
            .or(b.max_tokens)
            .map(|t| s.check_max_tokens(t.min(s.limits.max_tokens)))
            .transpose()?,
        filters: Default::default(),
    };
    let ticket = s.submit(request)?;
    let deadline = Instant::now() + s.limits.timeout;
    let id = format!("chatcmpl-medlit-{}", unix_now_ms());
    if b.stream {
        // The role chunk goes out at once and comments keep the connection visibly alive
        // while the answer is generated and verified.
        let usage = b.stream_options.is_some_and(|o| o.include_usage);
        let stream = chunks(id, usage, async move {
            wait_for_answer(ticket, deadline, |_| {}).await
        });
        return Ok(Sse::new(stream)
            .keep_alive(
                axum::response::sse::KeepAlive::new()
                    .interval(std::time::Duration::from_secs(5))
                    .text("verifying"),
            )
            .into_response());
    }
    let answer = wait_for_answer(ticket, deadline, |_| {}).await?;
    Ok(Json(completion(&id, &answer)).into_response())
}

fn citations(a: &Answer) -> Value {
    json!(a
        .verified
        .citations
        .iter()
        .map(|c| json!({
            "pmid": c.pmid.to_string(), "title": c.title, "journal": c.journal, "year": c.year,
            "support": c.support,
            "url": format!("https://pubmed.ncbi.nlm.nih.gov/{}/", c.pmid),
        }))
        .collect::<Vec<_>>())
}

fn reply_text(a: &Answer) -> String {
    format!("{}\n{NOTICE}", answer_text(a))
}

fn completion(id: &str, a: &Answer) -> Value {
    json!({
        "id": id,
        "object": "chat.completion",
        "created": unix_now(),
        "model": MODEL_ID,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": reply_text(a) },
            "finish_reason": "stop",
        }],
        "usage": usage(a),
        "citations": citations(a),
        "abstained": a.verified.abstained,
        "safety": a.safety,
    })
}

/// `chat.completion.chunk` events: the role (sent at once), then, once the answer is
/// verified, the reply in pieces, the finish with the citations, the usage (when asked for)
/// and `[DONE]`; an error becomes one `error` event.
fn chunks(
    id: String,
    include_usage: bool,
    answer: impl std::future::Future<Output = Result<Answer, ApiError>> + Send + 'static,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let chunk = move |choices: Value, extra: Option<(&str, Value)>| {
        let mut c = json!({
            "id": id, "object": "chat.completion.chunk", "created": unix_now(),
            "model": MODEL_ID, "choices": choices,
        });
        if let (Some((k, v)), Some(o)) = (extra, c.as_object_mut()) {
            o.insert(k.to_string(), v);
        }
        SseEvent::default().data(c.to_string())
    };
    let choice = |delta: Value, finish: Option<&str>| json!([{ "index": 0, "delta": delta, "finish_reason": finish }]);
    let role = chunk(
        choice(json!({"role": "assistant", "content": ""}), None),
        None,
    );
    let rest = async move {
        let mut out = Vec::new();
        match answer.await {
            Ok(a) => {
                let text = reply_text(&a);
                for piece in text.split_inclusive('\n') {
                    out.push(chunk(choice(json!({ "content": piece }), None), None));
                }
                out.push(chunk(
                    choice(json!({}), Some("stop")),
                    Some(("citations", citations(&a))),
                ));
                if include_usage {
                    out.push(chunk(json!([]), Some(("usage", usage(&a)))));
                }
            }
            Err(e) => {
                out.push(
                    SseEvent::default()
                        .event("error")
                        .data(e.body().to_string()),
                );
            }
        }
        out.push(SseEvent::default().data("[DONE]"));
        stream::iter(out.into_iter().map(Ok))
    };
    futures_util::StreamExt::chain(
        stream::once(async move { Ok(role) }),
        futures_util::StreamExt::flatten(stream::once(rest)),
    )
}

fn usage(a: &Answer) -> Value {
    json!({
        "prompt_tokens": a.prompt_tokens,
        "completion_tokens": a.answer_tokens,
        "total_tokens": a.prompt_tokens + a.answer_tokens,
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn unix_now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}
