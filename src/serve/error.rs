//! Every failure a client can see, as a status and a JSON body (OpenAI's error shape, which
//! the chat clients expect and the others read as easily).
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::answer::AnswerError;
use crate::generate::gemma3::ModelError;
use crate::generate::GenerateError;
use crate::retrieve::bm25::SearchError;
use crate::retrieve::hybrid::RetrieveError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds a client should wait before retrying (queue full).
    pub retry_after: Option<u64>,
    /// OpenAI's `code`: a short string clients switch on, or none.
    pub code: Option<&'static str>,
    /// The request field at fault, if one is.
    pub param: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
            code: default_code(status),
            param: None,
        }
    }

    /// The same error with another `code`.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// The same error naming the request field at fault.
    pub fn with_param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// The kind OpenAI clients switch on.
    fn kind(&self) -> &'static str {
        match self.status {
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => "overloaded",
            StatusCode::GATEWAY_TIMEOUT => "timeout",
            s if s.is_client_error() => "invalid_request_error",
            _ => "server_error",
        }
    }
}

/// The `code` of an error of `status` when nothing more precise is known.
fn default_code(status: StatusCode) -> Option<&'static str> {
    match status {
        StatusCode::NOT_FOUND => Some("not_found"),
        StatusCode::METHOD_NOT_ALLOWED => Some("method_not_allowed"),
        StatusCode::PAYLOAD_TOO_LARGE => Some("request_too_large"),
        StatusCode::TOO_MANY_REQUESTS => Some("rate_limit_exceeded"),
        StatusCode::SERVICE_UNAVAILABLE => Some("server_overloaded"),
        StatusCode::GATEWAY_TIMEOUT => Some("timeout"),
        _ => None,
    }
}

impl ApiError {
    /// `{"error": {"message", "type", "param", "code"}}`, OpenAI's shape: the body of every
    /// error response (the HTTP status is the response's own).
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.message, "type": self.kind(),
                "param": self.param, "code": self.code,
            }
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(self.body())).into_response();
        if let Some(s) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        r
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::new(
                r.status(),
                format!(
                    "the request body is over the server's limit of {} bytes (medlit serve --max-body-bytes)",
                    BODY_LIMIT.load(std::sync::atomic::Ordering::Relaxed)
                ),
            );
        }
        ApiError::new(r.status(), r.body_text())
    }
}

/// The body limit in force, for the 413 message (set once when the router is built).
pub static BODY_LIMIT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::new(r.status(), r.body_text())
    }
}

/// The status each retrieval failure means for a client: its own request at fault (a mode the
/// index cannot serve, a query of stop words) is a 400, the rest the server's.
impl From<&RetrieveError> for ApiError {
    fn from(e: &RetrieveError) -> Self {
        let message = crate::render::error_line(e);
        match e {
            RetrieveError::NoDense(_) => ApiError::bad_request(message).with_param("mode"),
            RetrieveError::Bm25(SearchError::EmptyQuery(_)) => ApiError::bad_request(message),
            RetrieveError::Bm25(SearchError::ZeroK) => {
                ApiError::bad_request(message).with_param("k")
            }
            RetrieveError::Filter(_) => ApiError::bad_request(message).with_param("q"),
            RetrieveError::Bm25(SearchError::NoFilterFields(_)) => ApiError::bad_request(message),
            // The Qdrant server behind this one failed or could not be reached.
            RetrieveError::Remote(_) => ApiError::new(StatusCode::BAD_GATEWAY, message),
            _ => ApiError::internal(message),
        }
    }
}

/// Reading a stored record fails only on the server's side.
impl From<&SearchError> for ApiError {
    fn from(e: &SearchError) -> Self {
        ApiError::internal(crate::render::error_line(e))
    }
}

/// The status each failure of the query path means: an empty question or a prompt that does
/// not fit the model's context is the request's; a cancelled answer had nobody waiting; the
/// rest is the server's.
impl From<&AnswerError> for ApiError {
    fn from(e: &AnswerError) -> Self {
        let message = crate::render::error_line(e);
        match e {
            AnswerError::Retrieve(r) => ApiError {
                message,
                ..ApiError::from(r)
            },
            AnswerError::EmptyQuestion => ApiError::bad_request(message),
            AnswerError::Generate(GenerateError::Model(ModelError::ContextFull { .. })) => {
                ApiError::bad_request(message)
                    .with_code("context_length_exceeded")
                    .with_param("max_tokens")
            }
            AnswerError::Cancelled => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message),
            _ => ApiError::internal(message),
        }
    }
}
