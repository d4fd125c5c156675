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
    pub journal: String,
    pub journal_iso: String,
    /// `PubDate/Year`, else the first year in `MedlineDate`.
    pub year: Option<i32>,
    pub authors: Vec<String>,
    pub mesh: Vec<MeshHeading>,
    pub keywords: Vec<String>,
    pub pub_types: Vec<String>,
    pub languages: Vec<String>,
    pub doi: Option<String>,
    pub pmc: Option<String>,
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
