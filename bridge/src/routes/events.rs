//! `GET /v1/tasks/{id}/events`: the task's events as Server-Sent Events.

use std::convert::Infallible;

use axum::extract::{Extension, Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use openclaw_common::event::TaskEvent;

use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::routes::tasks::parse_task_id;
use crate::state::AppState;

#[derive(Debug, serde::Deserialize)]
pub struct EventsQuery {
    /// `false`: only the events stored so far, then the stream ends.
    follow: Option<bool>,
}

/// Every event so far, then live ones; ends after a terminal event (or at bridge shutdown).
/// Frames carry `id: <per-task seq>`, so `Last-Event-ID` resumes with no gap and no repeat.
/// With `?follow=false`, only the events stored so far.
pub async fn stream(
    State(state): State<AppState>,
    Extension(caller): Extension<crate::principals::Caller>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<EventsQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = parse_task_id(&id)?;
    let after = match headers.get("last-event-id") {
        None => 0,
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                ApiError::field(
                    "Last-Event-ID",
                    "Last-Event-ID must be an event sequence number",
                )
            })?,
    };
    let stores = state.stores()?;
    // The task itself (its `queued` event); where it is comes from its events below.
    // Another's task is not found: the answer says nothing of whether it exists.
    let Some(task) = stores
        .record_of(&id)
        .await?
        .filter(|t| caller.may_see(t.submitted_by.as_ref()))
    else {
        return Err(ApiError::NotFound(format!("no task {id}")));
    };
    // An end decided in the record whose event was never written (the bridge that decided it
    // died between the two) is written now: a reader must not wait for it forever.
    let stored = openclaw_common::lifecycle::close_events(stores, &task).await?;
    // Nothing written yet: the task's `queued` event is read from its message, the same event
    // (and seq 1) its first writer will store.
    let synthesized = stored.is_none().then(|| task.queued_event());
    let last = stored.or_else(|| synthesized.clone());
    // A task that already ended and whose events the client has all seen: end at once.
    let already_done = last
        .as_ref()
        .is_some_and(|last| last.kind.is_terminal() && last.seq <= after);
    // Without follow, stop at the event that is last now.
    let stop_after = match query.follow {
        Some(false) => Some(last.as_ref().map_or(0, |l| l.seq)),
        _ => None,
    };
    let already_done = already_done || stop_after.is_some_and(|s| s <= after);
    let first = synthesized
        .filter(|q| q.seq > after && !already_done)
        .map(|q| Ok(frame(&q)));
    // Stored events the client has (or was just sent, synthesized) are skipped.
    let after = if first.is_some() { 1 } else { after };
    let already_done = already_done || stop_after.is_some_and(|s| s <= after);
    let events = stores.events.follow(&id).await?;
    let shutdown = state.shutdown.clone();
    let gauge = crate::metrics::StreamGauge::open(&state.metrics);
    let frames = futures_util::stream::unfold(
        (Box::pin(events), already_done, gauge),
        move |(mut events, done, gauge)| async move {
            if done {
                return None;
            }
            loop {
                match events.next().await? {
                    Ok(ev) if ev.seq <= after => continue,
                    Ok(ev) => {
                        let end = ev.kind.is_terminal() || stop_after.is_some_and(|s| ev.seq >= s);
                        return Some((Ok(frame(&ev)), (events, end, gauge)));
                    }
                    Err(e) => {
                        tracing::warn!(task_id = %id, error = %e, "event stream broke off");
                        return None;
                    }
                }
            }
        },
    )
    .take_until(shutdown.cancelled_owned());
    let frames = futures_util::stream::iter(first).chain(frames);
    Ok(Sse::new(frames).keep_alive(KeepAlive::new().interval(state.config.sse_keep_alive)))
}

fn frame(ev: &TaskEvent) -> Event {
    let data = serde_json::to_string(ev).unwrap_or_else(|_| "{}".into());
    Event::default()
        .id(ev.seq.to_string())
        .event(ev.kind.name())
        .data(data)
}
