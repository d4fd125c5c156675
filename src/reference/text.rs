//! A record as a person reads it in a terminal.
use std::fmt::Write;

use medlit_indexer::Article;

/// The record: citation line, title, authors, the abstract by section, then the indexing.
pub fn record(a: &Article) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "PMID {}  {}", a.pmid, a.pubmed_url());
    let _ = writeln!(out, "{}", a.title);
    if !a.authors.is_empty() {
        let names: Vec<String> = a.authors.iter().map(|x| x.full_name()).collect();
        let _ = writeln!(out, "{}", names.join(", "));
    }
    let _ = writeln!(out, "{}", source_line(a));
    for (label, text) in a.sections() {
        out.push('\n');
        if label.is_empty() {
            let _ = writeln!(out, "{text}");
        } else {
            let _ = writeln!(out, "{label}: {text}");
        }
    }
    if !a.has_abstract() {
        let _ = writeln!(out, "\n(no abstract)");
    }
    out.push('\n');
    if !a.mesh.is_empty() {
        let terms: Vec<String> = a
            .mesh
            .iter()
            .map(|m| {
                if m.major {
                    format!("{}*", m.descriptor)
                } else {
                    m.descriptor.clone()
                }
            })
            .collect();
        let _ = writeln!(out, "MeSH (* major topic): {}", terms.join("; "));
    }
    let list = |out: &mut String, name: &str, v: &[String]| {
        if !v.is_empty() {
            let _ = writeln!(out, "{name}: {}", v.join("; "));
        }
    };
    list(&mut out, "Keywords", &a.keywords);
    list(&mut out, "Publication types", &a.pub_types);
    list(&mut out, "Language", &a.languages);
    if let Some(doi) = &a.doi {
        let _ = writeln!(out, "DOI: {doi}");
    }
    if let Some(pmc) = &a.pmc {
        let _ = writeln!(out, "PMC: {pmc}");
    }
    out
}

/// "Journal. Year;Volume(Issue):Pages."
pub fn source_line(a: &Article) -> String {
    let journal = a.journal_name();
    let mut s = journal.trim_end_matches('.').to_string();
    s.push('.');
    if let Some(y) = a.year {
        let _ = write!(s, " {y}");
    }
    if !a.volume.is_empty() {
        let _ = write!(s, ";{}", a.volume);
        if !a.issue.is_empty() {
            let _ = write!(s, "({})", a.issue);
        }
    }
    if !a.pages.is_empty() {
        let _ = write!(s, ":{}", a.pages);
    }
    s.push('.');
    s
}
