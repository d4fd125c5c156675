//! Every input the fuzzer kept as interesting (`fuzz/corpus/pubmed_parser/`) and every crash it
//! found (`fuzz/artifacts/pubmed_parser/`, after the fix) runs through the parser in the
//! ordinary test suite: records, counted skips or an error, never a panic.
use std::path::Path;

use medlit_indexer::pubmed::parse_bytes;

#[test]
fn the_fuzz_corpus_and_crash_reproducers_parse_without_panicking() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut n = 0;
    for dir in ["corpus/pubmed_parser", "artifacts/pubmed_parser"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            if let Ok(parsed) = parse_bytes(&data, &path) {
                assert!(
                    parsed.rejected.len() as u64 <= parsed.records_read,
                    "{}",
                    path.display()
                );
            }
            n += 1;
        }
    }
    assert!(n >= 9, "the committed corpus is missing: {n} inputs");
}
