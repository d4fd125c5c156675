//! The shapes answers and searches take for readers and scripts, shared by the CLI and the
//! server: the answer text with numbered references or related reading, `--json`'s answer
//! object, the research-use notice, search hits as text, and the one-line error.
use crate::answer::Answer;
use crate::retrieve::Hit;
use crate::safety::Decision;

/// The research-use notice every answer carries.
pub const NOTICE: &str =
    "Research aid only: not medical advice. Check the cited articles before relying on them.";

/// `--json` of `ask`: the answer and everything that backs it.
#[derive(serde::Serialize)]
pub struct AnswerJson<'a> {
    #[serde(flatten)]
    pub answer: &'a Answer,
    pub notice: &'static str,
}

impl<'a> AnswerJson<'a> {
    pub fn new(answer: &'a Answer) -> Self {
        AnswerJson {
            answer,
            notice: NOTICE,
        }
    }
}

/// One numbered reference: PMID, title, journal, year and the PubMed link.
fn reference(n: usize, pmid: u64, title: &str, journal: &str, year: Option<i64>) -> String {
    let year = year.map_or_else(|| "n.d.".to_string(), |y| y.to_string());
    format!(
        "[{n}] PMID {pmid}  {title} ({journal}, {year})  https://pubmed.ncbi.nlm.nih.gov/{pmid}/\n"
    )
}

/// What `ask` prints for a reader: the answer, references, optionally the evidence, the
/// notice and the timings.
pub fn answer_report(a: &Answer, show_evidence: bool) -> String {
    let mut out = answer_text(a);
    if show_evidence {
        out.push_str("\nEvidence\n");
        for e in &a.evidence {
            out.push_str(&format!("[PMID {}] {}\n    {}\n", e.pmid, e.title, e.text));
        }
    }
    out.push_str(&format!(
        "\n{NOTICE}\n({} · retrieve {:.0} ms, generate {:.0} ms)\n",
        a.model, a.timings_ms.retrieve, a.timings_ms.generate
    ));
    out
}

/// The answer with its numbered references (or related reading) and what was removed: what
/// a reader sees, here and in the server's chat replies.
pub fn answer_text(a: &Answer) -> String {
    let mut out = format!("{}\n", a.verified.answer);
    if let Some(q) = &a.verified.quote {
        out.push_str(&format!(
            "\nSupporting sentence (PMID {}): \"{}\"\n",
            q.pmid, q.sentence
        ));
    }
    if !a.verified.citations.is_empty() {
        out.push_str("\nReferences\n");
        for (i, c) in a.verified.citations.iter().enumerate() {
            out.push_str(&reference(i + 1, c.pmid, &c.title, &c.journal, c.year));
        }
    }
    if (a.verified.abstained || a.safety.decision != Decision::Answer)
        && !a.verified.related.is_empty()
    {
        out.push_str("\nRelated reading (not support, not advice)\n");
        for (i, pmid) in a.verified.related.iter().enumerate() {
            match a.evidence.iter().find(|e| e.pmid == *pmid) {
                Some(e) => out.push_str(&reference(i + 1, *pmid, &e.title, &e.journal, e.year)),
                None => out.push_str(&format!("[{}] PMID {pmid}\n", i + 1)),
            }
        }
    }
    if !a.verified.removed_pmids.is_empty() {
        out.push_str(&format!(
            "\n(removed {} PMID(s) the model wrote that are not in the evidence)\n",
            a.verified.removed_pmids.len()
        ));
    }
    out
}

/// An error and its causes on one line; a cause whose text its effect already quotes (an I/O
/// error shown with its path, say) is not repeated. The CLI's last line and the server's error
/// messages alike.
pub fn error_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = c.source();
    }
    line
}

/// Search hits as text: one block per hit, the matched words in bold on a terminal (`**`
/// otherwise).
pub fn hits_text(hits: &[Hit]) -> String {
    use std::io::IsTerminal;
    let (on, off) = if std::io::stdout().is_terminal() {
        ("\x1b[1m", "\x1b[0m")
    } else {
        ("**", "**")
    };
    let mut out = String::new();
    for h in hits {
        let year = h
            .year
            .map(|y| y.to_string())
            .unwrap_or_else(|| "n.d.".into());
        let mut block = format!(
            "{:>2}. PMID {}  {}  ({}, {})  score {:.4}\n    {}\n",
            h.rank,
            h.pmid,
            h.title,
            h.journal,
            year,
            h.score,
            highlight(&h.snippet, &h.highlights, on, off)
        );
        if let Some(p) = &h.passage {
            block.push_str(&format!("    passage: {p}\n"));
        }
        out.push_str(&block);
    }
    out
}

fn highlight(text: &str, ranges: &[[usize; 2]], on: &str, off: &str) -> String {
    let mut out = String::with_capacity(text.len() + ranges.len() * 8);
    let mut at = 0;
    for &[s, e] in ranges {
        // Ranges come from tantivy and are on char boundaries; guard anyway.
        let (Some(before), Some(word)) = (text.get(at..s), text.get(s..e)) else {
            continue;
        };
        out.push_str(before);
        out.push_str(on);
        out.push_str(word);
        out.push_str(off);
        at = e;
    }
    out.push_str(text.get(at..).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn highlight_marks_ranges() {
        assert_eq!(super::highlight("a bc d", &[[2, 4]], "[", "]"), "a [bc] d");
        assert_eq!(super::highlight("αβγ", &[[0, 1]], "[", "]"), "αβγ");
    }
}
