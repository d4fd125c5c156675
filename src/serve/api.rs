//! medlit's own JSON API: health, stats, search and ask (JSON or server-sent events).
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use tokio::time::{timeout_at, Instant};

use super::error::ApiError;
use super::queue::{AskRequest, Event, Ticket};
use super::AppState;
use crate::answer::Answer;
use crate::commands::search::SearchJson;
use crate::render::AnswerJson;
use crate::retrieve::hybrid::Mode;
use crate::safety::Decision;

pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

pub async fn stats(State(s): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let m = s.retriever.bm25.manifest();
    Json(serde_json::json!({
        "index": {
            "generation": m.generation,
            "counts": m.counts,
            "dense_passages": m.dense.as_ref().map(|d| d.rows - d.dead),
            "default_mode": s.default_mode,
        },
        "corpus": {
            "citations": m.counts.indexed,
            "files": m.inputs.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
            "years": s.retriever.bm25.year_span().ok().flatten().map(|(a, b)| [a, b]),
        },
        "model": s.model,
        "uptime_s": s.started.elapsed().as_secs_f64(),
        "queue": { "in_flight": s.queue.in_flight(), "bound": s.queue.bound },
        "answered": s.queue.answered.load(std::sync::atomic::Ordering::Relaxed),
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// A `year` parameter: none or empty, or a range as `medlit search --year` takes it.
fn years(y: Option<&str>) -> Result<Option<crate::retrieve::YearRange>, ApiError> {
    match y.map(str::trim) {
        None | Some("") => Ok(None),
        Some(y) => y
            .parse::<crate::retrieve::YearRange>()
            .map(Some)
            .map_err(|e| ApiError::bad_request(format!("year: {e}")).with_param("year")),
    }
}

/// The field filters a request may name (`;` separates several values: MeSH names and
/// journal titles hold commas).
#[derive(Debug, Default, Deserialize)]
pub struct FilterParams {
    year: Option<String>,
    journal: Option<String>,
    author: Option<String>,
    mesh: Option<String>,
    mesh_major: Option<String>,
    pub_type: Option<String>,
    lang: Option<String>,
    #[serde(default)]
    has_abstract: bool,
}

impl FilterParams {
    pub fn filters(&self) -> Result<crate::retrieve::Filters, ApiError> {
        let list = |v: &Option<String>| -> Vec<String> {
            v.as_deref()
                .unwrap_or_default()
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        Ok(crate::cli::FilterArgs {
            year: years(self.year.as_deref())?,
            journal: list(&self.journal),
            author: list(&self.author),
            mesh: list(&self.mesh),
            mesh_major: list(&self.mesh_major),
            pub_type: list(&self.pub_type),
            has_abstract: self.has_abstract,
            lang: list(&self.lang),
        }
        .filters())
    }
}

/// A query string is read field by field (serde's flatten would read every value as text,
/// and `k` would no longer parse as a number).
#[derive(Debug, Deserialize)]
pub struct SearchParams {
    q: String,
    k: Option<usize>,
    mode: Option<String>,
    year: Option<String>,
    journal: Option<String>,
    author: Option<String>,
    mesh: Option<String>,
    mesh_major: Option<String>,
    pub_type: Option<String>,
    lang: Option<String>,
    has_abstract: Option<bool>,
}

impl SearchParams {
    fn filter_params(&self) -> FilterParams {
        FilterParams {
            year: self.year.clone(),
            journal: self.journal.clone(),
            author: self.author.clone(),
            mesh: self.mesh.clone(),
            mesh_major: self.mesh_major.clone(),
            pub_type: self.pub_type.clone(),
            lang: self.lang.clone(),
            has_abstract: self.has_abstract.unwrap_or(false),
        }
    }
}

/// `GET /api/search`: the JSON of `medlit search --json`. A query the safety policy refuses
/// gets no results, with the policy's verdict and message.
pub async fn search(
    State(s): State<Arc<AppState>>,
    params: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = params?;
    let query = s.check_question(&p.q)?;
    let k = s.check_k(p.k.unwrap_or(10))?;
    let mode = s.mode(p.mode.as_deref())?;
    let filters = p.filter_params().filters()?;
    let state = s.clone();
    // Serialised in the closure, as the CLI serialises it (an f32 score through a JSON value
    // would print its f64 widening).
    let result = tokio::task::spawn_blocking(move || -> Result<String, ApiError> {
        let verdict = state
            .screener
            .screen(&query)
            .map_err(|e| ApiError::internal(format!("safety screen: {e}")))?;
        if verdict.decision == Decision::Refuse {
            let message = state
                .screener
                .policy
                .message(Decision::Refuse, &verdict.category)
                .to_string();
            return Ok(serde_json::json!({
                "query": query, "mode": mode, "hits": [], "safety": verdict, "message": message,
            })
            .to_string());
        }
        let hits = state
            .retriever
            .search(&query, k, mode, &filters)
            .map_err(|e| ApiError::from(&e))?;
        serde_json::to_string(&SearchJson {
            query: &query,
            mode,
            hits: &hits,
        })
        .map_err(|e| ApiError::internal(e.to_string()))
    })
    .await
    .map_err(|_| ApiError::internal("internal error while searching"))??;
    Ok(([(header::CONTENT_TYPE, "application/json")], result).into_response())
}

#[derive(Debug, Deserialize)]
pub struct AskBody {
    question: String,
    k: Option<usize>,
    mode: Option<String>,
    max_tokens: Option<usize>,
    /// Only evidence these filters let through: "year": "1980..1990", "mesh": "Brucellosis"…
    #[serde(flatten)]
    filters: FilterParams,
    #[serde(default)]
    stream: bool,
}

/// `POST /api/ask`: the JSON of `medlit ask --json`, or with `"stream": true` server-sent
/// events: `token` (draft text as generated), then `answer` (the verified answer) or `error`.
pub async fn ask(
    State(s): State<Arc<AppState>>,
    body: Result<Json<AskBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body?;
    let request = AskRequest {
        question: s.check_question(&b.question)?,
        k: b.k.map(|k| s.check_k(k)).transpose()?,
        mode: s.mode(b.mode.as_deref())?,
        max_tokens: b.max_tokens.map(|t| s.check_max_tokens(t)).transpose()?,
        filters: b.filters.filters()?,
    };
    let ticket = s.submit(request)?;
    let deadline = Instant::now() + s.limits.timeout;
    if b.stream {
        return Ok(Sse::new(answer_events(ticket, deadline))
            .keep_alive(KeepAlive::default())
            .into_response());
    }
    let answer = wait_for_answer(ticket, deadline, |_| {}).await?;
    Ok(Json(AnswerJson::new(&answer)).into_response())
}

/// Waits for the verified answer, passing draft text to `on_text`.
pub async fn wait_for_answer(
    mut ticket: Ticket,
    deadline: Instant,
    mut on_text: impl FnMut(String),
) -> Result<Answer, ApiError> {
    loop {
        match timeout_at(deadline, ticket.events.recv()).await {
            Err(_) => return Err(timed_out()),
            Ok(None) => return Err(ApiError::internal("the answer worker stopped")),
            Ok(Some(Event::Text(t))) => on_text(t),
            Ok(Some(Event::Done(a))) => return Ok(*a),
            Ok(Some(Event::Failed(e))) => return Err(e),
        }
    }
}

pub fn timed_out() -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "the answer took longer than the server's time limit per request",
    )
}

fn answer_events(
    ticket: Ticket,
    deadline: Instant,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    stream::unfold(Some(ticket), move |ticket| async move {
        let mut ticket = ticket?;
        let event = match timeout_at(deadline, ticket.events.recv()).await {
            Err(_) => Err(timed_out()),
            Ok(None) => Err(ApiError::internal("the answer worker stopped")),
            Ok(Some(Event::Text(t))) => {
                let e = SseEvent::default()
                    .event("token")
                    .json_data(serde_json::json!({ "text": t }));
                return Some((Ok(e.unwrap_or_default()), Some(ticket)));
            }
            Ok(Some(Event::Done(a))) => Ok(a),
            Ok(Some(Event::Failed(e))) => Err(e),
        };
        // The last event: the answer or the error; then the stream ends.
        let last = match event {
            Ok(a) => SseEvent::default()
                .event("answer")
                .json_data(AnswerJson::new(&a)),
            Err(e) => SseEvent::default().event("error").json_data(e.body()),
        };
        Some((Ok(last.unwrap_or_default()), None))
    })
}

impl AppState {
    pub fn check_question(&self, q: &str) -> Result<String, ApiError> {
        let q = q.trim();
        if q.is_empty() {
            return Err(ApiError::bad_request("the question is empty"));
        }
        let n = q.chars().count();
        if n > self.limits.max_question_chars {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the question has {n} characters; this server takes at most {}",
                    self.limits.max_question_chars
                ),
            ));
        }
        Ok(q.to_string())
    }

    pub fn check_k(&self, k: usize) -> Result<usize, ApiError> {
        if k == 0 || k > self.limits.max_k {
            return Err(ApiError::bad_request(format!(
                "k must be between 1 and {}",
                self.limits.max_k
            )));
        }
        Ok(k)
    }

    pub fn check_max_tokens(&self, t: usize) -> Result<usize, ApiError> {
        if t == 0 || t > self.limits.max_tokens {
            return Err(ApiError::bad_request(format!(
                "max_tokens must be between 1 and {}",
                self.limits.max_tokens
            )));
        }
        Ok(t)
    }

    pub fn mode(&self, name: Option<&str>) -> Result<Mode, ApiError> {
        let mode = match name.unwrap_or("auto") {
            "auto" | "" => self.default_mode,
            "bm25" => Mode::Bm25,
            "dense" => Mode::Dense,
            "hybrid" => Mode::Hybrid,
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown mode `{other}` (auto, bm25, dense or hybrid)"
                )))
            }
        };
        if mode != Mode::Bm25 && self.retriever.dense.is_none() {
            return Err(ApiError::bad_request(format!(
                "mode {} needs an index built with `medlit index --dense` (over this one: `--dense --replace`)",
                mode.name()
            )));
        }
        Ok(mode)
    }

    pub fn submit(&self, request: AskRequest) -> Result<Ticket, ApiError> {
        self.queue.submit(request).map_err(|full| {
            let mut e = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "{} questions are already waiting for the model; retry in {} s",
                    self.queue.bound, full.retry_after_s
                ),
            );
            e.retry_after = Some(full.retry_after_s);
            e
        })
    }
}

/// The time limit per request.
pub fn default_timeout() -> Duration {
    Duration::from_secs(120)
}
