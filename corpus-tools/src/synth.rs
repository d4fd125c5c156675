//! Synthetic PubMed corpora for scale tests: real abstracts recombined sentence by sentence
//! into new records with new PMIDs, written as NLM-style `.xml.gz` files.
//!
//! Each record takes its title, journal, MeSH headings and sentence count from one real
//! article (its *topic*), and each sentence position from the topic or from another article
//! sharing a MeSH heading with it (the same journal when it has none), so the text stays on one subject and the vocabulary,
//! lengths and MeSH distribution are PubMed's. Years follow the sample's own distribution.
//! Files after the first can revise earlier PMIDs and delete some (`DeleteCitation`), as
//! NLM's update files do. The output depends only on the seeds and options.
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::CorpusError;

/// One real article, as the generator needs it.
#[derive(Debug, Clone)]
pub struct SeedArticle {
    pub title: String,
    pub sentences: Vec<String>,
    pub mesh: Vec<String>,
    pub year: Option<i32>,
    pub journal: String,
}

#[derive(Debug, Clone)]
pub struct SynthOptions {
    /// New records in all (revisions included).
    pub records: usize,
    /// Records per file (NLM's files hold 30,000).
    pub per_file: usize,
    pub seed: u64,
    /// The first PMID; records are numbered from it.
    pub first_pmid: u64,
    /// Of each file after the first, this share of its records revise earlier PMIDs.
    pub revise: f64,
    /// Per file after the first, this share of its record count is deleted (earlier PMIDs).
    pub delete: f64,
    /// File names are `<prefix>NNNN.xml.gz` (NLM: `pubmed25n`).
    pub prefix: String,
}

impl Default for SynthOptions {
    fn default() -> Self {
        Self {
            records: 50_000,
            per_file: 30_000,
            seed: 1,
            first_pmid: 90_000_001,
            revise: 0.0,
            delete: 0.0,
            prefix: "pubmed99n".into(),
        }
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SynthReport {
    pub files: Vec<PathBuf>,
    pub records: u64,
    /// Records that revise a PMID of an earlier file.
    pub revisions: u64,
    pub deletions: u64,
    /// Distinct PMIDs left after all files (what an index of them holds).
    pub live_pmids: u64,
    pub bytes: u64,
}

/// SplitMix64: small, fast, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// Writes the corpus into `out` (created). Fails if there are no seeds with text.
pub fn write_corpus(
    seeds: &[SeedArticle],
    opts: &SynthOptions,
    out: &Path,
) -> Result<SynthReport, CorpusError> {
    let seeds: Vec<&SeedArticle> = seeds.iter().filter(|s| !s.sentences.is_empty()).collect();
    if seeds.is_empty() {
        return Err(CorpusError::Synth(
            "no seed article has an abstract to recombine".into(),
        ));
    }
    std::fs::create_dir_all(out).map_err(|e| CorpusError::io("creating", out, e))?;
    // Articles by MeSH heading, so a sentence can come from a neighbour on the same subject.
    let mut by_mesh: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, s) in seeds.iter().enumerate() {
        for m in &s.mesh {
            by_mesh.entry(m.as_str()).or_default().push(i);
        }
    }
    // Without MeSH (most records of a recent file), the journal is the subject.
    let mut by_journal: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, s) in seeds.iter().enumerate() {
        by_journal.entry(s.journal.as_str()).or_default().push(i);
    }
    let years: Vec<i32> = seeds.iter().filter_map(|s| s.year).collect();
    let mut rng = Rng(opts.seed ^ 0x6D65_646C_6974);
    let mut report = SynthReport::default();
    let per_file = opts.per_file.max(1);
    let mut next_pmid = opts.first_pmid;
    let mut live: Vec<u64> = Vec::new();
    let mut file_no = 0;
    while (report.records as usize) < opts.records {
        file_no += 1;
        let n = per_file.min(opts.records - report.records as usize);
        let path = out.join(format!("{}{file_no:04}.xml.gz", opts.prefix));
        let tmp = path.with_extension("gz.tmp");
        let f = std::fs::File::create(&tmp).map_err(|e| CorpusError::io("writing", &tmp, e))?;
        let mut gz =
            flate2::write::GzEncoder::new(std::io::BufWriter::new(f), flate2::Compression::fast());
        let mut text = String::with_capacity(1 << 16);
        text.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<!DOCTYPE PubmedArticleSet PUBLIC \"-//NLM//DTD PubMedArticle, 1st January 2025//EN\" \"https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd\">\n<PubmedArticleSet>\n");
        for _ in 0..n {
            let revise = file_no > 1 && !live.is_empty() && rng.chance(opts.revise);
            let pmid = if revise {
                report.revisions += 1;
                live[rng.below(live.len())]
            } else {
                next_pmid += 1;
                live.push(next_pmid - 1);
                next_pmid - 1
            };
            record(
                &mut text,
                pmid,
                &seeds,
                [&by_mesh, &by_journal],
                &years,
                &mut rng,
            );
            report.records += 1;
            if text.len() > 1 << 20 {
                gz.write_all(text.as_bytes())
                    .map_err(|e| CorpusError::io("writing", &tmp, e))?;
                text.clear();
            }
        }
        if file_no > 1 && opts.delete > 0.0 {
            let k = ((n as f64) * opts.delete).round() as usize;
            if k > 0 && !live.is_empty() {
                text.push_str("<DeleteCitation>\n");
                for _ in 0..k.min(live.len()) {
                    let i = rng.below(live.len());
                    let pmid = live.swap_remove(i);
                    text.push_str(&format!("<PMID Version=\"1\">{pmid}</PMID>\n"));
                    report.deletions += 1;
                }
                text.push_str("</DeleteCitation>\n");
            }
        }
        text.push_str("</PubmedArticleSet>\n");
        gz.write_all(text.as_bytes())
            .map_err(|e| CorpusError::io("writing", &tmp, e))?;
        let w = gz
            .finish()
            .map_err(|e| CorpusError::io("writing", &tmp, e))?;
        let f = w
            .into_inner()
            .map_err(|e| CorpusError::io("writing", &tmp, e.into_error()))?;
        f.sync_all()
            .map_err(|e| CorpusError::io("writing", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| CorpusError::io("renaming", &path, e))?;
        report.bytes += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        report.files.push(path);
    }
    report.live_pmids = live.len() as u64;
    Ok(report)
}

fn record(
    out: &mut String,
    pmid: u64,
    seeds: &[&SeedArticle],
    [by_mesh, by_journal]: [&HashMap<&str, Vec<usize>>; 2],
    years: &[i32],
    rng: &mut Rng,
) {
    let topic = seeds[rng.below(seeds.len())];
    let neighbours: &[usize] = topic
        .mesh
        .get(rng.below(topic.mesh.len().max(1)))
        .and_then(|m| by_mesh.get(m.as_str()))
        .or_else(|| by_journal.get(topic.journal.as_str()))
        .map_or(&[], |v| v.as_slice());
    let year = if years.is_empty() {
        2000
    } else {
        years[rng.below(years.len())]
    };
    out.push_str("<PubmedArticle>\n<MedlineCitation Status=\"MEDLINE\" Owner=\"NLM\">\n");
    out.push_str(&format!("<PMID Version=\"1\">{pmid}</PMID>\n"));
    out.push_str(
        "<Article PubModel=\"Print\">\n<Journal><JournalIssue CitedMedium=\"Print\"><PubDate>",
    );
    out.push_str(&format!("<Year>{year}</Year>"));
    out.push_str("</PubDate></JournalIssue><Title>");
    escape_into(out, &topic.journal);
    out.push_str("</Title></Journal>\n<ArticleTitle>");
    escape_into(out, &topic.title);
    out.push_str("</ArticleTitle>\n<Abstract><AbstractText>");
    for (pos, own) in topic.sentences.iter().enumerate() {
        // Half the sentences come from an article on the same subject, at the same position
        // when it has one: openings stay openings, conclusions stay conclusions.
        let s = match neighbours.len() {
            0 => own,
            n if rng.chance(0.5) => {
                let other = seeds[neighbours[rng.below(n)]];
                other.sentences.get(pos).unwrap_or(own)
            }
            _ => own,
        };
        if pos > 0 {
            out.push(' ');
        }
        escape_into(out, s);
    }
    out.push_str("</AbstractText></Abstract>\n<Language>eng</Language>\n</Article>\n");
    if !topic.mesh.is_empty() {
        out.push_str("<MeshHeadingList>\n");
        for m in &topic.mesh {
            out.push_str("<MeshHeading><DescriptorName>");
            escape_into(out, m);
            out.push_str("</DescriptorName></MeshHeading>\n");
        }
        out.push_str("</MeshHeadingList>\n");
    }
    out.push_str("</MedlineCitation>\n</PubmedArticle>\n");
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            // XML 1.0 forbids most control characters; the parser would reject the record.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeds() -> Vec<SeedArticle> {
        (0..20)
            .map(|i| SeedArticle {
                title: format!("Title {i} <&>"),
                sentences: (0..3).map(|j| format!("Sentence {j} of {i}.")).collect(),
                mesh: vec![format!("Mesh {}", i % 4)],
                year: Some(1990 + i),
                journal: "J Test".into(),
            })
            .collect()
    }

    #[test]
    fn deterministic_named_in_order_and_counted() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let opts = SynthOptions {
            records: 250,
            per_file: 100,
            revise: 0.1,
            delete: 0.05,
            ..Default::default()
        };
        let ra = write_corpus(&seeds(), &opts, a.path()).unwrap();
        let rb = write_corpus(&seeds(), &opts, b.path()).unwrap();
        assert_eq!(ra.files.len(), 3);
        assert!(ra.files[0].ends_with("pubmed99n0001.xml.gz"));
        assert_eq!(ra.records, 250);
        assert_eq!(ra.deletions, 5 + 3);
        assert!(ra.revisions > 0);
        assert_eq!(
            ra.live_pmids,
            ra.records - ra.revisions - ra.deletions,
            "each new PMID is live until deleted"
        );
        for (x, y) in ra.files.iter().zip(&rb.files) {
            assert_eq!(std::fs::read(x).unwrap(), std::fs::read(y).unwrap());
        }
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(std::fs::File::open(&ra.files[0]).unwrap()),
            &mut text,
        )
        .unwrap();
        assert!(text.contains("Title") && text.contains("&lt;&amp;&gt;"));
        assert!(!text.contains("<&>"));
    }
}
