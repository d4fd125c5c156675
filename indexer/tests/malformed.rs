//! Malformed input: each fixture gets the behaviour the parser promises (a counted skip with
//! file, line and reason, or an error naming the file), and a broken file writes nothing.
use std::io::Write;
use std::path::{Path, PathBuf};

use medlit_indexer::pubmed::{parse_file, Record};
use medlit_indexer::{build_index, BuildOptions, IndexDir};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn titles(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Article(a) => Some(a.title.clone()),
            Record::Delete(_) => None,
        })
        .collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[test]
fn unclosed_tag_fails_the_file() {
    let err = parse_file(&fixture("unclosed_tag.xml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("unclosed_tag.xml"), "{err}");
    assert!(err.contains("XML error"), "{err}");
}

#[test]
fn bad_entity_skips_only_that_record() {
    let p = parse_file(&fixture("bad_entity.xml")).unwrap();
    assert_eq!(p.records_read, 2);
    assert_eq!(titles(&p.records), vec!["Known entities & β-blockers γ"]);
    assert_eq!(p.rejected.len(), 1);
    let r = &p.rejected[0];
    assert_eq!(r.pmid, Some(900201));
    assert_eq!(r.reason, "unknown entity &foo;");
    assert_eq!(r.line, Some(3), "{r}");
    assert!(r.to_string().contains("bad_entity.xml:3"), "{r}");
}

#[test]
fn missing_pmid_is_a_counted_skip() {
    let p = parse_file(&fixture("missing_pmid.xml")).unwrap();
    assert_eq!(p.records_read, 2);
    assert_eq!(titles(&p.records), vec!["A record with a PMID"]);
    assert_eq!(p.rejected.len(), 1);
    assert_eq!(p.rejected[0].reason, "no MedlineCitation/PMID");
    assert_eq!(p.rejected[0].line, Some(3));
}

#[test]
fn empty_abstract_is_indexed_without_abstract() {
    let p = parse_file(&fixture("empty_abstract.xml")).unwrap();
    let Record::Article(a) = &p.records[0] else {
        panic!("expected an article")
    };
    assert_eq!(a.pmid, 900401);
    assert!(!a.has_abstract(), "{:?}", a.abstract_text);
    assert!(p.rejected.is_empty());
}

#[test]
fn invalid_utf8_skips_only_that_record() {
    let good = std::fs::read_to_string(fixture("good.xml")).unwrap();
    // Corrupt the first abstract's text with bytes that are not UTF-8.
    let mut bytes = good.into_bytes();
    let at = bytes.windows(7).position(|w| w == b"protein").unwrap();
    bytes[at] = 0xff;
    bytes[at + 1] = 0xfe;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad_utf8.xml");
    std::fs::write(&path, &bytes).unwrap();
    let p = parse_file(&path).unwrap();
    assert_eq!(p.records_read, 2);
    assert_eq!(
        titles(&p.records),
        vec!["Rifampin in experimental brucellosis."]
    );
    assert_eq!(p.rejected.len(), 1);
    assert!(
        p.rejected[0].reason.contains("invalid UTF-8"),
        "{:?}",
        p.rejected
    );
    assert_eq!(p.rejected[0].pmid, Some(900001));
}

#[test]
fn truncated_gzip_fails_the_file() {
    let good = std::fs::read(fixture("good.xml")).unwrap();
    let gz = gzip(&good);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.xml.gz");
    std::fs::write(&path, &gz[..gz.len() / 2]).unwrap();
    let err = parse_file(&path).unwrap_err().to_string();
    assert!(err.contains("cut.xml.gz"), "{err}");
    // A whole gzip of the same file parses: the failure is the truncation.
    std::fs::write(&path, &gz).unwrap();
    assert_eq!(parse_file(&path).unwrap().records.len(), 2);
}

#[test]
fn not_pubmed_empty_file_and_directory_are_errors() {
    let err = parse_file(&fixture("not_pubmed.xml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not PubMed XML") && err.contains("<rss>"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.xml");
    std::fs::write(&empty, b"").unwrap();
    let err = parse_file(&empty).unwrap_err().to_string();
    assert!(err.contains("empty.xml") && err.contains("empty"), "{err}");
    let err = parse_file(dir.path()).unwrap_err().to_string();
    assert!(err.contains("directory"), "{err}");
}

#[test]
fn good_fixture_fields() {
    let p = parse_file(&fixture("good.xml")).unwrap();
    let arts: Vec<_> = p
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Article(a) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(arts[0].year, Some(1999));
    assert_eq!(arts[0].journal_iso, "J Fixture Stud");
    assert_eq!(arts[0].languages, vec!["eng"]);
    assert_eq!(arts[1].year, Some(2001), "year from MedlineDate");
    assert_eq!(
        arts[1].abstract_text,
        "BACKGROUND: Brucellosis is a zoonosis.\nRESULTS: Rifampin cured nearly all mice; tetracycline did not."
    );
}

fn generations(index: &Path) -> Vec<String> {
    let mut gens: Vec<_> = std::fs::read_dir(index)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("gen-"))
        .collect();
    gens.sort();
    gens
}

/// A broken file writes nothing: a run stops at it with its name, the files before it stay
/// committed (the index is whole, and says which files are pending), an update of it alone
/// leaves the index as it was, and once the file is mended the same command resumes.
#[test]
fn a_broken_file_changes_nothing_and_the_run_resumes_after_it_is_mended() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index");
    let opts = |inputs: Vec<PathBuf>, mode| BuildOptions {
        mode,
        inputs,
        index_dir: index.clone(),
        writer_memory_mib: 32,
        dense: None,
    };
    let build = medlit_indexer::BuildMode::Build;
    let first = build_index(&opts(vec![fixture("good.xml")], build), &|_| {}).unwrap();
    assert_eq!(first.counts.indexed, 2);
    let before = IndexDir::new(&index).manifest().unwrap();

    // An update with the broken file alone changes nothing.
    let cut = dir.path().join("cut.xml.gz");
    let good_gz = gzip(&std::fs::read(fixture("empty_abstract.xml")).unwrap());
    std::fs::write(&cut, &good_gz[..good_gz.len() - 20]).unwrap();
    let update = medlit_indexer::BuildMode::Update { force: false };
    let err = build_index(&opts(vec![cut.clone()], update), &|_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("cut.xml.gz"), "{err}");
    assert_eq!(IndexDir::new(&index).manifest().unwrap(), before);
    assert_eq!(
        generations(&index),
        vec!["gen-000001"],
        "the failed generation is removed"
    );

    // The same index named with one more file, a broken one: the build goes on after good.xml
    // (nothing lost, nothing rebuilt) and stops at the broken file, which is named; the index
    // stays the whole index of good.xml. (A fresh build over [good, broken] commits good.xml
    // and lists the broken file as pending: tests/cli.rs, a_broken_input_stops_the_run_at_that_file.)
    let err = build_index(
        &opts(vec![fixture("good.xml"), cut.clone()], build),
        &|_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("cut.xml.gz"), "{err}");
    let partial = IndexDir::new(&index).manifest().unwrap();
    assert_eq!(partial.inputs.len(), 1);
    assert_eq!(partial, before);
    assert_eq!(partial.counts.indexed, 2);
    let v = medlit_indexer::verify::verify(&index).unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!(
        generations(&index).len(),
        1,
        "only the live generation is kept"
    );

    // Mended, the same command resumes after good.xml instead of starting over.
    std::fs::write(&cut, &good_gz).unwrap();
    let resumed = build_index(
        &opts(vec![fixture("good.xml"), cut.clone()], build),
        &|_| {},
    )
    .unwrap();
    assert_eq!(resumed.resumed_after, Some(1));
    assert_eq!(resumed.applied, vec!["cut.xml.gz".to_string()]);
    let done = IndexDir::new(&index).manifest().unwrap();
    assert!(done.pending.is_empty());
    assert_eq!(done.inputs.len(), 2);
    assert!(medlit_indexer::verify::verify(&index).unwrap().ok);

    // A directory, an empty file and a missing file are refused before anything is written.
    let err = build_index(&opts(vec![dir.path().to_path_buf()], build), &|_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a regular file"), "{err}");
    let empty = dir.path().join("empty.xml");
    std::fs::write(&empty, b"").unwrap();
    let err = build_index(&opts(vec![fixture("good.xml"), empty], build), &|_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("empty.xml") && err.contains("empty file"),
        "{err}"
    );
    let err = build_index(&opts(vec![dir.path().join("nope.xml")], build), &|_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope.xml"), "{err}");
    assert_eq!(IndexDir::new(&index).manifest().unwrap(), done);
}

#[test]
fn skipped_subtrees_match_the_fully_tokenized_parse() {
    let path = fixture("skipped_subtrees.xml");
    let fast = parse_file(&path).unwrap();
    let mut full = Vec::new();
    let summary = medlit_indexer::pubmed::parse_reader(
        std::io::BufReader::new(std::fs::File::open(&path).unwrap()),
        &path,
        &mut |r| full.push(r),
    )
    .unwrap();
    assert_eq!(
        fast.records, full,
        "skipping must not change what is parsed"
    );
    assert_eq!(fast.xml_bytes, summary.xml_bytes);
    let Record::Article(a) = &fast.records[0] else {
        panic!("expected an article")
    };
    assert_eq!(a.title, "Kept title");
    assert_eq!(a.abstract_text, "Kept abstract.");
    let names: Vec<String> = a.authors.iter().map(|x| x.full_name()).collect();
    assert_eq!(names, vec!["Ann Roe"]);
    assert_eq!(a.doi.as_deref(), Some("10.1000/elocation"));
    assert_eq!(a.pmc.as_deref(), Some("PMC42"));
    assert_eq!(titles(&fast.records)[1], "After the skip");
}

#[test]
fn truncation_inside_a_skipped_subtree_fails_the_file() {
    let text = std::fs::read_to_string(fixture("skipped_subtrees.xml")).unwrap();
    let cut = &text[..text.find("Nested list").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut_in_skip.xml");
    std::fs::write(&path, cut).unwrap();
    let err = parse_file(&path).unwrap_err().to_string();
    assert!(
        err.contains("cut_in_skip.xml") && err.contains("end of file"),
        "{err}"
    );
}

#[test]
fn an_index_of_an_older_format_is_replaced_only_by_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index");
    std::fs::create_dir_all(index.join("gen-000005")).unwrap();
    std::fs::write(
        index.join("manifest.json"),
        r#"{"format_version": 0, "generation": 5}"#,
    )
    .unwrap();
    let err = IndexDir::new(&index).manifest().unwrap_err().to_string();
    assert!(err.contains("--replace"), "{err}");
    let opts = |mode| BuildOptions {
        mode,
        inputs: vec![fixture("good.xml")],
        index_dir: index.clone(),
        writer_memory_mib: 32,
        dense: None,
    };
    // A plain build does not replace it by a slip.
    let err = build_index(&opts(Default::default()), &|_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("--replace"), "{err}");
    assert!(index.join("gen-000005").exists());
    let report = build_index(&opts(medlit_indexer::BuildMode::Rebuild), &|_| {}).unwrap();
    assert_eq!(report.generation, 6);
    assert_eq!(IndexDir::new(&index).manifest().unwrap().generation, 6);
    assert!(
        !index.join("gen-000005").exists(),
        "the old generation is removed"
    );
}
