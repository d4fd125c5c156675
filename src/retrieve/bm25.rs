//! BM25 search over the tantivy half of the index.
//!
//! Questions are natural language, not query syntax, so the query is built from the analyzer's
//! terms (a disjunction of term queries over title + abstract) rather than parsed: a `?`, a
//! colon or an unbalanced quote in a question can never make it fail.
use std::collections::BTreeSet;
use std::fmt;
use std::ops::Bound;
use std::path::Path;
use std::str::FromStr;

use medlit_indexer::bm25::{self, Fields};
use medlit_indexer::{IndexDir, IndexError, IndexManifest};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, PhraseQuery, Query, RangeQuery, TermQuery};
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::snippet::SnippetGenerator;
use tantivy::{Index, IndexReader, ReloadPolicy, TantivyDocument, Term};

use super::filter::Filters;
use super::query_syntax::{self, QueryParts};
use super::Hit;

/// Documents with their BM25 scores, best first.
type Scored = Vec<(f32, tantivy::DocAddress)>;

/// Longest snippet, in characters.
const SNIPPET_CHARS: usize = 240;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("tantivy: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("the query has no searchable words (only stop words or punctuation): {0:?}")]
    EmptyQuery(String),
    #[error("writing the articles out: {0}")]
    Sink(std::io::Error),
    #[error("k must be at least 1")]
    ZeroK,
    #[error("filtering by {0} needs an index built by this medlit (it stores the fields filters read); rebuild it with `medlit index --replace`")]
    NoFilterFields(String),
}

/// An inclusive range of publication years; either end may be open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct YearRange {
    pub from: Option<i64>,
    pub to: Option<i64>,
}

impl FromStr for YearRange {
    type Err = String;

    /// `1985`, `1980..1990`, `1980..` or `..1990` (both ends inclusive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let year = |t: &str| -> Result<Option<i64>, String> {
            let t = t.trim();
            if t.is_empty() {
                return Ok(None);
            }
            match t.parse::<i64>() {
                Ok(y) if (1000..=9999).contains(&y) => Ok(Some(y)),
                _ => Err(format!("`{t}` is not a four-digit year")),
            }
        };
        let r = match s.split_once("..") {
            Some((a, b)) => YearRange {
                from: year(a)?,
                to: year(b)?,
            },
            None => {
                let y = year(s)?.ok_or("empty year range")?;
                YearRange {
                    from: Some(y),
                    to: Some(y),
                }
            }
        };
        if let (Some(a), Some(b)) = (r.from, r.to) {
            if a > b {
                return Err(format!("year range {a}..{b} is empty"));
            }
        }
        if r.from.is_none() && r.to.is_none() {
            return Err("year range needs at least one end, as in 1980..1990".into());
        }
        Ok(r)
    }
}

impl fmt::Display for YearRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = |y: Option<i64>| y.map(|y| y.to_string()).unwrap_or_default();
        write!(f, "{}..{}", end(self.from), end(self.to))
    }
}

/// An opened BM25 index, ready for queries.
pub struct Bm25Searcher {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    manifest: IndexManifest,
}

impl Bm25Searcher {
    /// Opens the live generation of the index in `dir`.
    pub fn open(dir: &Path) -> Result<Self, SearchError> {
        let layout = IndexDir::new(dir);
        let manifest = layout.manifest()?;
        let (index, fields) = bm25::open(&layout.bm25_dir(&manifest))?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Self {
            index,
            reader,
            fields,
            manifest,
        })
    }

    pub fn manifest(&self) -> &IndexManifest {
        &self.manifest
    }

    /// Distinct analyzed terms of `text`, in first-seen order.
    fn terms(&self, text: &str) -> Result<Vec<String>, SearchError> {
        let mut analyzer = self.index.tokenizer_for_field(self.fields.text)?;
        let mut stream = analyzer.token_stream(text);
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        while stream.advance() {
            let t = stream.token().text.clone();
            if seen.insert(t.clone()) {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// A required (or excluded) phrase as a query: one term, or the terms in order.
    fn phrase(&self, text: &str) -> Result<Option<Box<dyn Query>>, SearchError> {
        let terms: Vec<Term> = {
            let mut analyzer = self.index.tokenizer_for_field(self.fields.text)?;
            let mut stream = analyzer.token_stream(text);
            let mut out = Vec::new();
            while stream.advance() {
                out.push(Term::from_field_text(
                    self.fields.text,
                    &stream.token().text,
                ));
            }
            out
        };
        Ok(match terms.len() {
            0 => None,
            1 => Some(Box::new(TermQuery::new(
                terms[0].clone(),
                IndexRecordOption::WithFreqs,
            ))),
            _ => Some(Box::new(PhraseQuery::new(terms))),
        })
    }

    fn query(
        &self,
        terms: &[String],
        parts: &QueryParts,
        filters: &Filters,
    ) -> Result<Box<dyn Query>, SearchError> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(
            Occur::Should,
            Box::new(disjunction(self.fields.text, terms)),
        )];
        for p in &parts.phrases {
            if let Some(q) = self.phrase(p)? {
                clauses.push((Occur::Must, q));
            }
        }
        for x in &parts.excluded {
            if let Some(q) = self.phrase(x)? {
                clauses.push((Occur::MustNot, q));
            }
        }
        let text_query = BooleanQuery::new(clauses);
        match self.filter_query(filters)? {
            Some(f) => Ok(Box::new(BooleanQuery::new(vec![
                (Occur::Must, Box::new(text_query)),
                (Occur::Must, f),
            ]))),
            None => Ok(Box::new(text_query)),
        }
    }

    /// The articles `filters` lets through, as one query; `None` for no filter.
    pub fn filter_query(&self, filters: &Filters) -> Result<Option<Box<dyn Query>>, SearchError> {
        let mut must: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        if let Some(r) = filters.years {
            let bound = |y: Option<i64>| match y {
                Some(y) => Bound::Included(Term::from_field_i64(self.fields.year, y)),
                None => Bound::Unbounded,
            };
            must.push((
                Occur::Must,
                Box::new(RangeQuery::new(bound(r.from), bound(r.to))),
            ));
        }
        if filters.has_abstract {
            must.push((
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_u64(self.fields.has_abstract, 1),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        if filters.needs_fields() {
            let k = self
                .fields
                .filters
                .ok_or_else(|| SearchError::NoFilterFields(filters.to_string()))?;
            let term = |field, v: &str| -> Box<dyn Query> {
                Box::new(TermQuery::new(
                    Term::from_field_text(field, &bm25::filter_key(v)),
                    IndexRecordOption::Basic,
                ))
            };
            let any = |field, values: &[String]| -> Box<dyn Query> {
                Box::new(BooleanQuery::new(
                    values
                        .iter()
                        .map(|v| (Occur::Should, term(field, v)))
                        .collect(),
                ))
            };
            if !filters.journals.is_empty() {
                must.push((Occur::Must, any(k.journal, &filters.journals)));
            }
            if !filters.pub_types.is_empty() {
                must.push((Occur::Must, any(k.pub_type, &filters.pub_types)));
            }
            if !filters.langs.is_empty() {
                must.push((Occur::Must, any(k.lang, &filters.langs)));
            }
            for m in &filters.mesh {
                must.push((Occur::Must, term(k.mesh, m)));
            }
            for m in &filters.mesh_major {
                must.push((Occur::Must, term(k.mesh_major, m)));
            }
            for a in &filters.authors {
                must.push((Occur::Must, author_query(k.author, a)));
            }
        }
        Ok(match must.len() {
            0 => None,
            _ => Some(Box::new(BooleanQuery::new(must))),
        })
    }

    /// Whether some article has `value` in the filter field `field` (an author by prefix):
    /// how a PubMed tag finds how many words its value spans. False on an index without
    /// filter fields.
    pub fn knows(&self, field: super::filter::TagField, value: &str) -> bool {
        use super::filter::TagField as T;
        let Some(k) = self.fields.filters else {
            return false;
        };
        let key = bm25::filter_key(value);
        let searcher = self.reader.searcher();
        let exact = |field| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, &key),
                IndexRecordOption::Basic,
            ))
        };
        let q: Box<dyn Query> = match field {
            T::Author => author_query(k.author, value),
            T::Date => return true,
            T::Mesh => exact(k.mesh),
            T::MeshMajor => exact(k.mesh_major),
            T::Journal => exact(k.journal),
            T::PubType => exact(k.pub_type),
            T::Lang => exact(k.lang),
        };
        searcher
            .search(&*q, &tantivy::collector::Count)
            .is_ok_and(|n| n > 0)
    }

    /// The PMIDs `filters` lets through (`None` for no filter): what the dense half is
    /// restricted to before fusion.
    pub fn allowed_pmids(
        &self,
        filters: &Filters,
    ) -> Result<Option<std::collections::HashSet<u64>>, SearchError> {
        let Some(q) = self.filter_query(filters)? else {
            return Ok(None);
        };
        let searcher = self.reader.searcher();
        let docs = searcher.search(&*q, &tantivy::collector::DocSetCollector)?;
        let mut pmids = PmidColumns::new(&searcher);
        let mut out = std::collections::HashSet::with_capacity(docs.len());
        for addr in docs {
            out.extend(pmids.of(addr)?);
        }
        Ok(Some(out))
    }

    /// Articles `filters` lets through when the query has no words to rank (a search made of
    /// field tags only): the most recent first.
    fn filtered_only(&self, filters: &Filters, k: usize) -> Result<Option<Scored>, SearchError> {
        let Some(q) = self.filter_query(filters)? else {
            return Ok(None);
        };
        let searcher = self.reader.searcher();
        let top = searcher.search(
            &*q,
            &TopDocs::with_limit(k).order_by_fast_field::<i64>("year", tantivy::Order::Desc),
        )?;
        Ok(Some(
            top.into_iter()
                .map(|(year, addr)| (year.unwrap_or_default() as f32, addr))
                .collect(),
        ))
    }

    fn top(
        &self,
        query: &str,
        k: usize,
        filters: &Filters,
    ) -> Result<(Vec<String>, Scored), SearchError> {
        if k == 0 {
            return Err(SearchError::ZeroK);
        }
        let parts = query_syntax::parse(query);
        let terms = self.terms(&parts.positive_text())?;
        if terms.is_empty() {
            return match self.filtered_only(filters, k)? {
                Some(top) => Ok((terms, top)),
                None => Err(SearchError::EmptyQuery(query.to_string())),
            };
        }
        let searcher = self.reader.searcher();
        let top = searcher.search(
            &*self.query(&terms, &parts, filters)?,
            &TopDocs::with_limit(k).order_by_score(),
        )?;
        Ok((terms, top))
    }

    /// The top `k` PMIDs and scores for `query`, read from the fast column: no snippets, no
    /// stored documents. What fusion and evaluation use.
    pub fn rank(
        &self,
        query: &str,
        k: usize,
        filters: &Filters,
    ) -> Result<Vec<(u64, f32)>, SearchError> {
        let (_, top) = self.top(query, k, filters)?;
        let searcher = self.reader.searcher();
        let mut pmids = PmidColumns::new(&searcher);
        let mut out = Vec::with_capacity(top.len());
        for (score, addr) in top {
            if let Some(pmid) = pmids.of(addr)? {
                out.push((pmid, score));
            }
        }
        Ok(out)
    }

    /// The earliest and latest publication year in the index (what the corpus covers).
    pub fn year_span(&self) -> Result<Option<(i64, i64)>, SearchError> {
        let searcher = self.reader.searcher();
        let mut span: Option<(i64, i64)> = None;
        for seg in searcher.segment_readers() {
            let col = seg.fast_fields().i64("year")?;
            if col.num_docs() == 0 || seg.num_docs() == 0 {
                continue;
            }
            let (lo, hi) = (col.min_value(), col.max_value());
            span = Some(span.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
        }
        Ok(span)
    }

    /// The top `k` articles for `query` among those `filters` lets through.
    pub fn search(
        &self,
        query: &str,
        k: usize,
        filters: &Filters,
    ) -> Result<Vec<Hit>, SearchError> {
        let (terms, top) = self.top(query, k, filters)?;
        let searcher = self.reader.searcher();
        let snippets = self.snippet_generators(&searcher, &terms)?;
        let mut hits = Vec::with_capacity(top.len());
        for (i, (score, addr)) in top.into_iter().enumerate() {
            let doc: TantivyDocument = searcher.doc(addr)?;
            hits.push(self.hit(&doc, &snippets, i + 1, score));
        }
        Ok(hits)
    }

    /// Hits for given PMIDs in the given order (for fused or dense results), with snippets
    /// for `query`; `scored` pairs each PMID with the score to report. Unknown PMIDs are left
    /// out.
    pub fn hits_for(&self, query: &str, scored: &[(u64, f32)]) -> Result<Vec<Hit>, SearchError> {
        let terms = self.terms(&query_syntax::parse(query).positive_text())?;
        let searcher = self.reader.searcher();
        let snippets = self.snippet_generators(&searcher, &terms)?;
        let mut hits = Vec::with_capacity(scored.len());
        for &(pmid, score) in scored {
            if let Some(doc) = self.doc_by_pmid(&searcher, pmid)? {
                hits.push(self.hit(&doc, &snippets, hits.len() + 1, score));
            }
        }
        Ok(hits)
    }

    /// The stored title and abstract of a PMID, if indexed.
    pub fn abstract_of(&self, pmid: u64) -> Result<Option<(String, String)>, SearchError> {
        let searcher = self.reader.searcher();
        Ok(self.doc_by_pmid(&searcher, pmid)?.map(|doc| {
            (
                stored_text(&doc, self.fields.title),
                stored_text(&doc, self.fields.abstract_text),
            )
        }))
    }

    /// The stored record of a PMID, if indexed: the whole article from an index that stores
    /// records, else what the older index stored (no authors, languages or pages).
    pub fn record(&self, pmid: u64) -> Result<Option<StoredRecord>, SearchError> {
        let searcher = self.reader.searcher();
        let Some(doc) = self.doc_by_pmid(&searcher, pmid)? else {
            return Ok(None);
        };
        if let Some(article) = bm25::stored_article(&self.fields, &doc) {
            return Ok(Some(StoredRecord {
                article,
                complete: true,
            }));
        }
        let f = &self.fields;
        let all = |field| -> Vec<String> {
            doc.get_all(field)
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        };
        let article = medlit_indexer::Article {
            pmid,
            title: stored_text(&doc, f.title),
            abstract_text: stored_text(&doc, f.abstract_text),
            journal: stored_text(&doc, f.journal),
            year: doc
                .get_first(f.year)
                .and_then(|v| v.as_i64())
                .and_then(|y| i32::try_from(y).ok()),
            mesh: all(f.mesh)
                .into_iter()
                .map(|descriptor| medlit_indexer::MeshHeading {
                    descriptor,
                    major: false,
                })
                .collect(),
            keywords: all(f.keywords),
            pub_types: all(f.pub_types),
            doi: Some(stored_text(&doc, f.doi)).filter(|s| !s.is_empty()),
            pmc: Some(stored_text(&doc, f.pmc)).filter(|s| !s.is_empty()),
            ..Default::default()
        };
        Ok(Some(StoredRecord {
            article,
            complete: false,
        }))
    }

    /// Calls `f` with every live article's stored fields, in index order (for dumping the
    /// corpus to a peer or an export).
    pub fn for_each_article(
        &self,
        mut f: impl FnMut(&StoredArticle) -> std::io::Result<()>,
    ) -> Result<(), SearchError> {
        let searcher = self.reader.searcher();
        for segment in searcher.segment_readers() {
            let store = segment
                .get_store_reader(64)
                .map_err(|e| SearchError::Tantivy(e.into()))?;
            for doc_id in segment.doc_ids_alive() {
                let doc: TantivyDocument = store.get(doc_id)?;
                f(&StoredArticle {
                    pmid: stored_text(&doc, self.fields.pmid),
                    title: stored_text(&doc, self.fields.title),
                    abstract_text: stored_text(&doc, self.fields.abstract_text),
                    journal: stored_text(&doc, self.fields.journal),
                    year: doc.get_first(self.fields.year).and_then(|v| v.as_i64()),
                })
                .map_err(SearchError::Sink)?;
            }
        }
        Ok(())
    }

    /// Analysed terms of `text`, as the index analyses title and abstract (duplicates kept).
    pub fn analyse(&self, text: &str) -> Vec<String> {
        let Ok(mut analyzer) = self.index.tokenizer_for_field(self.fields.text) else {
            return Vec::new();
        };
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            out.push(stream.token().text.clone());
        }
        out
    }

    /// BM25's inverse document frequency of an analysed term over title + abstract; a term
    /// no article holds gets the highest value.
    pub fn idf(&self, term: &str) -> f32 {
        let searcher = self.reader.searcher();
        let n = searcher.num_docs() as f32;
        let df = searcher
            .doc_freq(&Term::from_field_text(self.fields.text, term))
            .unwrap_or(0) as f32;
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }

    /// Articles like `pmid` by its distinctive words (BM25 "more like this"): the terms of its
    /// title and abstract weighted by frequency × idf, the best `MLT_TERMS` as one weighted
    /// query; the article itself left out. `None` when the index does not hold `pmid`.
    pub fn more_like_this(&self, pmid: u64, k: usize) -> Result<Option<MoreLikeThis>, SearchError> {
        const MLT_TERMS: usize = 25;
        let Some((title, abstract_text)) = self.abstract_of(pmid)? else {
            return Ok(None);
        };
        let mut tf: std::collections::HashMap<String, f32> = std::collections::HashMap::new();
        for t in self.analyse(&format!("{title} {abstract_text}")) {
            // Numbers and single letters say little about what an article is about.
            if t.len() > 2 && !t.chars().all(|c| c.is_ascii_digit()) {
                *tf.entry(t).or_default() += 1.0;
            }
        }
        let mut weighted: Vec<(String, f32)> = tf
            .into_iter()
            .map(|(t, f)| {
                let w = f.sqrt() * self.idf(&t);
                (t, w)
            })
            .collect();
        weighted.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        weighted.truncate(MLT_TERMS);
        if weighted.is_empty() {
            return Ok(Some(MoreLikeThis::default()));
        }
        let query = BooleanQuery::new(
            weighted
                .iter()
                .map(|(t, w)| {
                    let q: Box<dyn Query> = Box::new(tantivy::query::BoostQuery::new(
                        Box::new(TermQuery::new(
                            Term::from_field_text(self.fields.text, t),
                            IndexRecordOption::WithFreqs,
                        )),
                        *w,
                    ));
                    (Occur::Should, q)
                })
                .collect(),
        );
        let searcher = self.reader.searcher();
        let top = searcher.search(&query, &TopDocs::with_limit(k + 1).order_by_score())?;
        let mut out = Vec::with_capacity(k);
        let mut pmids = PmidColumns::new(&searcher);
        for (score, addr) in top {
            if let Some(p) = pmids.of(addr)? {
                if p != pmid && out.len() < k {
                    out.push((p, score));
                }
            }
        }
        let terms = weighted
            .into_iter()
            .map(|(t, _)| t)
            .collect::<Vec<_>>()
            .join(" ");
        Ok(Some(MoreLikeThis { terms, scored: out }))
    }

    /// Live articles in the index.
    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Articles holding the analysed `term` in title or abstract.
    pub fn doc_freq(&self, term: &str) -> u64 {
        self.reader
            .searcher()
            .doc_freq(&Term::from_field_text(self.fields.text, term))
            .unwrap_or(0)
    }

    /// The live document of a PMID (the index holds at most one).
    fn doc_by_pmid(
        &self,
        searcher: &tantivy::Searcher,
        pmid: u64,
    ) -> Result<Option<TantivyDocument>, SearchError> {
        let q = TermQuery::new(
            Term::from_field_text(self.fields.pmid, &pmid.to_string()),
            IndexRecordOption::Basic,
        );
        let found = searcher.search(&q, &TopDocs::with_limit(1).order_by_score())?;
        match found.first() {
            Some((_, addr)) => Ok(Some(searcher.doc(*addr)?)),
            None => Ok(None),
        }
    }

    fn snippet_generators(
        &self,
        searcher: &tantivy::Searcher,
        terms: &[String],
    ) -> Result<[SnippetGenerator; 2], SearchError> {
        let mut abstract_snippets = SnippetGenerator::create(
            searcher,
            &disjunction(self.fields.abstract_text, terms),
            self.fields.abstract_text,
        )?;
        abstract_snippets.set_max_num_chars(SNIPPET_CHARS);
        let mut title_snippets = SnippetGenerator::create(
            searcher,
            &disjunction(self.fields.title, terms),
            self.fields.title,
        )?;
        title_snippets.set_max_num_chars(SNIPPET_CHARS);
        Ok([abstract_snippets, title_snippets])
    }

    fn hit(
        &self,
        doc: &TantivyDocument,
        [abstract_snippets, title_snippets]: &[SnippetGenerator; 2],
        rank: usize,
        score: f32,
    ) -> Hit {
        let text = |f| stored_text(doc, f);
        let abstract_text = text(self.fields.abstract_text);
        let mut snippet = abstract_snippets.snippet(&abstract_text);
        if snippet.highlighted().is_empty() {
            let t = title_snippets.snippet(&text(self.fields.title));
            if !t.highlighted().is_empty() || abstract_text.is_empty() {
                snippet = t;
            }
        }
        Hit {
            rank,
            // Written from the article's number by the indexer: the one place it is read as text.
            pmid: text(self.fields.pmid).parse().unwrap_or_default(),
            title: text(self.fields.title),
            journal: text(self.fields.journal),
            year: doc.get_first(self.fields.year).and_then(|v| v.as_i64()),
            score,
            snippet: snippet.fragment().to_string(),
            highlights: snippet
                .highlighted()
                .iter()
                .map(|r| [r.start, r.end])
                .collect(),
            bm25_rank: None,
            dense_rank: None,
            similarity: None,
            passage: None,
        }
    }
}

/// The PMID of a document from the fast column, each segment's column opened once.
struct PmidColumns<'a> {
    searcher: &'a tantivy::Searcher,
    columns: std::collections::HashMap<u32, tantivy::columnar::Column<u64>>,
}

impl<'a> PmidColumns<'a> {
    fn new(searcher: &'a tantivy::Searcher) -> Self {
        PmidColumns {
            searcher,
            columns: std::collections::HashMap::new(),
        }
    }

    fn of(&mut self, addr: tantivy::DocAddress) -> Result<Option<u64>, SearchError> {
        let col = match self.columns.entry(addr.segment_ord) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => v.insert(
                self.searcher
                    .segment_reader(addr.segment_ord)
                    .fast_fields()
                    .u64(bm25::PMID_FAST)?,
            ),
        };
        Ok(col.first(addr.doc_id))
    }
}

/// An article's distinctive terms and the articles they find, best first.
#[derive(Debug, Clone, Default)]
pub struct MoreLikeThis {
    /// The weighted terms, best first, space-separated (what snippets highlight).
    pub terms: String,
    pub scored: Vec<(u64, f32)>,
}

/// A PMID's record as the index holds it.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    pub article: medlit_indexer::Article,
    /// False for an index built before whole records were stored: authors, languages,
    /// MeSH major topics, volume, issue and pages are then unknown (rebuild to get them).
    pub complete: bool,
}

/// An article's stored fields.
#[derive(Debug, Clone)]
pub struct StoredArticle {
    pub pmid: String,
    pub title: String,
    pub abstract_text: String,
    pub journal: String,
    pub year: Option<i64>,
}

fn stored_text(doc: &TantivyDocument, field: tantivy::schema::Field) -> String {
    doc.get_first(field)
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// PubMed's `[au]`: "smith" matches every Smith ("smith", "smith j", "smith ja"), "smith j"
/// every Smith whose initials start with J; the keys are "last initials".
fn author_query(field: tantivy::schema::Field, value: &str) -> Box<dyn Query> {
    let key = bm25::filter_key(value);
    let exact: Box<dyn Query> = Box::new(TermQuery::new(
        Term::from_field_text(field, &key),
        IndexRecordOption::Basic,
    ));
    let from = if key.contains(' ') {
        key.clone()
    } else {
        format!("{key} ")
    };
    let to = format!("{from}\u{10FFFF}");
    let prefixed: Box<dyn Query> = Box::new(RangeQuery::new(
        Bound::Included(Term::from_field_text(field, &from)),
        Bound::Excluded(Term::from_field_text(field, &to)),
    ));
    Box::new(BooleanQuery::new(vec![
        (Occur::Should, exact),
        (Occur::Should, prefixed),
    ]))
}

fn disjunction(field: tantivy::schema::Field, terms: &[String]) -> BooleanQuery {
    BooleanQuery::new(
        terms
            .iter()
            .map(|t| {
                let q: Box<dyn Query> = Box::new(TermQuery::new(
                    Term::from_field_text(field, t),
                    IndexRecordOption::WithFreqs,
                ));
                (Occur::Should, q)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn year_ranges_parse() {
        let r: YearRange = "1980..1990".parse().unwrap();
        assert_eq!((r.from, r.to), (Some(1980), Some(1990)));
        let r: YearRange = "2001".parse().unwrap();
        assert_eq!((r.from, r.to), (Some(2001), Some(2001)));
        let r: YearRange = "..1990".parse().unwrap();
        assert_eq!((r.from, r.to), (None, Some(1990)));
        assert!("1990..1980".parse::<YearRange>().is_err());
        assert!("..".parse::<YearRange>().is_err());
        assert!("19x0".parse::<YearRange>().is_err());
    }
}
