//! The `openclaw-worker` binary as the suite runs it (same entry point).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    openclaw_worker::cli::main().await
}
