//! The BM25 half of the index: a tantivy schema, its analyzer, and document conversion.
use std::path::Path;

use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, FAST,
    INDEXED, STORED, STRING,
};
use tantivy::tokenizer::{
    LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{Index, TantivyDocument};

use crate::article::Article;
use crate::IndexError;

/// Name of the fast PMID column.
pub const PMID_FAST: &str = "pmid_fast";

/// The analyzer of the text fields: lower-case, English stop words removed, Porter stemming.
pub const ANALYZER: &str = "medlit_en";

/// Handles to the fields of the BM25 schema.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    /// Raw term, stored: the document's identity for replacement and deletion.
    pub pmid: Field,
    /// The PMID as a fast (columnar) u64, so ranking needs no stored-document reads.
    pub pmid_fast: Field,
    pub title: Field,
    pub abstract_text: Field,
    /// Title and abstract together, indexed only: what free-text queries search.
    pub text: Field,
    pub year: Field,
    pub journal: Field,
    pub mesh: Field,
    pub keywords: Field,
    pub pub_types: Field,
    pub doi: Field,
    pub pmc: Field,
    /// 1 when the abstract is not empty: counts `with_abstract` without reading documents.
    pub has_abstract: Field,
    /// The fields below came with `medlit show` and the field filters; an index built before
    /// lacks them and still opens (what needs them says to rebuild).
    pub filters: Option<FilterFields>,
}

/// The whole record, and the exact-match keys the field filters look up. Keys are lower-case
/// raw terms (not analysed), so `--mesh "Brucellosis"` matches the descriptor, not its words.
#[derive(Debug, Clone, Copy)]
pub struct FilterFields {
    /// The article as JSON (an [`Article`] without title and abstract, which are stored
    /// above): authors, MeSH with major topics, languages, volume, issue, pages.
    pub record: Field,
    /// "roe ab": last name and initials, as PubMed's `[au]` matches by prefix.
    pub author: Field,
    /// Journal title and ISO abbreviation.
    pub journal: Field,
    pub mesh: Field,
    /// Descriptors that are a major topic of the article (`[majr]`).
    pub mesh_major: Field,
    pub pub_type: Field,
    /// Language codes as MEDLINE writes them ("eng").
    pub lang: Field,
}

/// The key a filter value is matched by: what [`document`] stores, lower-cased with its
/// spaces collapsed.
pub fn filter_key(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// The schema and its field handles.
pub fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let indexed = TextFieldIndexing::default()
        .set_tokenizer(ANALYZER)
        .set_index_option(IndexRecordOption::WithFreqsAndPositions);
    let stored_text = TextOptions::default()
        .set_indexing_options(indexed.clone())
        .set_stored();
    let plain_text = TextOptions::default().set_indexing_options(indexed);
    let fields = Fields {
        pmid: b.add_text_field("pmid", STRING | STORED),
        pmid_fast: b.add_u64_field(PMID_FAST, FAST),
        title: b.add_text_field("title", stored_text.clone()),
        abstract_text: b.add_text_field("abstract", stored_text.clone()),
        text: b.add_text_field("text", plain_text),
        year: b.add_i64_field(
            "year",
            NumericOptions::default()
                .set_indexed()
                .set_fast()
                .set_stored(),
        ),
        journal: b.add_text_field("journal", stored_text.clone()),
        mesh: b.add_text_field("mesh", stored_text.clone()),
        keywords: b.add_text_field("keywords", stored_text.clone()),
        pub_types: b.add_text_field("pub_types", stored_text),
        doi: b.add_text_field("doi", STRING | STORED),
        pmc: b.add_text_field("pmc", STRING | STORED),
        has_abstract: b.add_u64_field("has_abstract", INDEXED),
        filters: Some(FilterFields {
            record: b.add_bytes_field("record", STORED),
            author: b.add_text_field("author_key", STRING),
            journal: b.add_text_field("journal_key", STRING),
            mesh: b.add_text_field("mesh_key", STRING),
            mesh_major: b.add_text_field("mesh_major_key", STRING),
            pub_type: b.add_text_field("pub_type_key", STRING),
            lang: b.add_text_field("lang_key", STRING),
        }),
    };
    (b.build(), fields)
}

/// The field handles of an opened index (checks that its schema is ours).
pub fn fields_of(index: &Index) -> Result<Fields, tantivy::TantivyError> {
    let s = index.schema();
    let f = |name: &str| s.get_field(name);
    Ok(Fields {
        pmid: f("pmid")?,
        pmid_fast: f(PMID_FAST)?,
        title: f("title")?,
        abstract_text: f("abstract")?,
        text: f("text")?,
        year: f("year")?,
        journal: f("journal")?,
        mesh: f("mesh")?,
        keywords: f("keywords")?,
        pub_types: f("pub_types")?,
        doi: f("doi")?,
        pmc: f("pmc")?,
        has_abstract: f("has_abstract")?,
        filters: (|| {
            Some(FilterFields {
                record: f("record").ok()?,
                author: f("author_key").ok()?,
                journal: f("journal_key").ok()?,
                mesh: f("mesh_key").ok()?,
                mesh_major: f("mesh_major_key").ok()?,
                pub_type: f("pub_type_key").ok()?,
                lang: f("lang_key").ok()?,
            })
        })(),
    })
}

/// Registers [`ANALYZER`]; tantivy does not persist analyzers, so every open must do this.
pub fn register_analyzer(index: &Index) {
    let mut builder = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .dynamic();
    if let Some(stop) = StopWordFilter::new(tantivy::tokenizer::Language::English) {
        builder = builder.filter_dynamic(stop);
    }
    let analyzer = builder
        .filter_dynamic(Stemmer::new(tantivy::tokenizer::Language::English))
        .build();
    index.tokenizers().register(ANALYZER, analyzer);
}

/// Creates an empty BM25 index in `dir`.
pub fn create(dir: &Path) -> Result<(Index, Fields), IndexError> {
    std::fs::create_dir_all(dir).map_err(|e| IndexError::io("creating index folder", dir, e))?;
    let (schema, fields) = schema();
    let index = Index::create_in_dir(dir, schema)?;
    register_analyzer(&index);
    Ok((index, fields))
}

/// Opens the BM25 index in `dir`.
pub fn open(dir: &Path) -> Result<(Index, Fields), IndexError> {
    let index = Index::open_in_dir(dir).map_err(|e| IndexError::Index {
        dir: dir.to_path_buf(),
        reason: format!("cannot open the BM25 index: {e}"),
    })?;
    register_analyzer(&index);
    let fields = fields_of(&index).map_err(|e| IndexError::Index {
        dir: dir.to_path_buf(),
        reason: format!("not a medlit BM25 index: {e}"),
    })?;
    Ok((index, fields))
}

/// The tantivy document of an article.
pub fn document(f: &Fields, a: &Article) -> TantivyDocument {
    let mut d = TantivyDocument::default();
    d.add_text(f.pmid, a.pmid.to_string());
    d.add_u64(f.pmid_fast, a.pmid);
    d.add_text(f.title, &a.title);
    d.add_text(f.abstract_text, &a.abstract_text);
    d.add_text(f.text, &a.title);
    d.add_text(f.text, &a.abstract_text);
    if let Some(y) = a.year {
        d.add_i64(f.year, i64::from(y));
    }
    let journal = a.journal_name();
    d.add_text(f.journal, journal);
    for m in &a.mesh {
        d.add_text(f.mesh, &m.descriptor);
    }
    for k in &a.keywords {
        d.add_text(f.keywords, k);
    }
    for p in &a.pub_types {
        d.add_text(f.pub_types, p);
    }
    if let Some(doi) = &a.doi {
        d.add_text(f.doi, doi);
    }
    if let Some(pmc) = &a.pmc {
        d.add_text(f.pmc, pmc);
    }
    d.add_u64(f.has_abstract, u64::from(a.has_abstract()));
    if let Some(k) = &f.filters {
        add_filter_keys(&mut d, k, a);
    }
    d
}

fn add_filter_keys(d: &mut TantivyDocument, k: &FilterFields, a: &Article) {
    let meta = Article {
        title: String::new(),
        abstract_text: String::new(),
        ..a.clone()
    };
    // Serialising a plain struct of strings and numbers cannot fail.
    if let Ok(json) = serde_json::to_vec(&meta) {
        d.add_bytes(k.record, &json);
    }
    for au in &a.authors {
        d.add_text(k.author, filter_key(&au.short_name()));
    }
    for j in [&a.journal, &a.journal_iso] {
        if !j.is_empty() {
            d.add_text(k.journal, filter_key(j));
        }
    }
    for m in &a.mesh {
        d.add_text(k.mesh, filter_key(&m.descriptor));
        if m.major {
            d.add_text(k.mesh_major, filter_key(&m.descriptor));
        }
    }
    for p in &a.pub_types {
        d.add_text(k.pub_type, filter_key(p));
    }
    for l in &a.languages {
        d.add_text(k.lang, filter_key(l));
    }
}

/// The whole stored article of a document: the record's JSON with the stored title and
/// abstract; `None` from an index built before records were stored.
pub fn stored_article(f: &Fields, d: &TantivyDocument) -> Option<Article> {
    use tantivy::schema::Value;
    let k = f.filters.as_ref()?;
    let bytes = d.get_first(k.record)?.as_bytes()?;
    let mut a: Article = serde_json::from_slice(bytes).ok()?;
    let text = |field| {
        d.get_first(field)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    a.title = text(f.title);
    a.abstract_text = text(f.abstract_text);
    Some(a)
}

/// Live documents, and live documents with an abstract, as `searcher` sees them.
pub fn live_counts(
    searcher: &tantivy::Searcher,
    f: &Fields,
) -> Result<(u64, u64), tantivy::TantivyError> {
    let q = tantivy::query::TermQuery::new(
        tantivy::Term::from_field_u64(f.has_abstract, 1),
        IndexRecordOption::Basic,
    );
    let with_abstract = searcher.search(&q, &tantivy::collector::Count)? as u64;
    Ok((searcher.num_docs(), with_abstract))
}

/// Whether `pmid` is a live document for `searcher`.
pub fn is_live(
    searcher: &tantivy::Searcher,
    f: &Fields,
    pmid: u64,
) -> Result<bool, tantivy::TantivyError> {
    let term = tantivy::Term::from_field_text(f.pmid, &pmid.to_string());
    for segment in searcher.segment_readers() {
        let inverted = segment.inverted_index(f.pmid)?;
        if let Some(mut postings) = inverted.read_postings(&term, IndexRecordOption::Basic)? {
            use tantivy::DocSet;
            let mut doc = postings.doc();
            while doc != tantivy::TERMINATED {
                if segment.is_deleted(doc) {
                    doc = postings.advance();
                } else {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

/// The live documents of `searcher` as articles with what passages are made of (PMID, title,
/// abstract), read from the stored fields: for an update that adds the dense half to a
/// keyword-only index.
pub fn live_articles(
    searcher: &tantivy::Searcher,
    f: &Fields,
) -> Result<Vec<Article>, tantivy::TantivyError> {
    use tantivy::schema::Value;
    let text = |d: &TantivyDocument, field| {
        d.get_first(field)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let mut out = Vec::new();
    for (ord, segment) in searcher.segment_readers().iter().enumerate() {
        for doc in segment.doc_ids_alive() {
            let d: TantivyDocument = searcher.doc(tantivy::DocAddress::new(ord as u32, doc))?;
            let Ok(pmid) = text(&d, f.pmid).parse::<u64>() else {
                continue;
            };
            out.push(Article {
                pmid,
                title: text(&d, f.title),
                abstract_text: text(&d, f.abstract_text),
                ..Article::default()
            });
        }
    }
    Ok(out)
}

/// The PMID of every live document of the BM25 index in `dir`, in index order (a PMID held
/// twice appears twice: `medlit verify` counts on it), read from the fast column.
pub fn live_pmids(dir: &Path) -> Result<Vec<u64>, IndexError> {
    let (index, _) = open(dir)?;
    let reader = index
        .reader_builder()
        .reload_policy(tantivy::ReloadPolicy::Manual)
        .try_into()?;
    let searcher = reader.searcher();
    let mut out = Vec::new();
    for segment in searcher.segment_readers() {
        let column = segment.fast_fields().u64(PMID_FAST)?;
        out.extend(segment.doc_ids_alive().filter_map(|doc| column.first(doc)));
    }
    Ok(out)
}
