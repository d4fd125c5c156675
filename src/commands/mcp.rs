//! `medlit mcp`: the tools over stdio. Standard output belongs to the protocol; everything
//! else (logs, progress) goes to standard error.
use anyhow::{Context, Result};

use crate::cli::setup::Pipeline;
use crate::cli::McpArgs;
use crate::mcp::{serve_stdio, Medlit};

pub fn run(args: &McpArgs) -> Result<()> {
    let p = Pipeline::open(&args.index, args.mode, &args.fusion, &args.generate, None)?;
    tracing::info!(
        model = p.generator.name(),
        "medlit mcp: serving tools on stdio"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("medlit-mcp")
        .build()
        .context("starting the MCP runtime")?;
    runtime
        .block_on(serve_stdio(Medlit::new(p)))
        .context("serving MCP on stdio")
}
