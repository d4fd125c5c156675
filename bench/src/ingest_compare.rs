//! `medlit bench ingest --compare`: every field of every record as medlit parses it against
//! Python's pubmed_parser on the same files. Each difference is either put down to a named,
//! explained cause (a field one side reads from elsewhere, or drops) or counted unexplained;
//! any unexplained difference fails the run.
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use medlit_indexer::pubmed::{parse_file, Record};
use medlit_indexer::Article;
use serde::{Deserialize, Serialize};

use crate::peer::{peer_json, peer_python};

const COMPARE_SCRIPT: &str = include_str!("../peers/pubmed_parser_compare.py");

/// Examples kept per field and cause.
const EXAMPLES: usize = 3;

/// A record as the peer script writes it: pubmed_parser's values, untouched.
#[derive(Debug, Deserialize)]
struct PeerRecord {
    pmid: String,
    title: String,
    #[serde(rename = "abstract")]
    abstract_text: String,
    journal: String,
    pubdate: String,
    mesh_terms: String,
    publication_types: String,
    keywords: String,
    doi: String,
    pmc: String,
    languages: String,
    issue: String,
    pages: String,
    authors: Vec<[String; 3]>,
}

/// Why the two parsers may differ on a field: each cause a reader can check in the XML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    NestedMarkup,
    VernacularTitle,
    AbstractWithoutText,
    EmptySection,
    FirstKeywordList,
    KeywordMarkup,
    CollectiveAuthor,
    DescriptorMajor,
    DoiLastElocation,
    DoiSource,
    PmcSource,
    IssueWithoutVolume,
}

impl Cause {
    pub fn explanation(self) -> &'static str {
        match self {
            Cause::NestedMarkup => "pubmed_parser's stringify_children reads an element's text and its children's, not deeper: text nested two levels down (e.g. <i><sup>…</sup></i>) is dropped; medlit keeps all of it",
            Cause::VernacularTitle => "ArticleTitle is empty: medlit uses the VernacularTitle (the title in the original language), pubmed_parser leaves the title empty",
            Cause::AbstractWithoutText => "an Abstract with no AbstractText (e.g. only CopyrightInformation): pubmed_parser takes the Abstract element's whole text, medlit has no abstract",
            Cause::EmptySection => "an AbstractText with a label and no text (<AbstractText Label=\"LEVEL OF EVIDENCE: 5\"/>): pubmed_parser writes the label, medlit drops the empty section",
            Cause::FirstKeywordList => "more than one KeywordList (one per owner: NOTNLM, PIP, …): pubmed_parser reads only the first (find), medlit all of them",
            Cause::KeywordMarkup => "a Keyword that starts with markup (<i>T</i><sub>1</sub> mapping): pubmed_parser takes only the element's leading text, None here, and drops the keyword",
            Cause::CollectiveAuthor => "a group author (CollectiveName): pubmed_parser reads only LastName/ForeName/Initials and writes an empty author; medlit keeps the group's name",
            Cause::DescriptorMajor => "a descriptor marked MajorTopicYN=\"Y\": pubmed_parser looks for the flag on MeshHeading, where MEDLINE never puts it, so only qualifiers mark a major topic; medlit reads it on DescriptorName too",
            Cause::DoiLastElocation => "pubmed_parser keeps only the last ELocationID (empty when that one is a pii) and then never looks at ArticleIdList; medlit takes the DOI of any ELocationID or of ArticleIdList",
            Cause::DoiSource => "two DOIs: medlit prefers PubmedData/ArticleIdList's, pubmed_parser the last ELocationID's",
            Cause::PmcSource => "pubmed_parser reads the PMC id from MedlineCitation/OtherID, medlit from PubmedData/ArticleIdList (IdType=\"pmc\"); a record may have one and not the other",
            Cause::IssueWithoutVolume => "pubmed_parser writes the issue only as \"volume(issue)\", so an issue without a volume is empty there",
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct FieldReport {
    pub field: &'static str,
    pub agree: u64,
    /// Differences by cause.
    pub explained: BTreeMap<Cause, u64>,
    pub unexplained: u64,
    /// A few differences of each cause (and the unexplained ones), for a reader to check.
    pub examples: Vec<Example>,
}

#[derive(Debug, Serialize)]
pub struct Example {
    pub pmid: u64,
    pub cause: Option<Cause>,
    pub medlit: String,
    pub pubmed_parser: String,
}

#[derive(Debug, Serialize)]
pub struct CompareReport {
    pub files: Vec<String>,
    pub medlit_records: u64,
    pub peer_records: u64,
    /// Records both parsers read (matched by PMID, in file order).
    pub compared: u64,
    /// PMIDs one side read and the other did not.
    pub only_medlit: Vec<u64>,
    pub only_peer: Vec<String>,
    pub fields: Vec<FieldReport>,
    /// Every cause seen, with what it means.
    pub causes: BTreeMap<Cause, &'static str>,
    pub unexplained: u64,
}

/// Runs pubmed_parser on `files` and compares every record with medlit's parse.
pub fn compare(python: &str, files: &[PathBuf]) -> Result<CompareReport> {
    let peer = run_peer(python, files)?;
    let mut ours: Vec<Article> = Vec::new();
    for f in files {
        let parsed = parse_file(f)?;
        ours.extend(parsed.records.into_iter().filter_map(|r| match r {
            Record::Article(a) => Some(*a),
            Record::Delete(_) => None,
        }));
    }
    Ok(compare_records(files, &ours, &peer))
}

fn compare_records(files: &[PathBuf], ours: &[Article], peer: &[PeerRecord]) -> CompareReport {
    let mut by_pmid: HashMap<u64, VecDeque<&Article>> = HashMap::new();
    for a in ours {
        by_pmid.entry(a.pmid).or_default().push_back(a);
    }
    let mut fields: BTreeMap<&'static str, FieldReport> = BTreeMap::new();
    let mut only_peer = Vec::new();
    let mut compared = 0;
    for p in peer {
        let Some(a) = p
            .pmid
            .trim()
            .parse::<u64>()
            .ok()
            .and_then(|n| by_pmid.get_mut(&n))
            .and_then(VecDeque::pop_front)
        else {
            only_peer.push(p.pmid.clone());
            continue;
        };
        compared += 1;
        for (field, outcome) in compare_one(a, p) {
            let r = fields.entry(field).or_insert_with(|| FieldReport {
                field,
                ..FieldReport::default()
            });
            match outcome {
                Outcome::Agree => r.agree += 1,
                Outcome::Differ {
                    cause,
                    medlit,
                    peer,
                } => {
                    let seen = match cause {
                        Some(c) => {
                            let n = r.explained.entry(c).or_default();
                            *n += 1;
                            *n
                        }
                        None => {
                            r.unexplained += 1;
                            r.unexplained
                        }
                    };
                    if seen as usize <= EXAMPLES {
                        r.examples.push(Example {
                            pmid: a.pmid,
                            cause,
                            medlit,
                            pubmed_parser: peer,
                        });
                    }
                }
            }
        }
    }
    let mut only_medlit: Vec<u64> = by_pmid
        .values()
        .flat_map(|q| q.iter().map(|a| a.pmid))
        .collect();
    only_medlit.sort_unstable();
    let fields: Vec<FieldReport> = fields.into_values().collect();
    let causes = fields
        .iter()
        .flat_map(|f| f.explained.keys().copied())
        .map(|c| (c, c.explanation()))
        .collect();
    let unexplained = fields.iter().map(|f| f.unexplained).sum::<u64>()
        + only_medlit.len() as u64
        + only_peer.len() as u64;
    CompareReport {
        files: files.iter().map(|f| f.display().to_string()).collect(),
        medlit_records: ours.len() as u64,
        peer_records: peer.len() as u64,
        compared,
        only_medlit,
        only_peer,
        fields,
        causes,
        unexplained,
    }
}

enum Outcome {
    Agree,
    Differ {
        cause: Option<Cause>,
        medlit: String,
        peer: String,
    },
}

/// Equal, or different for `cause` (None: unexplained).
fn outcome(
    medlit: String,
    peer: String,
    cause: impl FnOnce(&str, &str) -> Option<Cause>,
) -> Outcome {
    if medlit == peer {
        Outcome::Agree
    } else {
        Outcome::Differ {
            cause: cause(&medlit, &peer),
            medlit,
            peer,
        }
    }
}

/// Whitespace runs as one space, ends trimmed: medlit normalises whitespace when it parses,
/// pubmed_parser keeps the XML's.
fn ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `a` is `b` with characters deleted (spaces aside), and shorter: what dropping nested
/// text does.
fn words_subsequence(a: &str, b: &str) -> bool {
    let mut bc = b.chars().filter(|c| !c.is_whitespace());
    let a_len = a.chars().filter(|c| !c.is_whitespace()).count();
    let b_len = b.chars().filter(|c| !c.is_whitespace()).count();
    a_len < b_len
        && a.chars()
            .filter(|c| !c.is_whitespace())
            .all(|c| bc.any(|x| x == c))
}

/// pubmed_parser's "UI:name; UI:name" list, as names.
fn ui_list(s: &str) -> Vec<String> {
    if s.trim().is_empty() {
        return Vec::new();
    }
    s.split("; ")
        .map(|t| match t.split_once(':') {
            Some((_, name)) => ws(name),
            None => ws(t),
        })
        .collect()
}

fn compare_one(a: &Article, p: &PeerRecord) -> Vec<(&'static str, Outcome)> {
    let mut out = Vec::new();

    out.push((
        "title",
        outcome(a.title.clone(), ws(&p.title), |m, q| {
            if q.is_empty() {
                Some(Cause::VernacularTitle)
            } else if words_subsequence(q, m) {
                Some(Cause::NestedMarkup)
            } else {
                None
            }
        }),
    ));

    // pubmed_parser writes a structured abstract as "label\ntext\n…" and a single section
    // without its label; the same shape is built from medlit's sections, then both are
    // compared with whitespace collapsed.
    let sections = a.sections();
    let ours_abstract = if sections.len() > 1 {
        sections
            .iter()
            .flat_map(|(label, text)| {
                let label = if *label == "UNASSIGNED" { "" } else { label };
                [label, text]
            })
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        sections
            .first()
            .map(|(_, t)| t.to_string())
            .unwrap_or_default()
    };
    out.push((
        "abstract",
        outcome(ws(&ours_abstract), ws(&p.abstract_text), |m, q| {
            if m.is_empty() {
                Some(Cause::AbstractWithoutText)
            } else if words_subsequence(q, m) {
                Some(Cause::NestedMarkup)
            } else if words_subsequence(m, q) {
                Some(Cause::EmptySection)
            } else {
                None
            }
        }),
    ));

    out.push((
        "journal",
        outcome(a.journal.clone(), ws(&p.journal), |m, q| {
            words_subsequence(q, m).then_some(Cause::NestedMarkup)
        }),
    ));
    out.push((
        "year",
        outcome(
            a.year.map(|y| y.to_string()).unwrap_or_default(),
            p.pubdate.trim().to_string(),
            |_, _| None,
        ),
    ));

    let ours_people: Vec<String> = a
        .authors
        .iter()
        .filter(|x| !x.collective)
        .map(|x| format!("{}|{}|{}", x.last, x.fore, x.initials))
        .collect();
    let peer_people: Vec<String> = p
        .authors
        .iter()
        .filter(|x| x.iter().any(|s| !s.trim().is_empty()))
        .map(|x| format!("{}|{}|{}", ws(&x[0]), ws(&x[1]), ws(&x[2])))
        .collect();
    let groups = a.authors.iter().filter(|x| x.collective).count();
    let all_ours: Vec<String> = a
        .authors
        .iter()
        .map(|x| format!("{}|{}|{}", x.last, x.fore, x.initials))
        .collect();
    out.push((
        "authors",
        if groups > 0 && ours_people == peer_people {
            Outcome::Differ {
                cause: Some(Cause::CollectiveAuthor),
                medlit: all_ours.join("; "),
                peer: peer_people.join("; "),
            }
        } else {
            outcome(all_ours.join("; "), peer_people.join("; "), |_, _| None)
        },
    ));

    // "D1:Name* / Q1:qualifier*; …": the descriptor's name, and whether any part is starred.
    let peer_mesh: Vec<(String, bool)> = if p.mesh_terms.trim().is_empty() {
        Vec::new()
    } else {
        p.mesh_terms
            .split("; ")
            .map(|heading| {
                let mut parts = heading.split(" / ");
                let desc = parts.next().unwrap_or_default();
                let name = desc.split_once(':').map_or(desc, |(_, n)| n);
                let major = heading.contains('*');
                (ws(name.trim_end_matches('*')), major)
            })
            .collect()
    };
    let ours_names: Vec<String> = a.mesh.iter().map(|m| m.descriptor.clone()).collect();
    let peer_names: Vec<String> = peer_mesh.iter().map(|(n, _)| n.clone()).collect();
    out.push((
        "mesh",
        outcome(ours_names.join("; "), peer_names.join("; "), |_, _| None),
    ));
    if ours_names == peer_names {
        let flags = |v: &mut dyn Iterator<Item = bool>| {
            v.map(|b| if b { '*' } else { '-' }).collect::<String>()
        };
        let ours_major = flags(&mut a.mesh.iter().map(|m| m.major));
        let peer_major = flags(&mut peer_mesh.iter().map(|(_, b)| *b));
        let only_ours_more = a
            .mesh
            .iter()
            .zip(&peer_mesh)
            .all(|(m, (_, pm))| m.major == *pm || (m.major && !pm));
        out.push((
            "mesh_major",
            outcome(ours_major, peer_major, |_, _| {
                only_ours_more.then_some(Cause::DescriptorMajor)
            }),
        ));
    }

    out.push((
        "publication_types",
        outcome(
            a.pub_types.join("; "),
            ui_list(&p.publication_types).join("; "),
            |_, _| None,
        ),
    ));
    let peer_keywords: Vec<String> = if p.keywords.trim().is_empty() {
        Vec::new()
    } else {
        p.keywords
            .split("; ")
            .map(ws)
            .filter(|k| !k.is_empty())
            .collect()
    };
    let keyword_cause = if a.keywords.starts_with(&peer_keywords) {
        Some(Cause::FirstKeywordList)
    } else {
        let mut ours = a.keywords.iter();
        peer_keywords
            .iter()
            .all(|k| ours.any(|o| o == k))
            .then_some(Cause::KeywordMarkup)
    };
    out.push((
        "keywords",
        outcome(a.keywords.join("; "), peer_keywords.join("; "), |_, _| {
            keyword_cause
        }),
    ));
    out.push((
        "doi",
        outcome(
            a.doi.clone().unwrap_or_default(),
            p.doi.trim().to_string(),
            |m, q| {
                if q.is_empty() && !m.is_empty() {
                    Some(Cause::DoiLastElocation)
                } else if !q.is_empty() && !m.is_empty() {
                    Some(Cause::DoiSource)
                } else {
                    None
                }
            },
        ),
    ));
    out.push((
        "pmc",
        outcome(
            a.pmc.clone().unwrap_or_default(),
            p.pmc.trim().to_string(),
            |_, _| Some(Cause::PmcSource),
        ),
    ));
    out.push((
        "languages",
        outcome(
            a.languages.join(";"),
            p.languages.trim().to_string(),
            |_, _| None,
        ),
    ));
    let ours_issue = if a.volume.is_empty() {
        String::new()
    } else {
        format!("{}({})", a.volume, a.issue)
    };
    out.push((
        "volume_issue",
        outcome(ours_issue, ws(&p.issue), |_, _| None),
    ));
    if a.volume.is_empty() && !a.issue.is_empty() {
        // Counted apart so a reader sees how many issues pubmed_parser cannot show.
        out.push((
            "issue_without_volume",
            Outcome::Differ {
                cause: Some(Cause::IssueWithoutVolume),
                medlit: a.issue.clone(),
                peer: String::new(),
            },
        ));
    }
    out.push(("pages", outcome(a.pages.clone(), ws(&p.pages), |_, _| None)));
    out
}

fn run_peer(python: &str, files: &[PathBuf]) -> Result<Vec<PeerRecord>> {
    let py = peer_python(
        python,
        "pubmed-parser-venv",
        &[super::ingest::PEER_PACKAGE],
        "pubmed_parser",
    )?;
    let scratch = tempfile::tempdir().context("creating a scratch folder for the peer")?;
    let script = scratch.path().join("compare.py");
    std::fs::write(&script, COMPARE_SCRIPT).context("writing the peer script")?;
    let out = scratch.path().join("records.jsonl");
    #[derive(Deserialize)]
    struct Done {
        records: u64,
    }
    let done: Done = peer_json(Command::new(&py).arg(&script).arg(&out).args(files))?;
    let records = read_jsonl(&out)?;
    if records.len() as u64 != done.records {
        bail!(
            "the peer said {} records and wrote {}",
            done.records,
            records.len()
        );
    }
    Ok(records)
}

fn read_jsonl(path: &Path) -> Result<Vec<PeerRecord>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the peer's output {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{}:{}: not a peer record", path.display(), i + 1))
        })
        .collect()
}
