//! The events stream: each task's numbered events, appended by one writer at a time.

use async_nats::HeaderMap;
use async_nats::jetstream::{self, Context, consumer, stream};
use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};

use crate::event::{EventKind, TaskEvent};
use crate::ids::TaskId;
use crate::names;

use super::*;

/// The events stream.
#[derive(Clone)]
pub struct EventLog {
    pub(super) js: Context,
    pub(super) stream: stream::Stream<()>,
    pub(super) reads: Reads,
}

/// How many times a writer retries after losing the race for the next sequence number.
pub(super) const MAX_SEQ_RACES: usize = 16;

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

    /// Stores `diff` as task `task`'s diff, replacing any earlier one (readers take the last).
    pub async fn put_diff(&self, task: &TaskId, diff: &str) -> Result<(), StoreError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            names::SCHEMA_HEADER,
            crate::SCHEMA_VERSION.to_string().as_str(),
        );
        let failed = publish_error("diff");
        let subject = names::diff_subject(task);
        let payload = Bytes::copy_from_slice(diff.as_bytes());
        retrying("store the diff", || async {
            self.js
                .publish_with_headers(subject.clone(), headers.clone(), payload.clone())
                .await
                .map_err(&failed)?
                .await
                .map_err(&failed)
        })
        .await?;
        Ok(())
    }

    /// Task `task`'s last stored diff, if it has one.
    pub async fn diff(&self, task: &TaskId) -> Result<Option<String>, StoreError> {
        let msg = last_on_subject(
            &self.stream,
            &names::diff_subject(task),
            "read the diff",
            self.reads,
        )
        .await?;
        Ok(msg.map(|m| String::from_utf8_lossy(&m.payload).into_owned()))
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
