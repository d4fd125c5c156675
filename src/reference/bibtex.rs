//! BibTeX `@article` entries, keyed `pmidNNN` so a PMID cited twice is one entry.
use std::fmt::Write;

use medlit_indexer::Article;

/// One entry, ending in a newline.
pub fn entry(a: &Article) -> String {
    let mut fields: Vec<(&str, String)> = Vec::new();
    let mut field = |name: &'static str, value: &str| {
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        if !value.is_empty() {
            fields.push((name, value));
        }
    };
    field("title", &escape(&a.title));
    let authors: Vec<String> = a
        .authors
        .iter()
        .map(|au| {
            if au.collective {
                // Braced, so BibTeX reads the group's name as one last name.
                format!("{{{}}}", escape(&au.last))
            } else {
                escape(&au.inverted())
            }
        })
        .collect();
    field("author", &authors.join(" and "));
    let journal = a.journal_name();
    field("journal", &escape(journal));
    field("year", &a.year.map(|y| y.to_string()).unwrap_or_default());
    field("volume", &escape(&a.volume));
    field("number", &escape(&a.issue));
    let (start, end) = super::page_range(&a.pages);
    let pages = match end {
        Some(end) => format!("{start}--{end}"),
        None => start,
    };
    field("pages", &escape(&pages));
    field("doi", &escape(a.doi.as_deref().unwrap_or_default()));
    field("pmid", &a.pmid.to_string());
    field("pmcid", &escape(a.pmc.as_deref().unwrap_or_default()));
    field("abstract", &escape(&a.abstract_text));
    let keywords: Vec<String> = a
        .mesh
        .iter()
        .map(|m| escape(&m.descriptor))
        .chain(a.keywords.iter().map(|k| escape(k)))
        .collect();
    field("keywords", &keywords.join(", "));
    field("language", &escape(&a.languages.join(", ")));
    field("url", &a.pubmed_url());
    let mut out = format!("@article{{pmid{},\n", a.pmid);
    for (i, (name, value)) in fields.iter().enumerate() {
        let comma = if i + 1 < fields.len() { "," } else { "" };
        let _ = writeln!(out, "  {name} = {{{value}}}{comma}");
    }
    out.push_str("}\n");
    out
}

/// Text made safe inside a braced BibTeX value: LaTeX's special characters escaped, so no
/// brace is unbalanced and no `%` starts a comment.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\textbackslash{}"),
            '{' | '}' | '%' | '&' | '#' | '$' | '_' => {
                out.push('\\');
                out.push(c);
            }
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn braces_stay_balanced() {
        let e = escape("a {b} 50% & c_d \\ ~^ $#");
        let mut depth = 0i32;
        let mut prev = ' ';
        for c in e.chars() {
            if prev != '\\' {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            assert!(depth >= 0, "{e}");
            prev = c;
        }
        assert_eq!(depth, 0, "{e}");
        assert!(!e.contains(" %"), "{e}");
    }
}
