//! `openclaw-bridge`: reads configuration from the environment and runs the server until
//! SIGTERM or Ctrl-C.

use anyhow::Context;
use openclaw_bridge::{Application, BridgeConfig};
use openclaw_common::config::ProcessEnv;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    openclaw_common::telemetry::init("info");
    // One TLS provider (ring) for the Kubernetes client; see ARCHITECTURE.md.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = BridgeConfig::from_env(&ProcessEnv).context("invalid configuration")?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let app = Application::build(config, listener).await?;
    tracing::info!(port = app.port(), "openclaw-bridge listening");
    app.run_until(openclaw_common::signals::terminated())
        .await?;
    Ok(())
}
