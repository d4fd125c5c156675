//! `medlit similar`: articles like a given one.
use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::print_json;
use crate::cli::{setup, SimilarArgs};
use crate::retrieve::hybrid::Mode;
use crate::retrieve::Hit;

#[derive(Serialize)]
pub struct SimilarJson<'a> {
    /// The article the others are like (a string, as PMIDs are written).
    #[serde(serialize_with = "crate::prompt::pmid_string")]
    pub pmid: u64,
    /// hybrid (passages' vectors fused with distinctive words) or bm25 (words only).
    pub mode: Mode,
    pub hits: &'a [Hit],
}

pub fn run(args: &SimilarArgs) -> Result<()> {
    let export = super::references::ExportTarget::from_args(&args.export)?;
    let dir = setup::index_dir(&args.index)?;
    let retriever = setup::open_retriever(&dir, true, &args.fusion)?;
    let Some(hits) = retriever
        .similar(args.pmid, args.k)
        .with_context(|| format!("finding articles like PMID {}", args.pmid))?
    else {
        bail!(
            "PMID {} is not in the index in {}",
            args.pmid,
            dir.display()
        );
    };
    if let Some(t) = &export {
        t.write_hits(&retriever.bm25, &hits)?;
    }
    if args.json {
        return print_json(&SimilarJson {
            pmid: args.pmid,
            mode: retriever.default_mode(),
            hits: &hits,
        });
    }
    if hits.is_empty() {
        return super::emit("no similar articles\n");
    }
    super::emit(&crate::render::hits_text(&hits))
}
