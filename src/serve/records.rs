//! The PMID lookups over HTTP: `GET /api/article/{pmid}` (the JSON of `medlit show --json`,
//! or a download with `?format=ris|bibtex|csl-json|medline`) and `GET /api/export?pmids=…`
//! (the web page's "download references"), `GET /api/similar/{pmid}` (as `medlit similar
//! --json`).
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::ApiError;
use super::AppState;
use crate::cli::parse_pmid;
use crate::reference::{self, json::RecordJson, Format};

/// Most PMIDs one export may name.
const MAX_EXPORT: usize = 200;

#[derive(Debug, Deserialize)]
pub struct FormatParam {
    format: Option<String>,
}

fn format_of(f: Option<&str>, json_allowed: bool) -> Result<Option<Format>, ApiError> {
    match f.map(str::trim) {
        None | Some("") | Some("json") if json_allowed => Ok(None),
        None | Some("") => Err(ApiError::bad_request(
            "format is required: ris, bibtex, csl-json or medline",
        )
        .with_param("format")),
        Some(name) => match name.parse::<Format>() {
            Ok(f) if Format::EXPORTS.contains(&f) => Ok(Some(f)),
            _ => Err(ApiError::bad_request(format!(
                "format {name:?} is not one of json, ris, bibtex, csl-json, medline"
            ))
            .with_param("format")),
        },
    }
}

/// A 404 for a PMID the index does not hold.
fn not_held(pmid: u64) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("PMID {pmid} is not in the index"),
    )
    .with_param("pmid")
}

/// The file a download is saved as.
fn download(format: Format, stem: &str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, format.content_type().to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{stem}.{}\"", format.extension()),
            ),
        ],
        body,
    )
        .into_response()
}

/// `GET /api/article/{pmid}`.
pub async fn article(
    State(s): State<Arc<AppState>>,
    Path(pmid): Path<String>,
    params: Result<Query<FormatParam>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = params?;
    let pmid = parse_pmid(&pmid).map_err(|e| ApiError::bad_request(e).with_param("pmid"))?;
    let format = format_of(p.format.as_deref(), true)?;
    let state = s.clone();
    let record = tokio::task::spawn_blocking(move || state.retriever.bm25.record(pmid))
        .await
        .map_err(|_| ApiError::internal("internal error while reading the record"))?
        .map_err(|e| ApiError::from(&e))?
        .ok_or_else(|| not_held(pmid))?;
    match format {
        None => Ok(axum::Json(RecordJson::new(&record.article, record.complete)).into_response()),
        Some(f) => Ok(download(
            f,
            &format!("pmid-{pmid}"),
            reference::write_records(f, std::slice::from_ref(&record.article)),
        )),
    }
}

#[derive(Debug, Deserialize)]
pub struct SimilarParams {
    k: Option<usize>,
}

/// `GET /api/similar/{pmid}?k=10`.
pub async fn similar(
    State(s): State<Arc<AppState>>,
    Path(pmid): Path<String>,
    params: Result<Query<SimilarParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = params?;
    let pmid = parse_pmid(&pmid).map_err(|e| ApiError::bad_request(e).with_param("pmid"))?;
    let k = s.check_k(p.k.unwrap_or(10))?;
    let state = s.clone();
    let body = tokio::task::spawn_blocking(move || -> Result<String, ApiError> {
        let hits = state
            .retriever
            .similar(pmid, k)
            .map_err(|e| ApiError::from(&e))?
            .ok_or_else(|| not_held(pmid))?;
        serde_json::to_string(&crate::commands::similar::SimilarJson {
            pmid,
            mode: state.retriever.default_mode(),
            hits: &hits,
        })
        .map_err(|e| ApiError::internal(e.to_string()))
    })
    .await
    .map_err(|_| ApiError::internal("internal error while finding similar articles"))??;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

#[derive(Debug, Deserialize)]
pub struct ExportParams {
    /// Comma-separated PMIDs.
    pmids: String,
    format: Option<String>,
}

/// `GET /api/export?pmids=1,2&format=ris`: the records of the PMIDs the index holds, in the
/// order given; unknown PMIDs are left out (a list of them is in `X-Medlit-Missing`).
pub async fn export(
    State(s): State<Arc<AppState>>,
    params: Result<Query<ExportParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = params?;
    let format = format_of(p.format.as_deref(), false)?.unwrap_or(Format::Ris);
    let pmids: Vec<u64> = p
        .pmids
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| parse_pmid(t).map_err(|e| ApiError::bad_request(e).with_param("pmids")))
        .collect::<Result<_, _>>()?;
    if pmids.is_empty() {
        return Err(ApiError::bad_request("pmids is empty").with_param("pmids"));
    }
    if pmids.len() > MAX_EXPORT {
        return Err(ApiError::bad_request(format!(
            "{} PMIDs asked for; at most {MAX_EXPORT} per export",
            pmids.len()
        ))
        .with_param("pmids"));
    }
    let state = s.clone();
    let (articles, missing) = tokio::task::spawn_blocking(move || {
        let mut articles = Vec::new();
        let mut missing = Vec::new();
        for pmid in pmids {
            match state.retriever.bm25.record(pmid)? {
                Some(r)
                    if !articles
                        .iter()
                        .any(|a: &medlit_indexer::Article| a.pmid == pmid) =>
                {
                    articles.push(r.article)
                }
                Some(_) => {}
                None => missing.push(pmid.to_string()),
            }
        }
        Ok::<_, crate::retrieve::bm25::SearchError>((articles, missing))
    })
    .await
    .map_err(|_| ApiError::internal("internal error while exporting"))?
    .map_err(|e| ApiError::from(&e))?;
    let mut r = download(
        format,
        "medlit-references",
        reference::write_records(format, &articles),
    );
    if let Ok(v) = missing.join(",").parse() {
        r.headers_mut().insert("x-medlit-missing", v);
    }
    Ok(r)
}
