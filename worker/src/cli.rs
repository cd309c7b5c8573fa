//! The worker process: configuration from the environment, SIGTERM handling, exit codes.
//!
//! Exit codes: 0 when a task was settled (whatever its outcome) or none was waiting;
//! `OPENCLAW_NO_TASK_EXIT_CODE` (default 0) when none was waiting, so the local dispatcher can
//! tell an idle start from work done; 1 when the worker could not do its job (NATS
//! unreachable); 2 for bad configuration.

use std::process::ExitCode;

use openclaw_common::config::ProcessEnv;
use tokio_util::sync::CancellationToken;

use crate::{Outcome, WorkerConfig, run_one};

/// The OpenClaw worker: takes one task of OPENCLAW_AGENT from NATS JetStream, clones its
/// repository, runs the agent against the model gateway, commits, pushes, and exits.
///
/// Configured by environment variables only (NATS_URL, OPENCLAW_AGENT, LITELLM_BASE_URL,
/// GIT_TOKEN with OPENCLAW_GIT_CREDENTIAL_HOSTS, …): see the README's "Configuration" table.
/// Exit codes: 0 task settled or none waiting (OPENCLAW_NO_TASK_EXIT_CODE for the latter),
/// 1 could not do its job (NATS), 2 bad configuration.
#[derive(clap::Parser)]
#[command(name = "openclaw-worker", version)]
struct Args {
    /// Check the model gateway with this environment's LITELLM_* settings (its model list,
    /// with the key; no tokens spent) and exit: 0 when it answers, accepts the key and serves
    /// LITELLM_MODEL_NAME, 1 otherwise, saying which setting to look at. The images have no
    /// shell; this is what to run in a one-shot pod instead of curl.
    #[arg(long)]
    check_gateway: bool,
}

pub async fn main() -> ExitCode {
    // --help and --version answer here, before anything starts.
    let args = <Args as clap::Parser>::parse();
    openclaw_common::telemetry::init("info");
    crate::install_crypto_provider();
    // Before any task: not dumpable (commands cannot read this process's environment or
    // memory) and the reaper of what commands leave behind.
    if let Err(e) = openclaw_sandbox::harden_worker() {
        tracing::warn!(error = %e, "cannot make the worker undumpable and a subreaper");
    }
    if args.check_gateway {
        return check_gateway().await;
    }
    let config = match WorkerConfig::from_env(&ProcessEnv) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("invalid configuration: {e}");
            termination_message(&format!("invalid configuration: {e}"));
            return ExitCode::from(2);
        }
    };
    config.tracing.warn_if_incomplete();
    let terminate = CancellationToken::new();
    tokio::spawn(on_sigterm(terminate.clone()));
    match run_one(&config, terminate).await {
        Ok(Outcome::NoTask) => {
            tracing::info!("no task waiting");
            ExitCode::from(config.no_task_exit_code)
        }
        Ok(outcome) => {
            tracing::info!(?outcome, "worker done");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "worker failed");
            termination_message(&e.to_string());
            ExitCode::FAILURE
        }
    }
}

async fn check_gateway() -> ExitCode {
    let config = match crate::config::LlmConfig::from_env(&ProcessEnv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    match crate::llm::check_gateway(&config).await {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(line) => {
            eprintln!("{line}");
            ExitCode::FAILURE
        }
    }
}

/// Leaves why the worker could not do its job where its dispatcher reads it: the file named
/// by `OPENCLAW_TERMINATION_LOG` (local dispatch sets one per worker; in a pod it is
/// `/dev/termination-log`, which Kubernetes shows as the container's termination message).
fn termination_message(text: &str) {
    if let Some(path) = std::env::var_os("OPENCLAW_TERMINATION_LOG")
        && let Err(e) = std::fs::write(&path, text)
    {
        tracing::warn!(error = %e, "cannot write the termination message");
    }
}

/// How long a worker told to stop may take (checkpoint commit and push included) before it
/// exits regardless; below the Job template's `terminationGracePeriodSeconds` (90).
const TERMINATION_GRACE: std::time::Duration = std::time::Duration::from_secs(75);

/// SIGTERM (spot interruption, Job deletion) or Ctrl-C: stop at the next step, checkpoint.
/// A worker stuck where no step comes (NATS gone mid-request) still ends after the grace.
async fn on_sigterm(token: CancellationToken) {
    openclaw_common::signals::terminated().await;
    tracing::warn!("termination requested; stopping at the next step");
    token.cancel();
    tokio::time::sleep(TERMINATION_GRACE).await;
    tracing::error!(grace = ?TERMINATION_GRACE, "did not stop in time after termination; exiting");
    std::process::exit(1);
}
