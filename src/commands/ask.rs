//! `medlit ask`: a cited answer from the evidence.
use std::io::{IsTerminal, Write};

use anyhow::Result;

use super::{emit, print_json};
use crate::answer::ask;
use crate::cli::setup::Pipeline;
use crate::cli::AskArgs;
use crate::render::{answer_report, AnswerJson};

pub fn run(args: &AskArgs) -> Result<()> {
    let export = super::references::ExportTarget::from_args(&args.export)?;
    let mut p = Pipeline::open(&args.index, args.mode, &args.fusion, &args.generate, args.k)?;
    crate::cli::setup::use_retrieval(&mut p.retriever, &args.retrieval)?;
    let opts = p
        .defaults
        .options(p.mode, None, None, args.filters.filters());
    let stream = !args.json && std::io::stderr().is_terminal();
    let answer = ask(
        &p.retriever,
        p.generator.as_mut(),
        &p.screener,
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
    if let Some(t) = &export {
        let pmids: Vec<u64> = answer.verified.citations.iter().map(|c| c.pmid).collect();
        let n = t.write(&p.retriever.bm25, &pmids)?;
        if n == 0 {
            eprintln!(
                "note: the answer cites no article, so {} holds no reference",
                t.path.display()
            );
        } else {
            eprintln!(
                "exported {n} cited references ({}) to {}",
                t.format.name(),
                t.path.display()
            );
        }
    }
    if args.json {
        return print_json(&AnswerJson::new(&answer));
    }
    emit(&answer_report(&answer, args.show_evidence))
}
