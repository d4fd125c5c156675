//! PubMed's MEDLINE tagged format (the .nbib file PubMed's "Send to: Citation manager" gives):
//! a four-character tag, "- ", the value; long values continue on lines indented six spaces.
use medlit_indexer::Article;

/// Width at which a value is wrapped onto continuation lines, as PubMed wraps.
const WIDTH: usize = 88;

/// One record, ending in a newline; records are separated by a blank line.
pub fn record(a: &Article) -> String {
    let mut out = String::new();
    let mut tag = |t: &str, v: &str| {
        if !v.is_empty() {
            push_tagged(&mut out, t, v);
        }
    };
    tag("PMID", &a.pmid.to_string());
    tag("OWN", "NLM");
    tag("VI", &a.volume);
    tag("IP", &a.issue);
    tag("DP", &a.year.map(|y| y.to_string()).unwrap_or_default());
    tag("TI", &a.title);
    tag("PG", &a.pages);
    if let Some(doi) = &a.doi {
        tag("LID", &format!("{doi} [doi]"));
    }
    let abstract_text = a.abstract_text.lines().collect::<Vec<_>>().join(" ");
    tag("AB", &abstract_text);
    for au in &a.authors {
        if au.collective {
            tag("CN", &au.last);
        } else {
            tag("FAU", &au.inverted());
            tag("AU", &au.short_name());
        }
    }
    for l in &a.languages {
        tag("LA", l);
    }
    for p in &a.pub_types {
        tag("PT", p);
    }
    tag("TA", &a.journal_iso);
    tag("JT", &a.journal);
    for m in &a.mesh {
        let star = if m.major { "*" } else { "" };
        tag("MH", &format!("{star}{}", m.descriptor));
    }
    for k in &a.keywords {
        tag("OT", k);
    }
    if let Some(doi) = &a.doi {
        tag("AID", &format!("{doi} [doi]"));
    }
    if let Some(pmc) = &a.pmc {
        tag("PMC", pmc);
    }
    tag("SO", &super::text::source_line(a));
    out
}

/// `TAG - value`, wrapped at word boundaries onto lines indented six spaces.
fn push_tagged(out: &mut String, tag: &str, value: &str) {
    let mut line = format!("{tag:<4}- ");
    let mut first_word = true;
    for word in value.split_whitespace() {
        if !first_word && line.len() + 1 + word.len() > WIDTH {
            out.push_str(&line);
            out.push('\n');
            line = " ".repeat(6);
            first_word = true;
        }
        if !first_word {
            line.push(' ');
        }
        line.push_str(word);
        first_word = false;
    }
    out.push_str(&line);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_continue_indented() {
        let mut out = String::new();
        let long = "word ".repeat(40);
        push_tagged(&mut out, "AB", long.trim());
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines.len() > 1);
        assert!(lines[0].starts_with("AB  - word"));
        assert!(lines[1..].iter().all(|l| l.starts_with("      word")));
        assert!(lines.iter().all(|l| l.len() <= WIDTH));
        let words: usize = lines.iter().map(|l| l.split_whitespace().count()).sum();
        assert_eq!(words, 40 + 2, "every word kept, plus the tag and its dash");
    }
}
