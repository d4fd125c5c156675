//! PMID lookups on the real sample: `show` in every format, `--export` of search results,
//! each export read back by another project's reader, and the parser against pubmed_parser.
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::common::*;

/// A structured abstract; MeSH majors, volume, issue and pages; a group author; a `%` and
/// a `&` in titles (BibTeX escapes); a title with a quote mark.
const PMIDS: [&str; 6] = [
    "34097252", "403714", "31719001", "402124", "401804", "401079",
];

fn show_json(pmids: &[&str]) -> Value {
    let idx = index_arg();
    let mut args = vec!["show", "--index", &idx, "--json"];
    args.extend_from_slice(pmids);
    ok_json(&args)
}

#[test]
fn show_prints_the_whole_record_and_names_a_missing_pmid() {
    let v = show_json(&["34097252", "403714"]);
    let a = &v["articles"][0];
    assert_eq!(a["pmid"], "34097252");
    assert_eq!(a["complete"], true);
    let labels: Vec<&str> = a["sections"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["label"].as_str())
        .collect();
    assert_eq!(
        labels,
        [
            "BACKGROUND",
            "OBJECTIVE",
            "METHODS",
            "RESULTS",
            "CONCLUSION"
        ]
    );
    assert!(a["sections"][0]["text"]
        .as_str()
        .unwrap()
        .starts_with("Population stratification"));
    assert_eq!(a["authors"][0]["last"], "Zhang");
    assert_eq!(a["authors"][0]["initials"], "W");
    assert_eq!(a["doi"], "10.1007/s13258-021-01057-4");
    assert_eq!(a["url"], "https://pubmed.ncbi.nlm.nih.gov/34097252/");
    assert!(a["keywords"]
        .as_array()
        .unwrap()
        .contains(&Value::from("Random forest")));

    let b = &v["articles"][1];
    assert_eq!(
        (&b["volume"], &b["issue"], &b["pages"]),
        (&"237".into(), &"2-3".into(), &"324-9".into())
    );
    let major = |name: &str| {
        b["mesh"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["descriptor"] == name)
            .map(|m| m["major"].clone())
    };
    assert_eq!(major("Brucella"), Some(Value::Bool(true)));
    assert_eq!(major("Animals"), Some(Value::Bool(false)));
    assert_eq!(b["languages"][0], "eng");
    assert_eq!(b["publication_types"][0], "Journal Article");
    assert!(v["missing"].as_array().unwrap().is_empty());

    // A PMID the index lacks: named, exit 1, and the others still print.
    let idx = index_arg();
    let out = medlit(&["show", "--index", &idx, "403714", "999999999"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("PMID 999999999 is not in the index"),
        "{}",
        stderr(&out)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("PMID 403714"), "{text}");
    assert!(
        text.contains("MeSH (* major topic): Amniotic Fluid*; Animals"),
        "{text}"
    );
    // Not a PMID at all: refused before the index is opened.
    let out = medlit(&["show", "--index", &idx, "12ab"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("\"12ab\" is not a PMID"),
        "{}",
        stderr(&out)
    );
}

/// A Python with the readers, in a virtual environment of the tests' own.
fn readers_python() -> PathBuf {
    test_python(
        "reference-readers-1",
        &[
            "rispy==0.9.0",
            "bibtexparser==1.4.3",
            "citeproc-py==0.8.2",
            "biopython==1.85",
        ],
        "rispy, bibtexparser, citeproc, Bio",
    )
}

#[test]
fn every_export_format_is_read_back_by_another_projects_reader() {
    let dir = tempfile::tempdir().unwrap();
    let idx = index_arg();
    for (format, file) in [
        ("ris", "refs.ris"),
        ("bibtex", "refs.bib"),
        ("csl-json", "refs.json"),
        ("medline", "refs.nbib"),
    ] {
        let mut args = vec!["show", "--index", &idx, "--format", format];
        args.extend_from_slice(&PMIDS);
        let out = medlit(&args);
        assert!(out.status.success(), "{format}: {}", stderr(&out));
        std::fs::write(dir.path().join(file), &out.stdout).unwrap();
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/reference_readers.py");
    let out = Command::new(readers_python())
        .arg(&script)
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "the readers failed: {}", stderr(&out));
    let read: Value = serde_json::from_slice(&out.stdout).unwrap();
    let want = show_json(&PMIDS);
    let want = want["articles"].as_array().unwrap();
    assert_eq!(want.len(), PMIDS.len());

    for (name, records) in [
        ("ris", &read["ris"]),
        ("bibtex", &read["bibtex"]),
        ("medline", &read["medline"]),
    ] {
        let records = records.as_array().unwrap();
        assert_eq!(records.len(), want.len(), "{name}: {read}");
        for (r, a) in records.iter().zip(want) {
            assert_eq!(r["pmid"], a["pmid"], "{name}");
            let title = r["title"].as_str().unwrap_or_default();
            assert_eq!(
                title,
                a["title"].as_str().unwrap(),
                "{name} title of {}",
                a["pmid"]
            );
            let people = a["authors"].as_array().unwrap();
            let n_read =
                r["authors"].as_array().unwrap().len() + r["groups"].as_array().map_or(0, Vec::len);
            assert_eq!(n_read, people.len(), "{name} authors of {}: {r}", a["pmid"]);
            if let Some(doi) = a["doi"].as_str() {
                assert!(
                    r["doi"].as_str().unwrap_or_default().contains(doi),
                    "{name}: {r}"
                );
            }
            let sections = a["sections"].as_array().unwrap();
            if let Some(last) = sections.last() {
                let tail = last["text"].as_str().unwrap();
                let tail = &tail[tail.len().saturating_sub(40)..];
                assert!(
                    r["abstract"].as_str().unwrap_or_default().ends_with(tail),
                    "{name} abstract of {}: {r}",
                    a["pmid"]
                );
            }
        }
    }
    // RIS and BibTeX: "Last, First"; a group author stays one name.
    assert_eq!(read["ris"][0]["authors"][0], "Zhang, Weiwen");
    assert_eq!(read["bibtex"][1]["pages"], "324--329");
    assert_eq!(read["ris"][1]["end_page"], "329");
    assert!(read["medline"][1]["mesh"]
        .as_array()
        .unwrap()
        .contains(&Value::from("*Brucella")));
    // CSL-JSON: a citation processor renders one entry per item, with its title.
    let bib = read["csl"]["bibliography"].as_array().unwrap();
    assert_eq!(bib.len(), want.len(), "{read}");
    for a in want {
        let title = a["title"].as_str().unwrap().trim_end_matches('.');
        let words: Vec<&str> = title.split_whitespace().take(4).collect();
        assert!(
            bib.iter()
                .any(|e| e.as_str().unwrap().contains(&words.join(" "))),
            "no rendered entry has {:?}: {bib:?}",
            words
        );
    }
}

#[test]
fn search_exports_its_results_and_never_replaces_a_file_unasked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hits.ris");
    let f = file.to_str().unwrap();
    let idx = index_arg();
    let v = ok_json(&[
        "search",
        "brucella",
        "melitensis",
        "--index",
        &idx,
        "-k",
        "4",
        "--export",
        "ris",
        f,
        "--json",
    ]);
    let ris = std::fs::read_to_string(&file).unwrap();
    let exported: Vec<&str> = ris
        .lines()
        .filter_map(|l| l.strip_prefix("AN  - "))
        .collect();
    let hits: Vec<&str> = v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["pmid"].as_str().unwrap())
        .collect();
    assert_eq!(exported, hits);
    assert_eq!(ris.matches("ER  - ").count(), 4);

    // The file exists now: refused before searching, and left as it was.
    let out = medlit(&[
        "search", "brucella", "--index", &idx, "--export", "bibtex", f,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("pass --overwrite"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), ris);
    // A format no reference manager reads is named.
    let out = medlit(&[
        "search", "brucella", "--index", &idx, "--export", "endnote", f,
    ]);
    assert!(
        stderr(&out).contains("\"endnote\" is not an export format"),
        "{}",
        stderr(&out)
    );
    // A folder, or a file in a folder that does not exist: refused before searching.
    let out = medlit(&[
        "search",
        "brucella",
        "--index",
        &idx,
        "--export",
        "ris",
        dir.path().to_str().unwrap(),
    ]);
    assert!(
        stderr(&out).contains("is a folder, not a file"),
        "{}",
        stderr(&out)
    );
    let nowhere = dir.path().join("missing/refs.ris");
    let out = medlit(&[
        "search",
        "brucella",
        "--index",
        &idx,
        "--export",
        "ris",
        nowhere.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    assert!(!nowhere.exists());
    // With --overwrite it is replaced.
    let out = medlit(&[
        "search",
        "brucella",
        "--index",
        &idx,
        "-k",
        "2",
        "--export",
        "bibtex",
        f,
        "--overwrite",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bib = std::fs::read_to_string(&file).unwrap();
    assert_eq!(bib.matches("@article{pmid").count(), 2);
}

#[test]
fn the_parser_agrees_with_pubmed_parser_on_every_field_of_the_sample() {
    sample_index();
    let v = ok_json(&["bench", "ingest", "--compare", "--json"]);
    assert_eq!(v["medlit_records"], 50_788, "{v}");
    assert_eq!(v["peer_records"], 50_788, "{v}");
    assert_eq!(v["compared"], 50_788, "{v}");
    assert_eq!(v["unexplained"], 0, "{v}");
    let fields: Vec<&str> = v["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    for f in [
        "title",
        "abstract",
        "authors",
        "journal",
        "year",
        "mesh",
        "mesh_major",
        "publication_types",
        "keywords",
        "doi",
        "pmc",
        "languages",
        "volume_issue",
        "pages",
    ] {
        assert!(fields.contains(&f), "{f} not compared: {fields:?}");
    }
    // Most records agree on every field; each cause is explained.
    for f in v["fields"].as_array().unwrap() {
        if f["field"] != "issue_without_volume" {
            assert!(f["agree"].as_u64().unwrap() > 25_000, "{f}");
        }
    }
    for (cause, text) in v["causes"].as_object().unwrap() {
        assert!(text.as_str().unwrap().len() > 40, "{cause}");
    }
}

#[test]
fn similar_finds_articles_on_the_same_subject_and_leaves_the_article_out() {
    let idx = index_arg();
    // An ivermectin trial for COVID-19 in the sample.
    let v = ok_json(&["similar", "34076901", "-k", "5", "--index", &idx, "--json"]);
    assert_eq!(v["pmid"], "34076901");
    assert_eq!(v["mode"], "bm25");
    let hits = v["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 5);
    assert!(hits.iter().all(|h| h["pmid"] != "34076901"), "{v}");
    let on_subject = hits
        .iter()
        .filter(|h| {
            h["title"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .contains("ivermectin")
        })
        .count();
    assert!(
        on_subject >= 3,
        "most similar articles are about ivermectin: {v}"
    );
    let out = medlit(&["similar", "999999999", "--index", &idx]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("PMID 999999999 is not in the index"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn ask_filters_its_evidence_and_exports_the_references_it_cites() {
    let idx = index_path();
    let idx = idx.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cited.json");
    let a = ok_json(&[
        "ask",
        BRUCELLA,
        "--index",
        idx,
        "--mesh",
        "Brucellosis",
        "--export",
        "csl-json",
        file.to_str().unwrap(),
        "--json",
    ]);
    let evidence: Vec<&str> = a["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pmid"].as_str().unwrap())
        .collect();
    assert!(!evidence.is_empty(), "{a}");
    let idx_s = idx.to_string();
    let mut show = vec!["show", "--index", &idx_s, "--json"];
    show.extend_from_slice(&evidence);
    for r in ok_json(&show)["articles"].as_array().unwrap() {
        assert!(
            r["mesh"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["descriptor"] == "Brucellosis"),
            "evidence outside the filter: {r}"
        );
    }
    let cited: Vec<String> = a["citations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("pmid:{}", c["pmid"].as_str().unwrap()))
        .collect();
    let items: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let ids: Vec<String> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ids, cited,
        "the export holds exactly the cited references: {a}"
    );
    assert!(
        !cited.is_empty(),
        "the sample answers this question with a citation: {a}"
    );
}
