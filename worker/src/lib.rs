//! The OpenClaw worker: takes exactly one task from JetStream and carries it through.
//!
//! Layout:
//! - [`cli`]: the process: env, signals, exit codes (`main.rs` only calls it).
//! - [`config`]: [`WorkerConfig`], from the environment.
//! - [`run`]: one task, start to finish: fetch, claim, clone, agent loop, commit, push, ack.
//! - [`prompt`]: what the model is told first, and the commit message its summary becomes.
//! - [`agent`]: the agent loop: model calls, tool calls, limits, stop requests.
//! - [`context`]: the conversation kept inside the context window (elide, condense).
//! - [`checks`]: what runs when the model says it is done (Markdown links, profile commands).
//! - [`budget`]: tokens and cost spent against the limits; the stuck detector.
//! - [`llm`]: the OpenAI-compatible chat-completions client (streaming, tools, retries).
//! - [`tools`]: the tools the model can call, confined to the checkout.
//! - [`paths`]: the path rules of tools and command arguments (real path, no `.git`).
//! - [`commands`]: what a `run_command` child may be: built environment, checked arguments.
//! - [`command_policy`]: kubectl, helm and aws arguments parsed as those programs parse them,
//!   judged against an allowlist per verb.
//! - [`traces`]: OpenTelemetry traces of task attempts, to Langfuse (v4) and/or an OTLP collector.
//! - [`secrets`]: the worker's secret values, redacted from all it publishes (streams too).
//! - [`attempt`]: how an attempt ends and its fenced status writes.
//! - [`workspace`]: the task's directory and checkout, and each git step on it (traced).
//! - [`git`]: clone, branch, commit and push with git2; credentials only via callbacks.

pub mod agent;
mod attempt;
pub mod budget;
pub mod checks;
pub mod cli;
pub mod command_policy;
pub mod commands;
pub mod config;
pub mod context;
mod deliver;
pub mod git;
mod live;
pub mod llm;
pub mod paths;
pub mod prompt;
pub mod proxy;
pub mod run;
pub mod secrets;
mod setup;
pub mod tools;
pub mod traces;
mod workspace;

pub use config::WorkerConfig;
pub use run::{Outcome, run_one};

/// Installs the process-wide rustls crypto provider (ring). reqwest is built without a
/// provider of its own so that only one is compiled in; it must be installed before the first
/// HTTP client is built. Safe to call more than once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
