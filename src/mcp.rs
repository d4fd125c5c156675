//! `medlit mcp`: medlit as Model Context Protocol tools over stdio, for AI assistants.
//!
//! Four tools — `search`, `ask`, `show`, `similar` — each the JSON of the CLI command of the
//! same name with `--json`. Every question and query passes the same safety screen as the CLI
//! and the HTTP server, and answers go through the same citation verification: a refused
//! request is answered with the policy's decision and message, not with results.
use std::sync::{Arc, Mutex};

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::schemars::JsonSchema;
use rmcp::{tool, tool_handler, tool_router, ErrorData, ServerHandler};
use serde::Deserialize;

use crate::answer::ask;
use crate::cli::setup::Pipeline;
use crate::reference::json::RecordJson;
use crate::retrieve::hybrid::Mode;
use crate::retrieve::Filters;
use crate::safety::Decision;

/// Largest k a tool call may ask for.
const MAX_K: usize = 50;

/// The filters a `search` or `ask` call may name (as the CLI's flags).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct FilterParams {
    /// Publication years: "2021", "1980..1990", "2015.." or "..1990".
    pub year: Option<String>,
    /// Journal titles or ISO abbreviations; any may match.
    #[serde(default)]
    pub journal: Vec<String>,
    /// Authors as "Smith" or "Smith J"; each must match.
    #[serde(default)]
    pub author: Vec<String>,
    /// MeSH descriptors, e.g. "Brucellosis"; each must match.
    #[serde(default)]
    pub mesh: Vec<String>,
    /// MeSH descriptors that must be a major topic; each must match.
    #[serde(default)]
    pub mesh_major: Vec<String>,
    /// Publication types, e.g. "Review", "Randomized Controlled Trial"; any may match.
    #[serde(default)]
    pub pub_type: Vec<String>,
    /// Languages, as MEDLINE codes ("eng") or names ("english"); any may match.
    #[serde(default)]
    pub lang: Vec<String>,
    /// Only articles with an abstract.
    #[serde(default)]
    pub has_abstract: bool,
}

impl FilterParams {
    fn filters(&self) -> Result<Filters, ErrorData> {
        let years = match self.year.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(y) => Some(
                y.parse()
                    .map_err(|e: String| ErrorData::invalid_params(format!("year: {e}"), None))?,
            ),
        };
        Ok(crate::cli::FilterArgs {
            year: years,
            journal: self.journal.clone(),
            author: self.author.clone(),
            mesh: self.mesh.clone(),
            mesh_major: self.mesh_major.clone(),
            pub_type: self.pub_type.clone(),
            has_abstract: self.has_abstract,
            lang: self.lang.clone(),
        }
        .filters())
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct SearchParams {
    /// Keywords or a question; PubMed field tags work too (asthma[mh], smith j[au], 2020[dp]).
    pub query: String,
    /// Number of articles (default 10).
    pub k: Option<usize>,
    /// bm25 (keywords), dense (meaning) or hybrid (both); default: hybrid when the index has
    /// vectors.
    pub mode: Option<String>,
    #[serde(flatten)]
    pub filters: FilterParams,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct AskParams {
    /// A research question about the biomedical literature.
    pub question: String,
    /// Evidence passages given to the model (default: the server's).
    pub k: Option<usize>,
    #[serde(flatten)]
    pub filters: FilterParams,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct ShowParams {
    /// PubMed identifiers, e.g. ["31452104"].
    pub pmids: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct SimilarParams {
    /// The PubMed identifier of the article.
    pub pmid: String,
    /// Number of articles (default 10).
    pub k: Option<usize>,
}

/// The server: the pipeline behind a lock (one model answers one question at a time).
#[derive(Clone)]
pub struct Medlit {
    pipeline: Arc<Mutex<Pipeline>>,
    tool_router: ToolRouter<Self>,
}

fn json_result(v: &impl serde::Serialize) -> Result<CallToolResult, ErrorData> {
    let text = serde_json::to_string_pretty(v)
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
    Ok(CallToolResult::success(vec![ContentBlock::text(text)]))
}

fn check_k(k: Option<usize>, default: usize) -> Result<usize, ErrorData> {
    match k.unwrap_or(default) {
        0 => Err(ErrorData::invalid_params("k must be at least 1", None)),
        k if k > MAX_K => Err(ErrorData::invalid_params(
            format!("k is at most {MAX_K}"),
            None,
        )),
        k => Ok(k),
    }
}

fn internal(e: impl std::fmt::Display) -> ErrorData {
    ErrorData::internal_error(e.to_string(), None)
}

/// A retrieval failure: the caller's (bad tag, mode the index lacks) or the server's.
fn retrieval(e: &crate::retrieve::hybrid::RetrieveError) -> ErrorData {
    use crate::retrieve::bm25::SearchError;
    use crate::retrieve::hybrid::RetrieveError as R;
    let message = crate::render::error_line(e);
    match e {
        R::Filter(_)
        | R::NoDense(_)
        | R::Bm25(SearchError::EmptyQuery(_) | SearchError::NoFilterFields(_)) => {
            ErrorData::invalid_params(message, None)
        }
        _ => ErrorData::internal_error(message, None),
    }
}

impl Medlit {
    pub fn new(pipeline: Pipeline) -> Self {
        Medlit {
            pipeline: Arc::new(Mutex::new(pipeline)),
            tool_router: Self::tool_router(),
        }
    }

    /// Runs `f` on the pipeline off the async threads (retrieval and generation block).
    async fn with_pipeline<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Pipeline) -> Result<T, ErrorData> + Send + 'static,
    ) -> Result<T, ErrorData> {
        let p = self.pipeline.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = p
                .lock()
                .map_err(|_| internal("an earlier call failed mid-way; restart medlit mcp"))?;
            f(&mut guard)
        })
        .await
        .map_err(internal)?
    }
}

#[tool_router(router = tool_router)]
impl Medlit {
    #[tool(
        name = "search",
        description = "Search PubMed abstracts in the local index: best-matching articles with PMID, title, journal, year and a snippet. Takes PubMed field tags and filters (year, journal, author, MeSH, publication type, language, has_abstract)."
    )]
    async fn search(
        &self,
        Parameters(p): Parameters<SearchParams>,
    ) -> Result<CallToolResult, ErrorData> {
        let k = check_k(p.k, 10)?;
        let filters = p.filters.filters()?;
        self.with_pipeline(move |pl| {
            let mode = match p.mode.as_deref() {
                None | Some("") => pl.mode,
                Some(m) => Mode::ALL
                    .into_iter()
                    .find(|x| x.name() == m)
                    .ok_or_else(|| ErrorData::invalid_params(format!("mode {m:?} is not bm25, dense or hybrid"), None))?,
            };
            let verdict = pl.screener.screen(&p.query).map_err(internal)?;
            if verdict.decision == Decision::Refuse {
                let message = pl.screener.policy.message(Decision::Refuse, &verdict.category).to_string();
                return json_result(&serde_json::json!({
                    "query": p.query, "mode": mode, "hits": [], "safety": verdict, "message": message,
                }));
            }
            let hits = pl
                .retriever
                .search(&p.query, k, mode, &filters)
                .map_err(|e| retrieval(&e))?;
            json_result(&crate::commands::search::SearchJson {
                query: &p.query,
                mode,
                hits: &hits,
            })
        })
        .await
    }

    #[tool(
        name = "ask",
        description = "Answer a biomedical research question from the indexed PubMed abstracts, citing verified PMIDs; abstains when the evidence is insufficient. The result carries the answer, its citations, the supporting sentence, the evidence and the safety decision (a research aid, not clinical advice: weaponisation and self-harm methods are refused, personal medical questions redirected)."
    )]
    async fn ask(&self, Parameters(p): Parameters<AskParams>) -> Result<CallToolResult, ErrorData> {
        if p.question.trim().is_empty() {
            return Err(ErrorData::invalid_params("question is empty", None));
        }
        let k = p.k.map(|k| check_k(Some(k), k)).transpose()?;
        let filters = p.filters.filters()?;
        self.with_pipeline(move |pl| {
            let opts = pl.defaults.options(pl.mode, k, None, filters);
            let answer = ask(
                &pl.retriever,
                pl.generator.as_mut(),
                &pl.screener,
                &p.question,
                &opts,
                &mut |_| true,
            )
            .map_err(|e| match &e {
                crate::answer::AnswerError::Retrieve(r) => retrieval(r),
                _ => internal(crate::render::error_line(&e)),
            })?;
            json_result(&crate::render::AnswerJson::new(&answer))
        })
        .await
    }

    #[tool(
        name = "show",
        description = "The stored PubMed record of each PMID: title, abstract by section, authors, journal, year, MeSH headings (major topics marked), keywords, publication types, language, DOI, PMC id and PubMed link; PMIDs the index lacks are listed as missing."
    )]
    async fn show(
        &self,
        Parameters(p): Parameters<ShowParams>,
    ) -> Result<CallToolResult, ErrorData> {
        let pmids: Vec<u64> = p
            .pmids
            .iter()
            .map(|s| crate::cli::parse_pmid(s).map_err(|e| ErrorData::invalid_params(e, None)))
            .collect::<Result<_, _>>()?;
        if pmids.is_empty() {
            return Err(ErrorData::invalid_params("pmids is empty", None));
        }
        self.with_pipeline(move |pl| {
            let mut found = Vec::new();
            let mut missing = Vec::new();
            for pmid in pmids {
                match pl.retriever.bm25.record(pmid).map_err(internal)? {
                    Some(r) => found.push(r),
                    None => missing.push(pmid.to_string()),
                }
            }
            let articles: Vec<RecordJson> = found
                .iter()
                .map(|r| RecordJson::new(&r.article, r.complete))
                .collect();
            json_result(&serde_json::json!({ "articles": articles, "missing": missing }))
        })
        .await
    }

    #[tool(
        name = "similar",
        description = "Articles like a given PMID (its passages' meaning and its distinctive words), the article itself excluded."
    )]
    async fn similar(
        &self,
        Parameters(p): Parameters<SimilarParams>,
    ) -> Result<CallToolResult, ErrorData> {
        let pmid =
            crate::cli::parse_pmid(&p.pmid).map_err(|e| ErrorData::invalid_params(e, None))?;
        let k = check_k(p.k, 10)?;
        self.with_pipeline(move |pl| {
            let hits = pl
                .retriever
                .similar(pmid, k)
                .map_err(|e| retrieval(&e))?
                .ok_or_else(|| {
                    ErrorData::invalid_params(format!("PMID {pmid} is not in the index"), None)
                })?;
            json_result(&crate::commands::similar::SimilarJson {
                pmid,
                mode: pl.retriever.default_mode(),
                hits: &hits,
            })
        })
        .await
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Medlit {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("medlit", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "medlit answers biomedical research questions from a local PubMed index and cites the PMIDs it used. Use `search` to find articles, `show` for a PMID's record, `similar` for related articles, and `ask` for a short cited answer. A research aid, not medical advice.",
            )
    }
}

/// Serves the tools on standard input and output until the client closes them.
pub async fn serve_stdio(server: Medlit) -> Result<(), rmcp::RmcpError> {
    use rmcp::ServiceExt;
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(rmcp::RmcpError::from)?;
    running.waiting().await.map_err(rmcp::RmcpError::from)?;
    Ok(())
}
