//! The only place that speaks JetStream. **Architecture Invariant:** nothing outside this
//! module holds a JetStream context; whatever the binaries need of NATS is a method here.
//!
//! - `setup`: the streams, consumers and buckets, created from the `nats/*.json` definitions.
//! - `tasks`: the task messages ([`TaskQueue`]); `held`: a worker's side of them (its
//!   consumer, the message it holds, progress acks, settling) and the bridges' advisories.
//! - `events`: a task's events ([`EventLog`], [`EventWriter`] and its fence).
//! - `records`: the KV records: statuses ([`StatusStore`]), sessions, leases.
//! - here: connecting, retrying through leader elections, the [`Stores`] handle and the reads
//!   that combine them ([`Stores::status_of`], …).

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::{self, Context, consumer, kv, stream};
use bytes::Bytes;

use crate::config::NatsConfig;
use crate::event::EventKind;
use crate::event::TaskEvent;
use crate::ids::{AgentName, TaskId};
use crate::lifecycle::{self, Ledger, Update};
use crate::names;
use crate::status::TaskStatus;

mod audit;
mod events;
mod held;
mod quotas;
mod records;
mod setup;
mod tasks;

pub use audit::*;
pub use events::*;
pub use held::*;
pub use quotas::*;
pub use records::*;
pub use setup::*;
pub use tasks::*;

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
    let mut backoff =
        crate::backoff::Backoff::new(Duration::from_millis(25), Duration::from_millis(800));
    loop {
        let attempt = tokio::time::timeout_at(deadline, op()).await;
        let error = match attempt {
            Ok(Err(StoreError::Unavailable(e))) => e,
            Ok(done) => return done,
            Err(_) => format!("{what}: no answer within {RETRY_FOR:?}"),
        };
        let pause = backoff.failed();
        if tokio::time::Instant::now() + pause >= deadline {
            return Err(StoreError::Unavailable(error));
        }
        tracing::debug!(what, error = %error, "JetStream did not answer; retrying");
        tokio::time::sleep(pause).await;
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

/// Handles on all three stores over one connection.
#[derive(Clone)]
pub struct Stores {
    js: Context,
    pub tasks: TaskQueue,
    pub events: EventLog,
    pub status: StatusStore,
    pub sessions: SessionStore,
    pub leases: LeaseStore,
    pub deliveries: DeliveryStore,
    pub audit: AuditLog,
    pub quotas: QuotaStore,
    pub parked: ParkedStore,
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
        let deliveries = bucket(names::DELIVERIES_BUCKET).await?;
        let audit = AuditLog::bind(&js).await?;
        let quotas = bucket(names::QUOTAS_BUCKET).await?;
        let parked = bucket(names::PARKED_BUCKET).await?;
        Ok(Self {
            tasks: TaskQueue {
                js: js.clone(),
                stream: tasks,
            },
            events,
            status,
            sessions: SessionStore { kv: sessions },
            leases: LeaseStore { kv: leases },
            deliveries: DeliveryStore { kv: deliveries },
            audit,
            quotas: QuotaStore { kv: quotas },
            parked: ParkedStore { kv: parked },
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
    /// The max-deliveries advisories kept for the bridges, from their shared consumer: each
    /// is delivered to one bridge and comes again until it is settled.
    pub async fn advisories(&self) -> Result<Advisories, StoreError> {
        let unavailable = advisories_unavailable;
        let consumer: consumer::PullConsumer = self
            .js
            .get_stream_no_info(names::ADVISORIES_STREAM)
            .await
            .map_err(|e| unavailable(&e))?
            .get_consumer(names::ADVISORIES_CONSUMER)
            .await
            .map_err(|e| unavailable(&e))?;
        let messages = consumer.messages().await.map_err(|e| unavailable(&e))?;
        Ok(Advisories { messages })
    }

    /// The backlog of `agent`'s worker consumer: (pending, delivered but unacknowledged).
    pub async fn consumer_backlog(&self, agent: &AgentName) -> Result<(u64, u64), StoreError> {
        let name = names::worker_consumer(agent);
        let info = self
            .tasks
            .stream
            .consumer_info(&name)
            .await
            .map_err(|e| StoreError::Unavailable(format!("consumer {name}: {e}")))?;
        Ok((info.num_pending, info.num_ack_pending as u64))
    }

    /// Every stream and bucket exists: `Err` names the first that does not (or cannot be
    /// asked about).
    pub async fn check_streams(&self) -> Result<(), StoreError> {
        let buckets = [
            names::STATUS_BUCKET,
            names::SESSIONS_BUCKET,
            names::LEASES_BUCKET,
            names::DELIVERIES_BUCKET,
        ]
        .map(|b| format!("KV_{b}"));
        let streams = [names::TASKS_STREAM, names::EVENTS_STREAM]
            .into_iter()
            .chain(buckets.iter().map(String::as_str));
        for stream in streams {
            self.js.get_stream(stream).await.map_err(|e| {
                StoreError::Unavailable(format!("stream {stream} is not available: {e}"))
            })?;
        }
        Ok(())
    }

    /// The task stores of a client that may read everything (leader reads).
    pub fn task_stores(&self) -> TaskStores {
        TaskStores {
            events: self.events.clone(),
            status: self.status.clone(),
        }
    }

    /// The status of task `id`: its record, or for a task nothing has been written about since
    /// its submit (the submit writes only the task message), `queued` as the message says.
    /// A record that has not yet caught up with a terminal event ([`lifecycle::record_end`])
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
            lifecycle::record_end(&mut status, &end);
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

    /// Task `id`'s record, created first from its first message when nothing has been written
    /// about it yet (what [`Self::record_of`] reads, made durable). `None` for an unknown id.
    /// For readers that may read records but not task messages (a worker's per-task user).
    pub async fn ensure_record(&self, id: &TaskId) -> Result<Option<TaskStatus>, StoreError> {
        if let Some(record) = self.status.get(id).await? {
            return Ok(Some(record));
        }
        let Some(queued) = self.queued_from_message(id).await? else {
            return Ok(None);
        };
        self.status.ensure(&queued).await?;
        self.status.get(id).await
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

/// The lifecycle rules' view of the stores: both handles hold a task's record and events.
macro_rules! ledger {
    ($stores:ty) => {
        impl Ledger for $stores {
            type Error = StoreError;

            fn last_event(
                &self,
                id: &TaskId,
            ) -> impl Future<Output = Result<Option<TaskEvent>, StoreError>> + Send {
                self.events.last_event(id)
            }

            fn update<T: Send>(
                &self,
                id: &TaskId,
                change: impl FnMut(&mut TaskStatus) -> Update<T> + Send,
            ) -> impl Future<Output = Result<Option<(TaskStatus, T)>, StoreError>> + Send {
                self.status.update(id, change)
            }

            fn update_or_create<T: Send>(
                &self,
                base: &TaskStatus,
                change: impl FnMut(&mut TaskStatus) -> Update<T> + Send,
            ) -> impl Future<Output = Result<(TaskStatus, T), StoreError>> + Send {
                self.status.update_or_create(base, change)
            }

            async fn append_end(
                &self,
                record: &TaskStatus,
                end: EventKind,
            ) -> Result<Option<TaskEvent>, StoreError> {
                self.events
                    .writer(record.queued_event(), 0)
                    .publish_end(end)
                    .await
            }
        }
    };
}
ledger!(Stores);
ledger!(TaskStores);

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
