//! An article's record in the formats researchers read and reference managers import.
//!
//! Module map:
//! - this file: [`Format`] and [`write_records`], which renders a list of records in one;
//! - [`json`]: the JSON shape of a record (`medlit show --json`, `GET /api/article/{pmid}`);
//! - [`text`]: the record as a person reads it in a terminal;
//! - [`medline`]: PubMed's MEDLINE/nbib tagged format;
//! - [`ris`]: RIS (Zotero, EndNote, Mendeley);
//! - [`bibtex`]: BibTeX `@article` entries;
//! - [`csl_json`]: CSL-JSON, the citation processors' item format.
use medlit_indexer::Article;

pub mod bibtex;
pub mod csl_json;
pub mod json;
pub mod medline;
pub mod ris;
pub mod text;

/// How records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// For reading in a terminal
    Text,
    /// PubMed's MEDLINE (.nbib) tagged format
    Medline,
    /// RIS, for Zotero, EndNote, Mendeley
    Ris,
    /// BibTeX @article entries
    Bibtex,
    /// CSL-JSON items, for citation processors
    CslJson,
}

impl Format {
    /// The formats a reference manager imports (all but text).
    pub const EXPORTS: [Format; 4] = [
        Format::Medline,
        Format::Ris,
        Format::Bibtex,
        Format::CslJson,
    ];

    /// The usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Text => "txt",
            Format::Medline => "nbib",
            Format::Ris => "ris",
            Format::Bibtex => "bib",
            Format::CslJson => "json",
        }
    }

    /// The HTTP content type of a download.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; charset=utf-8",
            Format::Medline => "application/nbib; charset=utf-8",
            Format::Ris => "application/x-research-info-systems; charset=utf-8",
            Format::Bibtex => "application/x-bibtex; charset=utf-8",
            Format::CslJson => "application/vnd.citationstyles.csl+json",
        }
    }

    /// The name `--format` takes.
    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Medline => "medline",
            Format::Ris => "ris",
            Format::Bibtex => "bibtex",
            Format::CslJson => "csl-json",
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        <Format as clap::ValueEnum>::from_str(s, true).map_err(|_| {
            format!("unknown format {s:?}: one of text, medline, ris, bibtex, csl-json")
        })
    }
}

/// `articles` in `format`, as one document (a CSL-JSON array, entries one after another in
/// the others).
pub fn write_records(format: Format, articles: &[Article]) -> String {
    match format {
        Format::Text => articles
            .iter()
            .map(text::record)
            .collect::<Vec<_>>()
            .join("\n"),
        Format::Medline => articles
            .iter()
            .map(medline::record)
            .collect::<Vec<_>>()
            .join("\n"),
        Format::Ris => articles.iter().map(ris::record).collect(),
        Format::Bibtex => articles
            .iter()
            .map(bibtex::entry)
            .collect::<Vec<_>>()
            .join("\n"),
        Format::CslJson => csl_json::items(articles),
    }
}

/// First and last page of a MEDLINE page range ("123-9" is 123 to 129).
pub(crate) fn page_range(pages: &str) -> (String, Option<String>) {
    let first_range = pages.split([',', ';']).next().unwrap_or("").trim();
    let Some((start, end)) = first_range.split_once('-') else {
        return (first_range.to_string(), None);
    };
    let (start, end) = (start.trim(), end.trim());
    // MEDLINE drops the end page's leading digits that the start page repeats.
    let end = if end.len() < start.len() && end.chars().all(|c| c.is_ascii_digit()) {
        format!("{}{end}", &start[..start.len() - end.len()])
    } else {
        end.to_string()
    };
    (start.to_string(), Some(end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medline_page_ranges_expand() {
        assert_eq!(page_range("123-9"), ("123".into(), Some("129".into())));
        assert_eq!(page_range("1123-45"), ("1123".into(), Some("1145".into())));
        assert_eq!(page_range("e123"), ("e123".into(), None));
        assert_eq!(page_range("S1-S10"), ("S1".into(), Some("S10".into())));
        assert_eq!(page_range("5-9, 12"), ("5".into(), Some("9".into())));
        assert_eq!(page_range(""), ("".into(), None));
    }

    #[test]
    fn formats_parse_by_name() {
        for f in Format::EXPORTS {
            assert_eq!(f.name().parse::<Format>(), Ok(f));
        }
        assert!("endnote".parse::<Format>().is_err());
    }
}
