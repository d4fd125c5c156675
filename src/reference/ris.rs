//! RIS, the tagged format Zotero, EndNote and Mendeley import: `XX  - value`, one field per
//! line, each record from `TY` to `ER`.
use medlit_indexer::Article;

/// One record, ending with its `ER` line.
pub fn record(a: &Article) -> String {
    let mut out = String::new();
    let mut tag = |t: &str, v: &str| {
        let v = one_line(v);
        if !v.is_empty() {
            out.push_str(&format!("{t}  - {v}\n"));
        }
    };
    tag("TY", "JOUR");
    tag("TI", &a.title);
    for au in &a.authors {
        tag("AU", &au.inverted());
    }
    tag("PY", &a.year.map(|y| y.to_string()).unwrap_or_default());
    tag("T2", &a.journal);
    tag("J2", &a.journal_iso);
    tag("VL", &a.volume);
    tag("IS", &a.issue);
    let (start, end) = super::page_range(&a.pages);
    tag("SP", &start);
    tag("EP", end.as_deref().unwrap_or_default());
    tag("AB", &a.abstract_text);
    for m in &a.mesh {
        tag("KW", &m.descriptor);
    }
    for k in &a.keywords {
        tag("KW", k);
    }
    for l in &a.languages {
        tag("LA", l);
    }
    tag("DO", a.doi.as_deref().unwrap_or_default());
    tag("AN", &a.pmid.to_string());
    tag("DB", "PubMed");
    tag("UR", &a.pubmed_url());
    out.push_str("ER  - \n");
    out
}

/// A value on one line: RIS has no continuation lines.
fn one_line(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}
