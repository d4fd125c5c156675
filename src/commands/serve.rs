//! `medlit serve`: loads the index, the model and the safety policy once, then serves them.
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::ask::{ask_options, load_generator, mode_of, set_threads};
use super::search::open_retriever;
use crate::cli::{SearchModeArg, ServeArgs};
use crate::prompt::Template;
use crate::serve::queue::{AskRequest, OptionsFor, Queue};
use crate::serve::{serve, AppState, Limits};

pub fn run(args: &ServeArgs) -> Result<()> {
    set_threads(args.generate.threads);
    let dir = super::index_dir(&args.index)?;
    let retriever = Arc::new(open_retriever(
        &dir,
        args.mode != SearchModeArg::Bm25,
        &args.fusion,
    )?);
    let mode = mode_of(&retriever, args.mode);
    // A bad template is named before seconds go into loading models.
    if let Some(p) = &args.generate.prompt {
        Template::load(p)?;
    }
    let generator = load_generator(&args.generate)?;
    let model = generator.name().to_string();
    let prefers_extraction = generator.prefers_extraction();
    ask_options(&args.generate, None, mode, prefers_extraction)?;
    let screener = Arc::new(super::screener(
        args.generate.safety_policy.as_deref(),
        Some(retriever.as_ref()),
    )?);
    let generate = args.generate.clone();
    let options_for: OptionsFor = Box::new(move |r: &AskRequest| {
        let mut g = generate.clone();
        if r.max_tokens.is_some() {
            g.max_tokens = r.max_tokens;
        }
        let mut o =
            ask_options(&g, r.k, r.mode, prefers_extraction).map_err(|e| format!("{e:#}"))?;
        o.years = r.years;
        Ok(o)
    });
    let queue = Queue::start(
        generator,
        retriever.clone(),
        screener.clone(),
        options_for,
        args.queue,
    )
    .context("starting the answer worker")?;
    let state = Arc::new(AppState {
        retriever,
        screener,
        queue,
        limits: Limits {
            max_body_bytes: args.max_body_bytes,
            max_question_chars: args.max_question_chars,
            max_k: args.max_k,
            max_tokens: args.max_tokens_limit,
            timeout: Duration::from_secs(args.timeout.max(1)),
        },
        started: Instant::now(),
        model,
        default_mode: mode,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("medlit-http")
        .build()
        .context("starting the HTTP runtime")?;
    runtime
        .block_on(serve(state, args.addr, |bound| {
            // One line on standard output: scripts and tests read the port from it.
            println!("medlit serve: listening on http://{bound}");
            let _ = std::io::stdout().flush();
        }))
        .with_context(|| format!("serving on {}", args.addr))
}
