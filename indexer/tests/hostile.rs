//! Hostile input generated in the test (too large to commit): a 10 MB abstract, 100,000
//! authors, markup nested 10,000 deep, a PMID twice in one file, UTF-16 text, a symlink loop.
//! Each gets the behaviour the parser promises: parsed whole, a counted skip, or an error that
//! names the file, with an existing index left as it was.
use std::path::{Path, PathBuf};

use medlit_indexer::pubmed::{parse_file, Record};
use medlit_indexer::{build_index, BuildOptions, IndexDir};

/// A PubmedArticleSet holding the given records.
fn set(records: &[String]) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PubmedArticleSet>\n{}\n</PubmedArticleSet>\n",
        records.join("\n")
    )
}

/// One record with `pmid`, a title, an abstract body (raw XML allowed) and extra author XML.
fn record(pmid: u64, title: &str, abstract_xml: &str, authors_xml: &str) -> String {
    format!(
        "<PubmedArticle><MedlineCitation Status=\"MEDLINE\" Owner=\"NLM\"><PMID Version=\"1\">{pmid}</PMID>\
<Article PubModel=\"Print\"><Journal><Title>Test Journal</Title><JournalIssue><PubDate><Year>2001</Year></PubDate></JournalIssue></Journal>\
<ArticleTitle>{title}</ArticleTitle><Abstract><AbstractText>{abstract_xml}</AbstractText></Abstract>\
<AuthorList CompleteYN=\"Y\">{authors_xml}</AuthorList></Article></MedlineCitation></PubmedArticle>"
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn articles(records: &[Record]) -> Vec<&medlit_indexer::Article> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Article(a) => Some(a.as_ref()),
            Record::Delete(_) => None,
        })
        .collect()
}

#[test]
fn a_ten_megabyte_abstract_is_indexed_whole() {
    let dir = tempfile::tempdir().unwrap();
    let sentence = "Dystrophin is absent in Duchenne muscular dystrophy muscle. ";
    let body = sentence.repeat(10 * 1024 * 1024 / sentence.len() + 1);
    let p = write(
        dir.path(),
        "big.xml",
        &set(&[record(910001, "Big", &body, "")]),
    );
    let parsed = parse_file(&p).unwrap();
    let a = articles(&parsed.records);
    assert_eq!(a.len(), 1);
    assert!(
        a[0].abstract_text.len() >= 10 * 1024 * 1024,
        "{}",
        a[0].abstract_text.len()
    );
}

#[test]
fn a_hundred_thousand_authors_parse() {
    let dir = tempfile::tempdir().unwrap();
    let authors: String = (0..100_000)
        .map(|i| {
            format!(
                "<Author ValidYN=\"Y\"><LastName>Name{i}</LastName><ForeName>A</ForeName></Author>"
            )
        })
        .collect();
    let p = write(
        dir.path(),
        "authors.xml",
        &set(&[record(
            910002,
            "Many authors",
            "A short abstract.",
            &authors,
        )]),
    );
    let parsed = parse_file(&p).unwrap();
    let a = articles(&parsed.records);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].title, "Many authors");
    assert!(parsed.rejected.is_empty());
}

#[test]
fn markup_nested_ten_thousand_deep_becomes_text() {
    let dir = tempfile::tempdir().unwrap();
    let depth = 10_000;
    let abstract_xml = format!("{}deep text{}", "<i>".repeat(depth), "</i>".repeat(depth));
    let p = write(
        dir.path(),
        "nested.xml",
        &set(&[record(910003, "Nested", &abstract_xml, "")]),
    );
    let parsed = parse_file(&p).unwrap();
    let a = articles(&parsed.records);
    assert_eq!(a.len(), 1);
    assert!(
        a[0].abstract_text.contains("deep text"),
        "{}",
        a[0].abstract_text
    );
}

#[test]
fn a_pmid_twice_in_one_file_keeps_the_later_record() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "twice.xml",
        &set(&[
            record(910004, "First version", "Old text.", ""),
            record(910004, "Second version", "New text.", ""),
        ]),
    );
    let index = dir.path().join("index");
    let report = build_index(
        &BuildOptions {
            mode: Default::default(),
            inputs: vec![p],
            index_dir: index.clone(),
            writer_memory_mib: 32,
            dense: None,
        },
        &|_| {},
    )
    .unwrap();
    assert_eq!(report.counts.records_read, 2);
    assert_eq!(report.counts.indexed, 1);
    assert_eq!(report.counts.replaced, 1);
    let v = medlit_indexer::verify::verify(&index).unwrap();
    assert!(v.ok, "{v:?}");
}

#[test]
fn utf16_text_and_a_symlink_loop_are_named_errors_that_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index");
    let good = write(
        dir.path(),
        "good.xml",
        &set(&[record(910005, "Good", "Fine text.", "")]),
    );
    let opts = |inputs: Vec<PathBuf>| BuildOptions {
        mode: Default::default(),
        inputs,
        index_dir: index.clone(),
        writer_memory_mib: 32,
        dense: None,
    };
    build_index(&opts(vec![good]), &|_| {}).unwrap();
    let before = IndexDir::new(&index).manifest().unwrap();
    // The bad files are offered as updates of the index: a plain build over it is refused
    // before any file is read.
    let opts = |inputs: Vec<PathBuf>| BuildOptions {
        mode: medlit_indexer::BuildMode::Update { force: false },
        ..opts(inputs)
    };

    // The same XML as UTF-16 with a byte-order mark: not what PubMed ships.
    let text = set(&[record(910006, "Wide", "Wide text.", "")]).replace("UTF-8", "UTF-16");
    let mut wide = vec![0xff, 0xfe];
    for u in text.encode_utf16() {
        wide.extend_from_slice(&u.to_le_bytes());
    }
    let utf16 = dir.path().join("wide.xml");
    std::fs::write(&utf16, wide).unwrap();
    let err = build_index(&opts(vec![utf16]), &|_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("wide.xml") && err.contains("UTF-16"), "{err}");

    #[cfg(unix)]
    {
        let looped = dir.path().join("loop.xml");
        std::os::unix::fs::symlink(&looped, &looped).unwrap();
        let err = build_index(&opts(vec![looped]), &|_| {})
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("loop.xml") && err.contains("symbolic links"),
            "{err}"
        );
    }
    assert_eq!(IndexDir::new(&index).manifest().unwrap(), before);
}
