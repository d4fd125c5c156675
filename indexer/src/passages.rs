//! Passages: the units that are embedded and returned as evidence.
//!
//! A passage is the title plus as many whole sentences of the abstract as fit the embedding
//! model's window; a longer abstract becomes several passages that overlap by one sentence,
//! so a fact stated across a boundary is still whole in one of them.
use serde::{Deserialize, Serialize};

use crate::article::Article;

/// One passage of one article.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Passage {
    pub pmid: u64,
    /// 0-based position among the article's passages.
    pub passage_no: u32,
    pub title: String,
    /// The abstract sentences of this passage (empty for an article without abstract).
    pub text: String,
}

impl Passage {
    /// What is embedded: title and text together.
    pub fn embedding_text(&self) -> String {
        if self.text.is_empty() {
            self.title.clone()
        } else {
            format!("{}\n{}", self.title, self.text)
        }
    }
}

/// Tokens a passage may take in a model window of `max_tokens`: the window less the two
/// special tokens the model adds ([CLS], [SEP]).
pub fn window_budget(max_tokens: usize) -> usize {
    max_tokens.saturating_sub(2).max(8)
}

/// The passages the index makes of an article's title and abstract for a model whose window
/// is `max_tokens` tokens as `count` counts them: the one rule that the index, the evidence
/// shown for a dense hit, the Qdrant export and the benchmarks all follow, so a passage number
/// means the same text everywhere.
pub fn of_abstract(
    pmid: u64,
    title: &str,
    abstract_text: &str,
    max_tokens: usize,
    count: &mut dyn FnMut(&str) -> usize,
) -> Vec<Passage> {
    let article = Article {
        pmid,
        title: title.to_string(),
        abstract_text: abstract_text.to_string(),
        ..Article::default()
    };
    split(&article, window_budget(max_tokens), count)
}

/// Splits `article` into passages of at most `budget` tokens as counted by `count`
/// (title included). A single sentence longer than the budget becomes its own passage and is
/// cut by the model's truncation; nothing is dropped.
pub fn split(
    article: &Article,
    budget: usize,
    count: &mut dyn FnMut(&str) -> usize,
) -> Vec<Passage> {
    let make = |no: u32, text: String| Passage {
        pmid: article.pmid,
        passage_no: no,
        title: article.title.clone(),
        text,
    };
    let sentences = sentences(&article.abstract_text);
    if sentences.is_empty() {
        return vec![make(0, String::new())];
    }
    let title_tokens = count(&article.title);
    let lens: Vec<usize> = sentences.iter().map(|s| count(s)).collect();
    let whole: usize = title_tokens + lens.iter().sum::<usize>();
    if whole <= budget {
        return vec![make(0, sentences.join(" "))];
    }
    let room = budget.saturating_sub(title_tokens).max(1);
    let mut out = Vec::new();
    let mut start = 0;
    while start < sentences.len() {
        let mut end = start;
        let mut used = 0;
        while end < sentences.len() && (end == start || used + lens[end] <= room) {
            used += lens[end];
            end += 1;
        }
        out.push(make(out.len() as u32, sentences[start..end].join(" ")));
        if end >= sentences.len() {
            break;
        }
        // Overlap by one sentence, unless that would not advance.
        start = if end - start > 1 { end - 1 } else { end };
    }
    out
}

/// Splits text into sentences: at `.`, `?` or `!` followed by white space and a capital letter,
/// a digit or an opening bracket, except after common abbreviations; also at line breaks
/// (structured abstract sections).
pub fn sentences(text: &str) -> Vec<&str> {
    const ABBREVIATIONS: [&str; 14] = [
        "e.g.", "i.e.", "et al.", "vs.", "Fig.", "Figs.", "approx.", "ca.", "cf.", "Dr.", "No.",
        "Ref.", "Eq.", "spp.",
    ];
    let mut out = Vec::new();
    for line in text.lines() {
        let b = line.as_bytes();
        let mut start = 0;
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if matches!(c, b'.' | b'?' | b'!') && i + 2 < b.len() && b[i + 1] == b' ' {
                let next = line[i + 2..].chars().next().unwrap_or(' ');
                let starts =
                    next.is_uppercase() || next.is_ascii_digit() || next == '(' || next == '[';
                let sentence = &line[start..=i];
                let abbrev = ABBREVIATIONS.iter().any(|a| sentence.ends_with(a));
                // A single capital before the dot is an initial ("J. Smith"), not an end.
                let initial = c == b'.'
                    && i >= 1
                    && b[i - 1].is_ascii_uppercase()
                    && (i < 2 || b[i - 2] == b' ');
                if starts && !abbrev && !initial {
                    out.push(sentence.trim());
                    start = i + 2;
                    i += 2;
                    continue;
                }
            }
            i += 1;
        }
        let rest = line[start..].trim();
        if !rest.is_empty() {
            out.push(rest);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> usize {
        s.split_whitespace().count()
    }

    #[test]
    fn an_abstract_is_split_for_the_window_less_its_special_tokens() {
        let abstract_text = (0..40)
            .map(|i| format!("Sentence number {i} reports one finding."))
            .collect::<Vec<_>>()
            .join(" ");
        let parts = of_abstract(7, "A title", &abstract_text, 32, &mut words);
        assert!(parts.len() > 1, "{parts:?}");
        for p in &parts {
            assert_eq!(p.pmid, 7);
            assert!(words(&p.embedding_text()) <= window_budget(32), "{p:?}");
        }
        let article = Article {
            pmid: 7,
            title: "A title".into(),
            abstract_text,
            ..Article::default()
        };
        assert_eq!(parts, split(&article, 30, &mut words));
        assert_eq!(window_budget(4), 8, "a tiny window still holds a title");
    }

    #[test]
    fn sentence_boundaries() {
        let s = sentences(
            "BACKGROUND: We studied mice, e.g. BALB/c. Results were clear (p < 0.05). 12 mice died? \
             J. Smith et al. agreed.\nRESULTS: Fine.",
        );
        assert_eq!(
            s,
            vec![
                "BACKGROUND: We studied mice, e.g. BALB/c.",
                "Results were clear (p < 0.05).",
                "12 mice died?",
                "J. Smith et al. agreed.",
                "RESULTS: Fine.",
            ]
        );
    }

    #[test]
    fn short_article_is_one_passage() {
        let a = Article {
            pmid: 1,
            title: "A title".into(),
            abstract_text: "One. Two.".into(),
            ..Article::default()
        };
        let p = split(&a, 100, &mut words);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].embedding_text(), "A title\nOne. Two.");
        let empty = Article {
            pmid: 2,
            title: "Only a title".into(),
            ..Article::default()
        };
        let p = split(&empty, 100, &mut words);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].text, "");
    }

    #[test]
    fn long_article_overlaps_by_one_sentence_and_keeps_everything() {
        let abstract_text = (1..=10)
            .map(|i| format!("Sentence {i} has five words."))
            .collect::<Vec<_>>()
            .join(" ");
        let a = Article {
            pmid: 7,
            title: "T t".into(),
            abstract_text,
            ..Article::default()
        };
        let p = split(&a, 17, &mut words);
        assert!(p.len() > 1);
        for (i, x) in p.iter().enumerate() {
            assert_eq!(x.passage_no as usize, i);
            assert!(words(&x.embedding_text()) <= 17, "{x:?}");
        }
        for w in p.windows(2) {
            let last = sentences(&w[0].text).last().copied().unwrap();
            assert_eq!(sentences(&w[1].text)[0], last, "one sentence of overlap");
        }
        for i in 1..=10 {
            let s = format!("Sentence {i} has");
            assert!(p.iter().any(|x| x.text.contains(&s)), "{s} lost");
        }
    }

    #[test]
    fn oversized_sentence_stands_alone() {
        let a = Article {
            pmid: 9,
            title: "T".into(),
            abstract_text: format!("Short one. Long {}end. Tail here.", "word ".repeat(50)),
            ..Article::default()
        };
        let p = split(&a, 10, &mut words);
        let texts: Vec<&str> = p.iter().map(|x| x.text.as_str()).collect();
        assert_eq!(texts.len(), 3, "{texts:?}");
        assert_eq!(texts[0], "Short one.");
        assert!(texts[1].starts_with("Long word") && texts[1].ends_with("end."));
        assert_eq!(texts[2], "Tail here.");
    }
}
