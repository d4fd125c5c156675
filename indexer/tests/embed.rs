//! The MiniLM embedder on the real model and real abstracts that `medlit fetch` brings.

use std::sync::{Mutex, OnceLock};

mod common;

use common::{assets, config};
use medlit_indexer::embed::{dot, EmbedError, Embedder, OnnxEmbedder};
use medlit_indexer::pubmed::{parse_file, Record};
use medlit_indexer::Article;

fn embedder() -> &'static Mutex<OnnxEmbedder> {
    static E: OnceLock<Mutex<OnnxEmbedder>> = OnceLock::new();
    E.get_or_init(|| Mutex::new(OnnxEmbedder::load(&config()).expect("loading MiniLM")))
}

fn article(pmid: u64) -> Article {
    let path = assets().join("corpus/pubmed20n0014.xml.gz");
    parse_file(&path)
        .unwrap()
        .records
        .into_iter()
        .find_map(|r| match r {
            Record::Article(a) if a.pmid == pmid => Some(*a),
            _ => None,
        })
        .unwrap_or_else(|| panic!("PMID {pmid} not in the sample"))
}

fn text(a: &Article) -> String {
    format!("{}\n{}", a.title, a.abstract_text)
}

#[test]
fn vectors_are_unit_length_384_wide_and_deterministic() {
    let mut e = embedder().lock().unwrap();
    assert_eq!(e.info().dim, 384);
    let texts = [
        "Dystrophin is absent in Duchenne muscular dystrophy.",
        "Rifampin cured experimental brucellosis in mice.",
        "β-blockers and µg/kg doses ≥ 5: a résumé 中文",
    ];
    let a = e.embed(&texts).unwrap();
    let b = e.embed(&texts).unwrap();
    assert_eq!(a, b, "the same input gives the same vectors");
    for v in &a {
        assert_eq!(v.len(), 384);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    }
    // Batching must not change a text's vector (padding is masked out by mean pooling).
    let alone = e.embed(&texts[..1]).unwrap();
    let max_diff = alone[0]
        .iter()
        .zip(&a[0])
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(max_diff < 1e-4, "{max_diff}");
}

#[test]
fn parallel_sessions_return_each_text_its_own_vector_in_order() {
    let texts: Vec<String> = (0..23)
        .map(|i| format!("Passage {i}: serum level {} of marker {}", i * 7, i % 5))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let one = embedder().lock().unwrap().embed(&refs).unwrap();
    let mut cfg = config();
    cfg.sessions = 2;
    cfg.batch_size = 3; // 8 batches, the last one short, shared by two sessions
    let two = OnnxEmbedder::load(&cfg).unwrap().embed(&refs).unwrap();
    assert_eq!(two.len(), texts.len());
    for (i, (a, b)) in one.iter().zip(&two).enumerate() {
        // One-thread and two-thread sessions may round differently, nothing more.
        let cos = dot(a, b);
        assert!(cos > 0.9999, "text {i}: cosine {cos} between the two runs");
    }
}

#[test]
fn a_question_is_closest_to_its_source_abstract() {
    // dev_qa q0122 and its source, against two other abstracts of the same file.
    let question =
        "In mice infected with Brucella melitensis, three weeks of rifampin cured nearly \
                    all animals, whereas which comparator antibiotic left about 70% with primary \
                    spleen infections?";
    let source = article(409786);
    let others = [article(408356), article(412235)];
    let mut e = embedder().lock().unwrap();
    let docs = [text(&source), text(&others[0]), text(&others[1])];
    let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
    let vecs = e.embed(&refs).unwrap();
    let q = &e.embed(&[question]).unwrap()[0];
    let sims: Vec<f32> = vecs.iter().map(|v| dot(q, v)).collect();
    assert!(sims[0] > sims[1] && sims[0] > sims[2], "{sims:?}");
    // A paraphrase with no shared keywords still prefers the source.
    let para =
        "In rodents given Malta fever, which drug left most with the organism in the spleen?";
    let p = &e.embed(&[para]).unwrap()[0];
    let sims: Vec<f32> = vecs.iter().map(|v| dot(p, v)).collect();
    assert!(sims[0] > sims[1], "{sims:?}");
}

#[test]
fn token_counts_are_not_truncated() {
    let e = embedder().lock().unwrap();
    let long = "muscle ".repeat(600);
    assert!(e.count_tokens(&long) >= 600, "{}", e.count_tokens(&long));
    assert_eq!(e.count_tokens(""), 0);
}

#[test]
fn a_missing_model_is_an_error_naming_the_file() {
    let mut cfg = config();
    let dir = tempfile::tempdir().unwrap();
    cfg.model_dir = dir.path().to_path_buf();
    let Err(err) = OnnxEmbedder::load(&cfg) else {
        panic!("loading from an empty folder must fail")
    };
    assert!(matches!(err, EmbedError::Missing { .. }), "{err}");
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
}

#[test]
fn hnsw_finds_the_exact_top_10_on_real_vectors() {
    use medlit_indexer::dense::{write, DenseIndex, HnswParams, RowRef};
    // Titles of the 2020 file: real text, short enough to embed thousands in a test.
    let path = assets().join("corpus/pubmed20n0014.xml.gz");
    let titles: Vec<(u64, String)> = parse_file(&path)
        .unwrap()
        .records
        .into_iter()
        .filter_map(|r| match r {
            Record::Article(a) if !a.title.is_empty() => Some((a.pmid, a.title)),
            _ => None,
        })
        .take(4100)
        .collect();
    let (queries, docs) = titles.split_at(100);
    let mut e = embedder().lock().unwrap();
    let doc_refs: Vec<&str> = docs.iter().map(|(_, t)| t.as_str()).collect();
    let vectors = e.embed(&doc_refs).unwrap();
    let rows: Vec<RowRef> = docs
        .iter()
        .map(|(pmid, _)| RowRef {
            pmid: *pmid,
            passage_no: 0,
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let info = e.info().clone();
    write(dir.path(), &info, &rows, &vectors, HnswParams::default()).unwrap();
    let index = DenseIndex::open(dir.path(), &info).unwrap();
    let q_refs: Vec<&str> = queries.iter().map(|(_, t)| t.as_str()).collect();
    let qv = e.embed(&q_refs).unwrap();
    let mut found = 0;
    for q in &qv {
        let exact: Vec<usize> = index.exact(q, 10).into_iter().map(|(i, _)| i).collect();
        let approx: Vec<usize> = index
            .search(q, 10, None)
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        found += exact.iter().filter(|i| approx.contains(i)).count();
    }
    let recall = found as f64 / (10 * qv.len()) as f64;
    eprintln!("HNSW recall@10 on 4,000 real title vectors: {recall:.3}");
    assert!(recall >= 0.95, "HNSW recall@10 {recall}");
    // Every row maps back to its article.
    assert_eq!(index.row(0).map(|r| r.pmid), Some(docs[0].0));
}
