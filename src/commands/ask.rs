//! `medlit ask`: a cited answer from the evidence.
use std::io::{IsTerminal, Write};
use std::time::Instant;

use anyhow::{Context, Result};

use super::print_json;
use super::search::open_retriever;
use crate::answer::{ask, Answer, AskOptions};
use crate::cite::Thresholds;
use crate::cli::{AskArgs, GenerateArgs, SearchModeArg};
use crate::generate::sampler::Sampling;
use crate::generate::{GemmaGguf, GenOptions};
use crate::prompt::Template;
use crate::retrieve::hybrid::{Mode, Retriever};

/// The research-use notice every answer carries.
pub const NOTICE: &str =
    "Research aid only: not medical advice. Check the cited articles before relying on them.";

/// Sets the CPU threads of generation (candle reads RAYON_NUM_THREADS; rayon's pool too).
pub fn set_threads(n: Option<usize>) {
    let n = n
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
        .max(1);
    // Before any thread exists: set_var is only unsound with concurrent readers.
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
}

/// Loads the generator named by the arguments (the fetched default when none).
pub fn load_generator(args: &GenerateArgs) -> Result<GemmaGguf> {
    let path = super::generator_path(args.model.as_deref())?;
    let t = Instant::now();
    let g = GemmaGguf::load(&path, args.context, &candle_core::Device::Cpu)
        .with_context(|| format!("loading the model {}", path.display()))?;
    tracing::info!(
        "loaded {} in {:.2} s",
        path.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(g)
}

pub fn ask_options(args: &GenerateArgs, k: usize, mode: Mode) -> Result<AskOptions> {
    Ok(AskOptions {
        k,
        mode,
        template: Template::load(&args.prompt)?,
        generation: GenOptions {
            max_tokens: args.max_tokens.max(1),
            sampling: Sampling {
                temperature: args.temperature,
                top_p: args.top_p,
                seed: args.seed,
            },
        },
        thresholds: Thresholds {
            min_coverage: args.min_coverage,
            ..Thresholds::default()
        },
    })
}

pub fn mode_of(retriever: &Retriever, arg: SearchModeArg) -> Mode {
    match arg {
        SearchModeArg::Auto => retriever.default_mode(),
        SearchModeArg::Bm25 => Mode::Bm25,
        SearchModeArg::Dense => Mode::Dense,
        SearchModeArg::Hybrid => Mode::Hybrid,
    }
}

pub fn run(args: &AskArgs) -> Result<()> {
    set_threads(args.generate.threads);
    let dir = super::index_dir(&args.index)?;
    let retriever = open_retriever(&dir, args.mode != SearchModeArg::Bm25, &args.fusion)?;
    let mode = mode_of(&retriever, args.mode);
    let opts = ask_options(&args.generate, args.k, mode)?;
    let mut generator = load_generator(&args.generate)?;
    let stream = !args.json && std::io::stderr().is_terminal();
    let answer = ask(
        &retriever,
        &mut generator,
        &args.question,
        &opts,
        &mut |piece| {
            if stream {
                eprint!("\x1b[2m{piece}\x1b[0m");
                let _ = std::io::stderr().flush();
            }
            true
        },
    )?;
    if stream {
        eprintln!();
    }
    if args.json {
        return print_json(&AnswerJson::new(&answer));
    }
    print_answer(&answer, args.show_evidence)
}

/// `--json` of `ask`: the answer and everything that backs it.
#[derive(serde::Serialize)]
pub struct AnswerJson<'a> {
    #[serde(flatten)]
    pub answer: &'a Answer,
    pub notice: &'static str,
}

impl<'a> AnswerJson<'a> {
    pub fn new(answer: &'a Answer) -> Self {
        AnswerJson {
            answer,
            notice: NOTICE,
        }
    }
}

pub fn print_answer(a: &Answer, show_evidence: bool) -> Result<()> {
    let mut out = format!("{}\n", a.answer);
    if !a.citations.is_empty() {
        out.push_str("\nReferences\n");
        for (i, c) in a.citations.iter().enumerate() {
            let year = c
                .year
                .map(|y| y.to_string())
                .unwrap_or_else(|| "n.d.".into());
            out.push_str(&format!(
                "[{}] PMID {}  {} ({}, {})  https://pubmed.ncbi.nlm.nih.gov/{}/\n",
                i + 1,
                c.pmid,
                c.title,
                c.journal,
                year,
                c.pmid
            ));
        }
    }
    if a.abstained && !a.related.is_empty() {
        out.push_str(&format!(
            "\nRelated (not support): {}\n",
            a.related
                .iter()
                .map(|p| format!("PMID {p}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !a.removed_pmids.is_empty() {
        out.push_str(&format!(
            "\n(removed {} PMID(s) the model wrote that are not in the evidence)\n",
            a.removed_pmids.len()
        ));
    }
    if show_evidence {
        out.push_str("\nEvidence\n");
        for e in &a.evidence {
            out.push_str(&format!("[PMID {}] {}\n    {}\n", e.pmid, e.title, e.text));
        }
    }
    out.push_str(&format!(
        "\n{NOTICE}\n({} · retrieve {:.0} ms, generate {:.0} ms)\n",
        a.model, a.timings_ms.retrieve, a.timings_ms.generate
    ));
    super::emit(&out)
}
