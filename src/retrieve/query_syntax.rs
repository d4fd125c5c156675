//! The query syntax a PubMed user types, as far as BM25 search supports it: "quoted phrases"
//! (required), and `NOT word`, `-word` or `NOT "a phrase"` (excluded). Every other word is
//! ranked as usual. PubMed's bracketed field tags (`asthma[mh]`) are read before this, as
//! filters (see [`super::filter`]); what this search does not do — prefix tags
//! (`mesh:asthma`), `AND`/`OR` — is searched as words, with a warning saying so.

/// A query split into what BM25 ranks, requires and excludes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryParts {
    /// Free words, ranked (each optional).
    pub words: String,
    /// Quoted phrases: each required, its words ranked too.
    pub phrases: Vec<String>,
    /// Excluded words and phrases.
    pub excluded: Vec<String>,
    /// What was not understood, for the user.
    pub warnings: Vec<String>,
}

impl QueryParts {
    /// The text whose words rank and highlight: the free words and the phrases' words.
    pub fn positive_text(&self) -> String {
        let mut t = self.words.clone();
        for p in &self.phrases {
            t.push(' ');
            t.push_str(p);
        }
        t
    }
}

/// A piece of the query: a word or a quoted phrase.
enum Piece {
    Word(String),
    Phrase(String),
}

fn pieces(q: &str, warnings: &mut Vec<String>) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut rest = q;
    while let Some(c) = rest.chars().next() {
        if c.is_whitespace() {
            rest = &rest[c.len_utf8()..];
            continue;
        }
        if c == '"' {
            let body = &rest[1..];
            match body.find('"') {
                Some(end) => {
                    out.push(Piece::Phrase(body[..end].to_string()));
                    rest = &body[end + 1..];
                }
                None => {
                    warnings.push("an unclosed quote: the rest is searched as words".into());
                    out.extend(body.split_whitespace().map(|w| Piece::Word(w.to_string())));
                    rest = "";
                }
            }
            continue;
        }
        let end = rest
            .find(|ch: char| ch.is_whitespace() || ch == '"')
            .unwrap_or(rest.len());
        out.push(Piece::Word(rest[..end].to_string()));
        rest = &rest[end..];
    }
    out
}

/// PubMed's field tags: `asthma[mh]`, `smith j[au]`'s `j[au]`, `mesh:asthma`, `2020[dp]`.
fn is_field_tagged(w: &str) -> bool {
    const PREFIXES: [&str; 9] = [
        "mesh:", "mh:", "au:", "ti:", "ab:", "tiab:", "dp:", "pt:", "ta:",
    ];
    let lower = w.to_ascii_lowercase();
    (lower.ends_with(']') && lower.contains('[')) || PREFIXES.iter().any(|p| lower.starts_with(p))
}

/// Splits `q` into ranked words, required phrases and excluded words or phrases.
pub fn parse(q: &str) -> QueryParts {
    let mut parts = QueryParts::default();
    let mut words: Vec<String> = Vec::new();
    let mut negate = false;
    let mut tagged = false;
    let mut operators = false;
    for piece in pieces(q, &mut parts.warnings) {
        match piece {
            Piece::Word(w) if w == "NOT" => negate = true,
            Piece::Word(w) if w == "AND" || w == "OR" => operators = true,
            Piece::Word(w) if w.len() > 1 && w.starts_with('-') => {
                parts.excluded.push(w[1..].to_string());
                negate = false;
            }
            Piece::Word(w) => {
                if is_field_tagged(&w) {
                    tagged = true;
                }
                if negate {
                    parts.excluded.push(w);
                } else {
                    words.push(w);
                }
                negate = false;
            }
            Piece::Phrase(p) => {
                if negate {
                    parts.excluded.push(p);
                } else {
                    parts.phrases.push(p);
                }
                negate = false;
            }
        }
    }
    if negate {
        parts
            .warnings
            .push("NOT at the end of the query excludes nothing".into());
    }
    if operators {
        parts.warnings.push(
            "AND and OR are not operators here: every word is ranked, none required (quote a phrase to require it)".into(),
        );
    }
    if tagged {
        parts.warnings.push(
            "prefix field tags (mesh:…, au:…) are searched as words: write PubMed's brackets, asthma[mh], or use --mesh/--author"
                .into(),
        );
    }
    parts.words = words.join(" ");
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases_are_required_and_not_excludes() {
        let p = parse("\"muscular dystrophy\" NOT mice dystrophin -rat");
        assert_eq!(p.phrases, ["muscular dystrophy"]);
        assert_eq!(p.excluded, ["mice", "rat"]);
        assert_eq!(p.words, "dystrophin");
        assert!(p.warnings.is_empty());
        assert_eq!(p.positive_text(), "dystrophin muscular dystrophy");
    }

    #[test]
    fn what_is_not_supported_is_named() {
        let p = parse("asthma[mh] AND children \"open quote");
        assert_eq!(p.words, "asthma[mh] children open quote");
        assert_eq!(p.warnings.len(), 3, "{:?}", p.warnings);
        let p = parse("NOT \"mouse model\" heart");
        assert_eq!(p.excluded, ["mouse model"]);
        assert_eq!(p.words, "heart");
    }

    #[test]
    fn plain_questions_pass_unchanged() {
        let p = parse("Which protein is absent in Duchenne muscular dystrophy?");
        assert_eq!(
            p.words,
            "Which protein is absent in Duchenne muscular dystrophy?"
        );
        assert!(p.phrases.is_empty() && p.excluded.is_empty() && p.warnings.is_empty());
        // A hyphenated word is a word, not an exclusion.
        assert_eq!(parse("alpha-synuclein").words, "alpha-synuclein");
    }
}
