//! `openclaw-worker`: takes one task of `OPENCLAW_AGENT` from JetStream, does it, exits.
//! Everything is in [`openclaw_worker::cli::main`], shared with the test suite's build of it.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    openclaw_worker::cli::main().await
}
