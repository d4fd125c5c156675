//! `medlit serve`: loads the index, the model and the safety policy once, then serves them.
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::cli::setup::Pipeline;
use crate::cli::ServeArgs;
use crate::serve::queue::Queue;
use crate::serve::{serve, AppState, Limits};

pub fn run(args: &ServeArgs) -> Result<()> {
    let mut p = Pipeline::open(&args.index, args.mode, &args.fusion, &args.generate, None)?;
    crate::cli::setup::use_retrieval(&mut p.retriever, &args.retrieval)?;
    let model = p.generator.name().to_string();
    let mode = p.mode;
    let retriever = Arc::new(p.retriever);
    let screener = Arc::new(p.screener);
    let queue = Queue::start(
        p.generator,
        retriever.clone(),
        screener.clone(),
        p.defaults,
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
