//! `medlit synth`: a synthetic PubMed corpus recombined from real abstracts, for scale work.
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::cli::setup;
use medlit_corpus::synth::{write_corpus, SeedArticle, SynthOptions, SynthReport};
use medlit_indexer::pubmed::{parse_file, Record};

use super::print_json;
use crate::cli::SynthArgs;

pub fn run(args: &SynthArgs) -> Result<()> {
    let sources = if args.from.is_empty() {
        setup::corpus_files(&setup::manifest(&args.manifest)?)?
    } else {
        args.from.clone()
    };
    let report = synthesise(
        &sources,
        &SynthOptions {
            records: args.records,
            per_file: args.per_file,
            seed: args.seed,
            first_pmid: args.first_pmid,
            revise: args.revise,
            delete: args.delete,
            prefix: args.prefix.clone(),
        },
        &args.out,
    )?;
    if args.json {
        return print_json(&report);
    }
    println!(
        "{} records in {} files ({:.1} MB) in {}: {} revisions, {} deletions, {} PMIDs live",
        report.records,
        report.files.len(),
        report.bytes as f64 / 1e6,
        args.out.display(),
        report.revisions,
        report.deletions,
        report.live_pmids
    );
    Ok(())
}

/// Seeds from the articles (with an abstract) of `sources`, then the corpus into `out`.
pub fn synthesise(
    sources: &[PathBuf],
    opts: &SynthOptions,
    out: &std::path::Path,
) -> Result<SynthReport> {
    let mut seeds = Vec::new();
    for p in sources {
        let parsed =
            parse_file(p).with_context(|| format!("reading seeds from {}", p.display()))?;
        for r in parsed.records {
            let Record::Article(a) = r else { continue };
            if !a.has_abstract() {
                continue;
            }
            seeds.push(SeedArticle {
                sentences: medlit_indexer::passages::sentences(&a.abstract_text)
                    .into_iter()
                    .map(str::to_string)
                    .collect(),
                title: a.title,
                mesh: a.mesh.into_iter().map(|m| m.descriptor).collect(),
                year: a.year,
                journal: if a.journal.is_empty() {
                    a.journal_iso
                } else {
                    a.journal
                },
            });
        }
    }
    write_corpus(&seeds, opts, out)
        .with_context(|| format!("writing the synthetic corpus into {}", out.display()))
}
