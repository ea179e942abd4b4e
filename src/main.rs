//! The `cloudca` command: parse, set up logging, dispatch. No logic lives here.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cloudca::cli::Cli::parse();
    cloudca::cli::init_tracing();
    // One TLS crypto provider for the whole process (ring, as every config here names it),
    // whatever other crates' features would pull in.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let result = cloudca::cli::run(cli);
    cloudca::hsm::shutdown();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(e.exit_code())
        }
    }
}
