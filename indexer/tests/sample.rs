//! The parser and the index on the real PubMed sample that `medlit fetch` brings, checked
//! against counts made independently of the parser (plain text scans of the XML).
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::PathBuf;
use std::sync::OnceLock;

use medlit_corpus::fetch::ensure_embedded;
use medlit_corpus::{AssetKind, DataManifest};
use medlit_indexer::pubmed::{parse_file, ParsedFile, Record};
use medlit_indexer::{build_index, Article, BuildOptions};

fn sample() -> &'static [PathBuf] {
    static FILES: OnceLock<Vec<PathBuf>> = OnceLock::new();
    FILES.get_or_init(|| {
        let assets = ensure_embedded(&[AssetKind::Corpus])
            .unwrap_or_else(|e| panic!("fetching the PubMed sample failed: {e}"));
        DataManifest::embedded()
            .unwrap()
            .corpus_files()
            .iter()
            .map(|f| assets.join(&f.dest))
            .collect()
    })
}

fn parsed() -> &'static [ParsedFile] {
    static PARSED: OnceLock<Vec<ParsedFile>> = OnceLock::new();
    PARSED.get_or_init(|| sample().iter().map(|p| parse_file(p).unwrap()).collect())
}

fn articles() -> impl Iterator<Item = &'static Article> {
    parsed().iter().flat_map(|f| {
        f.records.iter().filter_map(|r| match r {
            Record::Article(a) => Some(a.as_ref()),
            Record::Delete(_) => None,
        })
    })
}

fn article(pmid: u64) -> &'static Article {
    articles()
        .filter(|a| a.pmid == pmid)
        .last()
        .unwrap_or_else(|| panic!("PMID {pmid} not in the sample"))
}

/// Counts from a text scan, independent of the XML parser.
#[derive(Debug, PartialEq)]
struct Independent {
    records: u64,
    distinct: u64,
    with_abstract: u64,
    deletions: u64,
}

fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let a = s.find(open)? + open.len();
    let b = s[a..].find(close)? + a;
    Some(&s[a..b])
}

fn strip_tags(s: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

fn independent_counts() -> Independent {
    let mut latest: HashMap<String, bool> = HashMap::new();
    let mut records = 0;
    let mut deletions = 0;
    for path in sample() {
        let mut xml = String::new();
        flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
            .read_to_string(&mut xml)
            .unwrap();
        for block in xml.split("<PubmedArticle>").skip(1) {
            let block = block.split("</PubmedArticle>").next().unwrap();
            records += 1;
            // The citation's own PMID is the first PMID element of the record.
            let pmid_tag = between(block, "<PMID", "</PMID>").unwrap();
            let pmid = pmid_tag.rsplit('>').next().unwrap().to_string();
            let has_abstract = between(block, "<Abstract>", "</Abstract>")
                .map(|a| {
                    // Copyright notes sit inside <Abstract> but are not abstract text.
                    let text_only: String = a
                        .split("<AbstractText")
                        .skip(1)
                        .map(|t| t.split("</AbstractText>").next().unwrap_or(""))
                        .map(|t| match t.split_once('>') {
                            // `<AbstractText/>` is empty.
                            Some((attrs, _)) if attrs.ends_with('/') => "",
                            Some((_, text)) => text,
                            None => "",
                        })
                        .collect();
                    !strip_tags(&text_only).trim().is_empty()
                })
                .unwrap_or(false);
            latest.insert(pmid, has_abstract);
        }
        if let Some(del) = between(&xml, "<DeleteCitation>", "</DeleteCitation>") {
            for p in del.split("<PMID").skip(1) {
                deletions += 1;
                let pmid = between(p, ">", "</PMID").unwrap();
                latest.remove(pmid);
            }
        }
    }
    Independent {
        records,
        distinct: latest.len() as u64,
        with_abstract: latest.values().filter(|&&b| b).count() as u64,
        deletions,
    }
}

#[test]
fn counts_match_the_issue_and_an_independent_scan() {
    let dir = tempfile::tempdir().unwrap();
    let report = build_index(
        &BuildOptions {
            mode: Default::default(),
            inputs: sample().to_vec(),
            index_dir: dir.path().join("index"),
            writer_memory_mib: 128,
            dense: None,
        },
        &|_| {},
    )
    .unwrap();
    let c = report.counts;
    let ind = independent_counts();
    assert_eq!(
        ind,
        Independent {
            records: c.records_read,
            distinct: c.indexed,
            with_abstract: c.with_abstract,
            deletions: c.deleted,
        }
    );
    // The figures stated for the sample.
    assert_eq!(c.records_read, 50_788);
    assert_eq!(c.indexed, 50_783);
    assert_eq!(c.with_abstract, 33_272);
    assert_eq!(c.replaced, 5);
    assert_eq!(c.deleted, 20);
    assert_eq!(c.rejected, 0);
    assert!(report.rejected.is_empty());
}

#[test]
fn structured_abstract_keeps_labels_in_order() {
    let a = article(10704411);
    assert_eq!(
        a.title,
        "Dopamine modulates acute responses to cocaine, nicotine and ethanol in Drosophila."
    );
    let lines: Vec<&str> = a.abstract_text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("BACKGROUND: Drugs of abuse have a common property"));
    assert!(lines[1].starts_with("RESULTS: We present evidence"));
    assert!(lines[2].starts_with("CONCLUSIONS: We show that in Drosophila"));
    assert_eq!(a.journal, "Current biology : CB");
    assert_eq!(a.journal_iso, "Curr Biol");
    assert_eq!(a.year, Some(2000));
}

#[test]
fn a_later_version_replaces_the_earlier_record() {
    let versions: Vec<u32> = articles()
        .filter(|a| a.pmid == 30271887)
        .map(|a| a.version)
        .collect();
    assert_eq!(
        versions,
        vec![1, 2, 3, 4],
        "all four versions are read, in file order"
    );
    // The indexed record is the last one: check through the index, by PMID term.
    let dir = tempfile::tempdir().unwrap();
    let index_dir = dir.path().join("index");
    build_index(
        &BuildOptions {
            mode: Default::default(),
            inputs: vec![sample()[1].clone()],
            index_dir: index_dir.clone(),
            writer_memory_mib: 64,
            dense: None,
        },
        &|_| {},
    )
    .unwrap();
    let layout = medlit_indexer::IndexDir::new(&index_dir);
    let m = layout.manifest().unwrap();
    let (index, fields) = medlit_indexer::bm25::open(&layout.bm25_dir(&m)).unwrap();
    let searcher = index.reader().unwrap().searcher();
    let term = tantivy::Term::from_field_text(fields.pmid, "30271887");
    let q = tantivy::query::TermQuery::new(term, tantivy::schema::IndexRecordOption::Basic);
    let n = searcher.search(&q, &tantivy::collector::Count).unwrap();
    assert_eq!(n, 1, "one live document per PMID");
}

#[test]
fn inline_markup_and_mathml_become_text() {
    let crb = articles()
        .find(|a| a.abstract_text.contains("novel zebrafish crb2b allele"))
        .expect("the crb2b abstract");
    assert!(
        crb.abstract_text
            .contains("novel zebrafish crb2b allele (crb2be40 ), which specifically"),
        "{}",
        crb.abstract_text
    );
    let echo = articles()
        .find(|a| a.abstract_text.contains("Our deep learning model, EchoNet"))
        .expect("the EchoNet abstract");
    assert!(
        echo.abstract_text
            .contains("diastolic volumes ( R 2 = 0.74 and R 2 = 0.70)"),
        "{}",
        echo.abstract_text
    );
    assert!(!echo.abstract_text.contains('<'));
}

#[test]
fn metadata_fields_are_filled() {
    let with_mesh = articles().filter(|a| !a.mesh.is_empty()).count();
    let with_major = articles()
        .filter(|a| a.mesh.iter().any(|m| m.major))
        .count();
    let with_doi = articles().filter(|a| a.doi.is_some()).count();
    assert!(with_mesh > 25_000, "{with_mesh}");
    assert!(with_major > 20_000, "{with_major}");
    assert!(with_doi > 15_000, "{with_doi}");
    let langs: HashSet<&str> = articles()
        .flat_map(|a| a.languages.iter().map(String::as_str))
        .collect();
    assert!(langs.contains("eng") && langs.contains("ger"), "{langs:?}");
    assert!(articles().all(|a| a.pmid > 0));
    let no_year = articles().filter(|a| a.year.is_none()).count();
    assert_eq!(no_year, 0, "every record has PubDate/Year or a MedlineDate");
}
