//! Replays the prompt filler's fuzz corpus and crash reproducers (`fuzz/corpus/prompt_filler/`,
//! `fuzz/artifacts/prompt_filler/`) through the fuzz property, in the ordinary test suite.
use std::path::Path;

mod prompt {
    pub use medlit::prompt::*;
}

#[path = "../fuzz/fuzz_targets/prompt_harness.rs"]
mod harness;

#[test]
fn the_prompt_fuzz_corpus_and_crash_reproducers_hold_the_property() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for dir in ["corpus/prompt_filler", "artifacts/prompt_filler"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries {
            harness::check(&std::fs::read(e.unwrap().path()).unwrap());
            n += 1;
        }
    }
    assert!(n >= 7, "the committed corpus is missing: {n} inputs");
}
