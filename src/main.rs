use std::process::ExitCode;

use clap::Parser;
use medlit::cli::{Cli, Command};
use medlit::commands;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();

    let result = match &cli.command {
        Command::Fetch(a) => commands::fetch::run(a),
        Command::Index(a) => commands::index::run(a),
        Command::Search(a) => commands::search::run(a),
        Command::Ask(a) => commands::ask::run(a),
        Command::Demo(a) => commands::demo::run(a),
        Command::Serve(a) => commands::serve::run(a),
        Command::Verify(a) => commands::verify::run(a),
        Command::Compact(a) => commands::compact::run(a),
        Command::Synth(a) => commands::synth::run(a),
        Command::Export(medlit::cli::ExportCommand::Qdrant(a)) => commands::export::run(a),
        Command::Eval(c) => commands::eval::run(c),
        Command::Bench(c) => commands::bench::run(c),
        Command::Policy(medlit::cli::PolicyCommand::Train(a)) => commands::policy::train(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line; a cause whose text its effect already quotes (an I/O
/// error shown with its path, say) is not repeated.
fn error_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !line.contains(&c) {
            line.push_str(": ");
            line.push_str(&c);
        }
    }
    line
}
