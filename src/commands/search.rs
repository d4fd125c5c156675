use std::io::IsTerminal;

use anyhow::{Context, Result};
use serde::Serialize;

use super::print_json;
use crate::cli::SearchArgs;
use crate::retrieve::{Bm25Searcher, Hit};

#[derive(Serialize)]
pub struct SearchJson<'a> {
    pub query: &'a str,
    pub hits: &'a [Hit],
}

pub fn run(args: &SearchArgs) -> Result<()> {
    let dir = super::index_dir(&args.index)?;
    let searcher = Bm25Searcher::open(&dir)
        .with_context(|| format!("opening the index in {}", dir.display()))?;
    let hits = searcher
        .search(&args.query, args.k, args.year)
        .context("searching")?;
    if args.json {
        return print_json(&SearchJson {
            query: &args.query,
            hits: &hits,
        });
    }
    if hits.is_empty() {
        println!("no results");
    }
    print_hits(&hits);
    Ok(())
}

/// Text output: one block per hit, the matched words in bold on a terminal (`**` otherwise).
pub fn print_hits(hits: &[Hit]) {
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
        println!(
            "{:>2}. PMID {}  {}  ({}, {})  score {:.2}",
            h.rank, h.pmid, h.title, h.journal, year, h.score
        );
        println!("    {}", highlight(&h.snippet, &h.highlights, on, off));
    }
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
