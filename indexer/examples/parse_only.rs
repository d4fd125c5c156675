//! Parses the files named on the command line and prints counts and time (for profiling).
fn main() {
    for p in std::env::args().skip(1) {
        let t = std::time::Instant::now();
        match medlit_indexer::pubmed::parse_file(std::path::Path::new(&p)) {
            Ok(f) => println!("{p}: {} records in {:.2?}", f.records_read, t.elapsed()),
            Err(e) => eprintln!("{e}"),
        }
    }
}
