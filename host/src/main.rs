//! The `eddy` binary: parses the command line, sets up logging, and prints
//! any error on one line.

use std::io::IsTerminal;

use clap::Parser;

fn main() {
    // The HTTP client of object stores links a second TLS provider: the process's is ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let filter = tracing_subscriber::EnvFilter::try_from_env("EDDY_LOG").unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = eddy::cli::Cli::parse();
    if let Err(e) = eddy::cli::execute(cli) {
        // Messages that already quote their cause are not repeated.
        let mut line = String::new();
        for cause in e.chain().map(ToString::to_string) {
            if !line.contains(&cause) {
                line = if line.is_empty() { cause } else { format!("{line}: {cause}") };
            }
        }
        eprintln!("error: {line}");
        std::process::exit(1);
    }
}
