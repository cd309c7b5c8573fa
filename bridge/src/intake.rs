//! The one way tasks enter and are canceled, shared by the task API, the OpenAI-compatible
//! front door and the original bridge's `/message`.

use openclaw_common::ids::TaskId;
use openclaw_common::lifecycle::{self, BridgeEnd};
use openclaw_common::status::{TaskState, TaskStatus};
use openclaw_common::store::Enqueued;
use openclaw_common::task::TaskSpec;

use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, Status, TraceId, Tracer as _};

use crate::error::ApiError;
use crate::state::AppState;

/// The submit observation, in the task's own trace (its UUID).
fn submit_span(
    tracer: &opentelemetry_sdk::trace::SdkTracer,
    spec: &TaskSpec,
) -> opentelemetry_sdk::trace::Span {
    let mut builder = tracer
        .span_builder(format!("submit {}", spec.agent))
        .with_attributes(vec![
            KeyValue::new("langfuse.observation.type", "span"),
            KeyValue::new("langfuse.trace.name", format!("openclaw {}", spec.agent)),
            KeyValue::new("langfuse.observation.input", spec.prompt.clone()),
            KeyValue::new("openclaw.task_id", spec.id.to_string()),
            KeyValue::new("openclaw.agent", spec.agent.to_string()),
        ]);
    builder.trace_id = Some(TraceId::from_bytes(spec.id.to_bytes()));
    tracer.build(builder)
}

/// Stores the task under `msg_id` (a duplicate id returns the original task) and wakes the
/// dispatcher. That one acknowledged write is the whole submit: until a worker (or a cancel)
/// writes something, the task's status and its `queued` event are read from its message.
/// First the owner's quotas: over a limit the submit is refused (429), or, over the in-flight
/// limit with `OPENCLAW_OVER_LIMIT=queue`, the task is parked until there is room.
pub async fn enqueue(state: &AppState, spec: TaskSpec, msg_id: &str) -> Result<Enqueued, ApiError> {
    // Quotas and budgets, before anything is stored: a refusal costs nothing.
    let reservation = match crate::quota::reserve(state, &spec).await {
        Ok(r) => r,
        Err(denied) if denied.queueable && state.config.over_limit_queue => {
            return park(state, spec, msg_id, &denied.error.to_string()).await;
        }
        Err(denied) => return Err(denied.error),
    };
    store(state, spec, msg_id, reservation).await
}

/// Publishes the task (its place reserved as `reservation`) and wakes the dispatcher.
pub(crate) async fn store(
    state: &AppState,
    spec: TaskSpec,
    msg_id: &str,
    reservation: Option<crate::quota::Reservation>,
) -> Result<Enqueued, ApiError> {
    let stores = state.stores()?;
    // The task's trace starts here (its id is the task's), and goes on in the worker.
    let mut span = state
        .tracer
        .as_ref()
        .map(|tracer| submit_span(tracer, &spec));
    let traceparent = span
        .as_ref()
        .map(|s| openclaw_common::otel::traceparent(s.span_context()));
    let ticket = state
        .config
        .callout
        .as_ref()
        .map(|_| crate::callout::new_ticket());
    let published = stores
        .tasks
        .publish(spec, msg_id, traceparent.as_deref(), ticket.as_deref())
        .await;
    // Not stored, or a duplicate of a task that holds its own place: give the place back.
    if let Some(reservation) = reservation
        && published.as_ref().map_or(true, |e| e.duplicate)
    {
        crate::quota::release(state, reservation).await;
    }
    if let Some(span) = span.as_mut() {
        match &published {
            Ok(e) => span.set_attribute(KeyValue::new("openclaw.duplicate", e.duplicate)),
            Err(e) => span.set_status(Status::error(e.to_string())),
        }
        span.end();
    }
    let enqueued = published?;
    if !enqueued.duplicate {
        state.dispatch_wakeup.notify_one();
    }
    state.touch();
    state
        .metrics
        .submitted(enqueued.spec.agent.as_str(), enqueued.duplicate);
    tracing::info!(task_id = %enqueued.spec.id, agent = %enqueued.spec.agent, duplicate = enqueued.duplicate, "task queued");
    Ok(enqueued)
}

/// Accepts `spec` without storing it in the tasks stream: its record says it waits, and why
/// (`reason`), a `waiting` event says it too, and [`release_parked`] stores it once its owner
/// has room.
pub async fn park(
    state: &AppState,
    spec: TaskSpec,
    msg_id: &str,
    reason: &str,
) -> Result<openclaw_common::store::Enqueued, ApiError> {
    let stores = state.stores()?;
    let reason = format!("waiting for room: {reason}");
    stores
        .parked
        .put(&openclaw_common::store::ParkedTask {
            spec: spec.clone(),
            msg_id: msg_id.to_owned(),
        })
        .await?;
    // Its record, with no stream message yet (`seq` none), is how reads find it meanwhile.
    let mut base = openclaw_common::status::TaskStatus::queued(&spec, 0);
    base.seq = None;
    base.waiting_reason = Some(reason.clone());
    let written = stores
        .status
        .update_or_create(&base, |_| openclaw_common::lifecycle::Update::Write(()))
        .await;
    if let Err(e) = written {
        let _ = stores.parked.remove(&spec.id).await;
        return Err(e.into());
    }
    stores
        .events
        .writer(base.queued_event(), 0)
        .publish(openclaw_common::event::EventKind::Waiting { reason })
        .await?;
    state.touch();
    tracing::info!(task_id = %spec.id, "task parked over its owner's in-flight limit");
    Ok(openclaw_common::store::Enqueued {
        spec,
        duplicate: false,
        seq: 0,
    })
}

/// How often parked tasks are looked at, and the lease that lets one bridge do it.
const PARKED_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
const PARKED_LEASE: &str = "parked-release";

/// Stores parked tasks, oldest first, as their owners get room (one bridge at a time, by a
/// lease); drops those canceled while they waited. Until shutdown.
pub async fn release_parked(state: AppState) {
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            () = tokio::time::sleep(PARKED_EVERY) => {}
        }
        if let Err(e) = release_once(&state).await {
            tracing::warn!(error = %e, "parked tasks: cannot look at them now");
        }
    }
}

async fn release_once(state: &AppState) -> Result<(), ApiError> {
    let stores = state.stores()?;
    let ttl = PARKED_EVERY * 5;
    if !stores
        .leases
        .acquire(PARKED_LEASE, &state.config.instance_id, ttl)
        .await?
    {
        return Ok(());
    }
    for parked in stores.parked.all().await? {
        let id = parked.spec.id;
        match stores.status_of(&id).await? {
            Some(s) if !s.status.is_terminal() => {}
            // Canceled while it waited (or its record is gone): never stored.
            _ => {
                stores.parked.remove(&id).await?;
                continue;
            }
        }
        let reservation = match crate::quota::reserve(state, &parked.spec).await {
            Ok(r) => r,
            Err(denied) => {
                // Still no room, or (a budget spent meanwhile) none today: it waits on, and
                // the tasks behind it are looked at all the same.
                if !denied.queueable {
                    tracing::info!(task_id = %id, reason = %denied.error, "parked task waits on");
                }
                continue;
            }
        };
        let enqueued = store(state, parked.spec.clone(), &parked.msg_id, reservation).await?;
        stores.parked.remove(&id).await?;
        // The record names its message now (a worker that claimed it meanwhile found no
        // message named, which means the same: this one).
        let seq = enqueued.seq;
        let base = openclaw_common::status::TaskStatus::queued(&parked.spec, seq);
        stores
            .status
            .update_or_create(&base, |s| {
                if s.seq.is_none() {
                    s.seq = Some(seq);
                }
                openclaw_common::lifecycle::Update::Write(())
            })
            .await?;
        tracing::info!(task_id = %id, "parked task stored: its owner has room");
    }
    Ok(())
}

/// A queued task is canceled at once (`canceled` event); a running one is flagged and its
/// worker stops at its next step. 404 for an unknown task, 409 for one that already ended.
pub async fn cancel(state: &AppState, id: &TaskId) -> Result<TaskStatus, ApiError> {
    let stores = state.stores()?;
    let Some(current) = stores.status_of(id).await? else {
        return Err(ApiError::NotFound(format!("no task {id}")));
    };
    let ended = lifecycle::end_task(stores, &current, BridgeEnd::Cancel).await?;
    // An end already in the events but not yet in the record counts too (`end_task` reads it).
    if ended.status.status.is_terminal() && ended.status.status != TaskState::Canceled {
        return Err(ApiError::Conflict(format!(
            "task {id} already ended as {}",
            ended.status.status.as_str()
        )));
    }
    Ok(ended.status)
}
