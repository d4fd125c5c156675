//! Evaluation datasets in the PaperSearchQA style: one JSON object per line.
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One question with the PMID of the abstract that answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QaItem {
    pub id: String,
    pub question: String,
    pub pmid: String,
    pub golden_answers: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Line {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path}: no items")]
    Empty { path: PathBuf },
}

#[derive(Deserialize)]
struct RawItem {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    question: Option<String>,
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    pmid: Option<serde_json::Value>,
    #[serde(default)]
    golden_answers: Vec<String>,
    /// `insufficient_evidence` marks a question the corpus cannot answer.
    #[serde(default)]
    expected: Option<String>,
    /// A safety prompt (`dev_safety.jsonl`).
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    category: Option<String>,
    /// One underlying request and its rewordings share a family (the policy's corpus).
    #[serde(default)]
    family: Option<String>,
}

/// A request with the behaviour the safety policy should show: `refuse`, `safe_redirect` or
/// `answer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetyItem {
    pub id: String,
    pub prompt: String,
    pub expected: String,
    pub category: Option<String>,
    /// Rewordings of one request share a family; None where the file does not say.
    pub family: Option<String>,
}

/// The decisions a safety item may expect.
pub const SAFETY_DECISIONS: [&str; 3] = ["refuse", "safe_redirect", "answer"];

/// Reads a JSONL file of safety items: `prompt` (or `question`) and `expected`.
pub fn read_safety(path: &Path) -> Result<Vec<SafetyItem>, DatasetError> {
    read_lines(path, |raw, bad, line| {
        let prompt = raw
            .prompt
            .clone()
            .filter(|p| !p.trim().is_empty())
            .or_else(|| question_of(&raw))
            .ok_or_else(|| bad("no `prompt`".into()))?;
        let expected = match raw.expected.as_deref() {
            Some(e) if SAFETY_DECISIONS.contains(&e) => e.to_string(),
            other => {
                return Err(bad(format!(
                    "`expected` must be one of refuse, safe_redirect, answer; got {other:?}"
                )))
            }
        };
        Ok(SafetyItem {
            id: raw.id.unwrap_or_else(|| format!("line{line}")),
            prompt,
            expected,
            category: raw.category,
            family: raw.family,
        })
    })
}

/// A question for answer evaluation: answerable (golden answers, source PMID) or marked
/// `"expected": "insufficient_evidence"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerItem {
    pub id: String,
    pub question: String,
    pub pmid: Option<String>,
    pub golden_answers: Vec<String>,
    pub unanswerable: bool,
}

/// Reads a JSONL file of items for `eval qa`: `question` (or `query`), then either
/// `golden_answers` (with `pmid` where known) or `"expected": "insufficient_evidence"`.
pub fn read_answer_set(path: &Path) -> Result<Vec<AnswerItem>, DatasetError> {
    read_lines(path, |raw, bad, line| {
        let question = question_of(&raw).ok_or_else(|| bad("no `question` or `query`".into()))?;
        let pmid = match raw.pmid {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(pmid_of(v).map_err(bad)?),
        };
        let unanswerable = match raw.expected.as_deref() {
            Some("insufficient_evidence") => true,
            Some(other) => {
                return Err(bad(format!(
                    "`expected` must be \"insufficient_evidence\", got {other:?}"
                )))
            }
            None => false,
        };
        if !unanswerable && raw.golden_answers.is_empty() {
            return Err(bad(
                "no `golden_answers` (or `\"expected\": \"insufficient_evidence\"`)".into(),
            ));
        }
        Ok(AnswerItem {
            id: raw.id.unwrap_or_else(|| format!("line{line}")),
            question,
            pmid,
            golden_answers: raw.golden_answers,
            unanswerable,
        })
    })
}

/// `question`, else `query`, when not blank.
fn question_of(raw: &RawItem) -> Option<String> {
    raw.question
        .as_ref()
        .or(raw.query.as_ref())
        .filter(|q| !q.trim().is_empty())
        .cloned()
}

fn pmid_of(v: serde_json::Value) -> Result<String, String> {
    match v {
        serde_json::Value::String(s) if s.trim().parse::<u64>().is_ok() => Ok(s.trim().to_string()),
        serde_json::Value::Number(n) if n.as_u64().is_some() => Ok(n.to_string()),
        other => Err(format!("`pmid` must be a number, got {other}")),
    }
}

/// Parses each non-blank line with `item(raw, bad, line_number)`.
fn read_lines<T>(
    path: &Path,
    mut item: impl FnMut(RawItem, &dyn Fn(String) -> DatasetError, usize) -> Result<T, DatasetError>,
) -> Result<Vec<T>, DatasetError> {
    let file = std::fs::File::open(path).map_err(|source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut items = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| DatasetError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| DatasetError::Line {
            path: path.to_path_buf(),
            line: i + 1,
            reason,
        };
        let raw: RawItem = serde_json::from_str(&line).map_err(|e| bad(e.to_string()))?;
        items.push(item(raw, &bad, i + 1)?);
    }
    if items.is_empty() {
        return Err(DatasetError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(items)
}

/// Reads a JSONL file of items with `question` (or `query`) and `pmid` (string or number).
/// Blank lines are skipped; any other bad line is an error naming file and line.
pub fn read_qa(path: &Path) -> Result<Vec<QaItem>, DatasetError> {
    read_lines(path, |raw, bad, line| {
        let question = question_of(&raw).ok_or_else(|| bad("no `question` or `query`".into()))?;
        let pmid = match raw.pmid {
            Some(v) => pmid_of(v).map_err(bad)?,
            None => return Err(bad("no `pmid`".into())),
        };
        Ok(QaItem {
            id: raw.id.unwrap_or_else(|| format!("line{line}")),
            question,
            pmid,
            golden_answers: raw.golden_answers,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_items_and_names_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("qa.jsonl");
        std::fs::write(
            &p,
            "{\"id\":\"a\",\"question\":\"Q?\",\"pmid\":\"12\",\"golden_answers\":[\"x\"]}\n\n{\"query\":\"K\",\"pmid\":34}\n",
        )
        .unwrap();
        let items = read_qa(&p).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].pmid, "34");
        assert_eq!(items[1].question, "K");
        assert_eq!(items[1].id, "line3");
        std::fs::write(
            &p,
            "{\"question\":\"Q\",\"pmid\":\"12\"}\n{\"question\":\"Q\"}\n",
        )
        .unwrap();
        let e = read_qa(&p).unwrap_err().to_string();
        assert!(e.contains("qa.jsonl:2") && e.contains("pmid"), "{e}");
        std::fs::write(&p, "{\"question\":\"Q\",\"pmid\":\"abc\"}\n").unwrap();
        let e = read_qa(&p).unwrap_err().to_string();
        assert!(e.contains("qa.jsonl:1"), "{e}");
        std::fs::write(&p, "\n").unwrap();
        assert!(matches!(read_qa(&p), Err(DatasetError::Empty { .. })));
    }

    #[test]
    fn reads_safety_items_and_names_a_bad_label() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.jsonl");
        std::fs::write(
            &p,
            "{\"id\":\"s1\",\"prompt\":\"P?\",\"expected\":\"refuse\",\"category\":\"c\"}\n",
        )
        .unwrap();
        let items = read_safety(&p).unwrap();
        assert_eq!(items[0].expected, "refuse");
        assert_eq!(items[0].category.as_deref(), Some("c"));
        std::fs::write(
            &p,
            "{\"prompt\":\"P?\",\"expected\":\"refuse\"}\n{\"prompt\":\"P?\",\"expected\":\"block\"}\n",
        )
        .unwrap();
        let e = read_safety(&p).unwrap_err().to_string();
        assert!(e.contains("s.jsonl:2") && e.contains("block"), "{e}");
        std::fs::write(&p, "{\"expected\":\"answer\"}\n").unwrap();
        let e = read_safety(&p).unwrap_err().to_string();
        assert!(e.contains("s.jsonl:1") && e.contains("prompt"), "{e}");
    }

    #[test]
    fn reads_answerable_and_unanswerable_items() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jsonl");
        std::fs::write(
            &p,
            concat!(
                "{\"id\":\"q\",\"question\":\"Q?\",\"golden_answers\":[\"x\"],\"pmid\":\"12\"}\n",
                "{\"id\":\"u\",\"question\":\"U?\",\"expected\":\"insufficient_evidence\"}\n",
            ),
        )
        .unwrap();
        let items = read_answer_set(&p).unwrap();
        assert_eq!(items[0].pmid.as_deref(), Some("12"));
        assert!(!items[0].unanswerable);
        assert!(items[1].unanswerable && items[1].pmid.is_none());
        std::fs::write(&p, "{\"question\":\"Q?\",\"pmid\":1}\n").unwrap();
        let e = read_answer_set(&p).unwrap_err().to_string();
        assert!(
            e.contains("a.jsonl:1") && e.contains("golden_answers"),
            "{e}"
        );
        std::fs::write(&p, "{\"question\":\"Q?\",\"expected\":\"maybe\"}\n").unwrap();
        assert!(read_answer_set(&p)
            .unwrap_err()
            .to_string()
            .contains("expected"));
    }
}
