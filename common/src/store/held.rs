//! A worker's side of the tasks stream: its agent's consumer, the one message it holds, the
//! progress acks that keep it held, and how it lets it go.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use async_nats::jetstream::{self, AckKind, Context};
use futures_util::StreamExt;
use time::OffsetDateTime;

use crate::ids::AgentName;
use crate::names;

use super::{StoreError, Stores, retrying};

/// What to tell JetStream about a held message once its task is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Done (whatever the task's outcome): never delivered again.
    Ack,
    /// Handed back, to be delivered again after the delay.
    Nak(Duration),
    /// Given up: never delivered again (an unreadable message).
    Term,
}

/// The consumer `agent`'s workers take their tasks from, on the worker's own connection.
pub struct WorkerQueue {
    js: Context,
    consumer: String,
}

/// One request for a task: the consumer's settings, and the message when one comes.
pub struct Fetch {
    pub ack_wait: Duration,
    pub max_deliver: i64,
    batch: pull::Batch,
}

/// The task message a worker holds, until it settles it.
#[derive(Clone)]
pub struct HeldMessage {
    msg: Arc<jetstream::Message>,
    /// How long JetStream waits for an ack before it delivers the message again.
    pub ack_wait: Duration,
    /// How many deliveries JetStream makes before it gives the message up (0: no limit).
    pub max_deliver: i64,
}

impl WorkerQueue {
    pub fn new(client: async_nats::Client, agent: &AgentName) -> Self {
        Self {
            js: super::context(client),
            consumer: names::worker_consumer(agent),
        }
    }

    /// Opens the consumer and asks for one task, waiting up to `wait`; retried (bounded)
    /// while JetStream cannot answer, like every store call.
    pub async fn fetch(&self, wait: Duration) -> Result<Fetch, StoreError> {
        let consumer_name = self.consumer.as_str();
        retrying("fetch a task", || async {
            let tasks = self
                .js
                .get_stream_no_info(names::TASKS_STREAM)
                .await
                .map_err(|e| {
                    StoreError::Unavailable(format!("stream {}: {e}", names::TASKS_STREAM))
                })?;
            let mut consumer = tasks
                .get_consumer::<pull::Config>(consumer_name)
                .await
                .map_err(|e| StoreError::Unavailable(format!("consumer {consumer_name}: {e}")))?;
            let info = consumer
                .info()
                .await
                .map_err(|e| StoreError::Unavailable(format!("consumer {consumer_name}: {e}")))?;
            let (ack_wait, max_deliver) = (info.config.ack_wait, info.config.max_deliver);
            let batch = consumer
                .fetch()
                .max_messages(1)
                .expires(wait)
                .messages()
                .await
                .map_err(|e| StoreError::Unavailable(format!("fetch: {e}")))?;
            Ok(Fetch {
                ack_wait,
                max_deliver,
                batch,
            })
        })
        .await
    }

    /// Every store, on this connection: for a deployment without per-task users, where the
    /// worker's own user may read and write every task.
    pub async fn stores(&self) -> Result<Stores, StoreError> {
        Stores::open(self.js.clone()).await
    }
}

impl Fetch {
    /// The message, `None` when the wait ended without one, or why the server ended the wait
    /// (a consumer leader change: ask again).
    pub async fn next(&mut self) -> Option<Result<HeldMessage, String>> {
        let next = self.batch.next().await?;
        Some(
            next.map(|msg| HeldMessage {
                msg: Arc::new(msg),
                ack_wait: self.ack_wait,
                max_deliver: self.max_deliver,
            })
            .map_err(|e| e.to_string()),
        )
    }
}

impl HeldMessage {
    pub fn payload(&self) -> &[u8] {
        &self.msg.payload
    }

    pub fn subject(&self) -> &str {
        self.msg.subject.as_str()
    }

    /// A header's value, if the message has it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.msg
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str())
    }

    /// This delivery: its count (1 for the first), the message's stream sequence, and when it
    /// was stored.
    pub fn delivery(&self) -> (u32, u64, OffsetDateTime) {
        self.msg
            .info()
            .map(|i| (i.delivered.max(1) as u32, i.stream_sequence, i.published))
            .unwrap_or((1, 0, crate::now()))
    }

    /// Tells JetStream the task is still being worked on, well inside `ack_wait`, until
    /// dropped (spawn it and abort the task). Each progress ack waits for the server's
    /// answer, and one that gets none is sent again soon: in a cluster a consumer's leader
    /// election swallows acks, and a task whose acks all go missing for `ack_wait` is given to
    /// another worker (which the fencing survives, at the cost of a second run).
    pub async fn keep_alive(self) {
        let every = (self.ack_wait / 3).max(Duration::from_millis(200));
        let again = (every / 5).max(Duration::from_millis(100));
        let mut wait = every;
        loop {
            tokio::time::sleep(wait).await;
            wait = match tokio::time::timeout(every, self.msg.double_ack_with(AckKind::Progress))
                .await
            {
                Ok(Ok(())) => every,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "in-progress ack failed; sending it again");
                    again
                }
                Err(_) => {
                    tracing::warn!(within = ?every, "in-progress ack not answered; sending it again");
                    again
                }
            };
        }
    }

    /// Lets the message go, `how`; retried through a leader election (settling twice is the
    /// same as once).
    pub async fn settle(&self, how: Settle) -> Result<(), StoreError> {
        retrying("settle the task message", || async {
            let result = match how {
                // Double ack: wait for the server to confirm, so a lost ack cannot redeliver a
                // task that is done.
                Settle::Ack => self.msg.double_ack().await,
                Settle::Nak(delay) => self.msg.ack_with(AckKind::Nak(Some(delay))).await,
                Settle::Term => self.msg.ack_with(AckKind::Term).await,
            };
            result.map_err(|e| StoreError::Unavailable(format!("ack: {e}")))
        })
        .await
    }
}

/// Why the advisories consumer cannot be read.
pub(super) fn advisories_unavailable(e: &dyn std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!(
        "consumer {} on {}: {e}",
        names::ADVISORIES_CONSUMER,
        names::ADVISORIES_STREAM
    ))
}

/// The advisories the bridges take ([`Stores::advisories`]).
pub struct Advisories {
    pub(super) messages: pull::Stream,
}

/// One advisory, held until it is settled.
pub struct Advisory {
    msg: jetstream::Message,
}

impl Advisories {
    /// The next advisory; `None` when the consumer's message stream ended.
    pub async fn next(&mut self) -> Option<Result<Advisory, StoreError>> {
        let next = self.messages.next().await?;
        Some(
            next.map(|msg| Advisory { msg })
                .map_err(|e| advisories_unavailable(&e)),
        )
    }
}

impl Advisory {
    pub fn payload(&self) -> &[u8] {
        &self.msg.payload
    }

    /// Lets it go, once; a lost settle delivers it again after `ack_wait`, so handling one
    /// must be idempotent.
    pub async fn settle(&self, how: Settle) -> Result<(), String> {
        let kind = match how {
            Settle::Ack => AckKind::Ack,
            Settle::Nak(delay) => AckKind::Nak(Some(delay)),
            Settle::Term => AckKind::Term,
        };
        self.msg.ack_with(kind).await.map_err(|e| e.to_string())
    }
}
