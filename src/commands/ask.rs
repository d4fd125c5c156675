//! `medlit ask`: a cited answer from the evidence.
use std::io::{IsTerminal, Write};
use std::time::Instant;

use anyhow::{Context, Result};

use super::print_json;
use super::search::open_retriever;
use crate::answer::{ask, Answer, AskOptions};
use crate::cite::Thresholds;
use crate::cli::{AnswerStyle, AskArgs, GenerateArgs, SearchModeArg};
use crate::generate::hf::HfChat;
use crate::generate::sampler::Sampling;
use crate::generate::{GemmaGguf, GenOptions, Generator};
use crate::prompt::{EvidenceOrder, Template};
use crate::retrieve::hybrid::{Mode, Retriever};
use crate::safety::Decision;

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

/// The generator the arguments name: a remote server (`--llm-endpoint`), a GGUF file, or the
/// fetched default model.
pub fn load_generator(args: &GenerateArgs) -> Result<Box<dyn Generator + Send>> {
    if let Some(endpoint) = &args.llm_endpoint {
        let model = args
            .llm_model
            .as_deref()
            .context("--llm-model names the model on the server")?;
        return Ok(Box::new(crate::generate::remote::RemoteChat::new(
            endpoint,
            model,
            args.llm_context,
            std::time::Duration::from_secs(args.llm_timeout.max(1)),
        )));
    }
    let device = crate::generate::device::parse(&args.device)?;
    if let Some(dir) = args.model.as_deref().filter(|p| HfChat::is_folder(p)) {
        return Ok(Box::new(load_folder(dir, args, &device)?));
    }
    Ok(Box::new(load_gguf(args, &device)?))
}

/// Loads a Hugging Face model folder, after saying what it will take and checking it fits.
pub fn load_folder(
    dir: &std::path::Path,
    args: &GenerateArgs,
    device: &crate::generate::Device,
) -> Result<HfChat> {
    let cfg = crate::generate::gemma4::Config::load(&dir.join("config.json"))?;
    let dtype = crate::generate::device::dtype_for(device, args.dtype.map(Into::into));
    let context = args.context.clamp(1, cfg.max_position_embeddings);
    let plan = crate::generate::device::check_fits(&cfg, dtype, context, device)?;
    eprintln!("{plan}");
    let t = Instant::now();
    let g = HfChat::load(dir, context, dtype, device)
        .with_context(|| format!("loading the model folder {}", dir.display()))?;
    tracing::info!(
        "loaded {} in {:.2} s",
        dir.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(g)
}

/// Loads the GGUF model the arguments name (the fetched default when none).
pub fn load_gguf(args: &GenerateArgs, device: &crate::generate::Device) -> Result<GemmaGguf> {
    let path = super::generator_path(args.model.as_deref())?;
    let t = Instant::now();
    let g = GemmaGguf::load(&path, args.context, device)
        .with_context(|| format!("loading the model {}", path.display()))?;
    tracing::info!(
        "loaded {} in {:.2} s",
        path.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(g)
}

/// Default answer lengths: a span is a name, a number or a short phrase (a few tokens, as
/// dev_qa's golden answers); free text has room for a sentence or two with citations.
const SPAN_TOKENS: usize = 16;
const FREE_TOKENS: usize = 96;
/// Default evidence sizes: a 270M model copying a span is distracted by more passages (exact
/// match on dev_qa 0.40 at k 3, 0.35 at k 5, see README); free text cites more of them.
const SPAN_K: usize = 3;
const FREE_K: usize = 5;

/// `prefers_extraction`: what the loaded generator is suited to (see `--answer`).
pub fn ask_options(
    args: &GenerateArgs,
    k: Option<usize>,
    mode: Mode,
    prefers_extraction: bool,
) -> Result<AskOptions> {
    let extract = match args.answer {
        AnswerStyle::Auto => prefers_extraction,
        AnswerStyle::Span => true,
        AnswerStyle::Free => false,
    };
    let template = match &args.prompt {
        Some(p) => p.as_str(),
        None if extract => "extractive",
        None => crate::prompt::DEFAULT,
    };
    Ok(AskOptions {
        k: k.unwrap_or(if extract { SPAN_K } else { FREE_K }),
        mode,
        years: None,
        extract,
        template: Template::load(template)?.ordered(args.evidence_order.unwrap_or(if extract {
            EvidenceOrder::BestLast
        } else {
            EvidenceOrder::Rank
        })),
        generation: GenOptions {
            max_tokens: args
                .max_tokens
                .unwrap_or(if extract { SPAN_TOKENS } else { FREE_TOKENS })
                .max(1),
            sampling: Sampling {
                temperature: args.temperature,
                top_p: args.top_p,
                seed: args.seed,
            },
        },
        thresholds: Thresholds {
            min_coverage: args.min_coverage,
            min_similarity: args.min_similarity,
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
    // A bad template file is named before seconds go into loading models.
    if let Some(p) = &args.generate.prompt {
        Template::load(p)?;
    }
    let mut generator = load_generator(&args.generate)?;
    let mut opts = ask_options(&args.generate, args.k, mode, generator.prefers_extraction())?;
    opts.years = args.year;
    let screener = super::screener(args.generate.safety_policy.as_deref(), Some(&retriever))?;
    let stream = !args.json && std::io::stderr().is_terminal();
    let answer = ask(
        &retriever,
        generator.as_mut(),
        &screener,
        &args.question(),
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

/// One numbered reference: PMID, title, journal, year and the PubMed link.
fn reference(n: usize, pmid: &str, title: &str, journal: &str, year: Option<i64>) -> String {
    let year = year.map_or_else(|| "n.d.".to_string(), |y| y.to_string());
    format!(
        "[{n}] PMID {pmid}  {title} ({journal}, {year})  https://pubmed.ncbi.nlm.nih.gov/{pmid}/\n"
    )
}

pub fn print_answer(a: &Answer, show_evidence: bool) -> Result<()> {
    let mut out = answer_text(a);
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

/// The answer with its numbered references (or related reading) and what was removed: what
/// a reader sees, here and in the server's chat replies.
pub fn answer_text(a: &Answer) -> String {
    let mut out = format!("{}\n", a.answer);
    if !a.citations.is_empty() {
        out.push_str("\nReferences\n");
        for (i, c) in a.citations.iter().enumerate() {
            out.push_str(&reference(i + 1, &c.pmid, &c.title, &c.journal, c.year));
        }
    }
    if (a.abstained || a.safety.decision != Decision::Answer) && !a.related.is_empty() {
        out.push_str("\nRelated reading (not support, not advice)\n");
        for (i, pmid) in a.related.iter().enumerate() {
            match a.evidence.iter().find(|e| &e.pmid == pmid) {
                Some(e) => out.push_str(&reference(i + 1, pmid, &e.title, &e.journal, e.year)),
                None => out.push_str(&format!("[{}] PMID {pmid}\n", i + 1)),
            }
        }
    }
    if !a.removed_pmids.is_empty() {
        out.push_str(&format!(
            "\n(removed {} PMID(s) the model wrote that are not in the evidence)\n",
            a.removed_pmids.len()
        ));
    }
    out
}
