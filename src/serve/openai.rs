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
use crate::commands::ask::{answer_text, NOTICE};

/// The model id clients name (any id is accepted: there is one model behind the server).
pub const MODEL_ID: &str = "medlit";

pub async fn models(State(s): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({
        "object": "list",
        "data": [{
            "id": MODEL_ID,
            "object": "model",
            "created": unix_now(),
            "owned_by": "medlit",
            "description": format!("cited answers from PubMed by {}", s.model),
        }]
    }))
}

#[derive(Debug, Deserialize)]
pub struct ChatBody {
    #[serde(default)]
    messages: Vec<Message>,
    #[serde(default)]
    stream: bool,
    max_tokens: Option<usize>,
    max_completion_tokens: Option<usize>,
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
    };
    let ticket = s.submit(request)?;
    let deadline = Instant::now() + s.limits.timeout;
    let id = format!("chatcmpl-medlit-{}", unix_now_ms());
    if b.stream {
        // Wait inside the stream so the response starts at once (clients see progress).
        let stream = chunks(id, async move {
            wait_for_answer(ticket, deadline, |_| {}).await
        });
        return Ok(Sse::new(stream).into_response());
    }
    let answer = wait_for_answer(ticket, deadline, |_| {}).await?;
    Ok(Json(completion(&id, &answer)).into_response())
}

fn citations(a: &Answer) -> Value {
    json!(a
        .citations
        .iter()
        .map(|c| json!({
            "pmid": c.pmid, "title": c.title, "journal": c.journal, "year": c.year,
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
        "usage": {
            "prompt_tokens": a.prompt_tokens,
            "completion_tokens": a.answer_tokens,
            "total_tokens": a.prompt_tokens + a.answer_tokens,
        },
        "citations": citations(a),
        "abstained": a.abstained,
        "safety": a.safety,
    })
}

/// `chat.completion.chunk` events: the role, the reply in pieces, the finish with the
/// citations, then `[DONE]`; an error becomes one `error` event.
fn chunks(
    id: String,
    answer: impl std::future::Future<Output = Result<Answer, ApiError>> + Send + 'static,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let events = async move {
        let chunk = |delta: Value, finish: Option<&str>, extra: Option<(&str, Value)>| {
            let mut c = json!({
                "id": id, "object": "chat.completion.chunk", "created": unix_now(),
                "model": MODEL_ID,
                "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
            });
            if let (Some((k, v)), Some(o)) = (extra, c.as_object_mut()) {
                o.insert(k.to_string(), v);
            }
            SseEvent::default().data(c.to_string())
        };
        let mut out = vec![chunk(
            json!({"role": "assistant", "content": ""}),
            None,
            None,
        )];
        match answer.await {
            Ok(a) => {
                let text = reply_text(&a);
                for piece in text.split_inclusive('\n') {
                    out.push(chunk(json!({ "content": piece }), None, None));
                }
                out.push(chunk(
                    json!({}),
                    Some("stop"),
                    Some(("citations", citations(&a))),
                ));
            }
            Err(e) => {
                out = vec![SseEvent::default()
                    .event("error")
                    .data(super::error::body(e.status, "server_error", &e.message).to_string())];
            }
        }
        out.push(SseEvent::default().data("[DONE]"));
        stream::iter(out.into_iter().map(Ok))
    };
    futures_util::StreamExt::flatten(stream::once(events))
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
