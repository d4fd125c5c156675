use std::process::ExitCode;

use clap::Parser;
use medlit::cli::{Cli, Command};
use medlit::commands;

fn main() -> ExitCode {
    let cli = Cli::parse();
    medlit::cli::init_logging(cli.verbose);

    let result = match &cli.command {
        Command::Fetch(a) => commands::fetch::run(a),
        Command::Index(a) => commands::index::run(a),
        Command::Search(a) => commands::search::run(a),
        Command::Ask(a) => commands::ask::run(a),
        Command::Show(a) => commands::show::run(a),
        Command::Similar(a) => commands::similar::run(a),
        Command::Mcp(a) => commands::mcp::run(a),
        Command::Demo(a) => commands::demo::run(a),
        Command::Serve(a) => commands::serve::run(a),
        Command::Verify(a) => commands::verify::run(a),
        Command::Compact(a) => commands::compact::run(a),
        Command::Synth(a) => commands::synth::run(a),
        Command::Export(medlit::cli::ExportCommand::Qdrant(a)) => commands::export::run(a),
        Command::Eval(c) => commands::eval::run(c),
        Command::Bench(a) => commands::bench::run(a),
        Command::Policy(medlit::cli::PolicyCommand::Train(a)) => commands::policy::train(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", medlit::render::error_line(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
