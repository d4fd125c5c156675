//! `medlit index --update` and `medlit compact`: an index built from a baseline and updated
//! file by file ends where a build of all the files ends, in BM25 and in the dense half;
//! applied files are skipped, out-of-order and changed files refused, tombstones never
//! returned, and compaction drops them without changing what is found.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

mod common;

use common::assets;
use medlit_indexer::dense::{DenseIndex, HnswParams};
use medlit_indexer::embed::Embedder;
use medlit_indexer::minilm::MiniLmInt8;
use medlit_indexer::{build_index, BuildMode, BuildOptions, DenseOptions, IndexDir};

fn sample() -> [PathBuf; 2] {
    let a = assets();
    [
        a.join("corpus/pubmed20n0014.xml.gz"),
        a.join("corpus/pubmed21n1298.xml.gz"),
    ]
}

/// A PubMed file of `(pmid, title, abstract)` records and a `DeleteCitation` list.
fn pubmed_xml(path: &Path, records: &[(u64, &str, &str)], deleted: &[u64]) -> PathBuf {
    let mut x = String::from("<?xml version=\"1.0\"?>\n<PubmedArticleSet>\n");
    for (pmid, title, abs) in records {
        x += &format!(
            "<PubmedArticle><MedlineCitation Status=\"MEDLINE\" Owner=\"NLM\"><PMID Version=\"1\">{pmid}</PMID>\
             <Article><Journal><JournalIssue><PubDate><Year>2020</Year></PubDate></JournalIssue>\
             <Title>J Test</Title></Journal><ArticleTitle>{title}</ArticleTitle>\
             <Abstract><AbstractText>{abs}</AbstractText></Abstract></Article></MedlineCitation></PubmedArticle>\n"
        );
    }
    if !deleted.is_empty() {
        x += "<DeleteCitation>";
        for d in deleted {
            x += &format!("<PMID Version=\"1\">{d}</PMID>");
        }
        x += "</DeleteCitation>\n";
    }
    x += "</PubmedArticleSet>\n";
    std::fs::write(path, x).unwrap();
    path.to_path_buf()
}

fn opts(index: &Path, inputs: Vec<PathBuf>, mode: BuildMode) -> BuildOptions {
    BuildOptions {
        inputs,
        index_dir: index.to_path_buf(),
        writer_memory_mib: 64,
        dense: None,
        mode,
    }
}

const UPDATE: BuildMode = BuildMode::Update { force: false };
const FORCE: BuildMode = BuildMode::Update { force: true };

/// Every live PMID of the index.
fn pmids(index: &Path) -> BTreeSet<u64> {
    let layout = IndexDir::new(index);
    let m = layout.manifest().unwrap();
    medlit_indexer::bm25::live_pmids(&layout.bm25_dir(&m))
        .unwrap()
        .into_iter()
        .collect()
}

#[test]
fn the_sample_updated_file_by_file_equals_a_build_of_both() {
    let dir = tempfile::tempdir().unwrap();
    let [base, update] = sample();
    let whole = dir.path().join("whole");
    let full = build_index(
        &opts(&whole, vec![base.clone(), update.clone()], BuildMode::Build),
        &|_| {},
    )
    .unwrap();

    let inc = dir.path().join("inc");
    build_index(&opts(&inc, vec![base.clone()], BuildMode::Build), &|_| {}).unwrap();
    let r = build_index(&opts(&inc, vec![update.clone()], UPDATE), &|_| {}).unwrap();
    assert_eq!(r.applied, vec!["pubmed21n1298.xml.gz".to_string()]);
    assert_eq!(r.counts, full.counts, "totals equal a build of both files");
    assert_eq!(r.run.deleted, 20);
    assert_eq!(r.run.replaced, 5);
    assert_eq!(pmids(&inc), pmids(&whole));
    assert!(medlit_indexer::verify::verify(&inc).unwrap().ok);

    // Applied again (same name and sha256): skipped, nothing written.
    let generation = IndexDir::new(&inc).manifest().unwrap().generation;
    let again = build_index(
        &opts(&inc, vec![base.clone(), update.clone()], UPDATE),
        &|_| {},
    )
    .unwrap();
    assert_eq!(again.skipped.len(), 2);
    assert_eq!(again.run.files, 0);
    assert_eq!(
        IndexDir::new(&inc).manifest().unwrap().generation,
        generation
    );

    // Out of order: the 2020 file after the 2021 one is refused, then forced.
    let rev = dir.path().join("rev");
    build_index(&opts(&rev, vec![update.clone()], BuildMode::Build), &|_| {}).unwrap();
    let before = IndexDir::new(&rev).manifest().unwrap();
    let err = build_index(&opts(&rev, vec![base.clone()], UPDATE), &|_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("pubmed20n0014.xml.gz is older than pubmed21n1298.xml.gz"),
        "{err}"
    );
    assert!(err.contains("--force"), "{err}");
    assert_eq!(IndexDir::new(&rev).manifest().unwrap(), before);
    let forced = build_index(&opts(&rev, vec![base.clone()], FORCE), &|_| {}).unwrap();
    assert_eq!(forced.counts.indexed, full.counts.indexed);

    // A file with an applied name but other content is refused.
    let changed = dir.path().join("changed");
    std::fs::create_dir_all(&changed).unwrap();
    let fake = pubmed_xml(&changed.join("pubmed21n1298.xml.gz"), &[(1, "t", "a")], &[]);
    let err = build_index(&opts(&inc, vec![fake], UPDATE), &|_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("applied before with sha256") && err.contains("--force"),
        "{err}"
    );

    // No index to update: named.
    let err = build_index(&opts(&dir.path().join("none"), vec![base], UPDATE), &|_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("no index here"), "{err}");
}

/// Revisions and deletions across files reach the dense half: the old passages of a revised
/// or deleted PMID are tombstoned and never returned, the new ones are found, the result
/// equals a fresh build of the same files, and compaction drops the tombstones.
#[test]
fn dense_updates_tombstone_old_passages_and_compaction_drops_them() {
    let dir = tempfile::tempdir().unwrap();
    let f = |name: &str| dir.path().join(name);
    let day0 = pubmed_xml(
        &f("pubmed90n0001.xml"),
        &[
            (101, "Dystrophin is absent in Duchenne muscular dystrophy.", "Muscle biopsies of boys with Duchenne muscular dystrophy lacked dystrophin protein entirely."),
            (102, "Rifampin in experimental brucellosis.", "Rifampin cured nearly all infected mice while tetracycline did not."),
            (103, "Aspirin and platelet aggregation.", "Low-dose aspirin irreversibly inhibited platelet cyclooxygenase in healthy volunteers."),
        ],
        &[],
    );
    // Revises 102 (now about malaria), deletes 103, adds 104.
    let day1 = pubmed_xml(
        &f("pubmed90n0002.xml"),
        &[
            (102, "Artemisinin therapy for falciparum malaria.", "Artemisinin combination therapy cleared Plasmodium falciparum parasitaemia within three days."),
            (104, "Insulin resistance in obesity.", "Adipose tissue inflammation drives insulin resistance in obese adults."),
        ],
        &[103],
    );
    let dense = DenseOptions {
        embedder: medlit_indexer::embed::EncoderConfig::Int8(common::int8_config()),
        params: HnswParams::default(),
    };
    let with_dense = |index: &Path, inputs: Vec<PathBuf>, mode| BuildOptions {
        dense: Some(dense.clone()),
        ..opts(index, inputs, mode)
    };
    let inc = f("inc");
    build_index(
        &with_dense(&inc, vec![day0.clone()], BuildMode::Build),
        &|_| {},
    )
    .unwrap();
    let r = build_index(&with_dense(&inc, vec![day1.clone()], UPDATE), &|_| {}).unwrap();
    assert_eq!((r.run.added, r.run.replaced, r.run.removed), (1, 1, 1));
    assert_eq!(r.run.passages_tombstoned, 2, "102's and 103's old passages");
    let d = r.dense.clone().unwrap();
    assert_eq!((d.rows, d.dead), (5, 2));
    assert!(medlit_indexer::verify::verify(&inc).unwrap().ok);
    assert_eq!(pmids(&inc), BTreeSet::from([101, 102, 104]));

    let mut e = MiniLmInt8::load(&common::int8_config()).unwrap();
    let model = e.info().clone();
    let open = |index: &Path| {
        let m = IndexDir::new(index).manifest().unwrap();
        DenseIndex::open(&index.join(m.dense.unwrap().dir), &model).unwrap()
    };
    let top = |idx: &DenseIndex, q: &str, e: &mut MiniLmInt8| {
        let v = e.embed(&[q]).unwrap().pop().unwrap();
        idx.search(&v, 10, None)
            .into_iter()
            .map(|(id, _)| idx.row(id).unwrap().pmid)
            .collect::<Vec<_>>()
    };
    let idx = open(&inc);
    let hits = top(&idx, "rifampin brucellosis mice", &mut e);
    assert_eq!(hits.len(), 3, "only live passages: {hits:?}");
    assert!(!hits.contains(&103), "a deleted PMID is never returned");
    let malaria = top(&idx, "artemisinin for malaria", &mut e);
    assert_eq!(malaria[0], 102, "the revision is found");

    // A fresh build of both files holds the same live passages.
    let whole = f("whole");
    build_index(
        &with_dense(&whole, vec![day0, day1], BuildMode::Build),
        &|_| {},
    )
    .unwrap();
    let live = |idx: &DenseIndex| {
        (0..idx.meta().rows)
            .filter(|&i| !idx.is_dead(i))
            .map(|i| {
                let r = idx.row(i).unwrap();
                (r.pmid, r.passage_no)
            })
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(live(&open(&inc)), live(&open(&whole)));

    // Compaction drops the tombstones and finds the same.
    let c = medlit_indexer::compact(&inc, 64).unwrap();
    assert_eq!(
        (c.passages_before, c.passages_after, c.dead_dropped),
        (5, 3, 2)
    );
    assert_eq!(c.segments_after, 1);
    assert!(medlit_indexer::verify::verify(&inc).unwrap().ok);
    let idx = open(&inc);
    assert_eq!(idx.meta().dead, 0);
    assert_eq!(idx.graph_points(), 3);
    assert_eq!(top(&idx, "artemisinin for malaria", &mut e)[0], 102);
    assert_eq!(pmids(&inc), BTreeSet::from([101, 102, 104]));
}
