//! One task, start to finish. The steps and what each does with the JetStream message:
//!
//! fetch (none → exit) → claim (status `running`, `started`) → clone → agent loop → commit →
//! push → `completed` → status → **ack**. Transient failure → `failed{retryable}` + nak with
//! delay (a later attempt retries) until `max_deliver`; permanent failure → `failed` + term;
//! cancel → `canceled` + term; SIGTERM → checkpoint commit pushed to the task branch + nak.

use std::time::{Duration, Instant};

use openclaw_common::agents::DEFAULT_CONTEXT_WINDOW;
use openclaw_common::event::EventKind;
use openclaw_common::ids::TaskId;
use openclaw_common::lifecycle::{self, Claim, Update};
use openclaw_common::names;
use openclaw_common::status::{TaskState, TaskStatus, Usage};
use openclaw_common::store::{self, Settle, StoreError, TaskStores, WorkerQueue};
use openclaw_common::task::TaskSpec;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, warn};

use crate::agent::{AgentError, AgentLoop, LoopEnd, Stop, StopSignals};
use crate::config::WorkerConfig;
use crate::git::TaskRepo;
use crate::llm::LlmClient;
use crate::tools::Toolbox;
use crate::traces::{Tracer, parse_traceparent};

/// What became of the run. Also the worker's log line and metric label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No task arrived within the fetch wait.
    NoTask,
    Completed {
        commit: Option<String>,
        summary: String,
    },
    /// Failed; `retry` when the task was handed back for another attempt.
    Failed {
        reason: String,
        retry: bool,
    },
    Canceled,
    /// SIGTERM: checkpoint pushed, task handed back.
    Interrupted,
    /// The task had already ended (a redelivery after a crash between completing and acking).
    AlreadyDone,
    /// A later attempt holds the task (this worker stopped answering for longer than
    /// `ack_wait`, and JetStream gave the task to another): this one stopped without writing
    /// or settling anything more.
    Superseded,
}

/// Infrastructure trouble that keeps the worker from doing its job at all.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("JetStream: {0}")]
    JetStream(String),
}

/// The shortest wait for a task the worker asks the server for.
const MIN_FETCH_WAIT: Duration = Duration::from_millis(100);
/// The pause before asking again when the server ended a wait (so a consumer that keeps
/// refusing costs a few requests, not a busy loop).
const REFETCH_PAUSE: Duration = Duration::from_millis(250);

/// Fetches one task of the configured agent and carries it through.
pub async fn run_one(
    config: &WorkerConfig,
    terminate: CancellationToken,
) -> Result<Outcome, RunError> {
    let client = store::connect(
        &config.nats,
        "openclaw-worker",
        &openclaw_common::names::worker_consumer(&config.agent),
        false,
    )
    .await?;
    // Names the server after every move between a cluster's servers; ends with this run
    // (a JoinSet aborts its tasks when dropped).
    let mut background = tokio::task::JoinSet::new();
    background.spawn(store::log_server_moves(client.clone()));
    let queue = WorkerQueue::new(client.clone(), &config.agent);
    // Opening the consumer and asking for a task retry (bounded) through a leader election,
    // like every store call. The server ends a waiting request with a status when the
    // consumer's leader changes or the consumer is made again: ask again for the rest of the
    // wait, a moment later.
    let deadline = tokio::time::Instant::now() + config.fetch_wait;
    let msg = loop {
        let wait = deadline.saturating_duration_since(tokio::time::Instant::now());
        let mut fetch = queue.fetch(wait.max(MIN_FETCH_WAIT)).await?;
        let next = tokio::select! {
            next = fetch.next() => next,
            () = terminate.cancelled() => return Ok(Outcome::NoTask),
        };
        match next {
            None => return Ok(Outcome::NoTask),
            Some(Ok(m)) => break m,
            Some(Err(e)) if deadline > tokio::time::Instant::now() + REFETCH_PAUSE => {
                warn!(error = %e, "the server ended the wait for a task; asking again");
                tokio::time::sleep(REFETCH_PAUSE).await;
            }
            Some(Err(e)) => return Err(RunError::JetStream(format!("fetch: {e}"))),
        }
    };
    let (attempt, msg_seq, published) = msg.delivery();
    let max_deliver = msg.max_deliver;

    let spec: TaskSpec = match serde_json::from_slice(msg.payload()) {
        Ok(spec) => spec,
        Err(e) => {
            warn!(subject = %msg.subject(), error = %e, "unreadable task message; terminating it");
            msg.settle(Settle::Term).await?;
            return Ok(Outcome::Failed {
                reason: format!("unreadable task message: {e}"),
                retry: false,
            });
        }
    };
    // A message with a ticket is written about as its own NATS user, which may touch this
    // task's events and record and nothing else; without one, with the worker's user.
    let ticket = msg.header(names::TASK_TICKET_HEADER).map(str::to_owned);
    // A copy of a stored task republished by hand (say with the nats CLI) runs again as a new
    // task linked to the original; a redelivery of the original message is the same task.
    let bound = match &ticket {
        Some(ticket) => open_task_stores(config, msg_seq, ticket, &spec.id).await,
        None => open_worker_stores(&queue, &spec.id).await,
    };
    let (stores, task_client, known) = match bound {
        Ok(bound) => bound,
        Err(e) => {
            // Hand the task back now rather than after ack_wait.
            warn!(task_id = %spec.id, error = %e, "cannot read the task's status; handing it back");
            msg.settle(Settle::Nak(config.nak_delay)).await.ok();
            return Err(e.into());
        }
    };
    let original = spec.id;
    let spec = openclaw_common::status::task_for_message(spec, known.as_ref(), msg_seq, published);
    if spec.id != original {
        info!(%original, task_id = %spec.id, "republished task: running it as a replay");
    }
    let keep_alive = tokio::spawn(msg.clone().keep_alive());
    let span = tracing::info_span!("task", task_id = %spec.id, agent = %spec.agent, attempt);
    let model = spec
        .model
        .clone()
        .or_else(|| config.agents.get(&spec.agent).and_then(|p| p.model.clone()))
        .unwrap_or_else(|| config.llm.default_model.clone());
    // The bridge's submit span, when the message carries it (a republished copy does not).
    let traceparent = msg
        .header(openclaw_common::names::TRACEPARENT_HEADER)
        .and_then(parse_traceparent);
    let tracer = Tracer::start(&config.tracing, &spec, attempt, &model, traceparent);
    let task = Task {
        config,
        stores: &stores,
        spec: &spec,
        msg_seq,
        attempt,
        last_attempt: max_deliver > 0 && i64::from(attempt) >= max_deliver,
        terminate: &terminate,
        taken: Instant::now(),
        usage: std::sync::Mutex::new(Usage::default()),
        usage_recorded: std::sync::atomic::AtomicBool::new(false),
        tracer: &tracer,
        model: &model,
        git: tokio::sync::OnceCell::new(),
        github: std::sync::OnceLock::new(),
    };
    let result = task.run().instrument(span).await;
    keep_alive.abort();
    let (outcome, how) = match result {
        Ok(done) => done,
        Err(StoreError::Superseded(_)) => {
            // Not settled: the message is the later attempt's now. An ack would end its task
            // under it, a nak would hand it to a third worker.
            info!(task_id = %spec.id, "a later attempt holds the task; stopping");
            tracer.finish(Err("superseded by a later attempt")).await;
            client.flush().await.ok();
            return Ok(Outcome::Superseded);
        }
        Err(e @ StoreError::TooLarge(_)) => {
            // Events are bounded, so this means a server with a small max_payload: a retry
            // would hit it again. Record the failure (small) as well as NATS lets us.
            let reason = e.to_string();
            let mut events = stores.events.fenced_writer(spec.queued_event(), attempt);
            match task.fail(&mut events, reason.clone(), false).await {
                Ok(failed) => failed,
                Err(e) => {
                    warn!(task_id = %spec.id, error = %e, "cannot record the failure");
                    (
                        Outcome::Failed {
                            reason,
                            retry: false,
                        },
                        Settle::Term,
                    )
                }
            }
        }
        Err(e) => {
            // Events or status could not be written: NATS trouble. Hand the task back.
            warn!(task_id = %spec.id, error = %e, "task interrupted by a store error");
            (
                Outcome::Failed {
                    reason: e.to_string(),
                    retry: true,
                },
                Settle::Nak(config.nak_delay),
            )
        }
    };
    msg.settle(how).await?;
    info!(task_id = %spec.id, ?outcome, "task settled");
    match &outcome {
        Outcome::Completed { summary, .. } => tracer.finish(Ok(summary)).await,
        Outcome::Failed { reason, .. } => tracer.finish(Err(reason)).await,
        other => tracer.finish(Ok(&format!("{other:?}"))).await,
    }
    if let Some(task_client) = &task_client {
        task_client.flush().await.ok();
    }
    client.flush().await.ok();
    Ok(outcome)
}

/// The task's stores as the per-task user the ticket gets from the bridge's auth callout
/// (`task-<seq>`, ARCHITECTURE.md "NATS"), its connection, and the record of `id`: the
/// callout made sure there is one when the task has a message.
async fn open_task_stores(
    config: &WorkerConfig,
    msg_seq: u64,
    ticket: &str,
    id: &TaskId,
) -> Result<(TaskStores, Option<async_nats::Client>, Option<TaskStatus>), StoreError> {
    let user = names::task_user(msg_seq);
    let mut nats = config.nats.clone();
    nats.auth = openclaw_common::config::NatsAuth {
        user_password: Some((user.clone(), openclaw_common::config::Secret::new(ticket))),
        creds: None,
        nkey_seed: None,
        token: None,
        ..nats.auth
    };
    let client = store::connect(&nats, "openclaw-worker-task", &user, false).await?;
    let stores = TaskStores::open(store::context(client.clone())).await?;
    let known = stores.status.get(id).await?;
    Ok((stores, Some(client), known))
}

/// The task's stores as the worker's own user, which may read every task (a deployment
/// without the callout), and what is known of task `id`: its record, or its first message.
async fn open_worker_stores(
    queue: &WorkerQueue,
    id: &TaskId,
) -> Result<(TaskStores, Option<async_nats::Client>, Option<TaskStatus>), StoreError> {
    let stores = queue.stores().await?;
    let known = stores.record_of(id).await?;
    Ok((stores.task_stores(), None, known))
}

/// One delivery of one task.
pub(crate) struct Task<'a> {
    pub(crate) config: &'a WorkerConfig,
    pub(crate) stores: &'a TaskStores,
    pub(crate) spec: &'a TaskSpec,
    /// Stream sequence of the task's message.
    pub(crate) msg_seq: u64,
    /// Delivery count from JetStream (1 for the first).
    pub(crate) attempt: u32,
    /// Whether JetStream will not deliver the task again after this attempt.
    pub(crate) last_attempt: bool,
    pub(crate) terminate: &'a CancellationToken,
    /// When this attempt took the task (its worker time runs from here).
    pub(crate) taken: Instant,
    /// This attempt's model calls, tokens and cost; added to the status's totals once, when
    /// the attempt records how it ended.
    pub(crate) usage: std::sync::Mutex<Usage>,
    /// Whether `usage` went into the status already.
    pub(crate) usage_recorded: std::sync::atomic::AtomicBool,
    /// The attempt's trace (clone, commit and push are steps of it).
    pub(crate) tracer: &'a Tracer,
    /// The model the agent runs with: the task's, else its profile's, else the default.
    pub(crate) model: &'a str,
    /// The git settings of this task's clone and pushes ([`Task::git_config`]), once known.
    pub(crate) git: tokio::sync::OnceCell<crate::config::GitConfig>,
    /// The task's one GitHub client ([`Task::github`]): a GitHub App's installation token is
    /// minted once per task, for git and the pull request alike.
    pub(crate) github: std::sync::OnceLock<Option<openclaw_common::forge::github::GitHub>>,
}

impl Task<'_> {
    async fn run(&self) -> Result<(Outcome, Settle), StoreError> {
        let spec = self.spec;
        let id = spec.id;
        // The submit wrote only the task message: the record starts here (the bridge may have
        // written one already, for a waiting reason). The writer below stores `queued` before
        // `started`, as the bridge showed it.
        self.stores
            .status
            .ensure(&TaskStatus::queued(spec, self.msg_seq))
            .await?;

        // A worker that stored the task's end but not its status (the store stopped answering
        // in between, or the worker died) leaves the end in the events only: finish the
        // record from them instead of running the task again.
        if let Some(end) = self
            .stores
            .events
            .last_event(&id)
            .await?
            .filter(|e| e.kind.is_terminal())
        {
            self.stores
                .status
                .update(&id, |s| {
                    if lifecycle::record_end(s, &end) {
                        Update::Write(())
                    } else {
                        Update::Keep(())
                    }
                })
                .await?;
            info!(task_id = %id, "the task had ended; its status is now recorded");
            return Ok((Outcome::AlreadyDone, Settle::Ack));
        }

        let worker_id = self.config.worker_id.clone();
        let attempt = self.attempt;
        let claimed = self
            .stores
            .status
            .update(&id, |s| lifecycle::claim(s, attempt, &worker_id))
            .await?;
        let mut events = self
            .stores
            .events
            .fenced_writer(spec.queued_event(), self.attempt);
        match claimed {
            None => return Err(StoreError::Unavailable(format!("status of {id} vanished"))),
            Some((record, Claim::Ended(TaskState::Canceled))) => {
                // Canceled before it started: the bridge ends the events too, unless its answer
                // was lost; then this ends them (once, whoever is first).
                lifecycle::close_events(self.stores, &record).await?;
                return Ok((Outcome::Canceled, Settle::Term));
            }
            Some((_, Claim::Ended(_))) => return Ok((Outcome::AlreadyDone, Settle::Ack)),
            Some((_, Claim::Superseded)) => return Err(StoreError::Superseded(id)),
            Some((_, Claim::CancelRequested)) => {
                return self
                    .canceled(&mut events, "canceled before the work started")
                    .await;
            }
            Some((_, Claim::Claimed)) => {}
        }
        events
            .publish(EventKind::Started {
                worker_id: self.config.worker_id.clone(),
            })
            .await?;

        let Some(profile) = self.config.agents.get(&spec.agent) else {
            return self
                .fail(
                    &mut events,
                    format!("agent {} is not configured on this worker", spec.agent),
                    false,
                )
                .await;
        };
        let workdir = match self.work_dir() {
            Ok(d) => d,
            Err(e) => {
                return self
                    .fail(
                        &mut events,
                        format!("cannot create a work directory: {e}"),
                        true,
                    )
                    .await;
            }
        };
        // The work tree the tools see, and the git directory beside it where they cannot reach.
        let task_repo = TaskRepo::under(workdir.path());
        let checkout = match &spec.repo {
            None if profile.repo_required => {
                return self
                    .fail(
                        &mut events,
                        format!("agent {} needs a repo and the task names none", spec.agent),
                        false,
                    )
                    .await;
            }
            None => None,
            Some(_) => match self
                .clone_repo(&task_repo, &profile.limits, &mut events)
                .await?
            {
                Ok(c) => Some(c),
                Err(e) => {
                    let transient = e.is_transient();
                    return self.fail(&mut events, e.to_string(), transient).await;
                }
            },
        };

        // An earlier attempt pushed this task's result and died before recording it: record it
        // now, without running (and paying for) the agent again.
        if let Some((c, summary)) = checkout
            .as_ref()
            .and_then(|c| c.finished_by(&id).map(|summary| (c, summary)))
        {
            info!(task_id = %id, commit = %c.sha, "the branch already holds this task's result");
            return self
                .record_completion(
                    &mut events,
                    &task_repo,
                    Some(c),
                    Some(c.sha.clone()),
                    summary,
                )
                .await;
        }
        let secrets = self.config.secrets();
        // Commands' HOME, TMPDIR and kubeconfig: outside the checkout, gone with the task.
        let (mut toolbox, _scratch) = match self.work_dir().and_then(|scratch| {
            std::fs::create_dir_all(task_repo.work_tree())?;
            Toolbox::new(
                task_repo.work_tree(),
                scratch.path(),
                profile,
                secrets.clone(),
            )
            .map(|t| {
                let t = t
                    .with_secret_files(self.config.secret_files())
                    .with_stop(self.terminate.clone());
                (t, scratch)
            })
        }) {
            Ok(pair) => pair,
            Err(e) => {
                return self
                    .fail(&mut events, format!("work directory: {e}"), true)
                    .await;
            }
        };
        // The sandboxed profiles' setup step, before any model call; their checks join the
        // profile's.
        let mut checks = profile.checks.clone();
        let mut repo_notes = String::new();
        // The egress proxy of the commands, when they may reach any host: the setup's hosts
        // first, then the agent's (kept alive by the toolbox until the task ends).
        let mut network = None;
        if let Some(settings) = &profile.sandbox {
            let plan = match crate::setup::Plan::of(&toolbox, settings) {
                Ok(plan) => plan,
                Err(e) => return self.fail(&mut events, e, false).await,
            };
            for target in plan.refused_hosts.entries() {
                events
                    .publish(openclaw_common::event::EventKind::NetworkRefused {
                        call_id: "setup".into(),
                        target,
                        reason: format!(
                            "the repository's {} asks for it; this agent's profile lets repositories add only: {}",
                            openclaw_common::agents::REPO_FILE,
                            describe_hosts(&settings.network.repo_may_allow)
                        ),
                    })
                    .await?;
            }
            if !(plan.setup_hosts.is_empty() && plan.agent_hosts.is_empty()) {
                let proxy =
                    match crate::proxy::EgressProxy::start(self.config.repo_policy.allow_private)
                        .await
                    {
                        Ok(proxy) => std::sync::Arc::new(proxy),
                        Err(e) => {
                            return self
                                .fail(&mut events, format!("egress proxy: {e}"), true)
                                .await;
                        }
                    };
                proxy.allow(&plan.setup_hosts);
                toolbox.set_network(proxy.clone());
                network = Some((proxy, plan.agent_hosts.clone()));
            }
            match toolbox.sandbox() {
                Some(Ok(sandbox)) => {
                    for (layer, why) in sandbox.running_without() {
                        events
                            .publish(openclaw_common::event::EventKind::Output {
                                call_id: "sandbox".into(),
                                text: format!(
                                    "commands run without the sandbox's {layer} layer, as the profile allows: {why}\n"
                                ),
                            })
                            .await?;
                    }
                }
                Some(Err(why)) => warn!(task_id = %id, %why, "commands will be refused"),
                None => {}
            }
            let timeout = std::time::Duration::from_secs(settings.setup_timeout_secs);
            if let Err(e) =
                crate::setup::run(&toolbox, &mut events, secrets, &plan.setup, timeout).await?
            {
                return self.fail(&mut events, e, false).await;
            }
            if let Some((proxy, agent_hosts)) = &network {
                proxy.allow(agent_hosts);
            }
            checks.extend(plan.checks);
            repo_notes = plan.notes;
        }
        let llm = match LlmClient::new(self.config.llm.clone()) {
            Ok(c) => c.for_task(self.spec),
            Err(e) => return self.fail(&mut events, e.to_string(), false).await,
        };
        let stop = StopSignals {
            terminate: self.terminate.clone(),
            status: self.stores.status.clone(),
            task: id,
            attempt: self.attempt,
        };
        let mut messages = crate::prompt::first_messages(self.spec, profile, checkout.as_ref());
        if let (false, Some(system)) = (repo_notes.is_empty(), messages.first_mut()) {
            let text = system.content.get_or_insert_with(String::new);
            text.push_str("\n\n");
            text.push_str(&repo_notes);
        }
        let context_window = match profile.limits.context_window {
            Some(window) => window,
            None => llm
                .context_window(self.model)
                .await
                .unwrap_or(DEFAULT_CONTEXT_WINDOW),
        };
        let end = AgentLoop {
            llm: &llm,
            tools: &toolbox,
            events: &mut events,
            model: self.model.to_owned(),
            limits: &profile.limits,
            stop: &stop,
            tracer: self.tracer,
            secrets,
            usage: &self.usage,
            context_window,
            checks: &checks,
            review: (profile.review_diff && checkout.is_some()).then_some(&task_repo),
        }
        .run(messages)
        .await;

        match end {
            Err(AgentError::Store(e)) => Err(e),
            Err(AgentError::Llm(e)) => {
                let transient = e.is_transient();
                self.ended_early(
                    &mut events,
                    &task_repo,
                    checkout.as_ref(),
                    e.to_string(),
                    transient,
                )
                .await
            }
            Ok(LoopEnd::LimitReached(reason)) => {
                self.ended_early(&mut events, &task_repo, checkout.as_ref(), reason, false)
                    .await
            }
            Ok(LoopEnd::Stopped(Stop::Canceled)) => {
                self.canceled(&mut events, "canceled while running").await
            }
            Ok(LoopEnd::Stopped(Stop::Terminated)) => {
                self.interrupted(&mut events, &task_repo, checkout.as_ref())
                    .await
            }
            Ok(LoopEnd::Answered(summary)) => {
                self.finish(&mut events, &task_repo, checkout.as_ref(), summary)
                    .await
            }
        }
    }
}

/// A host list as the task's events show it: `none` when empty.
fn describe_hosts(hosts: &openclaw_common::egress::HostList) -> String {
    if hosts.is_empty() {
        "none".into()
    } else {
        hosts.to_string()
    }
}
