//! The tasks stream: one message per task, as submitted.

use async_nats::jetstream::{self, Context, stream};

use crate::ids::{AgentName, TaskId};
use crate::names;
use crate::task::TaskSpec;

use super::*;

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
    pub(super) js: Context,
    pub(super) stream: stream::Stream<()>,
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
