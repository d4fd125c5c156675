//! `medlit show`: the stored record of each PMID.
use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::{emit, print_json};
use crate::cli::{setup, ShowArgs};
use crate::reference::{self, json::RecordJson};
use crate::retrieve::bm25::{Bm25Searcher, StoredRecord};

#[derive(Serialize)]
struct ShowJson<'a> {
    articles: Vec<RecordJson<'a>>,
    /// PMIDs asked for that the index does not hold.
    missing: Vec<String>,
}

pub fn run(args: &ShowArgs) -> Result<()> {
    let dir = setup::index_dir(&args.index)?;
    let bm25 = Bm25Searcher::open(&dir)
        .with_context(|| format!("opening the index in {}", dir.display()))?;
    let mut found: Vec<StoredRecord> = Vec::new();
    let mut missing = Vec::new();
    for &pmid in &args.pmids {
        match bm25
            .record(pmid)
            .with_context(|| format!("reading PMID {pmid}"))?
        {
            Some(r) => found.push(r),
            None => missing.push(pmid),
        }
    }
    if args.json {
        print_json(&ShowJson {
            articles: found
                .iter()
                .map(|r| RecordJson::new(&r.article, r.complete))
                .collect(),
            missing: missing.iter().map(u64::to_string).collect(),
        })?;
    } else {
        let articles: Vec<_> = found.iter().map(|r| r.article.clone()).collect();
        if !articles.is_empty() {
            emit(&reference::write_records(args.format, &articles))?;
        }
    }
    if found.iter().any(|r| !r.complete) {
        eprintln!(
            "note: this index was built before whole records were stored: authors, languages, \
major topics, volume, issue and pages are unknown; rebuild it (`medlit index --replace`) to \
have them"
        );
    }
    match missing.as_slice() {
        [] => Ok(()),
        [one] => bail!("PMID {one} is not in the index in {}", dir.display()),
        many => bail!(
            "{} PMIDs are not in the index in {}: {}",
            many.len(),
            dir.display(),
            many.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
