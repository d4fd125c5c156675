//! The JSON of a record: one shape for `medlit show --json` and `GET /api/article/{pmid}`.
use medlit_indexer::Article;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct RecordJson<'a> {
    /// A string, as PubMed and the evaluation sets write it.
    pub pmid: String,
    pub title: &'a str,
    /// The abstract's sections in order (one unlabelled section for a plain abstract).
    pub sections: Vec<SectionJson<'a>>,
    pub authors: Vec<AuthorJson<'a>>,
    pub journal: &'a str,
    pub journal_iso: &'a str,
    pub year: Option<i32>,
    pub volume: &'a str,
    pub issue: &'a str,
    pub pages: &'a str,
    pub mesh: Vec<MeshJson<'a>>,
    pub keywords: &'a [String],
    pub publication_types: &'a [String],
    pub languages: &'a [String],
    pub doi: Option<&'a str>,
    pub pmc: Option<&'a str>,
    pub url: String,
    /// False when the index predates whole records: authors, languages, major topics,
    /// volume, issue and pages are then unknown, not absent.
    pub complete: bool,
}

#[derive(Debug, Serialize)]
pub struct SectionJson<'a> {
    /// The section's label ("BACKGROUND", "METHODS"…), absent for an unlabelled one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<&'a str>,
    pub text: &'a str,
}

#[derive(Debug, Serialize)]
pub struct AuthorJson<'a> {
    /// "Ann B Roe", or the group's name.
    pub name: String,
    /// Last name, or the group's name.
    pub last: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub fore: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub initials: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub collective: bool,
}

#[derive(Debug, Serialize)]
pub struct MeshJson<'a> {
    pub descriptor: &'a str,
    /// A major topic of the article (PubMed's asterisk).
    pub major: bool,
}

impl<'a> RecordJson<'a> {
    pub fn new(a: &'a Article, complete: bool) -> Self {
        RecordJson {
            pmid: a.pmid.to_string(),
            title: &a.title,
            sections: a
                .sections()
                .into_iter()
                .map(|(label, text)| SectionJson {
                    label: Some(label).filter(|l| !l.is_empty()),
                    text,
                })
                .collect(),
            authors: a
                .authors
                .iter()
                .map(|au| AuthorJson {
                    name: au.full_name(),
                    last: &au.last,
                    fore: &au.fore,
                    initials: &au.initials,
                    collective: au.collective,
                })
                .collect(),
            journal: &a.journal,
            journal_iso: &a.journal_iso,
            year: a.year,
            volume: &a.volume,
            issue: &a.issue,
            pages: &a.pages,
            mesh: a
                .mesh
                .iter()
                .map(|m| MeshJson {
                    descriptor: &m.descriptor,
                    major: m.major,
                })
                .collect(),
            keywords: &a.keywords,
            publication_types: &a.pub_types,
            languages: &a.languages,
            doi: a.doi.as_deref(),
            pmc: a.pmc.as_deref(),
            url: a.pubmed_url(),
            complete,
        }
    }
}
