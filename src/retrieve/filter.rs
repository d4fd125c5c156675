//! Field filters: which articles a search may return, from flags (`--mesh`, `--author`, …)
//! or from PubMed field tags typed in the query (`asthma[mh] AND 2020[dp]`, `smith j[au]`).
//!
//! Repeating a flag narrows for authors and MeSH headings (each must match) and widens for
//! journals, publication types and languages (any may match), as a researcher combines them.
use std::fmt;

use super::bm25::YearRange;

/// The filters of one search; the default lets every article through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub years: Option<YearRange>,
    /// Journal titles or ISO abbreviations; any.
    pub journals: Vec<String>,
    /// "Last" or "Last Initials" (PubMed's `[au]`); each.
    pub authors: Vec<String>,
    /// MeSH descriptors; each.
    pub mesh: Vec<String>,
    /// MeSH descriptors that must be a major topic (`[majr]`); each.
    pub mesh_major: Vec<String>,
    /// Publication types ("Review", "Randomized Controlled Trial"); any.
    pub pub_types: Vec<String>,
    /// MEDLINE language codes ("eng"); any.
    pub langs: Vec<String>,
    pub has_abstract: bool,
}

impl Filters {
    /// Only years: what an index built before field filters can apply.
    pub fn years(years: Option<YearRange>) -> Self {
        Filters {
            years,
            ..Filters::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Filters::default()
    }

    /// Whether a filter beyond the year needs the index's filter fields.
    pub fn needs_fields(&self) -> bool {
        !(self.journals.is_empty()
            && self.authors.is_empty()
            && self.mesh.is_empty()
            && self.mesh_major.is_empty()
            && self.pub_types.is_empty()
            && self.langs.is_empty())
    }

    /// Both sets of conditions; a year range from each is intersected.
    pub fn and(mut self, other: Filters) -> Result<Self, FilterError> {
        self.years = match (self.years, other.years) {
            (Some(a), Some(b)) => Some(intersect(a, b)?),
            (a, b) => a.or(b),
        };
        self.journals.extend(other.journals);
        self.authors.extend(other.authors);
        self.mesh.extend(other.mesh);
        self.mesh_major.extend(other.mesh_major);
        self.pub_types.extend(other.pub_types);
        self.langs.extend(other.langs);
        self.langs = self.langs.iter().map(|l| language_code(l)).collect();
        self.has_abstract |= other.has_abstract;
        Ok(self)
    }
}

impl fmt::Display for Filters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(y) = self.years {
            parts.push(format!("year {y}"));
        }
        let list = |parts: &mut Vec<String>, name: &str, v: &[String], join: &str| {
            if !v.is_empty() {
                let q: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
                parts.push(format!("{name} {}", q.join(join)));
            }
        };
        list(&mut parts, "journal", &self.journals, " or ");
        list(&mut parts, "author", &self.authors, " and ");
        list(&mut parts, "MeSH", &self.mesh, " and ");
        list(&mut parts, "MeSH major topic", &self.mesh_major, " and ");
        list(&mut parts, "publication type", &self.pub_types, " or ");
        list(&mut parts, "language", &self.langs, " or ");
        if self.has_abstract {
            parts.push("has an abstract".to_string());
        }
        write!(f, "{}", parts.join("; "))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("unknown field tag [{0}]: medlit filters by [mh] [majr] [au] [ta] [pt] [la] [dp] and `hasabstract`; [ti] [tiab] [tw] search the text")]
    UnknownTag(String),
    #[error("the field tag [{0}] has no value before it (e.g. asthma[{0}])")]
    EmptyValue(String),
    #[error("[{tag}]: {reason}")]
    BadValue { tag: String, reason: String },
    #[error("the year ranges {0} and {1} do not overlap")]
    DisjointYears(YearRange, YearRange),
}

fn intersect(a: YearRange, b: YearRange) -> Result<YearRange, FilterError> {
    let from = match (a.from, b.from) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    };
    let to = match (a.to, b.to) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    };
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            return Err(FilterError::DisjointYears(a, b));
        }
    }
    Ok(YearRange { from, to })
}

/// A language as MEDLINE codes it: "english" → "eng"; a code passes through lower-cased.
pub fn language_code(s: &str) -> String {
    let l = s.trim().to_lowercase();
    let code = match l.as_str() {
        "english" => "eng",
        "french" => "fre",
        "german" => "ger",
        "spanish" => "spa",
        "italian" => "ita",
        "japanese" => "jpn",
        "chinese" => "chi",
        "russian" => "rus",
        "portuguese" => "por",
        "dutch" => "dut",
        "polish" => "pol",
        "korean" => "kor",
        "turkish" => "tur",
        _ => return l,
    };
    code.to_string()
}

/// The most words a tagged value may span.
const MAX_VALUE_WORDS: usize = 6;

/// The fields a tag filters by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagField {
    Mesh,
    MeshMajor,
    Author,
    Journal,
    PubType,
    Lang,
    Date,
}

impl TagField {
    /// The field of a tag; `None` for the text tags and unknown ones.
    pub fn of(tag: &str) -> Option<TagField> {
        Some(match tag.trim().to_lowercase().as_str() {
            "mh" | "mesh" | "mesh terms" | "mh:noexp" => TagField::Mesh,
            "majr" | "mesh major topic" => TagField::MeshMajor,
            "au" | "author" | "auth" => TagField::Author,
            "ta" | "journal" | "jour" => TagField::Journal,
            "pt" | "ptyp" | "publication type" => TagField::PubType,
            "la" | "lang" | "language" => TagField::Lang,
            "dp" | "pdat" | "publication date" => TagField::Date,
            _ => return None,
        })
    }
}

/// What the field tags of a query say: the query without them, and the filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaggedQuery {
    /// The words left to rank (tags and boolean operators between tagged terms removed).
    pub text: String,
    pub filters: Filters,
    /// How a tag was read, for the user.
    pub notes: Vec<String>,
}

/// Reads PubMed field tags out of `q`: `brucella smith j[au]` filters by the author
/// "smith j" and ranks "brucella". A quoted value may carry a tag too:
/// `"anti-bacterial agents"[mh]`. `known` says whether the index holds a value in a field.
pub fn parse_tags(
    q: &str,
    known: &dyn Fn(TagField, &str) -> bool,
) -> Result<TaggedQuery, FilterError> {
    if !q.contains('[')
        && !q
            .split_whitespace()
            .any(|w| w.eq_ignore_ascii_case("hasabstract"))
    {
        return Ok(TaggedQuery {
            text: q.to_string(),
            ..TaggedQuery::default()
        });
    }
    let mut out = TaggedQuery::default();
    // The words not yet claimed by a tag, as (word, was it quoted).
    let mut pending: Vec<String> = Vec::new();
    let mut kept: Vec<String> = Vec::new();
    let mut rest = q;
    let flush = |pending: &mut Vec<String>, kept: &mut Vec<String>| kept.append(pending);
    while let Some(c) = rest.chars().next() {
        if c.is_whitespace() {
            rest = &rest[c.len_utf8()..];
            continue;
        }
        // A quoted phrase, perhaps tagged right after the closing quote.
        if c == '"' {
            if let Some(end) = rest[1..].find('"') {
                let phrase = &rest[1..1 + end];
                let after = &rest[end + 2..];
                if let Some(tag_end) = after.strip_prefix('[').and_then(|a| a.find(']')) {
                    let tag = &after[1..1 + tag_end];
                    flush(&mut pending, &mut kept);
                    kept.extend(apply(&mut out, tag, phrase)?);
                    rest = &after[tag_end + 2..];
                } else {
                    flush(&mut pending, &mut kept);
                    kept.push(format!("\"{phrase}\""));
                    rest = after;
                }
                continue;
            }
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let word = &rest[..end];
        rest = &rest[end..];
        if matches!(word, "AND" | "OR" | "NOT") {
            flush(&mut pending, &mut kept);
            kept.push(word.to_string());
            continue;
        }
        if word.eq_ignore_ascii_case("hasabstract") {
            flush(&mut pending, &mut kept);
            out.filters.has_abstract = true;
            continue;
        }
        // A tag follows its value without a space ("asthma[mh]"); "[A]" standing alone in
        // a question is a word.
        match word.find('[') {
            Some(open) if open > 0 && word.ends_with(']') => {
                let tag = &word[open + 1..word.len() - 1];
                let head = &word[..open];
                if !head.is_empty() {
                    pending.push(head.to_string());
                }
                // The value is the longest run of the words just before the tag that the
                // index knows in that field ("smith j[au]", "randomized controlled
                // trial[pt]"), else the last word alone: "infection review[pt]" filters by
                // Review and ranks "infection", as PubMed reads it.
                let field = TagField::of(tag);
                let take = match field {
                    Some(f) if f != TagField::Date && f != TagField::Lang => {
                        (1..=pending.len().min(MAX_VALUE_WORDS))
                            .rev()
                            .find(|&n| known(f, &pending[pending.len() - n..].join(" ")))
                            .unwrap_or(1)
                    }
                    _ => 1,
                };
                let split = pending.len().saturating_sub(take);
                let value = pending.split_off(split).join(" ");
                flush(&mut pending, &mut kept);
                kept.extend(apply(&mut out, tag, &value)?);
            }
            _ => pending.push(word.to_string()),
        }
    }
    kept.append(&mut pending);
    // Boolean operators left dangling by a removed tagged term carry nothing.
    let mut words: Vec<String> = Vec::new();
    for w in kept {
        let op = matches!(w.as_str(), "AND" | "OR");
        if op
            && words
                .last()
                .is_none_or(|l| l == "AND" || l == "OR" || l == "NOT")
        {
            continue;
        }
        words.push(w);
    }
    while words.last().is_some_and(|l| l == "AND" || l == "OR") {
        words.pop();
    }
    out.text = words.join(" ");
    if !out.filters.is_empty() {
        out.notes.push(format!("filtered by {}", out.filters));
    }
    Ok(out)
}

/// One tagged value into the filters; for [ti]/[tiab]/[tw], the words to rank instead.
fn apply(out: &mut TaggedQuery, tag: &str, value: &str) -> Result<Option<String>, FilterError> {
    let tag_l = tag.trim().to_lowercase();
    let value = value.trim();
    if value.is_empty() {
        return Err(FilterError::EmptyValue(tag_l));
    }
    let f = &mut out.filters;
    match tag_l.as_str() {
        "mh" | "mesh" | "mesh terms" | "mh:noexp" => f.mesh.push(value.to_string()),
        "majr" | "mesh major topic" => f.mesh_major.push(value.to_string()),
        "au" | "author" | "auth" => f.authors.push(value.to_string()),
        "ta" | "journal" | "jour" => f.journals.push(value.to_string()),
        "pt" | "ptyp" | "publication type" => f.pub_types.push(value.to_string()),
        "la" | "lang" | "language" => f.langs.push(language_code(value)),
        "dp" | "pdat" | "publication date" => {
            let range = value.replace(':', "..");
            let y: YearRange = range.parse().map_err(|e: String| FilterError::BadValue {
                tag: tag_l.clone(),
                reason: format!("{value:?} is not a year or a range (2020, 2015:2020): {e}"),
            })?;
            f.years = Some(match f.years {
                Some(prev) => intersect(prev, y)?,
                None => y,
            });
        }
        "ti" | "tiab" | "tw" | "ab" | "all" | "all fields" => {
            out.notes.push(format!(
                "[{tag_l}]: \"{value}\" is searched in title and abstract"
            ));
            return Ok(Some(value.to_string()));
        }
        _ => return Err(FilterError::UnknownTag(tag_l)),
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small index's vocabulary.
    fn known(f: TagField, v: &str) -> bool {
        match f {
            TagField::Author => ["smith j", "smith ja"].iter().any(|k| k.starts_with(v)),
            TagField::PubType => ["review", "randomized controlled trial"].contains(&v),
            TagField::Mesh => ["asthma", "anti-bacterial agents"].contains(&v),
            _ => false,
        }
    }

    fn parse_tags(q: &str) -> Result<TaggedQuery, FilterError> {
        super::parse_tags(q, &known)
    }

    #[test]
    fn pubmed_tags_become_filters_and_leave_the_words() {
        let t = parse_tags("asthma[mh] AND 2020[dp]").unwrap();
        assert_eq!(t.text, "");
        assert_eq!(t.filters.mesh, ["asthma"]);
        assert_eq!(
            t.filters.years,
            Some(YearRange {
                from: Some(2020),
                to: Some(2020)
            })
        );

        let t = parse_tags("brucella doxycycline smith j[au]").unwrap();
        assert_eq!(t.text, "brucella doxycycline");
        assert_eq!(t.filters.authors, ["smith j"]);
        let t = parse_tags("infection randomized controlled trial[pt]").unwrap();
        assert_eq!(t.text, "infection");
        assert_eq!(t.filters.pub_types, ["randomized controlled trial"]);
        // A value the index does not know: the tag takes its own word only.
        let t = parse_tags("infection review[pt] unknownword[mh]").unwrap();
        assert_eq!(t.filters.pub_types, ["review"]);
        assert_eq!(t.filters.mesh, ["unknownword"]);
        assert_eq!(t.text, "infection");

        let t =
            parse_tags("\"anti-bacterial agents\"[mh] mice 2015:2020[dp] english[la] review[pt]")
                .unwrap();
        assert_eq!(t.filters.mesh, ["anti-bacterial agents"]);
        assert_eq!(
            t.filters.years,
            Some(YearRange {
                from: Some(2015),
                to: Some(2020)
            })
        );
        assert_eq!(t.filters.langs, ["eng"]);
        assert_eq!(t.filters.pub_types, ["review"]);
        assert_eq!(t.text, "mice", "{t:?}");

        let t = parse_tags("ivermectin covid hasabstract").unwrap();
        assert!(t.filters.has_abstract);
        assert_eq!(t.text, "ivermectin covid");
    }

    #[test]
    fn a_question_without_tags_is_left_alone() {
        let q = "Which antibiotic cured mice infected with Brucella melitensis?";
        let t = parse_tags(q).unwrap();
        assert_eq!(t.text, q);
        assert!(t.filters.is_empty() && t.notes.is_empty());
        let q = "Does the ratio [A] rise with [Ca2+]i in cardiomyocytes?";
        assert_eq!(parse_tags(q).unwrap().text, q);
    }

    #[test]
    fn bad_tags_and_values_name_the_tag() {
        let e = parse_tags("asthma[xyz]").unwrap_err();
        assert!(e.to_string().contains("[xyz]"), "{e}");
        let e = parse_tags("20x0[dp]").unwrap_err();
        assert!(e.to_string().starts_with("[dp]:"), "{e}");
        let e = parse_tags("asthma \"\"[mh]").unwrap_err();
        assert_eq!(e, FilterError::EmptyValue("mh".into()));
        let e = parse_tags("2010[dp] 2020[dp]").unwrap_err();
        assert!(matches!(e, FilterError::DisjointYears(..)), "{e}");
    }

    #[test]
    fn title_tags_search_the_text() {
        let t = parse_tags("dystrophin[tiab] mice").unwrap();
        let _ = TagField::of("tiab");
        assert_eq!(t.text, "dystrophin mice");
        assert!(t.filters.is_empty());
        assert_eq!(t.notes.len(), 1);
    }
}
