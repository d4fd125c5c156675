//! Field filters on the real sample: flags and PubMed field tags give the same articles,
//! every result passes its filter, a bad tag is named, and on a hybrid index the dense half
//! is filtered before fusion, so k results come back.
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use crate::common::*;

fn search(args: &[&str], idx: &str) -> Vec<Value> {
    let mut all = vec!["search", "--index", idx, "--json"];
    all.extend_from_slice(args);
    ok_json(&all)["hits"].as_array().unwrap().clone()
}

fn records(pmids: &[&str], idx: &str) -> Vec<Value> {
    let mut args = vec!["show", "--index", idx, "--json"];
    args.extend_from_slice(pmids);
    ok_json(&args)["articles"].as_array().unwrap().clone()
}

fn pmids(hits: &[Value]) -> Vec<&str> {
    hits.iter().map(|h| h["pmid"].as_str().unwrap()).collect()
}

#[test]
fn every_result_passes_its_filter_and_tags_equal_flags() {
    let idx = index_arg();
    let mesh = search(&["brucella", "-k", "8", "--mesh", "Brucella"], &idx);
    assert_eq!(mesh.len(), 8, "the sample has more than 8 such articles");
    for r in records(&pmids(&mesh), &idx) {
        assert!(
            r["mesh"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["descriptor"] == "Brucella"),
            "{r}"
        );
    }
    let tagged = search(&["brucella[mh]", "AND", "brucella", "-k", "8"], &idx);
    assert_eq!(pmids(&tagged), pmids(&mesh));

    let major = search(&["brucella", "-k", "20", "--mesh-major", "brucella"], &idx);
    assert!(!major.is_empty() && major.len() <= mesh.len().max(20));
    for r in records(&pmids(&major), &idx) {
        assert!(
            r["mesh"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["descriptor"] == "Brucella" && m["major"] == true),
            "{r}"
        );
    }

    // Reviews of 2021 in English with an abstract, by flags and by tags.
    let flags = search(
        &[
            "infection",
            "-k",
            "6",
            "--pub-type",
            "Review",
            "--year",
            "2021",
            "--lang",
            "english",
            "--has-abstract",
        ],
        &idx,
    );
    assert_eq!(flags.len(), 6);
    for r in records(&pmids(&flags), &idx) {
        assert_eq!(r["year"], 2021, "{r}");
        assert!(
            r["publication_types"]
                .as_array()
                .unwrap()
                .contains(&Value::from("Review")),
            "{r}"
        );
        assert_eq!(r["languages"][0], "eng", "{r}");
        assert!(!r["sections"].as_array().unwrap().is_empty(), "{r}");
    }
    let tags = search(
        &[
            "infection review[pt] 2021[dp] eng[la] hasabstract",
            "-k",
            "6",
        ],
        &idx,
    );
    assert_eq!(pmids(&tags), pmids(&flags));

    // An author by last name, and narrowed by initials.
    let by_name = search(&["erythritol", "--author", "Tripathi"], &idx);
    assert_eq!(pmids(&by_name), ["403714"]);
    assert!(search(&["erythritol", "--author", "tripathi x"], &idx).is_empty());
    // Only field tags: the filtered articles, newest first.
    let only = search(&["brucella[mh]", "-k", "5"], &idx);
    assert_eq!(only.len(), 5);
    let years: Vec<i64> = only.iter().map(|h| h["year"].as_i64().unwrap()).collect();
    assert!(years.windows(2).all(|w| w[0] >= w[1]), "{years:?}");
}

#[test]
fn a_bad_field_tag_or_value_is_named() {
    let idx = index_arg();
    let out = medlit(&["search", "--index", &idx, "asthma[xyz]"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("unknown field tag [xyz]"),
        "{}",
        stderr(&out)
    );
    let out = medlit(&["search", "--index", &idx, "asthma 20x1[dp]"]);
    assert!(stderr(&out).contains("[dp]:"), "{}", stderr(&out));
    let out = medlit(&[
        "search", "--index", &idx, "asthma", "--year", "2021", "2015[dp]",
    ]);
    assert!(stderr(&out).contains("do not overlap"), "{}", stderr(&out));
}

/// The first `n` citations of the sample's 2021 file as an XML file of their own.
fn first_records(n: usize, to: &Path) {
    sample_index();
    let gz = medlit_corpus::MedlitHome::from_env()
        .unwrap()
        .assets()
        .join("corpus/pubmed21n1298.xml.gz");
    let out = Command::new("gzip").arg("-dc").arg(&gz).output().unwrap();
    assert!(out.status.success(), "gzip -dc {}", gz.display());
    let xml = String::from_utf8(out.stdout).unwrap();
    let start = xml.find("<PubmedArticle>").unwrap();
    let mut end = start;
    for _ in 0..n {
        end = xml[end..]
            .find("</PubmedArticle>")
            .map(|i| end + i + "</PubmedArticle>".len())
            .unwrap();
    }
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PubmedArticleSet>\n{}\n</PubmedArticleSet>\n",
        &xml[start..end]
    );
    std::fs::write(to, body).unwrap();
}

/// A hybrid index of the sample's first 400 citations of 2021.
fn hybrid_subset() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        fetch_embedder();
        let dir = tempfile::tempdir().unwrap();
        let xml = dir.path().join("first400.xml");
        first_records(400, &xml);
        let idx = dir.path().join("index");
        let r = ok_json(&[
            "index",
            "--index",
            idx.to_str().unwrap(),
            "--json",
            xml.to_str().unwrap(),
        ]);
        assert_eq!(r["records_read"], 400, "{r}");
        dir
    })
    .path()
}

#[test]
fn hybrid_search_filters_the_dense_half_before_fusion() {
    let idx = hybrid_subset().join("index");
    let idx = idx.to_str().unwrap();
    let k = 8;
    let filtered = search(
        &[
            "treatment of patients",
            "-k",
            "8",
            "--mode",
            "hybrid",
            "--pub-type",
            "Review",
        ],
        idx,
    );
    let reviews = records(&pmids(&filtered), idx);
    assert_eq!(filtered.len(), k, "k reviews come back: {filtered:?}");
    for r in &reviews {
        assert!(
            r["publication_types"]
                .as_array()
                .unwrap()
                .contains(&Value::from("Review")),
            "{r}"
        );
    }
    // Both halves contributed filtered candidates.
    assert!(
        filtered.iter().any(|h| h["dense_rank"].is_u64()),
        "{filtered:?}"
    );
    assert!(
        filtered.iter().any(|h| h["bm25_rank"].is_u64()),
        "{filtered:?}"
    );
    // Filtering after fusion instead would keep fewer: the unfiltered top k holds other types.
    let unfiltered = search(
        &["treatment of patients", "-k", "8", "--mode", "hybrid"],
        idx,
    );
    let kept = records(&pmids(&unfiltered), idx)
        .iter()
        .filter(|r| {
            r["publication_types"]
                .as_array()
                .unwrap()
                .contains(&Value::from("Review"))
        })
        .count();
    assert!(
        kept < k,
        "the test query must not be all reviews unfiltered ({kept})"
    );
    // Dense mode alone is filtered too.
    let dense = search(
        &[
            "treatment of patients",
            "-k",
            "5",
            "--mode",
            "dense",
            "--pub-type",
            "Review",
        ],
        idx,
    );
    assert_eq!(dense.len(), 5);
    for r in records(&pmids(&dense), idx) {
        assert!(
            r["publication_types"]
                .as_array()
                .unwrap()
                .contains(&Value::from("Review")),
            "{r}"
        );
    }
}

#[test]
fn similar_on_a_hybrid_index_fuses_the_passages_vectors_with_the_words() {
    let idx = hybrid_subset().join("index");
    let idx = idx.to_str().unwrap();
    let first = search(
        &["treatment of patients", "-k", "1", "--mode", "hybrid"],
        idx,
    );
    let pmid = first[0]["pmid"].as_str().unwrap();
    let v = ok_json(&["similar", pmid, "-k", "6", "--index", idx, "--json"]);
    assert_eq!(v["mode"], "hybrid");
    let hits = v["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 6, "{v}");
    assert!(hits.iter().all(|h| h["pmid"] != pmid), "{v}");
    assert!(hits.iter().any(|h| h["dense_rank"].is_u64()), "{v}");
    assert!(hits.iter().any(|h| h["bm25_rank"].is_u64()), "{v}");
    let sims: Vec<f64> = hits
        .iter()
        .filter_map(|h| h["similarity"].as_f64())
        .collect();
    assert!(sims.iter().all(|s| (-1.0..=1.0).contains(s)), "{sims:?}");
}
