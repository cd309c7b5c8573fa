//! The JetStream objects (streams, consumers, KV bucket), created from the `nats/*.json`
//! definitions, and the typed stores the binaries use over them:
//! [`TaskQueue`] (tasks stream), [`EventLog`] (events stream), [`StatusStore`] (KV bucket).

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, Context, consumer, kv, stream};
use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};

use crate::agents::AgentCatalog;
use crate::config::NatsConfig;
use crate::event::{EventKind, TaskEvent};
use crate::ids::{AgentName, TaskId};
use crate::names;
use crate::session::{Session, SessionKey};
use crate::status::TaskStatus;
use crate::task::TaskSpec;

/// The stream definitions, in the form `nats stream add --config` takes.
pub const TASKS_STREAM_JSON: &str = include_str!("../../nats/tasks.json");
pub const EVENTS_STREAM_JSON: &str = include_str!("../../nats/events.json");
/// The worker consumer definition (for `doc-writer`; other agents differ in name and filter).
pub const WORKER_CONSUMER_JSON: &str = include_str!("../../nats/worker-consumer.json");
/// The stream keeping max-deliveries advisories, and the bridges' consumer of it.
pub const ADVISORIES_STREAM_JSON: &str = include_str!("../../nats/advisories.json");
pub const ADVISORIES_CONSUMER_JSON: &str = include_str!("../../nats/advisories-consumer.json");

/// Deadline for one JetStream request: NATS being down must turn into an error, not a hang.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a store call keeps retrying while JetStream cannot answer it, attempts included.
/// In a cluster, a stream whose leader died has none until its followers' election timers run
/// out (nats-server waits 4 to 9 s) and they elect one; a request meanwhile gets no responders
/// or times out, and a client whose server died reconnects to another. Measured in the
/// cluster tests: 6 s was not always enough. Bounded so that an HTTP caller gets a 503
/// instead of a hang, and a worker gives its task back instead of waiting forever.
pub const RETRY_FOR: Duration = Duration::from_secs(10);

/// Runs `op` until it succeeds, fails for a reason other than [`StoreError::Unavailable`], or
/// [`RETRY_FOR`] has passed (then the last error). Writes pass the same idempotency key on
/// every attempt (`Nats-Msg-Id`, an expected sequence or revision), so an attempt that was
/// stored but whose answer was lost is recognized by the next one, never stored twice.
pub async fn retrying<T, F, Fut>(what: &str, mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let deadline = tokio::time::Instant::now() + RETRY_FOR;
    let mut pause = Duration::from_millis(25);
    loop {
        let attempt = tokio::time::timeout_at(deadline, op()).await;
        let error = match attempt {
            Ok(Err(StoreError::Unavailable(e))) => e,
            Ok(done) => return done,
            Err(_) => format!("{what}: no answer within {RETRY_FOR:?}"),
        };
        if tokio::time::Instant::now() + pause >= deadline {
            return Err(StoreError::Unavailable(error));
        }
        tracing::debug!(what, error = %error, "JetStream did not answer; retrying");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(800));
    }
}

/// What can go wrong talking to JetStream. The variant names double as metric labels.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// NATS cannot be reached or did not answer in time; retrying later may work.
    #[error("NATS is unavailable: {0}")]
    Unavailable(String),
    /// A stream, consumer or bucket could not be created or does not match its definition.
    #[error("JetStream setup: {0}")]
    Setup(String),
    /// A stored record does not parse; it was written by something else or edited by hand.
    #[error("stored record {key} is unreadable: {reason}")]
    Corrupt { key: String, reason: String },
    /// Optimistic concurrency lost too many times in a row.
    #[error("too much contention on {0}")]
    Contention(String),
    /// A record larger than the server accepts (its `max_payload`); retrying cannot help.
    #[error("{0}: the record is larger than the NATS server accepts (max_payload)")]
    TooLarge(String),
    /// A later attempt of the task holds it now (this one lost its lease, JetStream
    /// redelivered the task), or the task ended: this attempt may write nothing more.
    #[error("task {0}: a later attempt holds it, or it ended; this attempt stops")]
    Superseded(TaskId),
}

impl StoreError {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "unavailable",
            Self::Setup(_) => "setup",
            Self::Corrupt { .. } => "corrupt",
            Self::Contention(_) => "contention",
            Self::TooLarge(_) => "too_large",
            Self::Superseded(_) => "superseded",
        }
    }
}

fn unavailable(what: &'static str) -> impl Fn(&dyn std::fmt::Display) -> StoreError {
    move |e| StoreError::Unavailable(format!("{what}: {e}"))
}

/// A failed publish of a `what` record: too large for the server, or NATS unavailable.
fn publish_error(what: &'static str) -> impl Fn(jetstream::context::PublishError) -> StoreError {
    move |e| match e.kind() {
        jetstream::context::PublishErrorKind::MaxPayloadExceeded => {
            StoreError::TooLarge(format!("publish {what}: {e}"))
        }
        _ => StoreError::Unavailable(format!("publish {what}: {e}")),
    }
}

fn corrupt(key: impl Into<String>) -> impl FnOnce(serde_json::Error) -> StoreError {
    let key = key.into();
    move |e| StoreError::Corrupt {
        key,
        reason: e.to_string(),
    }
}

/// Connects to NATS as `user` (the inbox owner: [`names::inbox_prefix`]). With
/// `retry_initial`, returns at once and keeps connecting in the background (the bridge starts
/// and reports not-ready instead of crashing); without, fails when the server cannot be
/// reached (the worker has nothing to do without it).
pub async fn connect(
    cfg: &NatsConfig,
    name: &str,
    user: &str,
    retry_initial: bool,
) -> Result<async_nats::Client, StoreError> {
    let mut opts = async_nats::ConnectOptions::new()
        .name(name)
        .custom_inbox_prefix(names::inbox_prefix(user))
        .request_timeout(Some(REQUEST_TIMEOUT))
        .connection_timeout(REQUEST_TIMEOUT);
    if retry_initial {
        opts = opts.retry_on_initial_connect();
    }
    let auth = &cfg.auth;
    if let Some(path) = &auth.creds {
        opts = opts
            .credentials_file(path)
            .await
            .map_err(|e| StoreError::Setup(format!("NATS_CREDS {}: {e}", path.display())))?;
    }
    if let Some(path) = &auth.nkey_seed {
        let seed = std::fs::read_to_string(path)
            .map_err(|e| StoreError::Setup(format!("NATS_NKEY_SEED {}: {e}", path.display())))?;
        opts = opts.nkey(seed.trim().to_owned());
    }
    if let Some((user, password)) = &auth.user_password {
        opts = opts.user_and_password(user.clone(), password.expose().to_owned());
    }
    if let Some(token) = &auth.token {
        opts = opts.token(token.expose().to_owned());
    }
    if let Some(ca) = &auth.ca {
        opts = opts.add_root_certificates(ca.clone());
    }
    if let Some((cert, key)) = &auth.client_cert {
        opts = opts.add_client_certificate(cert.clone(), key.clone());
    }
    if auth.tls() {
        opts = opts.require_tls(true);
    }
    let urls = cfg.servers();
    let servers: Vec<String> = urls.iter().map(|u| crate::config::redact_url(u)).collect();
    let servers = servers.join(",");
    // The client's own messages ("IO error") do not say which server: these lines do.
    let named = servers.clone();
    opts = opts.event_callback(move |event| {
        let servers = named.clone();
        async move {
            match event {
                async_nats::Event::Connected => tracing::info!(%servers, "NATS connected"),
                async_nats::Event::Disconnected => {
                    tracing::warn!(%servers, "NATS connection lost; reconnecting (check NATS_URL and that the server is up)")
                }
                async_nats::Event::ClientError(e) => {
                    tracing::warn!(%servers, error = %e, "NATS client error (check NATS_URL, TLS and the NATS_* credentials)")
                }
                other => tracing::info!(%servers, event = %other, "NATS"),
            }
        }
    });
    // A list, not the comma-separated string: the client parses a string as one URL.
    opts.connect(urls).await.map_err(|e| {
        StoreError::Unavailable(format!(
            "connect to NATS at {servers}: {e} (check NATS_URL, that the server is up, and the NATS_* credentials)"
        ))
    })
}

/// The server `client` is connected to now, by name and client port (`None` while it is
/// reconnecting). In a cluster the client moves between servers as they come and go.
pub fn connected_server(client: &async_nats::Client) -> Option<String> {
    if client.connection_state() != async_nats::connection::State::Connected {
        return None;
    }
    let info = client.server_info();
    Some(format!("{} (port {})", info.server_name, info.port))
}

/// Logs every move of `client` to another server, naming it: the client's own events do not
/// say which server it reached. Runs until dropped; spawn it where the client's owner stops
/// it (holding a client keeps its connection open).
pub async fn log_server_moves(client: async_nats::Client) {
    let mut current: Option<String> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let Some(server) = connected_server(&client) else {
            continue;
        };
        if current.as_deref() != Some(server.as_str()) {
            match &current {
                Some(from) => {
                    tracing::warn!(%server, %from, "NATS: now connected to another server")
                }
                None => tracing::info!(%server, "NATS: connected to server"),
            }
            current = Some(server);
        }
    }
}

/// A JetStream context whose requests time out instead of waiting forever.
pub fn context(client: async_nats::Client) -> Context {
    let mut js = jetstream::new(client);
    js.set_timeout(REQUEST_TIMEOUT);
    js
}

/// The tasks stream definition with this deployment's replicas.
pub fn tasks_stream_config(cfg: &NatsConfig) -> Result<stream::Config, StoreError> {
    stream_config(TASKS_STREAM_JSON, "nats/tasks.json", cfg)
}

/// The events stream definition with this deployment's replicas.
pub fn events_stream_config(cfg: &NatsConfig) -> Result<stream::Config, StoreError> {
    stream_config(EVENTS_STREAM_JSON, "nats/events.json", cfg)
}

/// The advisories stream definition with this deployment's replicas.
pub fn advisories_stream_config(cfg: &NatsConfig) -> Result<stream::Config, StoreError> {
    stream_config(ADVISORIES_STREAM_JSON, "nats/advisories.json", cfg)
}

/// The bridges' consumer of the advisories stream.
pub fn advisories_consumer_config(cfg: &NatsConfig) -> Result<consumer::pull::Config, StoreError> {
    let mut config: consumer::pull::Config = serde_json::from_str(ADVISORIES_CONSUMER_JSON)
        .map_err(|e| {
            StoreError::Setup(format!("nats/advisories-consumer.json does not parse: {e}"))
        })?;
    config.num_replicas = cfg.replicas;
    Ok(config)
}

fn stream_config(json: &str, file: &str, cfg: &NatsConfig) -> Result<stream::Config, StoreError> {
    let mut config: stream::Config = serde_json::from_str(json)
        .map_err(|e| StoreError::Setup(format!("{file} does not parse: {e}")))?;
    config.num_replicas = cfg.replicas;
    Ok(config)
}

/// The worker consumer of `agent`, from the shared definition.
pub fn worker_consumer_config(
    agent: &AgentName,
    cfg: &NatsConfig,
) -> Result<consumer::pull::Config, StoreError> {
    let mut config: consumer::pull::Config = serde_json::from_str(WORKER_CONSUMER_JSON)
        .map_err(|e| StoreError::Setup(format!("nats/worker-consumer.json does not parse: {e}")))?;
    config.durable_name = Some(names::worker_consumer(agent));
    config.name = None;
    config.filter_subject = String::new();
    config.filter_subjects = names::agent_task_subjects(agent);
    config.description = Some(format!(
        "Workers of the {agent} agent fetch their task here."
    ));
    config.ack_wait = cfg.ack_wait;
    config.max_deliver = cfg.max_deliver;
    config.num_replicas = cfg.replicas;
    Ok(config)
}

/// The status bucket definition.
pub fn status_bucket_config(cfg: &NatsConfig) -> kv::Config {
    kv::Config {
        bucket: names::STATUS_BUCKET.to_owned(),
        description: "Latest status of every OpenClaw task, keyed by task id.".to_owned(),
        history: 1,
        max_age: Duration::from_secs(7 * 24 * 3600),
        storage: stream::StorageType::File,
        num_replicas: cfg.replicas,
        ..Default::default()
    }
}

/// Creates or updates every stream, consumer and bucket. Idempotent: run by the bridge at every
/// start. A stream whose live definition differs is updated; a difference the server cannot
/// apply (storage type, say) is reported with the stream's name and the server's reason.
pub async fn ensure_all(
    js: &Context,
    cfg: &NatsConfig,
    agents: &AgentCatalog,
) -> Result<(), StoreError> {
    let tasks = ensure_stream(js, tasks_stream_config(cfg)?).await?;
    ensure_stream(js, events_stream_config(cfg)?).await?;
    for agent in agents.names() {
        ensure_consumer(&tasks, worker_consumer_config(agent, cfg)?).await?;
    }
    let advisories = ensure_stream(js, advisories_stream_config(cfg)?).await?;
    ensure_consumer(&advisories, advisories_consumer_config(cfg)?).await?;
    ensure_bucket(js, status_bucket_config(cfg)).await?;
    ensure_bucket(js, sessions_bucket_config(cfg)).await?;
    ensure_bucket(js, leases_bucket_config(cfg)).await?;
    Ok(())
}

/// Creates the durable consumer `config` names on `stream`, or updates it in place (its
/// delivery counts kept).
async fn ensure_consumer(
    stream: &stream::Stream,
    config: consumer::pull::Config,
) -> Result<(), StoreError> {
    let name = config.durable_name.clone().unwrap_or_default();
    stream.create_consumer(config).await.map_err(|e| {
        StoreError::Setup(format!(
            "consumer {name} on {}: {e}",
            stream.cached_info().config.name
        ))
    })?;
    Ok(())
}

async fn ensure_stream(js: &Context, want: stream::Config) -> Result<stream::Stream, StoreError> {
    let name = want.name.clone();
    let mut stream = js
        .get_or_create_stream(want.clone())
        .await
        .map_err(|e| StoreError::Setup(format!("stream {name}: {e}")))?;
    let have = stream
        .info()
        .await
        .map_err(|e| StoreError::Setup(format!("stream {name}: {e}")))?
        .config
        .clone();
    let differs = stream_differences(&have, &want);
    if !differs.is_empty() {
        tracing::info!(stream = %name, fields = ?differs, "stream definition changed; updating");
        js.update_stream(want).await.map_err(|e| {
            StoreError::Setup(format!(
                "stream {name} differs from its definition in {differs:?} and cannot be updated: {e}"
            ))
        })?;
    }
    Ok(stream)
}

/// The fields of a stream definition we set, and that differ between `have` and `want`.
fn stream_differences(have: &stream::Config, want: &stream::Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |name, same: bool| {
        if !same {
            out.push(name)
        }
    };
    check("subjects", have.subjects == want.subjects);
    check("retention", have.retention == want.retention);
    check("storage", have.storage == want.storage);
    check("num_replicas", have.num_replicas == want.num_replicas);
    check("max_age", have.max_age == want.max_age);
    check(
        "max_message_size",
        have.max_message_size == want.max_message_size,
    );
    check(
        "max_messages_per_subject",
        have.max_messages_per_subject == want.max_messages_per_subject,
    );
    check(
        "duplicate_window",
        have.duplicate_window == want.duplicate_window,
    );
    check("discard", have.discard == want.discard);
    check("allow_direct", have.allow_direct == want.allow_direct);
    out
}

async fn ensure_bucket(js: &Context, config: kv::Config) -> Result<kv::Store, StoreError> {
    match js.get_key_value(&config.bucket).await {
        Ok(store) => Ok(store),
        Err(_) => {
            let name = config.bucket.clone();
            js.create_key_value(config)
                .await
                .map_err(|e| StoreError::Setup(format!("KV bucket {name}: {e}")))
        }
    }
}

/// The leases bucket definition.
pub fn leases_bucket_config(cfg: &NatsConfig) -> kv::Config {
    kv::Config {
        bucket: names::LEASES_BUCKET.to_owned(),
        description: "OpenClaw leases: which bridge instance dispatches workers.".to_owned(),
        history: 1,
        storage: stream::StorageType::File,
        num_replicas: cfg.replicas,
        ..Default::default()
    }
}

/// The sessions bucket definition: a conversation is continued for 30 days.
pub fn sessions_bucket_config(cfg: &NatsConfig) -> kv::Config {
    kv::Config {
        bucket: names::SESSIONS_BUCKET.to_owned(),
        description: "OpenClaw conversations: session key to the branch its tasks build on."
            .to_owned(),
        history: 1,
        max_age: Duration::from_secs(30 * 24 * 3600),
        storage: stream::StorageType::File,
        num_replicas: cfg.replicas,
        ..Default::default()
    }
}

/// Handles on all three stores over one connection.
#[derive(Clone)]
pub struct Stores {
    pub js: Context,
    pub tasks: TaskQueue,
    pub events: EventLog,
    pub status: StatusStore,
    pub sessions: SessionStore,
    pub leases: LeaseStore,
}

impl Stores {
    /// Binds to the (already created) streams and bucket.
    pub async fn open(js: Context) -> Result<Self, StoreError> {
        retrying("open the stores", || Self::open_once(js.clone())).await
    }

    async fn open_once(js: Context) -> Result<Self, StoreError> {
        let tasks = js
            .get_stream_no_info(names::TASKS_STREAM)
            .await
            .map_err(|e| StoreError::Unavailable(format!("stream {}: {e}", names::TASKS_STREAM)))?;
        let TaskStores { events, status } = TaskStores::bind(&js, Reads::Leader).await?;
        let bucket = |name: &'static str| {
            let js = js.clone();
            async move {
                js.get_key_value(name)
                    .await
                    .map_err(|e| StoreError::Unavailable(format!("KV bucket {name}: {e}")))
            }
        };
        let sessions = bucket(names::SESSIONS_BUCKET).await?;
        let leases = bucket(names::LEASES_BUCKET).await?;
        Ok(Self {
            tasks: TaskQueue {
                js: js.clone(),
                stream: tasks,
            },
            events,
            status,
            sessions: SessionStore { kv: sessions },
            leases: LeaseStore { kv: leases },
            js,
        })
    }
}

/// What a worker reads and writes of the one task it holds: its events and its record.
#[derive(Clone)]
pub struct TaskStores {
    pub events: EventLog,
    pub status: StatusStore,
}

impl TaskStores {
    /// Binds as a per-task NATS user, whose permissions name that task's subjects: reads are
    /// direct gets by subject ([`Reads::Direct`]), and nothing but the status bucket's info
    /// is asked of the server.
    pub async fn open(js: Context) -> Result<Self, StoreError> {
        retrying("open the task's stores", || Self::bind(&js, Reads::Direct)).await
    }

    /// The events stream (no info asked) and the status bucket, read `reads`'s way.
    async fn bind(js: &Context, reads: Reads) -> Result<Self, StoreError> {
        let events = js
            .get_stream_no_info(names::EVENTS_STREAM)
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!("stream {}: {e}", names::EVENTS_STREAM))
            })?;
        let kv = js.get_key_value(names::STATUS_BUCKET).await.map_err(|e| {
            StoreError::Unavailable(format!("KV bucket {}: {e}", names::STATUS_BUCKET))
        })?;
        Ok(Self {
            events: EventLog {
                js: js.clone(),
                stream: events,
                reads,
            },
            status: StatusStore { kv, reads },
        })
    }
}

impl Stores {
    /// The task stores of a client that may read everything (leader reads).
    pub fn task_stores(&self) -> TaskStores {
        TaskStores {
            events: self.events.clone(),
            status: self.status.clone(),
        }
    }

    /// The status of task `id`: its record, or for a task nothing has been written about since
    /// its submit (the submit writes only the task message), `queued` as the message says.
    /// A record that has not yet caught up with a terminal event ([`TaskStatus::record_end`])
    /// is read with that end, so whoever saw the end in the event stream never reads less here.
    /// (Without a record nothing has ended: a worker writes the record before any event, and
    /// the bridge's cancel writes it before its `canceled`.) `None` for an unknown id.
    pub async fn status_of(&self, id: &TaskId) -> Result<Option<TaskStatus>, StoreError> {
        let Some(mut status) = self.status.get(id).await? else {
            return self.queued_from_message(id).await;
        };
        if !status.status.is_terminal()
            && let Some(end) = self.events.last_event(id).await?
        {
            status.record_end(&end);
        }
        Ok(Some(status))
    }

    /// Task `id` as its record says, or `queued` from its message when it has none; unlike
    /// [`Self::status_of`] it does not read the events, for callers that want the task itself
    /// (its agent, its stream sequence) rather than where it is.
    pub async fn record_of(&self, id: &TaskId) -> Result<Option<TaskStatus>, StoreError> {
        match self.status.get(id).await? {
            Some(status) => Ok(Some(status)),
            None => self.queued_from_message(id).await,
        }
    }

    /// The task's last event, after writing the end its record holds when its events have not
    /// ended: an end the bridge decides goes to the record first, and a bridge that died
    /// before the event left the events open. Whoever finds that first writes it, once
    /// ([`EventWriter::publish_end`]).
    pub async fn last_event_with_recorded_end(
        &self,
        record: &TaskStatus,
    ) -> Result<Option<TaskEvent>, StoreError> {
        let last = self.events.last_event(&record.id).await?;
        let Some(end) = record
            .end_event()
            .filter(|_| !last.as_ref().is_some_and(|e| e.kind.is_terminal()))
        else {
            return Ok(last);
        };
        match self
            .events
            .writer(record.queued_event(), 0)
            .publish_end(end)
            .await?
        {
            Some(written) => Ok(Some(written)),
            None => self.events.last_event(&record.id).await,
        }
    }

    /// The `queued` status of a task that has no record, from its message.
    async fn queued_from_message(&self, id: &TaskId) -> Result<Option<TaskStatus>, StoreError> {
        Ok(self
            .tasks
            .find(id)
            .await?
            .map(|(spec, seq)| TaskStatus::queued(&spec, seq)))
    }

    /// The tasks of `agent` its workers have not finished ([`TaskQueue::unfinished`]), oldest
    /// first, with their status: the record, or `queued` from the message.
    pub async fn unfinished(&self, agent: &AgentName) -> Result<Vec<TaskStatus>, StoreError> {
        let mut out = Vec::new();
        for (spec, seq) in self.tasks.unfinished(agent).await? {
            out.push(match self.status.get(&spec.id).await? {
                Some(status) => status,
                None => TaskStatus::queued(&spec, seq),
            });
        }
        Ok(out)
    }

    /// The tasks of `agent` that wait for their first worker, oldest first.
    pub async fn waiting(&self, agent: &AgentName) -> Result<Vec<TaskStatus>, StoreError> {
        let mut out = self.unfinished(agent).await?;
        out.retain(|s| s.status == crate::status::TaskState::Queued && s.attempts == 0);
        Ok(out)
    }
}

/// Outcome of publishing a task.
#[derive(Debug)]
pub struct Enqueued {
    /// The task as stored: the submitted one, or for a duplicate, the original.
    pub spec: TaskSpec,
    /// True when the message id was seen within the duplicate window and nothing new was stored.
    pub duplicate: bool,
    /// Stream sequence of the stored message.
    pub seq: u64,
}

/// The message that stores task `spec` under message id `msg_id`, and its subject: what a
/// submit writes (the intake bench publishes the same as its baseline).
pub fn task_message(
    spec: &TaskSpec,
    msg_id: &str,
    traceparent: Option<&str>,
    ticket: Option<&str>,
) -> (String, jetstream::message::PublishMessage) {
    let mut publish = jetstream::message::PublishMessage::build()
        .payload(spec.to_json())
        .message_id(msg_id)
        .header(names::TASK_ID_HEADER, spec.id.to_string().as_str())
        .header(
            names::SCHEMA_HEADER,
            crate::SCHEMA_VERSION.to_string().as_str(),
        );
    if let Some(traceparent) = traceparent {
        publish = publish.header(names::TRACEPARENT_HEADER, traceparent);
    }
    if let Some(ticket) = ticket {
        publish = publish.header(names::TASK_TICKET_HEADER, ticket);
    }
    (names::task_subject(&spec.agent, &spec.id), publish)
}

/// The tasks stream.
#[derive(Clone)]
pub struct TaskQueue {
    js: Context,
    stream: stream::Stream<()>,
}

impl TaskQueue {
    /// Publishes `spec` with `Nats-Msg-Id = msg_id` and waits for JetStream's ack. A duplicate
    /// (same id within the window) stores nothing and returns the original task.
    /// `traceparent` (W3C) links the worker's spans to the submit span that sent it; `ticket`
    /// ([`names::TASK_TICKET_HEADER`]) lets the worker that takes it sign in for it.
    pub async fn publish(
        &self,
        spec: TaskSpec,
        msg_id: &str,
        traceparent: Option<&str>,
        ticket: Option<&str>,
    ) -> Result<Enqueued, StoreError> {
        let (subject, publish) = task_message(&spec, msg_id, traceparent, ticket);
        let ack = retrying("publish task", || async {
            self.js
                .send_publish(subject.clone(), publish.clone())
                .await
                .map_err(publish_error("task"))?
                .await
                .map_err(publish_error("task"))
        })
        .await?;
        if !ack.duplicate {
            return Ok(Enqueued {
                spec,
                duplicate: false,
                seq: ack.sequence,
            });
        }
        // JetStream answers a duplicate with the sequence of the original message. The
        // original is this very task when an earlier attempt above was stored but its ack
        // was lost: that is not a duplicate submit.
        let original = self.get(ack.sequence).await?;
        Ok(Enqueued {
            duplicate: original.id != spec.id,
            spec: original,
            seq: ack.sequence,
        })
    }

    /// The task `id` as submitted, with its stream sequence: the first message on its subject
    /// (a copy republished there later is a replay, not the task). Asked of the stream's
    /// leader, not with a direct get, so a task is found right after its 202 on any replica
    /// count. `None` for an unknown id, and for a task of a version before 0.2 (one subject per
    /// agent), whose status record that version wrote.
    pub async fn find(&self, id: &TaskId) -> Result<Option<(TaskSpec, u64)>, StoreError> {
        let subject = names::task_subject_by_id(id);
        let found = retrying("find task", || async {
            match self
                .stream
                .get_first_raw_message_by_subject(&subject, 1)
                .await
            {
                Ok(msg) => Ok(Some(msg)),
                Err(e) if matches!(e.kind(), stream::LastRawMessageErrorKind::NoMessageFound) => {
                    Ok(None)
                }
                Err(e) => Err(unavailable("find task")(&e)),
            }
        })
        .await?;
        found
            .map(|msg| {
                let spec = serde_json::from_slice(&msg.payload)
                    .map_err(corrupt(format!("task message {}", msg.sequence)))?;
                Ok((spec, msg.sequence))
            })
            .transpose()
    }

    /// The tasks of `agent` its workers have not finished, oldest first: the messages on its
    /// subjects after its consumer's ack floor — those no worker received yet, and those a
    /// worker received but may not have written about yet. Tasks without a status record are
    /// among them, so this is how they are found.
    pub async fn unfinished(&self, agent: &AgentName) -> Result<Vec<(TaskSpec, u64)>, StoreError> {
        let name = names::worker_consumer(agent);
        let floor = match self.stream.consumer_info(&name).await {
            Ok(info) => info.ack_floor.stream_sequence,
            Err(e) => return Err(unavailable("consumer info")(&e)),
        };
        let mut out = Vec::new();
        for subject in names::agent_task_subjects(agent) {
            let mut next = floor + 1;
            loop {
                let msg = match self
                    .stream
                    .get_first_raw_message_by_subject(&subject, next)
                    .await
                {
                    Ok(msg) => msg,
                    Err(e)
                        if matches!(e.kind(), stream::LastRawMessageErrorKind::NoMessageFound) =>
                    {
                        break;
                    }
                    Err(e) => return Err(unavailable("read queued tasks")(&e)),
                };
                next = msg.sequence + 1;
                match serde_json::from_slice::<TaskSpec>(&msg.payload) {
                    Ok(spec) => out.push((spec, msg.sequence)),
                    // The worker terminates an unreadable message when it gets there.
                    Err(e) => {
                        tracing::warn!(seq = msg.sequence, error = %e, "unreadable task message")
                    }
                }
            }
        }
        out.sort_by_key(|(_, seq)| *seq);
        Ok(out)
    }

    /// The task stored at stream sequence `seq`.
    pub async fn get(&self, seq: u64) -> Result<TaskSpec, StoreError> {
        let msg = retrying("get task", || async {
            self.stream
                .get_raw_message(seq)
                .await
                .map_err(|e| unavailable("get task")(&e))
        })
        .await?;
        serde_json::from_slice(&msg.payload).map_err(corrupt(format!("task message {seq}")))
    }

    /// The message stored at stream sequence `seq`, as stored (subject, headers, time);
    /// `None` when there is none (never stored, or removed).
    pub async fn message(
        &self,
        seq: u64,
    ) -> Result<Option<jetstream::message::StreamMessage>, StoreError> {
        retrying("get task message", || async {
            match self.stream.get_raw_message(seq).await {
                Ok(msg) => Ok(Some(msg)),
                Err(e) if matches!(e.kind(), stream::RawMessageErrorKind::NoMessageFound) => {
                    Ok(None)
                }
                Err(e) => Err(unavailable("get task message")(&e)),
            }
        })
        .await
    }
}

/// The events stream.
#[derive(Clone)]
pub struct EventLog {
    js: Context,
    stream: stream::Stream<()>,
    reads: Reads,
}

/// How many times a writer retries after losing the race for the next sequence number.
const MAX_SEQ_RACES: usize = 16;

impl EventLog {
    /// A writer of a task's events for one attempt (0 for the bridge). `queued` is the task's
    /// first event ([`TaskEvent::queued`]): the writer stores it first when the task has no
    /// events yet, so every task's events start with the same `queued` at seq 1 whoever
    /// writes first.
    pub fn writer(&self, queued: TaskEvent, attempt: u32) -> EventWriter {
        EventWriter {
            log: self.clone(),
            task: queued.task_id,
            queued,
            attempt,
            fenced: false,
            last: None,
            id: uuid::Uuid::now_v7().simple().to_string(),
        }
    }

    /// A worker attempt's writer: like [`EventLog::writer`], but it fails with
    /// [`StoreError::Superseded`] instead of writing once it finds the task's last event
    /// written by a later attempt, or the task's end. Two attempts can hold one task at once
    /// (a worker that stopped answering for longer than `ack_wait` and came back); the
    /// later one's first event fences the earlier one off.
    pub fn fenced_writer(&self, queued: TaskEvent, attempt: u32) -> EventWriter {
        EventWriter {
            fenced: true,
            ..self.writer(queued, attempt)
        }
    }

    /// The last event of `task`, if any.
    pub async fn last_event(&self, task: &TaskId) -> Result<Option<TaskEvent>, StoreError> {
        Ok(self.last(task).await?.map(|(ev, _)| ev))
    }

    /// The last event of `task` with its stream sequence, if any.
    async fn last(&self, task: &TaskId) -> Result<Option<(TaskEvent, u64)>, StoreError> {
        let Some(msg) = self.last_message(task).await? else {
            return Ok(None);
        };
        let ev = serde_json::from_slice(&msg.payload)
            .map_err(corrupt(format!("{} @ {}", msg.subject, msg.sequence)))?;
        Ok(Some((ev, msg.sequence)))
    }

    /// The last message on `task`'s subject, as stored (with its headers).
    async fn last_message(
        &self,
        task: &TaskId,
    ) -> Result<Option<jetstream::message::StreamMessage>, StoreError> {
        last_on_subject(
            &self.stream,
            &names::event_subject(task),
            "read last event",
            self.reads,
        )
        .await
    }

    /// Appends `event` if the task's subject still ends at stream sequence `expected_last`
    /// (0: no events yet). `writer` tells this writer's appends apart from any other's: with
    /// the event's sequence it is the message id, so an append retried after its ack was lost
    /// is stored once (a duplicate, or found as the subject's last message).
    async fn append(
        &self,
        event: &TaskEvent,
        expected_last: u64,
        writer: &str,
    ) -> Result<Appended, StoreError> {
        let payload: Bytes = serde_json::to_vec(event)
            .expect("events always serialize")
            .into();
        let mut headers = HeaderMap::new();
        headers.insert(
            names::SCHEMA_HEADER,
            crate::SCHEMA_VERSION.to_string().as_str(),
        );
        let msg_id = format!("{}.{}.{writer}", event.task_id, event.seq);
        let publish = jetstream::message::PublishMessage::build()
            .payload(payload)
            .headers(headers)
            .message_id(msg_id.as_str())
            .expected_last_subject_sequence(expected_last);
        let failed = publish_error("event");
        let subject = names::event_subject(&event.task_id);
        let appended = retrying("append event", || async {
            let ack = self
                .js
                .send_publish(subject.clone(), publish.clone())
                .await
                .map_err(&failed)?
                .await;
            match ack {
                Ok(ack) => Ok(Appended::Stored(ack.sequence)),
                Err(e) if e.kind() == jetstream::context::PublishErrorKind::WrongLastSequence => {
                    Ok(Appended::Raced)
                }
                Err(e) => Err(failed(e)),
            }
        })
        .await?;
        if let Appended::Raced = appended {
            // Lost to another writer, or to this very append, stored by an attempt whose ack
            // was lost: then it is the subject's last message.
            if let Some(last) = self.last_message(&event.task_id).await?
                && last
                    .headers
                    .get(async_nats::header::NATS_MESSAGE_ID)
                    .is_some_and(|id| id.as_str() == msg_id)
            {
                return Ok(Appended::Stored(last.sequence));
            }
        }
        Ok(appended)
    }

    /// Every event of `task` from the first, then live ones as they are published. The stream
    /// does not end by itself; callers stop after a terminal event.
    pub async fn follow(
        &self,
        task: &TaskId,
    ) -> Result<impl Stream<Item = Result<TaskEvent, StoreError>> + use<>, StoreError> {
        let subject = names::event_subject(task);
        let consumer = self
            .stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: subject.clone(),
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable("follow events")(&e))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| unavailable("follow events")(&e))?;
        Ok(messages
            .map_err(|e| unavailable("follow events")(&e))
            .and_then(move |msg| {
                let parsed = serde_json::from_slice::<TaskEvent>(&msg.payload)
                    .map_err(corrupt(subject.clone()));
                async move { parsed }
            }))
    }

    /// Every event of `task` stored so far (for tests, tools and non-streaming readers).
    pub async fn history(&self, task: &TaskId) -> Result<Vec<TaskEvent>, StoreError> {
        let Some((last, _)) = self.last(task).await? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut events = std::pin::pin!(self.follow(task).await?);
        while let Some(ev) = events.next().await {
            let ev = ev?;
            let done = ev.seq >= last.seq;
            out.push(ev);
            if done {
                break;
            }
        }
        Ok(out)
    }
}

enum Appended {
    Stored(u64),
    Raced,
}

/// Appends the events of one task, numbering them 1, 2, 3… per task. The number is claimed
/// with `Nats-Expected-Last-Subject-Sequence`: a writer that lost a race to another writer
/// (the bridge's `canceled`, a worker's) rereads the last event and tries again.
pub struct EventWriter {
    /// Where events go.
    log: EventLog,
    /// Whose events these are.
    task: TaskId,
    /// The task's first event, stored before any other if the task has none yet.
    queued: TaskEvent,
    /// Stamped on every event, so readers can tell attempts apart.
    attempt: u32,
    /// Whether a later attempt's event or the task's end stops this writer
    /// ([`EventLog::fenced_writer`]).
    fenced: bool,
    /// (per-task seq, stream seq) of the last event this writer knows of; `None` = ask the
    /// server. Saves a read per event while this writer is the only one writing.
    last: Option<(u64, u64)>,
    /// Unique to this writer: part of each append's message id, so a retried append is
    /// recognized as this writer's and another writer's is not.
    id: String,
}

impl EventWriter {
    pub async fn publish(&mut self, kind: EventKind) -> Result<TaskEvent, StoreError> {
        self.append_next(kind, false)
            .await?
            .ok_or_else(|| StoreError::Contention(names::event_subject(&self.task)))
    }

    /// Stores `end`, a terminal event, unless the task's events have ended already (whoever
    /// ended them); `None` then. An end the bridge decides in the status record first (cancel
    /// before start, a queue deadline, max deliveries) is written this way every time the
    /// decision is found made, so a retry after a lost answer completes it, and exactly once
    /// however many try at the same time.
    pub async fn publish_end(&mut self, end: EventKind) -> Result<Option<TaskEvent>, StoreError> {
        self.append_next(end, true).await
    }

    /// Appends `kind` as the task's next event, rereading the last one whenever another writer
    /// got there first; with `unless_ended`, nothing (`None`) once the events have ended.
    async fn append_next(
        &mut self,
        kind: EventKind,
        unless_ended: bool,
    ) -> Result<Option<TaskEvent>, StoreError> {
        let kind = kind.bounded();
        for _ in 0..MAX_SEQ_RACES {
            let (seq, stream_seq) = match self.last {
                Some(last) => last,
                None => match self.log.last(&self.task).await? {
                    Some((ev, _)) if unless_ended && ev.kind.is_terminal() => return Ok(None),
                    Some((ev, _)) if self.fenced && self.superseded_by(&ev) => {
                        return Err(StoreError::Superseded(self.task));
                    }
                    Some((ev, stream_seq)) => (ev.seq, stream_seq),
                    None => match self.log.append(&self.queued, 0, &self.id).await? {
                        Appended::Stored(stream_seq) => (1, stream_seq),
                        Appended::Raced => continue,
                    },
                },
            };
            let event = TaskEvent {
                v: crate::SCHEMA_VERSION,
                task_id: self.task,
                seq: seq + 1,
                ts: crate::now(),
                attempt: self.attempt,
                kind: kind.clone(),
            };
            match self.log.append(&event, stream_seq, &self.id).await? {
                Appended::Stored(stream_seq) => {
                    self.last = Some((event.seq, stream_seq));
                    return Ok(Some(event));
                }
                Appended::Raced => self.last = None,
            }
        }
        Err(StoreError::Contention(names::event_subject(&self.task)))
    }

    /// Whether `last`, the task's newest event, says that this writer's attempt no longer
    /// holds the task: a later attempt has written (its claim is followed by `started`), or
    /// the task ended (cancel, a deadline, another attempt's end).
    fn superseded_by(&self, last: &TaskEvent) -> bool {
        last.attempt > self.attempt || last.kind.is_terminal()
    }
}

/// The last message on `subject` in `stream` (`None`: none), asked of the stream's leader and
/// retried through an election.
async fn last_on_subject<I>(
    stream: &stream::Stream<I>,
    subject: &str,
    what: &'static str,
    reads: Reads,
) -> Result<Option<jetstream::message::StreamMessage>, StoreError> {
    retrying(what, || async {
        match reads {
            Reads::Leader => match stream.get_last_raw_message_by_subject(subject).await {
                Ok(msg) => Ok(Some(msg)),
                Err(e) if matches!(e.kind(), stream::LastRawMessageErrorKind::NoMessageFound) => {
                    Ok(None)
                }
                Err(e) => Err(unavailable(what)(&e)),
            },
            Reads::Direct => match stream.direct_get_last_for_subject(subject).await {
                Ok(msg) => Ok(Some(msg)),
                Err(e) if matches!(e.kind(), stream::DirectGetErrorKind::NotFound) => Ok(None),
                Err(e) => Err(unavailable(what)(&e)),
            },
        }
    })
    .await
}

/// How a store reads the last message on a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// `STREAM.MSG.GET`, answered by the stream's leader: always the newest (a replica catching
    /// up after a restart may not have it yet). Its API subject does not name the subject
    /// read, so only a user that may read the whole stream can use it: the bridge.
    Leader,
    /// `DIRECT.GET.<stream>.<subject>`, whose API subject names the subject read, so a
    /// permission can allow one task's subjects and no other's: a worker's per-task user.
    /// On a replicated stream any replica answers; a stale answer costs a retry, never a lost
    /// write, because every write is compare-and-set and the leader checks it.
    Direct,
}

/// The value and revision of `key` in bucket `kv` (`None`: never written, deleted or
/// purged), asked of the bucket's leader. Not the client's `entry`, a direct get: any replica
/// answers those, and one catching up after a restart does not have the newest record yet (a
/// worker once found its own status "vanished" that way, and a bridge its own lease
/// outdated). Like [`TaskQueue::find`].
async fn leader_entry(
    kv: &kv::Store,
    key: &str,
    what: &'static str,
    reads: Reads,
) -> Result<Option<(Bytes, u64)>, StoreError> {
    let msg = last_on_subject(&kv.stream, &format!("{}{key}", kv.prefix), what, reads).await?;
    // A delete, purge or expiry leaves a marker with one of these headers; a put has none.
    Ok(msg
        .filter(|m| {
            m.headers.get("KV-Operation").is_none() && m.headers.get("Nats-Marker-Reason").is_none()
        })
        .map(|m| (m.payload, m.sequence)))
}

/// The status KV bucket.
#[derive(Clone)]
pub struct StatusStore {
    kv: kv::Store,
    reads: Reads,
}

/// What an [`StatusStore::update`] closure decided.
pub enum Update<T> {
    /// Store the changed record and return `T`.
    Write(T),
    /// Leave the record as it is and return `T`.
    Keep(T),
}

impl StatusStore {
    /// Stores the record of a new task unless one exists already (idempotent).
    pub async fn ensure(&self, status: &TaskStatus) -> Result<(), StoreError> {
        let value: Bytes = serde_json::to_vec(status)
            .expect("statuses always serialize")
            .into();
        self.create(&status.id, value).await.map(|_| ())
    }

    pub async fn get(&self, id: &TaskId) -> Result<Option<TaskStatus>, StoreError> {
        Ok(self.entry(id).await?.map(|(s, _)| s))
    }

    /// Creates `id`'s record; `false` if it exists already.
    async fn create(&self, id: &TaskId, value: Bytes) -> Result<bool, StoreError> {
        retrying("create status", || async {
            match self.kv.create(id.to_string(), value.clone()).await {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(unavailable("create status")(&e)),
            }
        })
        .await
    }

    async fn entry(&self, id: &TaskId) -> Result<Option<(TaskStatus, u64)>, StoreError> {
        let key = id.to_string();
        match leader_entry(&self.kv, &key, "read status", self.reads).await? {
            Some((value, revision)) => {
                let status = serde_json::from_slice(&value).map_err(corrupt(key))?;
                Ok(Some((status, revision)))
            }
            None => Ok(None),
        }
    }

    /// Read-modify-write with compare-and-set on the revision, retried on conflict. `change`
    /// may run more than once; it sees the freshest record each time. `None` if no record.
    pub async fn update<T>(
        &self,
        id: &TaskId,
        mut change: impl FnMut(&mut TaskStatus) -> Update<T>,
    ) -> Result<Option<(TaskStatus, T)>, StoreError> {
        for _ in 0..MAX_SEQ_RACES {
            let Some((mut status, revision)) = self.entry(id).await? else {
                return Ok(None);
            };
            let out = match change(&mut status) {
                Update::Keep(out) => return Ok(Some((status, out))),
                Update::Write(out) => out,
            };
            status.updated_at = crate::now();
            let value: Bytes = serde_json::to_vec(&status)
                .expect("statuses always serialize")
                .into();
            // A retry after a lost answer finds the revision moved (by this very write) and
            // reads again: `change` then sees its own result and keeps it.
            let written = retrying("update status", || async {
                match self
                    .kv
                    .update(id.to_string(), value.clone(), revision)
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
                    Err(e) => Err(unavailable("update status")(&e)),
                }
            })
            .await?;
            if written {
                return Ok(Some((status, out)));
            }
        }
        Err(StoreError::Contention(format!("status of {id}")))
    }

    /// [`StatusStore::update`] of a task that may have no record yet (nothing has been written
    /// about it since it was submitted): `base` is what its record would say, and `change`
    /// applies to it; the record is then created, compare-and-set like an update.
    pub async fn update_or_create<T>(
        &self,
        base: &TaskStatus,
        mut change: impl FnMut(&mut TaskStatus) -> Update<T>,
    ) -> Result<(TaskStatus, T), StoreError> {
        for _ in 0..MAX_SEQ_RACES {
            if let Some(updated) = self.update(&base.id, &mut change).await? {
                return Ok(updated);
            }
            let mut status = base.clone();
            let out = match change(&mut status) {
                Update::Keep(out) => return Ok((status, out)),
                Update::Write(out) => out,
            };
            status.updated_at = crate::now();
            let value: Bytes = serde_json::to_vec(&status)
                .expect("statuses always serialize")
                .into();
            // Not created: written meanwhile (by the task's worker, or by this very create
            // whose answer was lost): change that record instead.
            if self.create(&base.id, value).await? {
                return Ok((status, out));
            }
        }
        Err(StoreError::Contention(format!("status of {}", base.id)))
    }

    /// Every status record written from now on, as it is written (deletions skipped).
    pub async fn changes(
        &self,
    ) -> Result<impl Stream<Item = Result<TaskStatus, StoreError>> + use<>, StoreError> {
        let watch = self
            .kv
            .watch_all()
            .await
            .map_err(|e| unavailable("watch statuses")(&e))?;
        Ok(watch.filter_map(|entry| async move {
            match entry {
                Ok(e) if e.operation == kv::Operation::Put => Some(
                    serde_json::from_slice::<TaskStatus>(&e.value)
                        .map_err(corrupt(format!("status {}", e.key))),
                ),
                Ok(_) => None,
                Err(e) => Some(Err(unavailable("watch statuses")(&e))),
            }
        }))
    }

    /// The most recent tasks first (task ids are time-ordered UUID v7).
    /// The `limit` most recent tasks that `keep` accepts.
    pub async fn recent(
        &self,
        limit: usize,
        keep: impl Fn(&TaskStatus) -> bool,
    ) -> Result<Vec<TaskStatus>, StoreError> {
        let keys: Vec<String> = match self.kv.keys().await {
            Ok(keys) => keys
                .try_collect()
                .await
                .map_err(|e| unavailable("list statuses")(&e))?,
            Err(e) => return Err(unavailable("list statuses")(&e)),
        };
        let mut ids: Vec<TaskId> = keys.iter().filter_map(|k| TaskId::parse(k).ok()).collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        let mut out = Vec::with_capacity(limit.min(ids.len()));
        for id in ids {
            if out.len() >= limit {
                break;
            }
            if let Some(status) = self.get(&id).await?.filter(&keep) {
                out.push(status);
            }
        }
        Ok(out)
    }
}

/// The sessions KV bucket.
#[derive(Clone)]
pub struct SessionStore {
    kv: kv::Store,
}

impl SessionStore {
    pub async fn get(&self, key: &SessionKey) -> Result<Option<Session>, StoreError> {
        let value = self
            .kv
            .get(key.as_str())
            .await
            .map_err(|e| unavailable("read session")(&e))?;
        value
            .map(|v| serde_json::from_slice(&v).map_err(corrupt(key.as_str())))
            .transpose()
    }

    pub async fn put(&self, key: &SessionKey, session: &Session) -> Result<(), StoreError> {
        let value: Bytes = serde_json::to_vec(session)
            .expect("sessions always serialize")
            .into();
        self.kv
            .put(key.as_str(), value)
            .await
            .map_err(|e| unavailable("write session")(&e))?;
        Ok(())
    }
}

/// Who holds a lease, until when.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Lease {
    holder: String,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: time::OffsetDateTime,
}

/// Leases in the leases bucket: one holder at a time per name, taken over once it expires.
/// Compare-and-set on the entry's revision decides every race.
#[derive(Clone)]
pub struct LeaseStore {
    kv: kv::Store,
}

impl LeaseStore {
    /// Takes or renews lease `name` for `holder` for `ttl`. `false`: another holder has it.
    pub async fn acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let lease = Lease {
            holder: holder.to_owned(),
            expires_at: crate::now() + ttl,
        };
        let value: Bytes = serde_json::to_vec(&lease)
            .expect("leases always serialize")
            .into();
        let Some((current, revision)) =
            leader_entry(&self.kv, name, "read lease", Reads::Leader).await?
        else {
            return Ok(self.kv.create(name, value).await.is_ok());
        };
        let held_by_other = serde_json::from_slice::<Lease>(&current)
            .is_ok_and(|l| l.holder != holder && l.expires_at > crate::now());
        if held_by_other {
            return Ok(false);
        }
        Ok(self.kv.update(name, value, revision).await.is_ok())
    }

    /// Gives lease `name` up if `holder` has it, so another instance can take over at once.
    pub async fn release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        if let Some((current, _)) =
            leader_entry(&self.kv, name, "read lease", Reads::Leader).await?
        {
            let ours = serde_json::from_slice::<Lease>(&current).is_ok_and(|l| l.holder == holder);
            if ours {
                self.kv
                    .purge(name)
                    .await
                    .map_err(|e| unavailable("release lease")(&e))?;
            }
        }
        Ok(())
    }
}
