//! `openclaw-bridge`: reads configuration from the environment and runs the server until
//! SIGTERM or Ctrl-C. Exit codes: 0 after a graceful shutdown, 1 when it could not serve,
//! 2 for bad configuration.

use std::process::ExitCode;

use openclaw_bridge::{Application, BridgeConfig};
use openclaw_common::config::ProcessEnv;

/// mimalloc, not the C library's malloc: every request allocates a few dozen small objects
/// across two threads, and the release image links musl statically, whose allocator is slow
/// under that load. Measured with glibc in `cargo bench --bench intake`: 8k → 10k submits/s at
/// 64 in flight (the bench sets the same allocator, since the bridge runs in its process).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The OpenClaw bridge: takes tasks over HTTP (task API, OpenAI-compatible chat, /message),
/// stores them in NATS JetStream, relays their progress (SSE) and starts workers.
///
/// Configured by environment variables only (OPENCLAW_GATEWAY_TOKEN, NATS_URL,
/// OPENCLAW_DISPATCH, …): see the README's "Configuration" table.
#[derive(clap::Parser)]
#[command(name = "openclaw-bridge", version)]
struct Args {}

#[tokio::main]
async fn main() -> ExitCode {
    // --help and --version answer here, before anything starts.
    <Args as clap::Parser>::parse();
    openclaw_common::telemetry::init("info");
    // One TLS provider (ring) for the Kubernetes client; see ARCHITECTURE.md.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = match BridgeConfig::from_env(&ProcessEnv) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    config.tracing.warn_if_incomplete();
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(listen = %config.listen, error = %e, "cannot listen (OPENCLAW_LISTEN)");
            return ExitCode::FAILURE;
        }
    };
    let app = match Application::build(config, listener).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(port = app.port(), "openclaw-bridge listening");
    match app.run_until(openclaw_common::signals::terminated()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "serving failed");
            ExitCode::FAILURE
        }
    }
}
