//! Task outcome metrics, from the status records as workers write them: a task's first claim
//! (queue time) and its end (outcome and duration). Watched, not polled: every status write
//! arrives once. Each bridge replica counts what it sees; scrape one, or take the max.
//!
//! The same watch completes ends the bridge decided in a record whose event was never written
//! (the bridge that decided it died between the two writes): every stream open on any
//! replica then ends without waiting for a new reader to find it.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::StreamExt;
use openclaw_common::status::{TaskState, TaskStatus};
use openclaw_common::store::StoreError;

use crate::state::AppState;

/// How long after an ended record its end event is looked for: the bridge that decided the end
/// writes it within milliseconds, so the others only step in when it did not.
const END_EVENT_GRACE: Duration = Duration::from_secs(5);

/// Most task ids remembered to count each start and end once; cleared beyond (a record seen
/// again after that is not counted twice unless it changes state again).
const REMEMBERED: usize = 100_000;

/// Follows `first` (subscribed before the stores were handed to the handlers, so that no task
/// ends unseen) until shutdown, feeding the task metrics; re-subscribes after NATS trouble.
pub async fn watch(
    state: AppState,
    first: impl futures_util::Stream<Item = Result<TaskStatus, StoreError>> + Send + 'static,
) {
    let mut started: HashSet<openclaw_common::ids::TaskId> = HashSet::new();
    let mut ended: HashSet<openclaw_common::ids::TaskId> = HashSet::new();
    let mut first = Some(first.boxed());
    loop {
        let changes = match first.take() {
            Some(changes) => Some(changes),
            None => match state.stores.get() {
                Some(stores) => stores.status.changes().await.ok().map(StreamExt::boxed),
                None => None,
            },
        };
        if let Some(changes) = changes {
            let mut changes = changes;
            loop {
                let next = tokio::select! {
                    () = state.shutdown.cancelled() => return,
                    next = changes.next() => next,
                };
                let Some(Ok(status)) = next else { break };
                let seconds = (status.updated_at - status.created_at)
                    .as_seconds_f64()
                    .max(0.0);
                if status.status == TaskState::Running && started.insert(status.id) {
                    state.metrics.task_started(status.agent.as_str(), seconds);
                }
                if status.status.is_terminal() && ended.insert(status.id) {
                    state.metrics.task_finished(
                        status.agent.as_str(),
                        status.status.as_str(),
                        seconds,
                    );
                    let user = status.submitted_by.as_ref().map(|b| b.who());
                    state
                        .metrics
                        .task_finished_for(user, status.status.as_str());
                    if let Some(usage) = &status.usage {
                        state.metrics.task_usage(status.agent.as_str(), user, usage);
                    }
                    tokio::spawn(write_end_event_later(state.clone(), status.clone()));
                    if status.origin.is_some() {
                        tokio::spawn(crate::webhooks::answer::answer_end(
                            state.clone(),
                            status.clone(),
                        ));
                    }
                }
                if started.len() > REMEMBERED || ended.len() > REMEMBERED {
                    started.clear();
                    ended.clear();
                }
            }
        }
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// After [`END_EVENT_GRACE`], writes the end `record` holds to the task's events if they have
/// not ended (a no-op read for ends that came from the events, as every worker's does).
async fn write_end_event_later(state: AppState, record: TaskStatus) {
    tokio::select! {
        () = state.shutdown.cancelled() => return,
        () = tokio::time::sleep(END_EVENT_GRACE) => {}
    }
    let Some(stores) = state.stores.get() else {
        return;
    };
    if let Err(e) = openclaw_common::lifecycle::close_events(stores, &record).await {
        // The first reader of the task's events writes it then.
        tracing::warn!(task_id = %record.id, error = %e, "cannot write a recorded end to the events");
    }
}
