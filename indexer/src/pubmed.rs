//! Streaming PubMed XML parser (`PubmedArticleSet`, as in the NLM baseline and update files).
//!
//! One pass over the events with a stack of the open elements; only the elements medlit uses
//! are captured. A record with bad content (a missing PMID, an unknown entity, invalid UTF-8)
//! is skipped and reported; anything that breaks the document itself (XML syntax, a truncated
//! gzip stream, a file that is not PubMed XML) fails the whole file, so nothing of a broken
//! file is ever half-used.
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use medlit_corpus::digest::HashingReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use crate::article::{Article, Author, MeshHeading, Rejected};
use crate::source::SkippingSource;
use crate::utf8::Utf8Sanitizer;
use crate::IndexError;

/// Something a file yields, in document order.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Article(Box<Article>),
    /// PMIDs listed in a `DeleteCitation` block.
    Delete(Vec<u64>),
}

/// Everything parsed from one file, plus what identifies the input.
#[derive(Debug, Clone)]
pub struct ParsedFile {
    pub path: PathBuf,
    pub records: Vec<Record>,
    pub rejected: Vec<Rejected>,
    /// `PubmedArticle` elements seen, rejected ones included.
    pub records_read: u64,
    /// sha256 of the file as stored (compressed, if it is).
    pub sha256: String,
    pub file_bytes: u64,
    /// Bytes of XML after decompression.
    pub xml_bytes: u64,
}

/// Parses a `.xml` or `.xml.gz` file (gzip is recognised by its magic bytes).
///
/// The first pass trusts the input to be UTF-8 (it nearly always is, and checking it twice
/// costs time); if it is not, the file is parsed again through [`Utf8Sanitizer`], so that
/// only the records holding the bad bytes are skipped.
pub fn parse_file(path: &Path) -> Result<ParsedFile, IndexError> {
    let meta = std::fs::metadata(path).map_err(|e| IndexError::io("reading input", path, e))?;
    if meta.is_dir() {
        return Err(IndexError::BadFile {
            file: path.to_path_buf(),
            reason: "is a directory, not a PubMed XML file".into(),
        });
    }
    match parse_file_with(path, false) {
        Err(Failure::InvalidUtf8) => parse_file_with(path, true).map_err(Failure::into_error),
        other => other.map_err(Failure::into_error),
    }
}

/// Parses uncompressed PubMed XML held in memory (the fuzz target's entry, and tests');
/// `origin` names it in messages. Rejected records carry byte offsets, not line numbers, and
/// `sha256` is left empty.
pub fn parse_bytes(data: &[u8], origin: &Path) -> Result<ParsedFile, IndexError> {
    let run = |sanitize: bool| -> Result<(Vec<Record>, ParseSummary), Failure> {
        let mut records = Vec::new();
        let summary = parse_stream(data, origin, sanitize, &mut |r| records.push(r))?;
        Ok((records, summary))
    };
    let (records, summary) = match run(false) {
        Err(Failure::InvalidUtf8) => run(true),
        other => other,
    }
    .map_err(Failure::into_error)?;
    Ok(ParsedFile {
        path: origin.to_path_buf(),
        records,
        rejected: summary.rejected,
        records_read: summary.records_read,
        sha256: String::new(),
        file_bytes: data.len() as u64,
        xml_bytes: summary.xml_bytes,
    })
}

fn parse_file_with(path: &Path, sanitize: bool) -> Result<ParsedFile, Failure> {
    let file = File::open(path).map_err(|e| IndexError::io("opening input", path, e))?;
    let mut hashed = BufReader::with_capacity(1 << 16, HashingReader::new(file));
    let gz = {
        let head = hashed
            .fill_buf()
            .map_err(|e| IndexError::io("reading input", path, e))?;
        // UTF-16 (a byte-order mark, or "<" followed by a zero byte) would otherwise fail as
        // an unreadable root element.
        let utf16 = head.starts_with(&[0xff, 0xfe])
            || head.starts_with(&[0xfe, 0xff])
            || head.starts_with(&[b'<', 0])
            || head.starts_with(&[0, b'<']);
        if utf16 {
            return Err(IndexError::BadFile {
                file: path.to_path_buf(),
                reason: "is UTF-16 text; PubMed XML is UTF-8 (convert it first, e.g. with `iconv -f UTF-16 -t UTF-8`)".into(),
            }
            .into());
        }
        head.starts_with(&[0x1f, 0x8b])
    };
    let mut records = Vec::new();
    let summary = if gz {
        parse_stream(MultiGzDecoder::new(&mut hashed), path, sanitize, &mut |r| {
            records.push(r)
        })?
    } else {
        parse_stream(&mut hashed, path, sanitize, &mut |r| records.push(r))?
    };
    let (sha256, file_bytes) = hashed
        .into_inner()
        .finish()
        .map_err(|e| IndexError::io("reading input", path, e))?;
    let mut rejected = summary.rejected;
    fill_lines(path, &mut rejected);
    Ok(ParsedFile {
        path: path.to_path_buf(),
        records,
        rejected,
        records_read: summary.records_read,
        sha256,
        file_bytes,
        xml_bytes: summary.xml_bytes,
    })
}

/// Why a parse stopped.
enum Failure {
    /// Invalid UTF-8 met without the sanitizer: parse again with it.
    InvalidUtf8,
    Error(IndexError),
}

impl Failure {
    fn into_error(self) -> IndexError {
        match self {
            Failure::Error(e) => e,
            // The sanitized pass never reports this; keep a clear message all the same.
            Failure::InvalidUtf8 => IndexError::BadFile {
                file: PathBuf::new(),
                reason: "invalid UTF-8".into(),
            },
        }
    }
}

impl From<IndexError> for Failure {
    fn from(e: IndexError) -> Self {
        Failure::Error(e)
    }
}

/// What the parse loop needs from its input beyond bytes.
trait Input: BufRead {
    /// Whether invalid UTF-8 is replaced (and logged) rather than stopping the parse.
    fn sanitizing(&self) -> bool;
    fn has_bad(&self) -> bool;
    fn take_bad(&mut self) -> Vec<u64>;
    /// Passes over the content of the element just opened; `None` if this input cannot.
    fn skip_element(&mut self, name: &[u8]) -> std::io::Result<Option<bool>>;
    /// Bytes passed over by `skip_element`, which the XML reader's position does not count.
    fn skipped(&self) -> u64;
}

impl<R: BufRead> Input for Utf8Sanitizer<R> {
    fn sanitizing(&self) -> bool {
        true
    }
    fn has_bad(&self) -> bool {
        Utf8Sanitizer::has_bad(self)
    }
    fn take_bad(&mut self) -> Vec<u64> {
        Utf8Sanitizer::take_bad(self)
    }
    fn skip_element(&mut self, _: &[u8]) -> std::io::Result<Option<bool>> {
        Ok(None)
    }
    fn skipped(&self) -> u64 {
        0
    }
}

/// The trusted pass: quick-xml's own UTF-8 check stops the parse at a bad byte.
impl<R: Read> Input for SkippingSource<R> {
    fn sanitizing(&self) -> bool {
        false
    }
    fn has_bad(&self) -> bool {
        false
    }
    fn take_bad(&mut self) -> Vec<u64> {
        Vec::new()
    }
    fn skip_element(&mut self, name: &[u8]) -> std::io::Result<Option<bool>> {
        SkippingSource::skip_element(self, name).map(Some)
    }
    fn skipped(&self) -> u64 {
        SkippingSource::skipped(self)
    }
}

/// Counts from one parse.
#[derive(Debug, Clone, Default)]
pub struct ParseSummary {
    pub records_read: u64,
    pub rejected: Vec<Rejected>,
    pub xml_bytes: u64,
}

/// Parses PubMed XML from `input`, calling `on_record` for each good record in order.
/// `origin` names the input in reports and errors. Invalid UTF-8 skips the record holding it.
pub fn parse_reader<R: BufRead>(
    input: R,
    origin: &Path,
    on_record: &mut dyn FnMut(Record),
) -> Result<ParseSummary, IndexError> {
    parse_stream(input, origin, true, on_record).map_err(Failure::into_error)
}

fn parse_stream<R: Read>(
    input: R,
    origin: &Path,
    sanitize: bool,
    on_record: &mut dyn FnMut(Record),
) -> Result<ParseSummary, Failure> {
    let io_err = |e| IndexError::io("reading input", origin, e);
    if sanitize {
        let mut src = Utf8Sanitizer::new(BufReader::with_capacity(1 << 16, input));
        skip_bom(&mut src).map_err(io_err)?;
        run(Reader::from_reader(src), origin, on_record)
    } else {
        let mut src = SkippingSource::new(input);
        skip_bom(&mut src).map_err(io_err)?;
        run(Reader::from_reader(src), origin, on_record)
    }
}

fn run<S: Input>(
    mut reader: Reader<S>,
    origin: &Path,
    on_record: &mut dyn FnMut(Record),
) -> Result<ParseSummary, Failure> {
    let cfg = reader.config_mut();
    cfg.expand_empty_elements = false;
    cfg.check_end_names = true;
    cfg.trim_text(false);

    let mut p = Parser::new(origin);
    // The first text found outside any element, to say what a file that is not XML holds.
    let mut outside: Option<String> = None;
    let mut buf = Vec::with_capacity(1 << 12);
    let mut pending_bad = std::collections::VecDeque::new();
    loop {
        let pos = reader.buffer_position() + reader.get_ref().skipped();
        let event = match reader.read_event_into(&mut buf) {
            Err(quick_xml::Error::Encoding(_)) if !reader.get_ref().sanitizing() => {
                return Err(Failure::InvalidUtf8)
            }
            other => other,
        };
        let event = event.map_err(|e| {
            let reason = match &e {
                quick_xml::Error::Io(io) => format!("{io} (truncated or corrupt input?)"),
                other => other.to_string(),
            };
            IndexError::Xml {
                file: origin.to_path_buf(),
                offset: reader.error_position(),
                reason,
            }
        })?;
        // The sanitizer reads ahead: only replacements inside this event's bytes count here.
        if reader.get_ref().has_bad() {
            pending_bad.extend(reader.get_mut().take_bad());
        }
        let end = reader.buffer_position() + reader.get_ref().skipped();
        let mut bad_here = None;
        while let Some(&at) = pending_bad.front() {
            if at >= end {
                break;
            }
            bad_here.get_or_insert(at);
            pending_bad.pop_front();
        }
        let is_end = matches!(event, Event::End(_));
        if let (true, Some(at)) = (is_end, bad_here) {
            p.mark_bad(format!("invalid UTF-8 at byte {at}"));
        }
        match event {
            Event::Start(e) => {
                p.start(&e, pos)?;
                if p.skippable() {
                    // At the end of input the reader reports the truncation on its next read,
                    // so whether the end tag was found needs no handling here.
                    reader
                        .get_mut()
                        .skip_element(e.name().as_ref().as_bytes())
                        .map_err(|err| IndexError::io("reading input", origin, err))?;
                }
            }
            Event::Empty(e) => {
                p.start(&e, pos)?;
                p.end(on_record);
            }
            Event::End(_) => p.end(on_record),
            Event::Text(t) => {
                if !p.seen_root && outside.is_none() {
                    let text: &str = &t;
                    let text = text.trim();
                    if !text.is_empty() {
                        outside = Some(text.chars().take(40).collect());
                    }
                }
                p.text(&t)
            }
            Event::CData(t) => p.text(&t),
            Event::GeneralRef(r) => p.reference(&r),
            Event::Decl(d) => {
                if let Some(Ok(enc)) = d.encoding() {
                    let enc = enc.to_ascii_lowercase();
                    if enc != "utf-8" && enc != "utf8" {
                        return Err(Failure::Error(IndexError::BadFile {
                            file: origin.to_path_buf(),
                            reason: format!(
                                "declares encoding `{enc}`; PubMed XML is UTF-8 and no other encoding is supported"
                            ),
                        }));
                    }
                }
            }
            Event::Eof => {
                if let Some(open) = p.stack.last() {
                    return Err(Failure::Error(IndexError::Xml {
                        file: origin.to_path_buf(),
                        offset: reader.buffer_position() + reader.get_ref().skipped(),
                        reason: format!(
                            "unexpected end of file inside <{}> (truncated file?)",
                            open.name()
                        ),
                    }));
                }
                if !p.seen_root {
                    let read = reader.buffer_position() + reader.get_ref().skipped();
                    let reason = match (&outside, read) {
                        (_, 0) => "the file is empty".to_string(),
                        (Some(text), _) => format!(
                            "not XML: {read} bytes of text and no PubmedArticleSet element (it starts `{}`)",
                            text.escape_debug()
                        ),
                        (None, _) => format!(
                            "{read} bytes without a PubmedArticleSet element (no PubMed records)"
                        ),
                    };
                    return Err(Failure::Error(IndexError::BadFile {
                        file: origin.to_path_buf(),
                        reason,
                    }));
                }
                break;
            }
            Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
        }
        if let (false, Some(at)) = (is_end, bad_here) {
            p.mark_bad(format!("invalid UTF-8 at byte {at}"));
        }
        buf.clear();
    }
    Ok(ParseSummary {
        records_read: p.records_read,
        rejected: p.rejected,
        xml_bytes: reader.buffer_position() + reader.get_ref().skipped(),
    })
}

fn skip_bom<R: BufRead>(r: &mut R) -> std::io::Result<()> {
    let head = r.fill_buf()?;
    if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
        r.consume(3);
    }
    Ok(())
}

/// The elements the parser tells apart; everything else is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    PubmedArticleSet,
    PubmedArticle,
    MedlineCitation,
    Pmid,
    Article,
    Journal,
    JournalIssue,
    PubDate,
    Year,
    MedlineDate,
    Volume,
    Issue,
    Pagination,
    MedlinePgn,
    Title,
    IsoAbbreviation,
    ArticleTitle,
    VernacularTitle,
    Abstract,
    AbstractText,
    AuthorList,
    Author,
    LastName,
    ForeName,
    Initials,
    CollectiveName,
    Language,
    PublicationTypeList,
    PublicationType,
    MeshHeadingList,
    MeshHeading,
    DescriptorName,
    QualifierName,
    KeywordList,
    Keyword,
    PubmedData,
    ArticleIdList,
    ArticleId,
    ELocationId,
    DeleteCitation,
    /// Elements whose content medlit never uses: passed over without tokenizing.
    Skip,
    Other,
}

impl Tag {
    fn of(name: &str) -> Tag {
        match name {
            "PubmedArticleSet" => Tag::PubmedArticleSet,
            "PubmedArticle" => Tag::PubmedArticle,
            "MedlineCitation" => Tag::MedlineCitation,
            "PMID" => Tag::Pmid,
            "Article" => Tag::Article,
            "Journal" => Tag::Journal,
            "JournalIssue" => Tag::JournalIssue,
            "PubDate" => Tag::PubDate,
            "Year" => Tag::Year,
            "MedlineDate" => Tag::MedlineDate,
            "Volume" => Tag::Volume,
            "Issue" => Tag::Issue,
            "Pagination" => Tag::Pagination,
            "MedlinePgn" => Tag::MedlinePgn,
            "Title" => Tag::Title,
            "ISOAbbreviation" => Tag::IsoAbbreviation,
            "ArticleTitle" => Tag::ArticleTitle,
            "VernacularTitle" => Tag::VernacularTitle,
            "Abstract" => Tag::Abstract,
            "AbstractText" => Tag::AbstractText,
            "AuthorList" => Tag::AuthorList,
            "Author" => Tag::Author,
            "LastName" => Tag::LastName,
            "ForeName" => Tag::ForeName,
            "Initials" => Tag::Initials,
            "CollectiveName" => Tag::CollectiveName,
            "Language" => Tag::Language,
            "PublicationTypeList" => Tag::PublicationTypeList,
            "PublicationType" => Tag::PublicationType,
            "MeshHeadingList" => Tag::MeshHeadingList,
            "MeshHeading" => Tag::MeshHeading,
            "DescriptorName" => Tag::DescriptorName,
            "QualifierName" => Tag::QualifierName,
            "KeywordList" => Tag::KeywordList,
            "Keyword" => Tag::Keyword,
            "PubmedData" => Tag::PubmedData,
            "ArticleIdList" => Tag::ArticleIdList,
            "ArticleId" => Tag::ArticleId,
            "ELocationID" => Tag::ELocationId,
            "DeleteCitation" => Tag::DeleteCitation,
            "ReferenceList"
            | "History"
            | "AffiliationInfo"
            | "ChemicalList"
            | "CommentsCorrectionsList"
            | "GrantList"
            | "MedlineJournalInfo"
            | "DateCompleted"
            | "DateRevised"
            | "ArticleDate"
            | "InvestigatorList"
            | "SupplMeshList"
            | "GeneralNote"
            | "OtherAbstract"
            | "OtherID"
            | "CoiStatement"
            | "CopyrightInformation"
            | "PersonalNameSubjectList"
            | "DataBankList" => Tag::Skip,
            _ => Tag::Other,
        }
    }

    /// The XML name, for messages about where a file broke off.
    fn name(self) -> &'static str {
        match self {
            Tag::PubmedArticleSet => "PubmedArticleSet",
            Tag::PubmedArticle => "PubmedArticle",
            Tag::MedlineCitation => "MedlineCitation",
            Tag::Pmid => "PMID",
            Tag::Article => "Article",
            Tag::Journal => "Journal",
            Tag::JournalIssue => "JournalIssue",
            Tag::PubDate => "PubDate",
            Tag::Year => "Year",
            Tag::MedlineDate => "MedlineDate",
            Tag::Volume => "Volume",
            Tag::Issue => "Issue",
            Tag::Pagination => "Pagination",
            Tag::MedlinePgn => "MedlinePgn",
            Tag::Title => "Title",
            Tag::IsoAbbreviation => "ISOAbbreviation",
            Tag::ArticleTitle => "ArticleTitle",
            Tag::VernacularTitle => "VernacularTitle",
            Tag::Abstract => "Abstract",
            Tag::AbstractText => "AbstractText",
            Tag::AuthorList => "AuthorList",
            Tag::Author => "Author",
            Tag::LastName => "LastName",
            Tag::ForeName => "ForeName",
            Tag::Initials => "Initials",
            Tag::CollectiveName => "CollectiveName",
            Tag::Language => "Language",
            Tag::PublicationTypeList => "PublicationTypeList",
            Tag::PublicationType => "PublicationType",
            Tag::MeshHeadingList => "MeshHeadingList",
            Tag::MeshHeading => "MeshHeading",
            Tag::DescriptorName => "DescriptorName",
            Tag::QualifierName => "QualifierName",
            Tag::KeywordList => "KeywordList",
            Tag::Keyword => "Keyword",
            Tag::PubmedData => "PubmedData",
            Tag::ArticleIdList => "ArticleIdList",
            Tag::ArticleId => "ArticleId",
            Tag::ELocationId => "ELocationID",
            Tag::DeleteCitation => "DeleteCitation",
            Tag::Skip | Tag::Other => "element",
        }
    }
}

/// Which field the text being captured goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Pmid,
    DeletePmid,
    Title,
    VernacularTitle,
    AbstractSection,
    Journal,
    JournalIso,
    Year,
    MedlineDate,
    Volume,
    Issue,
    Pages,
    LastName,
    ForeName,
    Initials,
    CollectiveName,
    Language,
    PubType,
    Descriptor,
    Keyword,
    Doi,
    Pmc,
    ElocationDoi,
}

struct Capture {
    target: Target,
    /// Stack depth of the element whose text is captured.
    depth: usize,
    text: String,
}

#[derive(Default)]
struct AuthorParts {
    last: String,
    fore: String,
    initials: String,
    collective: String,
}

/// Per-record state.
#[derive(Default)]
struct Draft {
    offset: u64,
    pmid_text: Option<String>,
    version: u32,
    article: Article,
    vernacular_title: String,
    medline_date: String,
    sections: Vec<String>,
    /// Label of each of `sections` ("" for none).
    labels: Vec<String>,
    section_label: Option<String>,
    author: AuthorParts,
    mesh_descriptor: String,
    mesh_major: bool,
    elocation_doi: Option<String>,
    /// Why the record cannot be used, if it cannot.
    bad: Option<String>,
}

struct Parser {
    origin: PathBuf,
    stack: Vec<Tag>,
    capture: Option<Capture>,
    draft: Option<Draft>,
    deletions: Option<Vec<u64>>,
    seen_root: bool,
    records_read: u64,
    rejected: Vec<Rejected>,
}

impl Parser {
    fn new(origin: &Path) -> Self {
        Parser {
            origin: origin.to_path_buf(),
            stack: Vec::with_capacity(32),
            capture: None,
            draft: None,
            deletions: None,
            seen_root: false,
            records_read: 0,
            rejected: Vec::new(),
        }
    }

    fn start(&mut self, e: &BytesStart<'_>, offset: u64) -> Result<(), IndexError> {
        let tag = Tag::of(e.name().as_ref());
        if self.stack.is_empty() {
            if self.seen_root || tag != Tag::PubmedArticleSet {
                return Err(IndexError::BadFile {
                    file: self.origin.clone(),
                    reason: format!(
                        "not PubMed XML: the root element is <{}>, expected <PubmedArticleSet>",
                        e.name().as_ref()
                    ),
                });
            }
            self.seen_root = true;
        }
        self.stack.push(tag);
        let depth = self.stack.len();
        if self.capture.is_some() {
            // Inline markup (<i>, <sup>, MathML) inside captured text: its text is kept.
            return Ok(());
        }
        match tag {
            Tag::PubmedArticle if depth == 2 => {
                self.records_read += 1;
                self.draft = Some(Draft {
                    offset,
                    version: 1,
                    ..Draft::default()
                });
            }
            Tag::DeleteCitation if depth == 2 => self.deletions = Some(Vec::new()),
            _ => {}
        }
        let target = if self.deletions.is_some() {
            (tag == Tag::Pmid).then_some(Target::DeletePmid)
        } else if self.draft.is_some() {
            self.target_for(tag, e)
        } else {
            None
        };
        if let Some(target) = target {
            self.capture = Some(Capture {
                target,
                depth,
                text: String::new(),
            });
        }
        Ok(())
    }

    /// The element just opened can be passed over: unused content inside a record.
    fn skippable(&self) -> bool {
        self.stack.last() == Some(&Tag::Skip) && self.capture.is_none() && self.draft.is_some()
    }

    fn target_for(&mut self, tag: Tag, e: &BytesStart<'_>) -> Option<Target> {
        use Tag as T;
        let draft = self.draft.as_mut()?;
        let target = match tag {
            T::Pmid
                if self
                    .stack
                    .ends_with(&[T::PubmedArticle, T::MedlineCitation, T::Pmid]) =>
            {
                if let Some(v) = attr(e, "Version", draft) {
                    draft.version = v.trim().parse().unwrap_or(1);
                }
                Target::Pmid
            }
            T::ArticleTitle if self.stack.ends_with(&[T::Article, T::ArticleTitle]) => {
                Target::Title
            }
            T::VernacularTitle if self.stack.ends_with(&[T::Article, T::VernacularTitle]) => {
                Target::VernacularTitle
            }
            T::AbstractText
                if self
                    .stack
                    .ends_with(&[T::Article, T::Abstract, T::AbstractText]) =>
            {
                draft.section_label = attr(e, "Label", draft).filter(|l| !l.trim().is_empty());
                Target::AbstractSection
            }
            T::Title if self.stack.ends_with(&[T::Article, T::Journal, T::Title]) => {
                Target::Journal
            }
            T::IsoAbbreviation if self.stack.ends_with(&[T::Journal, T::IsoAbbreviation]) => {
                Target::JournalIso
            }
            T::Year
                if self
                    .stack
                    .ends_with(&[T::JournalIssue, T::PubDate, T::Year]) =>
            {
                Target::Year
            }
            T::MedlineDate
                if self
                    .stack
                    .ends_with(&[T::JournalIssue, T::PubDate, T::MedlineDate]) =>
            {
                Target::MedlineDate
            }
            T::Volume
                if self
                    .stack
                    .ends_with(&[T::Journal, T::JournalIssue, T::Volume]) =>
            {
                Target::Volume
            }
            T::Issue
                if self
                    .stack
                    .ends_with(&[T::Journal, T::JournalIssue, T::Issue]) =>
            {
                Target::Issue
            }
            T::MedlinePgn
                if self
                    .stack
                    .ends_with(&[T::Article, T::Pagination, T::MedlinePgn]) =>
            {
                Target::Pages
            }
            T::LastName
                if self
                    .stack
                    .ends_with(&[T::AuthorList, T::Author, T::LastName]) =>
            {
                Target::LastName
            }
            T::ForeName
                if self
                    .stack
                    .ends_with(&[T::AuthorList, T::Author, T::ForeName]) =>
            {
                Target::ForeName
            }
            T::Initials
                if self
                    .stack
                    .ends_with(&[T::AuthorList, T::Author, T::Initials]) =>
            {
                Target::Initials
            }
            T::CollectiveName
                if self
                    .stack
                    .ends_with(&[T::AuthorList, T::Author, T::CollectiveName]) =>
            {
                Target::CollectiveName
            }
            T::Author
                if self
                    .stack
                    .ends_with(&[T::Article, T::AuthorList, T::Author]) =>
            {
                draft.author = AuthorParts::default();
                return None;
            }
            T::Language if self.stack.ends_with(&[T::Article, T::Language]) => Target::Language,
            T::PublicationType
                if self
                    .stack
                    .ends_with(&[T::PublicationTypeList, T::PublicationType]) =>
            {
                Target::PubType
            }
            T::MeshHeading if self.stack.ends_with(&[T::MeshHeadingList, T::MeshHeading]) => {
                draft.mesh_descriptor.clear();
                draft.mesh_major = false;
                return None;
            }
            T::DescriptorName if self.stack.ends_with(&[T::MeshHeading, T::DescriptorName]) => {
                draft.mesh_major |= attr(e, "MajorTopicYN", draft).as_deref() == Some("Y");
                Target::Descriptor
            }
            T::QualifierName if self.stack.ends_with(&[T::MeshHeading, T::QualifierName]) => {
                // Only the major-topic flag of a qualifier matters, not its text.
                draft.mesh_major |= attr(e, "MajorTopicYN", draft).as_deref() == Some("Y");
                return None;
            }
            T::Keyword if self.stack.ends_with(&[T::KeywordList, T::Keyword]) => Target::Keyword,
            T::ArticleId
                if self
                    .stack
                    .ends_with(&[T::PubmedData, T::ArticleIdList, T::ArticleId]) =>
            {
                match attr(e, "IdType", draft).as_deref() {
                    Some("doi") => Target::Doi,
                    Some("pmc") => Target::Pmc,
                    _ => return None,
                }
            }
            T::ELocationId if self.stack.ends_with(&[T::Article, T::ELocationId]) => {
                match attr(e, "EIdType", draft).as_deref() {
                    Some("doi") => Target::ElocationDoi,
                    _ => return None,
                }
            }
            _ => return None,
        };
        Some(target)
    }

    fn text(&mut self, text: &str) {
        if let Some(cap) = self.capture.as_mut() {
            cap.text.push_str(text);
        }
    }

    fn reference(&mut self, r: &quick_xml::events::BytesRef<'_>) {
        if self.capture.is_none() {
            // An entity outside captured text still has to be valid.
            if self.draft.is_some() && resolve_reference(r).is_none() {
                self.mark_bad(format!("unknown entity &{};", r.as_ref()));
            }
            return;
        }
        match resolve_reference(r) {
            Some(c) => {
                if let Some(cap) = self.capture.as_mut() {
                    cap.text.push(c);
                }
            }
            None => self.mark_bad(format!("unknown entity &{};", r.as_ref())),
        }
    }

    fn mark_bad(&mut self, reason: String) {
        if let Some(d) = self.draft.as_mut() {
            d.bad.get_or_insert(reason);
        } else if self.deletions.is_some() {
            // A DeleteCitation block with bad content: drop the PMID being read.
            self.capture = None;
        }
    }

    fn end(&mut self, on_record: &mut dyn FnMut(Record)) {
        let depth = self.stack.len();
        let tag = self.stack.pop().unwrap_or(Tag::Other);
        if let Some(cap) = self.capture.take_if(|c| c.depth == depth) {
            self.finish_capture(cap);
        }
        if self.capture.is_some() {
            return;
        }
        match tag {
            Tag::PubmedArticle if depth == 2 => {
                if let Some(d) = self.draft.take() {
                    self.finish_record(d, on_record);
                }
            }
            Tag::DeleteCitation if depth == 2 => {
                if let Some(pmids) = self.deletions.take() {
                    on_record(Record::Delete(pmids));
                }
            }
            Tag::Author => {
                if let Some(d) = self.draft.as_mut() {
                    let a = std::mem::take(&mut d.author);
                    let author = if !a.collective.is_empty() {
                        Author {
                            last: a.collective,
                            collective: true,
                            ..Author::default()
                        }
                    } else {
                        Author {
                            last: a.last,
                            fore: a.fore,
                            initials: a.initials,
                            collective: false,
                        }
                    };
                    if !author.last.is_empty() || !author.given().is_empty() {
                        d.article.authors.push(author);
                    }
                }
            }
            Tag::MeshHeading => {
                if let Some(d) = self.draft.as_mut() {
                    if !d.mesh_descriptor.is_empty() {
                        d.article.mesh.push(MeshHeading {
                            descriptor: std::mem::take(&mut d.mesh_descriptor),
                            major: d.mesh_major,
                        });
                    }
                }
            }
            _ => {}
        }
    }

    fn finish_capture(&mut self, cap: Capture) {
        let text = normalized(cap.text);
        if cap.target == Target::DeletePmid {
            if let (Some(list), Ok(pmid)) = (self.deletions.as_mut(), text.parse::<u64>()) {
                list.push(pmid);
            } else {
                tracing::warn!(file = %self.origin.display(), value = %text, "DeleteCitation PMID is not a number; ignored");
            }
            return;
        }
        let Some(d) = self.draft.as_mut() else {
            return;
        };
        let a = &mut d.article;
        match cap.target {
            Target::Pmid => d.pmid_text = Some(text),
            Target::Title => a.title = text,
            Target::VernacularTitle => d.vernacular_title = text,
            Target::AbstractSection => {
                if !text.is_empty() {
                    let label = d.section_label.take().map(|l| normalize_space(&l));
                    d.sections.push(match &label {
                        Some(label) => format!("{label}: {text}"),
                        None => text,
                    });
                    d.labels.push(label.unwrap_or_default());
                }
            }
            Target::Journal => a.journal = text,
            Target::JournalIso => a.journal_iso = text,
            Target::Year => a.year = text.parse().ok(),
            Target::MedlineDate => d.medline_date = text,
            Target::Volume => a.volume = text,
            Target::Issue => a.issue = text,
            Target::Pages => a.pages = text,
            Target::LastName => d.author.last = text,
            Target::ForeName => d.author.fore = text,
            Target::Initials => d.author.initials = text,
            Target::CollectiveName => d.author.collective = text,
            Target::Language => push_nonempty(&mut a.languages, text),
            Target::PubType => push_nonempty(&mut a.pub_types, text),
            Target::Descriptor => d.mesh_descriptor = text,
            Target::Keyword => push_nonempty(&mut a.keywords, text),
            Target::Doi => a.doi = Some(text).filter(|s| !s.is_empty()),
            Target::Pmc => a.pmc = Some(text).filter(|s| !s.is_empty()),
            Target::ElocationDoi => d.elocation_doi = Some(text).filter(|s| !s.is_empty()),
            Target::DeletePmid => {}
        }
    }

    fn finish_record(&mut self, d: Draft, on_record: &mut dyn FnMut(Record)) {
        let pmid = d.pmid_text.as_deref().and_then(|t| t.parse::<u64>().ok());
        let problem = match (&d.bad, &d.pmid_text, pmid) {
            (Some(bad), _, _) => Some(bad.clone()),
            (None, None, _) => Some("no MedlineCitation/PMID".to_string()),
            (None, Some(t), None) => Some(format!("PMID `{t}` is not a number")),
            (None, Some(_), Some(0)) => Some("PMID 0 is not valid".to_string()),
            _ => None,
        };
        if let Some(reason) = problem {
            self.rejected.push(Rejected {
                file: self.origin.clone(),
                offset: d.offset,
                line: None,
                pmid,
                reason,
            });
            return;
        }
        let mut a = d.article;
        a.pmid = pmid.unwrap_or_default();
        a.version = d.version;
        a.abstract_text = d.sections.join("\n");
        if d.labels.iter().any(|l| !l.is_empty()) {
            a.section_labels = d.labels;
        }
        if a.title.is_empty() {
            a.title = d.vernacular_title;
        }
        if a.year.is_none() {
            a.year = first_year(&d.medline_date);
        }
        if a.doi.is_none() {
            a.doi = d.elocation_doi;
        }
        on_record(Record::Article(Box::new(a)));
    }
}

fn push_nonempty(v: &mut Vec<String>, s: String) {
    if !s.is_empty() {
        v.push(s);
    }
}

/// An attribute's value with entities resolved; a malformed value marks the record bad.
fn attr(e: &BytesStart<'_>, name: &str, draft: &mut Draft) -> Option<String> {
    for a in e.attributes().with_checks(false).flatten() {
        if a.key.as_ref() == name {
            return match quick_xml::escape::unescape(&a.value) {
                Ok(v) => Some(v.into_owned()),
                Err(err) => {
                    draft
                        .bad
                        .get_or_insert_with(|| format!("bad attribute {name}: {err}"));
                    None
                }
            };
        }
    }
    None
}

/// The five predefined XML entities and character references; `None` for anything else.
fn resolve_reference(r: &quick_xml::events::BytesRef<'_>) -> Option<char> {
    if let Ok(Some(c)) = r.resolve_char_ref() {
        return Some(c);
    }
    match r.as_ref() {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => None,
    }
}

/// Collapses runs of white space to one space and trims the ends.
pub fn normalize_space(s: &str) -> String {
    normalized(s.to_string())
}

/// [`normalize_space`] on an owned string, which is returned as is when already normal (the
/// common case: most text runs are single-line).
fn normalized(s: String) -> String {
    if is_normal(&s) {
        return s;
    }
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// No leading or trailing white space, no white space but single ASCII spaces.
fn is_normal(s: &str) -> bool {
    let b = s.as_bytes();
    if b.first() == Some(&b' ') || b.last() == Some(&b' ') {
        return false;
    }
    if s.is_ascii() {
        // Whole-buffer searches (SIMD) rather than a byte loop: abstracts are long.
        return memchr::memchr3(b'\n', b'\t', b'\r', b).is_none()
            && memchr::memchr2(0x0b, 0x0c, b).is_none()
            && memchr::memmem::find(b, b"  ").is_none();
    }
    let mut prev_space = true;
    for c in s.chars() {
        if c == ' ' {
            if prev_space {
                return false;
            }
            prev_space = true;
        } else if c.is_whitespace() {
            return false;
        } else {
            prev_space = false;
        }
    }
    !prev_space || s.is_empty()
}

/// The first plausible four-digit year in a `MedlineDate` such as "1998 Dec-1999 Jan".
fn first_year(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    (0..b.len().saturating_sub(3)).find_map(|i| {
        let w = &b[i..i + 4];
        let boundary_before = i == 0 || !b[i - 1].is_ascii_digit();
        let boundary_after = b.get(i + 4).is_none_or(|c| !c.is_ascii_digit());
        if boundary_before && boundary_after && w.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(w).ok()?.parse().ok()
        } else {
            None
        }
    })
}

/// Fills in the line numbers of rejected records by counting newlines up to their offsets.
/// Only run when something was rejected, which is rare.
fn fill_lines(path: &Path, rejected: &mut [Rejected]) {
    if rejected.is_empty() {
        return;
    }
    let Ok(file) = File::open(path) else {
        return;
    };
    let mut input = BufReader::new(file);
    let gz = input
        .fill_buf()
        .map(|h| h.starts_with(&[0x1f, 0x8b]))
        .unwrap_or(false);
    let mut reader: Box<dyn Read> = if gz {
        Box::new(MultiGzDecoder::new(input))
    } else {
        Box::new(input)
    };
    let mut order: Vec<usize> = (0..rejected.len()).collect();
    order.sort_by_key(|&i| rejected[i].offset);
    let mut pos = 0u64;
    let mut line = 1u64;
    let mut buf = vec![0u8; 1 << 16];
    let mut next = 0;
    while next < order.len() {
        let n = match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut start = 0usize;
        while next < order.len() {
            let target = rejected[order[next]].offset;
            if target >= pos + n as u64 {
                break;
            }
            let upto = (target - pos) as usize;
            line += buf[start..upto].iter().filter(|&&b| b == b'\n').count() as u64;
            start = upto;
            rejected[order[next]].line = Some(line);
            next += 1;
        }
        line += buf[start..n].iter().filter(|&&b| b == b'\n').count() as u64;
        pos += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(xml: &str) -> Result<(Vec<Record>, ParseSummary), IndexError> {
        let mut out = Vec::new();
        let s = parse_reader(xml.as_bytes(), Path::new("t.xml"), &mut |r| out.push(r))?;
        Ok((out, s))
    }

    #[test]
    fn years_from_medline_date() {
        assert_eq!(first_year("1998 Dec-1999 Jan"), Some(1998));
        assert_eq!(first_year("Spring 2001"), Some(2001));
        assert_eq!(first_year("12345"), None);
        assert_eq!(first_year(""), None);
    }

    #[test]
    fn whitespace_is_collapsed() {
        assert_eq!(normalize_space("  a \n\t b  "), "a b");
        assert_eq!(normalize_space("a  b"), "a b");
        assert_eq!(normalize_space("a\u{a0}b\u{3000}"), "a b");
        assert_eq!(normalize_space("already normal, αβ"), "already normal, αβ");
        assert_eq!(normalize_space("   "), "");
        assert_eq!(normalize_space(""), "");
    }

    #[test]
    fn inline_markup_entities_and_cdata_are_text() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID Version="2">42</PMID>
<Article><Journal><JournalIssue><Volume>12</Volume><Issue>3 Pt 1</Issue><PubDate><MedlineDate>1998 Dec-1999 Jan</MedlineDate></PubDate></JournalIssue>
<Title>J &amp; K</Title></Journal><Pagination><StartPage>5</StartPage><MedlinePgn>5-9</MedlinePgn></Pagination>
<ArticleTitle>The <i>crb2b<sup>e40</sup></i> allele &#x3b1; &lt;1&gt;</ArticleTitle>
<Abstract><AbstractText Label="AIM &amp; SCOPE">TiO<sub>x</sub> <![CDATA[a<b]]> works.</AbstractText><AbstractText/></Abstract>
<AuthorList><Author><LastName>Doe</LastName><Initials>J</Initials></Author><Author><CollectiveName>The Group</CollectiveName></Author></AuthorList>
</Article></MedlineCitation></PubmedArticle></PubmedArticleSet>"#;
        let (recs, s) = parse_str(xml).unwrap();
        assert_eq!(s.records_read, 1);
        let Record::Article(a) = &recs[0] else {
            panic!("{recs:?}")
        };
        assert_eq!(a.pmid, 42);
        assert_eq!(a.version, 2);
        assert_eq!(a.title, "The crb2be40 allele α <1>");
        assert_eq!(a.abstract_text, "AIM & SCOPE: TiOx a<b works.");
        assert_eq!(a.sections(), vec![("AIM & SCOPE", "TiOx a<b works.")]);
        assert_eq!(a.journal, "J & K");
        assert_eq!(a.year, Some(1998));
        let names: Vec<String> = a.authors.iter().map(|x| x.full_name()).collect();
        assert_eq!(names, vec!["J Doe", "The Group"]);
        assert_eq!(a.authors[0].short_name(), "Doe J");
        assert!(a.authors[1].collective);
        assert_eq!((&*a.volume, &*a.issue, &*a.pages), ("12", "3 Pt 1", "5-9"));
    }

    #[test]
    fn bom_is_skipped() {
        let xml = "\u{feff}<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>7</PMID></MedlineCitation></PubmedArticle></PubmedArticleSet>";
        let (recs, _) = parse_str(xml).unwrap();
        assert_eq!(recs.len(), 1);
    }

    #[test]
    fn bad_records_are_skipped_with_reason_and_offset() {
        let xml = "<PubmedArticleSet>\n<PubmedArticle><MedlineCitation><PMID>1</PMID><Article><ArticleTitle>ok</ArticleTitle></Article></MedlineCitation></PubmedArticle>\n<PubmedArticle><MedlineCitation><Article><ArticleTitle>no id</ArticleTitle></Article></MedlineCitation></PubmedArticle>\n<PubmedArticle><MedlineCitation><PMID>3</PMID><Article><ArticleTitle>bad &nbsp; entity</ArticleTitle></Article></MedlineCitation></PubmedArticle>\n<PubmedArticle><MedlineCitation><PMID>x9</PMID></MedlineCitation></PubmedArticle>\n</PubmedArticleSet>";
        let (recs, s) = parse_str(xml).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(s.records_read, 4);
        let reasons: Vec<&str> = s.rejected.iter().map(|r| r.reason.as_str()).collect();
        assert_eq!(
            reasons,
            vec![
                "no MedlineCitation/PMID",
                "unknown entity &nbsp;",
                "PMID `x9` is not a number"
            ]
        );
        assert_eq!(s.rejected[1].pmid, Some(3));
        let second = xml
            .find("<PubmedArticle><MedlineCitation><Article>")
            .unwrap();
        assert_eq!(s.rejected[0].offset, second as u64);
    }

    #[test]
    fn broken_documents_fail_the_file() {
        let unclosed = "<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>1</PMID></MedlineCitation></PubmedArticleSet>";
        let e = parse_str(unclosed).unwrap_err().to_string();
        assert!(e.contains("t.xml") && e.contains("XML error"), "{e}");
        let cut = "<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>1</PMID>";
        let e = parse_str(cut).unwrap_err().to_string();
        assert!(e.contains("unexpected end of file"), "{e}");
        let other = "<html><body/></html>";
        let e = parse_str(other).unwrap_err().to_string();
        assert!(e.contains("not PubMed XML"), "{e}");
        let e = parse_str("").unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        let latin = "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><PubmedArticleSet/>";
        let e = parse_str(latin).unwrap_err().to_string();
        assert!(e.contains("iso-8859-1"), "{e}");
    }

    #[test]
    fn delete_citation_yields_deletions() {
        let xml = "<PubmedArticleSet><DeleteCitation>\n<PMID Version=\"1\">5</PMID>\n<PMID Version=\"1\">6</PMID></DeleteCitation></PubmedArticleSet>";
        let (recs, s) = parse_str(xml).unwrap();
        assert_eq!(recs, vec![Record::Delete(vec![5, 6])]);
        assert_eq!(s.records_read, 0);
    }
}
