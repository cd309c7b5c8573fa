//! `openclaw`, the command-line client of an OpenClaw bridge: submit tasks and follow them
//! live, look at them, cancel and replay them. `--json` makes every command script-friendly
//! (one JSON document, or one JSON event per line while following).
//!
//! Layout: [`client`] is the typed HTTP client (with resuming event streams); [`render`]
//! turns events into progress lines; this file holds the commands.

pub mod client;
pub mod render;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use openclaw_common::event::{EventKind, TaskEvent};
use serde_json::{Value, json};

use crate::client::{ApiClient, ClientError};
use crate::render::Progress;

/// Installs rustls' ring provider (reqwest is built without one of its own).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[derive(Debug, Parser)]
#[command(
    name = "openclaw",
    version,
    about = "Run OpenClaw coding agents from a terminal"
)]
pub struct Cli {
    /// Bridge base URL.
    #[arg(
        long,
        env = "OPENCLAW_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// Bearer token of the bridge.
    #[arg(
        long,
        env = "OPENCLAW_GATEWAY_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub token: Option<String>,
    /// Print JSON (one document, or one event per line while following).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Submit a task and follow it until it ends.
    Submit {
        /// Git URL of the repository to work on.
        #[arg(long)]
        repo: Option<String>,
        /// What the agent should do.
        #[arg(long)]
        prompt: String,
        #[arg(long, default_value = "doc-writer")]
        agent: String,
        /// Branch to start from (default: the remote's default branch).
        #[arg(long)]
        branch: Option<String>,
        /// Branch to push to (default: `openclaw/<task id>`).
        #[arg(long)]
        push_branch: Option<String>,
        /// Model override.
        #[arg(long)]
        model: Option<String>,
        /// Sent as Idempotency-Key: submitting again with the same key returns the same task.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Return after submitting instead of following.
        #[arg(long)]
        no_follow: bool,
        /// Open a pull request for the work (on a forge the deployment is set up for).
        #[arg(long)]
        pull_request: bool,
        /// Open the pull request as a draft (implies --pull-request).
        #[arg(long)]
        draft: bool,
    },
    /// Show one task. Every command taking an id also takes a unique start or end of one (the
    /// last 8 characters tell tasks apart).
    Status { id: String },
    /// Print what a task's pushed branch changes against its base, as a patch.
    Diff { id: String },
    /// List recent tasks, newest first.
    List {
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Only tasks in this state (queued, running, completed, failed, canceled).
        #[arg(long)]
        status: Option<String>,
        /// Only tasks of this agent.
        #[arg(long)]
        agent: Option<String>,
    },
    /// Show a task's events; with --follow, keep following (resuming after dropped connections).
    Logs {
        id: String,
        #[arg(long, short)]
        follow: bool,
    },
    /// Cancel a task.
    Cancel { id: String },
    /// Run a task again from its stored spec, as a new task linked to it, and follow it.
    Replay {
        id: String,
        #[arg(long)]
        no_follow: bool,
    },
}

/// Runs one command; the exit code is 0 when it (and a followed task) succeeded.
pub async fn run(cli: Cli) -> ExitCode {
    let client = match ApiClient::new(&cli.url, cli.token.clone()) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let result = match cli.command {
        Command::Submit {
            repo,
            prompt,
            agent,
            branch,
            push_branch,
            model,
            idempotency_key,
            no_follow,
            pull_request,
            draft,
        } => {
            let mut body = json!({"prompt": prompt, "agent": agent});
            if draft {
                body["pull_request"] = json!({"draft": true});
            } else if pull_request {
                body["pull_request"] = json!(true);
            }
            for (k, v) in [
                ("repo", repo),
                ("branch", branch),
                ("push_branch", push_branch),
                ("model", model),
            ] {
                if let Some(v) = v {
                    body[k] = json!(v);
                }
            }
            match client.submit(&body, idempotency_key.as_deref()).await {
                Ok(accepted) => started(&client, accepted, !no_follow, cli.json).await,
                Err(e) => Err(e),
            }
        }
        Command::Replay { id, no_follow } => {
            match async { client.replay(&client.resolve(&id).await?).await }.await {
                Ok(accepted) => started(&client, accepted, !no_follow, cli.json).await,
                Err(e) => Err(e),
            }
        }
        Command::Status { id } => async { client.status(&client.resolve(&id).await?).await }
            .await
            .map(|s| {
                print_value(&s, cli.json, render::status_text);
                true
            }),
        Command::Diff { id } => async { client.diff(&client.resolve(&id).await?).await }
            .await
            .map(|diff| {
                print!("{diff}");
                true
            }),
        Command::List {
            limit,
            status,
            agent,
        } => client
            .list(limit, status.as_deref(), agent.as_deref())
            .await
            .map(|l| {
                print_value(&l, cli.json, render::list_text);
                true
            }),
        Command::Cancel { id } => async { client.cancel(&client.resolve(&id).await?).await }
            .await
            .map(|c| {
                print_value(&c, cli.json, |v| {
                    format!(
                        "task {} {}",
                        v["id"].as_str().unwrap_or(""),
                        if v["status"] == "canceled" {
                            "canceled"
                        } else {
                            "will stop at its next step"
                        }
                    )
                });
                true
            }),
        Command::Logs { id, follow } => match client.resolve(&id).await {
            Ok(id) => follow_task(&client, &id, follow, cli.json)
                .await
                .map(|end| end.is_none_or(|e| succeeded(&e))),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => fail(&e),
    }
}

fn fail(e: &ClientError) -> ExitCode {
    eprintln!("openclaw: {e}");
    ExitCode::FAILURE
}

fn succeeded(ev: &TaskEvent) -> bool {
    matches!(ev.kind, EventKind::Completed { .. })
}

fn print_value(v: &Value, json: bool, human: impl Fn(&Value) -> String) {
    if json {
        println!("{v}");
    } else {
        println!("{}", human(v));
    }
}

/// After a submit or replay: print the accepted task, then follow it unless told not to.
async fn started(
    client: &ApiClient,
    accepted: Value,
    follow: bool,
    json: bool,
) -> Result<bool, ClientError> {
    let id = accepted["id"].as_str().unwrap_or_default().to_owned();
    if json {
        println!("{accepted}");
    } else {
        println!("task {id} queued");
    }
    if !follow {
        return Ok(true);
    }
    let end = follow_task(client, &id, true, json).await?;
    Ok(end.is_some_and(|e| succeeded(&e)))
}

/// Prints the task's events (as progress lines, or JSON lines) until it ends, or with
/// `follow == false` until the events stored so far are shown. Returns the terminal event.
async fn follow_task(
    client: &ApiClient,
    id: &str,
    follow: bool,
    json: bool,
) -> Result<Option<TaskEvent>, ClientError> {
    let mut progress = Progress::default();
    let end = client
        .follow_events(id, follow, |ev| {
            let mut out = std::io::stdout().lock();
            if json {
                let _ = writeln!(out, "{}", serde_json::to_string(ev).unwrap_or_default());
            } else {
                let _ = write!(out, "{}", progress.line(ev));
            }
            let _ = out.flush();
        })
        .await?;
    if !json {
        print!("{}", progress.finish());
    }
    Ok(end)
}
