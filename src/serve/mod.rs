//! `medlit serve`: one process holds the index and the model and serves them over HTTP.
//!
//! - [`api`]: `/healthz`, `/api/stats`, `/api/search`, `/api/ask` (JSON or server-sent events).
//! - [`records`]: `/api/article/{pmid}` (a record as JSON or a download), `/api/export`,
//!   `/api/similar/{pmid}`.
//! - [`openai`]: `/v1/models`, `/v1/chat/completions`, OpenAI-compatible.
//! - [`queue`]: the generation worker that owns the model, and its bounded queue.
//! - [`page`]: the web page at `/`, embedded in the binary.
//! - [`error`]: every failure as a status and a JSON body.
//!
//! Every question goes through [`crate::answer::ask`], so the safety policy applies to every
//! route; searches are screened too.
pub mod api;
pub mod error;
pub mod openai;
pub mod page;
pub mod queue;
pub mod records;

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures_util::FutureExt;

use crate::retrieve::hybrid::{Mode, Retriever};
use crate::safety::Screener;
use error::ApiError;
use queue::Queue;

/// What a request may ask for.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_question_chars: usize,
    pub max_k: usize,
    pub max_tokens: usize,
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 64 * 1024,
            max_question_chars: 2000,
            max_k: 50,
            max_tokens: 512,
            timeout: api::default_timeout(),
        }
    }
}

pub struct AppState {
    pub retriever: Arc<Retriever>,
    pub screener: Arc<Screener>,
    pub queue: Queue,
    pub limits: Limits,
    pub started: Instant,
    /// The answering model's name.
    pub model: String,
    pub default_mode: Mode,
}

/// Every route, with the body limit and the panic guard.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.limits.max_body_bytes;
    error::BODY_LIMIT.store(limit, std::sync::atomic::Ordering::Relaxed);
    Router::new()
        .route("/", get(page::index))
        .route("/app.js", get(page::script))
        .route("/style.css", get(page::style))
        .route("/healthz", get(api::healthz))
        .route("/api/stats", get(api::stats))
        .route("/api/search", get(api::search))
        .route("/api/ask", post(api::ask))
        .route("/api/article/{pmid}", get(records::article))
        .route("/api/export", get(records::export))
        .route("/api/similar/{pmid}", get(records::similar))
        .route("/v1/models", get(openai::models))
        .route("/v1/models/{id}", get(openai::model))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(catch_panic))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such route (see GET / and /api/stats)",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "this route does not take that method",
    )
}

/// No panic reaches a client as a dropped connection: it becomes a JSON 500.
async fn catch_panic(req: Request, next: Next) -> Response {
    match AssertUnwindSafe(next.run(req)).catch_unwind().await {
        Ok(r) => r,
        Err(_) => {
            tracing::error!("a request handler panicked");
            ApiError::internal("internal error").into_response()
        }
    }
}

/// Serves until Ctrl-C (or SIGTERM); `on_bound` hears the address actually bound (port 0
/// picks a free one).
pub async fn serve(
    state: Arc<AppState>,
    addr: SocketAddr,
    on_bound: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    if !bound.ip().is_loopback() {
        tracing::warn!(
            "listening on {bound}, reachable from other machines: medlit has no authentication"
        );
    }
    on_bound(bound);
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
