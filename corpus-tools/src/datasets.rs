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
    pmid: serde_json::Value,
    #[serde(default)]
    golden_answers: Vec<String>,
}

/// Reads a JSONL file of items with `question` (or `query`) and `pmid` (string or number).
/// Blank lines are skipped; any other bad line is an error naming file and line.
pub fn read_qa(path: &Path) -> Result<Vec<QaItem>, DatasetError> {
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
        let question = raw
            .question
            .or(raw.query)
            .filter(|q| !q.trim().is_empty())
            .ok_or_else(|| bad("no `question` or `query`".into()))?;
        let pmid = match raw.pmid {
            serde_json::Value::String(s) if s.trim().parse::<u64>().is_ok() => s.trim().to_string(),
            serde_json::Value::Number(n) if n.as_u64().is_some() => n.to_string(),
            other => return Err(bad(format!("`pmid` must be a number, got {other}"))),
        };
        items.push(QaItem {
            id: raw.id.unwrap_or_else(|| format!("line{}", i + 1)),
            question,
            pmid,
            golden_answers: raw.golden_answers,
        });
    }
    if items.is_empty() {
        return Err(DatasetError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(items)
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
}
