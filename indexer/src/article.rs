//! The records that come out of PubMed XML.
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One PubMed citation, as parsed from a `PubmedArticle`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Article {
    pub pmid: u64,
    /// `PMID Version`; versioned citations repeat a PMID with a higher version.
    pub version: u32,
    pub title: String,
    /// Every `Abstract/AbstractText` in order, one per line; labelled sections as `LABEL: text`.
    pub abstract_text: String,
    /// The `Label` of each line of `abstract_text` ("" for none); empty when no section has
    /// one. Kept apart so a section's label is never guessed from its text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub section_labels: Vec<String>,
    pub journal: String,
    pub journal_iso: String,
    /// `PubDate/Year`, else the first year in `MedlineDate`.
    pub year: Option<i32>,
    pub authors: Vec<Author>,
    pub mesh: Vec<MeshHeading>,
    pub keywords: Vec<String>,
    pub pub_types: Vec<String>,
    pub languages: Vec<String>,
    pub doi: Option<String>,
    pub pmc: Option<String>,
    /// `JournalIssue/Volume`, `JournalIssue/Issue`, `Pagination/MedlinePgn`: what a reference
    /// manager needs to cite the article.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub volume: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub issue: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pages: String,
}

/// One `AuthorList/Author`: a person, or a group (`CollectiveName`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    /// `LastName`; for a group, its `CollectiveName`.
    pub last: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fore: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub initials: String,
    /// A group author, not a person.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub collective: bool,
}

impl Author {
    /// As a reader writes it: "Ann B Roe", or the group's name.
    pub fn full_name(&self) -> String {
        join_nonempty(&[self.given(), &self.last], " ")
    }

    /// As PubMed lists and searches it (`[au]`): "Roe AB", or the group's name.
    pub fn short_name(&self) -> String {
        join_nonempty(&[&self.last, &self.initials], " ")
    }

    /// As reference managers file it: "Roe, Ann B", or the group's name.
    pub fn inverted(&self) -> String {
        join_nonempty(&[&self.last, self.given()], ", ")
    }

    /// The forename, else the initials.
    pub fn given(&self) -> &str {
        if self.fore.is_empty() {
            &self.initials
        } else {
            &self.fore
        }
    }
}

fn join_nonempty(parts: &[&str], sep: &str) -> String {
    parts
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(sep)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshHeading {
    pub descriptor: String,
    /// The descriptor, or one of its qualifiers, is a major topic of the article.
    pub major: bool,
}

impl Article {
    pub fn has_abstract(&self) -> bool {
        !self.abstract_text.is_empty()
    }

    /// The abstract's sections: `(label, text)`, the label empty for an unlabelled section.
    pub fn sections(&self) -> Vec<(&str, &str)> {
        self.abstract_text
            .lines()
            .enumerate()
            .map(|(i, line)| {
                let label = self.section_labels.get(i).map_or("", String::as_str);
                let text = if label.is_empty() {
                    line
                } else {
                    line.strip_prefix(label)
                        .and_then(|t| t.strip_prefix(": "))
                        .unwrap_or(line)
                };
                (label, text)
            })
            .collect()
    }

    /// The journal's title, else its ISO abbreviation (some records carry only one).
    pub fn journal_name(&self) -> &str {
        if self.journal.is_empty() {
            &self.journal_iso
        } else {
            &self.journal
        }
    }

    /// The article's page on PubMed.
    pub fn pubmed_url(&self) -> String {
        format!("https://pubmed.ncbi.nlm.nih.gov/{}/", self.pmid)
    }
}

/// A record skipped for a reason; the rest of its file is still used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    pub file: PathBuf,
    /// Byte offset of the record's start tag in the uncompressed XML.
    pub offset: u64,
    /// 1-based line of the record's start tag, when it has been looked up.
    pub line: Option<u64>,
    /// The record's PMID, when it had one.
    pub pmid: Option<u64>,
    pub reason: String,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, " (byte {})", self.offset)?;
        if let Some(p) = self.pmid {
            write!(f, " PMID {p}")?;
        }
        write!(f, ": {}", self.reason)
    }
}
