//! The `cloudca` command: parse, set up logging, dispatch. No logic lives here.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cloudca::cli::Cli::parse();
    cloudca::cli::init_tracing();
    match cloudca::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(e.exit_code())
        }
    }
}
