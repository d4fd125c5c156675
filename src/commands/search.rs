use std::io::IsTerminal;

use anyhow::{Context, Result};
use serde::Serialize;

use super::print_json;
use crate::cli::{FusionArgs, SearchArgs, SearchModeArg};
use crate::retrieve::dense::DenseSearcher;
use crate::retrieve::hybrid::{Fusion, Mode, Retriever};
use crate::retrieve::{Bm25Searcher, Hit};

#[derive(Serialize)]
pub struct SearchJson<'a> {
    pub query: &'a str,
    pub mode: Mode,
    pub hits: &'a [Hit],
}

/// Opens the index for searching; the dense half only when `need_dense` and present.
pub fn open_retriever(
    dir: &std::path::Path,
    need_dense: bool,
    fusion: &FusionArgs,
) -> Result<Retriever> {
    let bm25 = Bm25Searcher::open(dir)
        .with_context(|| format!("opening the index in {}", dir.display()))?;
    let dense = if need_dense && bm25.manifest().dense.is_some() {
        let cfg = super::onnx_config(
            &super::manifest(&crate::cli::ManifestArg { manifest: None })?,
            fusion.query_threads,
            1,
            1,
            256,
        )?;
        Some(DenseSearcher::open(dir, cfg).context("opening the dense index")?)
    } else {
        None
    };
    Ok(Retriever {
        bm25,
        dense,
        fusion: Fusion {
            rrf_k: fusion.rrf_k,
            depth: fusion.depth,
            dense_weight: fusion.dense_weight,
        },
    })
}

pub fn run(args: &SearchArgs) -> Result<()> {
    let dir = super::index_dir(&args.index)?;
    let retriever = open_retriever(&dir, args.mode != SearchModeArg::Bm25, &args.fusion)?;
    let mode = match args.mode {
        SearchModeArg::Auto => retriever.default_mode(),
        SearchModeArg::Bm25 => Mode::Bm25,
        SearchModeArg::Dense => Mode::Dense,
        SearchModeArg::Hybrid => Mode::Hybrid,
    };
    if !args.json {
        for w in crate::retrieve::query_syntax::parse(&args.query()).warnings {
            eprintln!("note: {w}");
        }
    }
    let hits = retriever
        .search(&args.query(), args.k, mode, args.year)
        .context("searching")?;
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
    print_hits(&hits)
}

/// Text output: one block per hit, the matched words in bold on a terminal (`**` otherwise).
pub fn print_hits(hits: &[Hit]) -> Result<()> {
    let (on, off) = if std::io::stdout().is_terminal() {
        ("\x1b[1m", "\x1b[0m")
    } else {
        ("**", "**")
    };
    for h in hits {
        let year = h
            .year
            .map(|y| y.to_string())
            .unwrap_or_else(|| "n.d.".into());
        let mut block = format!(
            "{:>2}. PMID {}  {}  ({}, {})  score {:.4}\n    {}\n",
            h.rank,
            h.pmid,
            h.title,
            h.journal,
            year,
            h.score,
            highlight(&h.snippet, &h.highlights, on, off)
        );
        if let Some(p) = &h.passage {
            block.push_str(&format!("    passage: {p}\n"));
        }
        super::emit(&block)?;
    }
    Ok(())
}

fn highlight(text: &str, ranges: &[[usize; 2]], on: &str, off: &str) -> String {
    let mut out = String::with_capacity(text.len() + ranges.len() * 8);
    let mut at = 0;
    for &[s, e] in ranges {
        // Ranges come from tantivy and are on char boundaries; guard anyway.
        let (Some(before), Some(word)) = (text.get(at..s), text.get(s..e)) else {
            continue;
        };
        out.push_str(before);
        out.push_str(on);
        out.push_str(word);
        out.push_str(off);
        at = e;
    }
    out.push_str(text.get(at..).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn highlight_marks_ranges() {
        assert_eq!(super::highlight("a bc d", &[[2, 4]], "[", "]"), "a [bc] d");
        assert_eq!(super::highlight("αβγ", &[[0, 1]], "[", "]"), "αβγ");
    }
}
