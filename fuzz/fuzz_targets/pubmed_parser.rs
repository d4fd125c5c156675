//! Any bytes given to the PubMed parser end in records, counted skips or an error: never a
//! panic, a hang or a skip count above the records read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medlit_indexer::pubmed::parse_bytes;

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = parse_bytes(data, std::path::Path::new("fuzz.xml")) {
        assert!(parsed.rejected.len() as u64 <= parsed.records_read);
    }
});
