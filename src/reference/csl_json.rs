//! CSL-JSON: the item format of citation processors (citeproc-js in Zotero and Mendeley,
//! pandoc's citeproc).
use medlit_indexer::Article;
use serde_json::{json, Map, Value};

/// The articles as one JSON array of `article-journal` items, pretty-printed.
pub fn items(articles: &[Article]) -> String {
    let items: Vec<Value> = articles.iter().map(item).collect();
    let mut s = serde_json::to_string_pretty(&items).unwrap_or_else(|_| "[]".to_string());
    s.push('\n');
    s
}

/// One item; its id is `pmid:NNN`.
pub fn item(a: &Article) -> Value {
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        let empty = matches!(&v, Value::String(s) if s.is_empty())
            || matches!(&v, Value::Array(a) if a.is_empty());
        if !empty {
            m.insert(k.to_string(), v);
        }
    };
    put("id", json!(format!("pmid:{}", a.pmid)));
    put("type", json!("article-journal"));
    put("title", json!(a.title));
    let authors: Vec<Value> = a
        .authors
        .iter()
        .map(|au| {
            if au.collective {
                json!({ "literal": au.last })
            } else if au.given().is_empty() {
                json!({ "family": au.last })
            } else {
                json!({ "family": au.last, "given": au.given() })
            }
        })
        .collect();
    put("author", Value::Array(authors));
    put("container-title", json!(a.journal));
    put("container-title-short", json!(a.journal_iso));
    if let Some(y) = a.year {
        put("issued", json!({ "date-parts": [[y]] }));
    }
    put("volume", json!(a.volume));
    put("issue", json!(a.issue));
    put("page", json!(a.pages));
    put("DOI", json!(a.doi.clone().unwrap_or_default()));
    put("PMID", json!(a.pmid.to_string()));
    put("PMCID", json!(a.pmc.clone().unwrap_or_default()));
    put(
        "abstract",
        json!(a.abstract_text.lines().collect::<Vec<_>>().join(" ")),
    );
    put(
        "language",
        json!(a.languages.first().cloned().unwrap_or_default()),
    );
    let keywords: Vec<&str> = a
        .mesh
        .iter()
        .map(|x| x.descriptor.as_str())
        .chain(a.keywords.iter().map(String::as_str))
        .collect();
    put("keyword", json!(keywords.join(", ")));
    put("URL", json!(a.pubmed_url()));
    Value::Object(m)
}
