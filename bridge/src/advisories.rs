//! Tasks JetStream gave up on. A worker that dies on a task's last allowed delivery cannot
//! report anything; JetStream then publishes a max-deliveries advisory, and the bridge marks
//! the task failed so that its status and event stream end instead of staying `running`.
//!
//! Advisories are core NATS messages: while no bridge is connected they are missed, and such a
//! task keeps its last status (noted in ARCHITECTURE.md).

use futures_util::StreamExt;
use openclaw_common::event::EventKind;
use openclaw_common::jetstream::{StoreError, Stores, Update};
use openclaw_common::names;
use openclaw_common::status::{TaskState, TaskStatus};
use serde::Deserialize;

use crate::state::AppState;

/// The fields of `io.nats.jetstream.advisory.v1.max_deliver` we use.
#[derive(Debug, Deserialize)]
struct MaxDeliveries {
    stream_seq: u64,
    deliveries: u64,
}

/// Listens for max-deliveries advisories of the tasks stream until shutdown.
pub async fn watch(state: AppState) {
    let subject = format!(
        "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.>",
        names::TASKS_STREAM
    );
    let mut sub = match state.client.subscribe(subject).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot subscribe to max-deliveries advisories");
            return;
        }
    };
    loop {
        let msg = tokio::select! {
            () = state.shutdown.cancelled() => return,
            next = sub.next() => match next {
                Some(m) => m,
                None => return,
            },
        };
        let Ok(advisory) = serde_json::from_slice::<MaxDeliveries>(&msg.payload) else {
            tracing::warn!("unreadable max-deliveries advisory");
            continue;
        };
        let Some(stores) = state.stores.get() else {
            continue;
        };
        if let Err(e) = give_up(&state, stores, &advisory).await {
            tracing::warn!(error = %e, seq = advisory.stream_seq, "cannot mark an abandoned task failed");
        }
    }
}

async fn give_up(
    state: &AppState,
    stores: &Stores,
    advisory: &MaxDeliveries,
) -> Result<(), StoreError> {
    let spec = stores.tasks.get(advisory.stream_seq).await?;
    let reason = format!(
        "gave up after {} deliveries: the worker stopped without reporting",
        advisory.deliveries
    );
    // A worker that stored its end in the events and died before its record ended the task
    // all the same: record that end, not a failure.
    let ended = stores
        .events
        .last_event(&spec.id)
        .await?
        .filter(|e| e.kind.is_terminal());
    // A worker that died before writing anything left no record: create it.
    let base = TaskStatus::queued(&spec, advisory.stream_seq);
    let (status, changed) = stores
        .status
        .update_or_create(&base, |s| {
            if s.status.is_terminal() {
                return Update::Keep(false);
            }
            if let Some(end) = &ended {
                return if s.record_end(end) {
                    Update::Write(false)
                } else {
                    Update::Keep(false)
                };
            }
            s.status = TaskState::Failed;
            s.error = Some(reason.clone());
            Update::Write(true)
        })
        .await?;
    if changed {
        tracing::warn!(task_id = %spec.id, %reason, "task abandoned");
        state.metrics.abandoned(spec.agent.as_str());
    }
    // Also when the record was failed by an earlier try whose answer was lost; a no-op when
    // the events ended already (its worker's end).
    if status.status == TaskState::Failed {
        stores
            .events
            .writer(spec.queued_event(), 0)
            .publish_end(EventKind::Failed {
                reason: status.error.unwrap_or(reason),
                retryable: false,
            })
            .await?;
    }
    Ok(())
}
