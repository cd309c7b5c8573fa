//! `openclaw`: the command-line client of the bridge. Everything is in the library.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    openclaw_cli::install_crypto_provider();
    openclaw_cli::run(openclaw_cli::Cli::parse()).await
}
