//! Tasks JetStream gave up on. A worker that dies on a task's last allowed delivery cannot
//! report anything; JetStream then publishes a max-deliveries advisory, and the bridge marks
//! the task failed so that its status and event stream end instead of staying `running`.
//!
//! Advisories are core NATS messages, published whether anyone listens or not: the
//! `OPENCLAW_ADVISORIES` stream keeps them (`nats/advisories.json`), and the bridges take
//! them from one durable consumer. So an advisory published while no bridge was connected is
//! handled by the next one to start, each advisory by one bridge of many, and one is acked
//! only once its task's record and events say how it ended.

use std::time::Duration;

use openclaw_common::backoff::Backoff;
use openclaw_common::lifecycle::{self, BridgeEnd};
use openclaw_common::status::TaskStatus;
use openclaw_common::store::{Settle, StoreError, Stores};
use serde::Deserialize;

use crate::state::AppState;

/// The fields of `io.nats.jetstream.advisory.v1.max_deliver` we use.
#[derive(Debug, Deserialize)]
struct MaxDeliveries {
    stream_seq: u64,
    deliveries: u64,
}

/// How long an advisory whose task could not be updated (NATS unavailable) waits before it is
/// delivered again.
const RETRY_ADVISORY: Duration = Duration::from_secs(5);

/// Takes stored max-deliveries advisories until shutdown. Waits for the bridge's JetStream
/// setup (which creates the stream and consumer); reconnects with backoff when the consumer
/// cannot be read.
pub async fn watch(state: AppState) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
    loop {
        let wait = match state.stores.get() {
            // Not set up yet: the setup loop reports its own failures.
            None => Duration::from_millis(100),
            Some(stores) => {
                let taken = tokio::select! {
                    () = state.shutdown.cancelled() => return,
                    taken = take_advisories(&state, stores) => taken,
                };
                match taken {
                    Ok(()) => {
                        backoff.succeeded();
                        Duration::from_millis(100)
                    }
                    Err(e) => {
                        let wait = backoff.failed();
                        tracing::warn!(error = %e, retry_in = ?wait, "cannot read max-deliveries advisories");
                        wait
                    }
                }
            }
        };
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Handles advisories from the bridges' consumer until its message stream ends or fails.
async fn take_advisories(state: &AppState, stores: &Stores) -> Result<(), StoreError> {
    let mut advisories = stores.advisories().await?;
    while let Some(advisory) = advisories.next().await {
        let advisory = advisory?;
        let settle = match serde_json::from_slice::<MaxDeliveries>(advisory.payload()) {
            Err(e) => {
                tracing::warn!(error = %e, "unreadable max-deliveries advisory; dropping it");
                Settle::Term
            }
            Ok(max) => match give_up(state, stores, &max).await {
                Ok(()) => Settle::Ack,
                Err(e) => {
                    tracing::warn!(error = %e, seq = max.stream_seq, retry_in = ?RETRY_ADVISORY, "cannot mark an abandoned task failed");
                    Settle::Nak(RETRY_ADVISORY)
                }
            },
        };
        // A lost ack delivers the advisory again after ack_wait: giving up is idempotent.
        if let Err(e) = advisory.settle(settle).await {
            tracing::debug!(error = %e, "cannot settle a max-deliveries advisory");
        }
    }
    Ok(())
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
    // A worker that died before writing anything left no record: `end_task` creates it. One
    // that stored its end in the events and died before its record ended the task all the
    // same: that end is recorded, not a failure.
    let base = TaskStatus::queued(&spec, advisory.stream_seq);
    let give_up = BridgeEnd::GiveUp { reason };
    if lifecycle::end_task(stores, &base, give_up).await?.decided {
        state.metrics.abandoned(spec.agent.as_str());
    }
    Ok(())
}
