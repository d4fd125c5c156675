use anyhow::{Context, Result};

use crate::cli::setup;
use serde::Serialize;

use super::print_json;
use crate::cli::{SearchArgs, SearchModeArg};
use crate::retrieve::hybrid::Mode;
use crate::retrieve::Hit;

#[derive(Serialize)]
pub struct SearchJson<'a> {
    pub query: &'a str,
    pub mode: Mode,
    pub hits: &'a [Hit],
}

pub fn run(args: &SearchArgs) -> Result<()> {
    let export = super::references::ExportTarget::from_args(&args.export)?;
    let dir = setup::index_dir(&args.index)?;
    let mut retriever = setup::open_retriever(
        &dir,
        args.mode != SearchModeArg::Bm25 || args.retrieval.qdrant_url.is_some(),
        &args.fusion,
    )?;
    setup::use_retrieval(&mut retriever, &args.retrieval)?;
    let mode = match args.mode {
        SearchModeArg::Auto => retriever.default_mode(),
        SearchModeArg::Bm25 => Mode::Bm25,
        SearchModeArg::Dense => Mode::Dense,
        SearchModeArg::Hybrid => Mode::Hybrid,
    };
    let filters = args.filters.filters();
    let read = retriever.read_query(&args.query(), &filters)?;
    if !args.json {
        for w in read
            .notes
            .iter()
            .chain(&crate::retrieve::query_syntax::parse(&read.text).warnings)
        {
            eprintln!("note: {w}");
        }
    }
    let hits = retriever
        .search(&args.query(), args.k, mode, &filters)
        .context("searching")?;
    if let Some(t) = &export {
        t.write_hits(&retriever.bm25, &hits)?;
    }
    if args.json {
        return print_json(&SearchJson {
            query: &args.query(),
            mode,
            hits: &hits,
        });
    }
    if hits.is_empty() {
        return super::emit("no results\n");
    }
    super::emit(&crate::render::hits_text(&hits))
}
