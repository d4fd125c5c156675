//! Any template, question and evidence: the filler never panics, stays within its budget
//! unless the question alone exceeds it, and the filled prompt holds no more chat-control
//! markers than the template itself (text inside the question or evidence cannot open or
//! close a turn, even next to the template's own text).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/prompt.rs"]
mod prompt;

const MARKERS: [&str; 4] = ["<start_of_turn>", "<end_of_turn>", "<|im_start|>", "<|im_end|>"];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\u{1}');
    let template = parts.next().unwrap_or_default();
    let question = parts.next().unwrap_or_default();
    let evidence: Vec<prompt::Evidence> = parts
        .enumerate()
        .map(|(i, t)| prompt::Evidence {
            pmid: (1000 + i).to_string(),
            title: format!("Title {i}"),
            journal: "J".into(),
            year: Some(2000),
            text: t.to_string(),
            similarity: None,
        })
        .collect();
    let Ok(t) = prompt::Template::parse("fuzz", template) else {
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
});
