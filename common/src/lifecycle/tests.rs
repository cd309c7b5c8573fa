//! The lifecycle rules against an in-memory [`Ledger`] that can interleave another process's
//! write between a read and a compare-and-set, as JetStream can.

use std::collections::HashMap;
use std::sync::Mutex;

use super::*;
use crate::ids::{AgentName, BranchName};
use crate::task::TaskSpec;

/// Another process's write, run once between one reader's read and its compare-and-set.
type Interference = Box<dyn FnOnce(&mut Books) + Send>;

#[derive(Default)]
struct Books {
    /// Record and revision per task.
    records: HashMap<TaskId, (TaskStatus, u64)>,
    events: HashMap<TaskId, Vec<TaskEvent>>,
    /// Run by the next compare-and-set, before it compares.
    interference: Vec<Interference>,
}

impl Books {
    fn write(&mut self, status: TaskStatus) {
        let revision = self.records.get(&status.id).map_or(0, |(_, r)| *r);
        self.records.insert(status.id, (status, revision + 1));
    }

    fn append(&mut self, record: &TaskStatus, kind: EventKind, attempt: u32) -> TaskEvent {
        let events = self.events.entry(record.id).or_default();
        if events.is_empty() {
            events.push(record.queued_event());
        }
        let event = TaskEvent {
            seq: events.len() as u64 + 1,
            ts: crate::now(),
            attempt,
            kind,
            ..record.queued_event()
        };
        events.push(event.clone());
        event
    }
}

#[derive(Default)]
struct Memory(Mutex<Books>);

impl Memory {
    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        self.0.lock().expect("no test panics holding the books")
    }

    /// Runs `write` as another process between the next read and compare-and-set.
    fn interleave(&self, write: impl FnOnce(&mut Books) + Send + 'static) {
        self.books().interference.push(Box::new(write));
    }

    fn record(&self, id: &TaskId) -> Option<TaskStatus> {
        self.books().records.get(id).map(|(s, _)| s.clone())
    }

    fn event_kinds(&self, id: &TaskId) -> Vec<&'static str> {
        self.books()
            .events
            .get(id)
            .map(|events| events.iter().map(|e| e.kind.name()).collect())
            .unwrap_or_default()
    }

    /// A worker of attempt `attempt` claimed `task` and stored `end` in its events, and then
    /// was lost before its record.
    fn worker_ended_in_events_only(&self, task: &TaskStatus, attempt: u32, end: EventKind) {
        let mut books = self.books();
        books.write(task.clone());
        worker_claims(&mut books, &task.id, attempt);
        let running = books.records[&task.id].0.clone();
        books.append(&running, end, attempt);
    }

    /// Compare-and-set of a record read at `read_revision`: false when another write came first.
    fn compare_and_set(&self, read_revision: u64, new: TaskStatus) -> bool {
        let mut books = self.books();
        if let Some(write) = books.interference.pop() {
            write(&mut books);
        }
        let current = books.records.get(&new.id).map_or(0, |(_, r)| *r);
        if current != read_revision {
            return false;
        }
        books.write(new);
        true
    }
}

impl Ledger for Memory {
    type Error = std::convert::Infallible;

    fn last_event(
        &self,
        id: &TaskId,
    ) -> impl Future<Output = Result<Option<TaskEvent>, Self::Error>> + Send {
        let last = self.books().events.get(id).and_then(|e| e.last().cloned());
        std::future::ready(Ok(last))
    }

    fn update<T: Send>(
        &self,
        id: &TaskId,
        mut change: impl FnMut(&mut TaskStatus) -> Update<T> + Send,
    ) -> impl Future<Output = Result<Option<(TaskStatus, T)>, Self::Error>> + Send {
        let result = loop {
            let Some((mut status, revision)) = self.books().records.get(id).cloned() else {
                break None;
            };
            match change(&mut status) {
                Update::Keep(out) => break Some((status, out)),
                Update::Write(out) => {
                    if self.compare_and_set(revision, status.clone()) {
                        break Some((status, out));
                    }
                }
            }
        };
        std::future::ready(Ok(result))
    }

    fn update_or_create<T: Send>(
        &self,
        base: &TaskStatus,
        mut change: impl FnMut(&mut TaskStatus) -> Update<T> + Send,
    ) -> impl Future<Output = Result<(TaskStatus, T), Self::Error>> + Send {
        let result = loop {
            let (mut status, revision) = self
                .books()
                .records
                .get(&base.id)
                .cloned()
                .unwrap_or_else(|| (base.clone(), 0));
            match change(&mut status) {
                Update::Keep(out) => break (status, out),
                Update::Write(out) => {
                    if self.compare_and_set(revision, status.clone()) {
                        break (status, out);
                    }
                }
            }
        };
        std::future::ready(Ok(result))
    }

    fn append_end(
        &self,
        record: &TaskStatus,
        end: EventKind,
    ) -> impl Future<Output = Result<Option<TaskEvent>, Self::Error>> + Send {
        let mut books = self.books();
        let ended = books
            .events
            .get(&record.id)
            .and_then(|e| e.last())
            .is_some_and(|e| e.kind.is_terminal());
        let written = (!ended).then(|| books.append(record, end, 0));
        std::future::ready(Ok(written))
    }
}

fn queued_task() -> TaskStatus {
    let id = TaskId::new();
    let spec = TaskSpec {
        v: crate::SCHEMA_VERSION,
        id,
        agent: AgentName::parse("doc-writer").expect("a valid name"),
        repo: None,
        prompt: "p".into(),
        branch: None,
        push_branch: BranchName::for_task(&id),
        model: None,
        metadata: serde_json::Map::new(),
        created_at: crate::now(),
        history: Vec::new(),
        replay_of: None,
        pull_request: None,
        origin: None,
        submitted_by: None,
    };
    TaskStatus::queued(&spec, 1)
}

/// Runs a future the in-memory ledger makes (always ready) without a runtime.
fn now<F: Future>(f: F) -> F::Output {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => panic!("the in-memory ledger never waits"),
    }
}

fn ok<T>(r: Result<T, std::convert::Infallible>) -> T {
    match r {
        Ok(t) => t,
    }
}

/// A worker's claim and end as the worker writes them: the record, then the event.
fn worker_claims(books: &mut Books, id: &TaskId, attempt: u32) {
    let (mut s, _) = books.records.get(id).cloned().expect("a record");
    assert!(matches!(
        claim(&mut s, attempt, "w1"),
        Update::Write(Claim::Claimed)
    ));
    books.write(s);
}

fn completed(summary: &str) -> EventKind {
    EventKind::Completed {
        summary: summary.into(),
        commit: Some("0123abcd".into()),
        branch: None,
        usage: None,
        pull_request: None,
    }
}

#[test]
fn a_queued_task_canceled_six_times_ends_once_in_record_and_events() {
    let ledger = Memory::default();
    let task = queued_task();
    let mut decided = 0;
    for _ in 0..6 {
        let ended = ok(now(end_task(&ledger, &task, BridgeEnd::Cancel)));
        assert_eq!(ended.status.status, TaskState::Canceled);
        decided += usize::from(ended.decided);
    }
    assert_eq!(decided, 1);
    assert_eq!(ledger.event_kinds(&task.id), ["queued", "canceled"]);
    let record = ledger
        .record(&task.id)
        .expect("the cancel created the record");
    assert!(record.cancel_requested);
    // The worker JetStream delivers it to anyway finds it ended.
    let mut s = record;
    assert!(matches!(
        claim(&mut s, 1, "w1"),
        Update::Keep(Claim::Ended(TaskState::Canceled))
    ));
}

#[test]
fn a_cancel_that_loses_its_race_to_a_claim_flags_the_running_task_and_ends_nothing() {
    let ledger = Memory::default();
    let task = queued_task();
    ledger.books().write(task.clone());
    let id = task.id;
    ledger.interleave(move |books| worker_claims(books, &id, 1));
    let ended = ok(now(end_task(&ledger, &task, BridgeEnd::Cancel)));
    assert!(ended.decided);
    assert_eq!(ended.status.status, TaskState::Running);
    assert!(ended.status.cancel_requested);
    assert_eq!(ledger.event_kinds(&id), Vec::<&str>::new());
    // A second cancel changes nothing more.
    assert!(!ok(now(end_task(&ledger, &task, BridgeEnd::Cancel))).decided);
}

#[test]
fn a_cancel_after_the_worker_stored_its_end_in_the_events_finds_that_end() {
    let ledger = Memory::default();
    let task = queued_task();
    ledger.worker_ended_in_events_only(&task, 1, completed("Wrote the docs"));
    let ended = ok(now(end_task(&ledger, &task, BridgeEnd::Cancel)));
    assert!(!ended.decided);
    assert_eq!(ended.status.status, TaskState::Completed);
    assert_eq!(ended.status.summary.as_deref(), Some("Wrote the docs"));
    assert_eq!(ledger.event_kinds(&task.id), ["queued", "completed"]);
}

#[test]
fn a_queue_deadline_fails_only_a_task_no_worker_has_taken() {
    let ledger = Memory::default();
    let waiting = queued_task();
    let deadline = || BridgeEnd::QueueDeadline {
        reason: "not started within 60s".into(),
    };
    let ended = ok(now(end_task(&ledger, &waiting, deadline())));
    assert!(ended.decided);
    assert_eq!(
        ended.status.error.as_deref(),
        Some("not started within 60s")
    );
    assert_eq!(ledger.event_kinds(&waiting.id), ["queued", "failed"]);

    // Handed back after a SIGTERM: queued again, but a worker has had it.
    let handed_back = queued_task();
    {
        let mut books = ledger.books();
        books.write(handed_back.clone());
        worker_claims(&mut books, &handed_back.id, 1);
        let (mut s, _) = books.records[&handed_back.id].clone();
        let end = AttemptEnd::HandedBack {
            reason: "interrupted".into(),
            checkpoint: None,
        };
        assert!(matches!(
            record_attempt_end(&mut s, 1, &end, None),
            Update::Write(true)
        ));
        books.write(s);
    }
    let ended = ok(now(end_task(&ledger, &handed_back, deadline())));
    assert!(!ended.decided);
    assert_eq!(ended.status.status, TaskState::Queued);
}

#[test]
fn a_give_up_records_the_end_a_lost_worker_left_in_the_events_rather_than_a_failure() {
    let ledger = Memory::default();
    let task = queued_task();
    ledger.worker_ended_in_events_only(&task, 5, completed("done before the crash"));
    let give_up = BridgeEnd::GiveUp {
        reason: "gave up after 5 deliveries".into(),
    };
    let ended = ok(now(end_task(&ledger, &task, give_up)));
    assert!(!ended.decided, "not counted as abandoned");
    assert_eq!(ended.status.status, TaskState::Completed);
    assert_eq!(ledger.event_kinds(&task.id), ["queued", "completed"]);
}

#[test]
fn a_worker_end_that_reaches_the_events_during_a_give_up_wins_over_it() {
    let ledger = Memory::default();
    let task = queued_task();
    ledger.books().write(task.clone());
    let id = task.id;
    // A worker frozen past its last delivery comes back and stores `completed` between the
    // give-up's read of the events and its compare-and-set; then it dies before its record.
    ledger.interleave(move |books| {
        let record = books.records[&id].0.clone();
        books.append(&record, completed("late but done"), 5);
    });
    let give_up = BridgeEnd::GiveUp {
        reason: "gave up after 5 deliveries".into(),
    };
    let ended = ok(now(end_task(&ledger, &task, give_up)));
    assert_eq!(ledger.event_kinds(&id), ["queued", "completed"]);
    assert_eq!(ended.status.status, TaskState::Completed);
    assert_eq!(
        ledger.record(&id).map(|s| s.status),
        Some(TaskState::Completed),
        "the record says what the events say"
    );
    assert!(!ended.decided);
}

#[test]
fn an_end_decided_in_the_record_whose_event_was_lost_is_written_once_by_whoever_finds_it() {
    let ledger = Memory::default();
    let mut record = queued_task();
    // A bridge failed the task in the record and died before the event.
    record.status = TaskState::Failed;
    record.error = Some("not started within 60s".into());
    ledger.books().write(record.clone());
    // Two readers (a client opening the stream, the outcomes watch) find it.
    let first = ok(now(close_events(&ledger, &record))).expect("an end");
    let second = ok(now(close_events(&ledger, &record))).expect("an end");
    assert_eq!(first, second);
    assert_eq!(ledger.event_kinds(&record.id), ["queued", "failed"]);
    assert!(matches!(
        &first.kind,
        EventKind::Failed { reason, retryable: false } if reason == "not started within 60s"
    ));
}

#[test]
fn an_earlier_attempt_writes_nothing_once_a_later_one_has_claimed() {
    let mut s = queued_task();
    assert!(matches!(
        claim(&mut s, 1, "w1"),
        Update::Write(Claim::Claimed)
    ));
    assert!(matches!(
        claim(&mut s, 2, "w2"),
        Update::Write(Claim::Claimed)
    ));
    assert!(matches!(
        claim(&mut s, 1, "w1"),
        Update::Keep(Claim::Superseded)
    ));
    let usage = Usage {
        model_calls: 3,
        ..Usage::default()
    };
    let end = AttemptEnd::Completed {
        commit: Some("abc".into()),
        summary: "stale".into(),
        links: ForgeLinks::default(),
    };
    let before = s.clone();
    assert!(matches!(
        record_attempt_end(&mut s, 1, &end, Some(&usage)),
        Update::Keep(false)
    ));
    assert_eq!(s, before);
    assert!(matches!(
        record_attempt_end(&mut s, 2, &end, Some(&usage)),
        Update::Write(true)
    ));
    assert_eq!(s.status, TaskState::Completed);
    assert_eq!(s.usage.map(|u| u.model_calls), Some(3));
}

#[test]
fn a_cancel_requested_before_the_claim_stops_the_worker_before_it_starts() {
    let ledger = Memory::default();
    let task = queued_task();
    ledger.books().write(task.clone());
    ledger.interleave({
        let id = task.id;
        move |books| worker_claims(books, &id, 1)
    });
    ok(now(end_task(&ledger, &task, BridgeEnd::Cancel)));
    // A second delivery (the first worker died) sees the flag, not a task to run.
    let mut s = ledger.record(&task.id).expect("a record");
    s.status = TaskState::Queued;
    assert!(matches!(
        claim(&mut s, 2, "w2"),
        Update::Keep(Claim::CancelRequested)
    ));
}

#[test]
fn an_ended_record_and_its_end_event_say_the_same() {
    let queued = queued_task();
    assert!(end_event(&queued).is_none());
    for (state, error, summary) in [
        (TaskState::Completed, None, Some("Wrote the docs")),
        (TaskState::Failed, Some("not started within 60s"), None),
        (TaskState::Canceled, None, None),
    ] {
        let mut ended = queued.clone();
        ended.status = state;
        ended.error = error.map(str::to_owned);
        ended.summary = summary.map(str::to_owned);
        ended.commit = summary.map(|_| "0123abcd".to_owned());
        let kind = end_event(&ended).expect("an end");
        assert!(kind.is_terminal(), "{kind:?}");
        let mut event = queued.queued_event();
        event.kind = kind;
        let mut recorded = queued.clone();
        assert!(record_end(&mut recorded, &event));
        // A record that ended keeps its end.
        assert!(!record_end(&mut recorded.clone(), &event));
        assert_eq!(
            (
                recorded.status,
                recorded.error,
                recorded.summary,
                recorded.commit
            ),
            (ended.status, ended.error, ended.summary, ended.commit)
        );
    }
}
