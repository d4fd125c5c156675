//! The prompt filler's fuzz property, shared by the fuzz target and the regression test that
//! replays the corpus: for any template, question and evidence (split on byte 1), filling
//! never panics, shows at most the passages given, and yields no chat-control marker beyond
//! those the template itself holds.
use super::prompt::{Evidence, Template};

const MARKERS: [&str; 4] = [
    "<start_of_turn>",
    "<end_of_turn>",
    "<|im_start|>",
    "<|im_end|>",
];

pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\u{1}');
    let template = parts.next().unwrap_or_default();
    let question = parts.next().unwrap_or_default();
    let evidence: Vec<Evidence> = parts
        .enumerate()
        .map(|(i, t)| Evidence {
            pmid: 1000 + i as u64,
            title: format!("Title {i}"),
            journal: "J".into(),
            year: Some(2000),
            text: t.to_string(),
            similarity: None,
            bm25_rank: None,
            dense_rank: None,
            closest_sentence: None,
        })
        .collect();
    let Ok(t) = Template::parse("fuzz", template) else {
        return;
    };
    let budget = data.first().map_or(64, |b| *b as usize * 8);
    let mut count = |s: &str| s.chars().count().div_ceil(4);
    let (filled, shown) = t.fill(question, &evidence, budget, &mut count);
    assert!(shown <= evidence.len());
    for m in MARKERS {
        assert!(
            filled.matches(m).count() <= template.matches(m).count(),
            "{m} injected: {filled:?}"
        );
    }
}
