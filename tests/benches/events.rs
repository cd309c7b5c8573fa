//! The event path: a worker appends events (each claiming the next per-task sequence with
//! `Nats-Expected-Last-Subject-Sequence`), the bridge relays them as SSE. Measured against the
//! floor of each: plain JetStream publishes of the same payloads, and reading the task's
//! subject straight from the stream. Same process, same real nats-server.
#![allow(clippy::unwrap_used)]

// The bridge binary's allocator (bridge/src/main.rs): the bridge runs in this process.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use openclaw_common::event::{EventKind, TaskEvent};
use openclaw_common::names;
use openclaw_tests::app::TestApp;
use openclaw_tests::sse::SseReader;
use serde_json::json;

const EVENTS: usize = 5000;

fn delta(i: usize) -> EventKind {
    EventKind::Message {
        delta: format!("token {i} of the model's answer "),
    }
}

fn line(name: &str, took: Duration, baseline: Duration) {
    println!(
        "{name:<44} {:>9.1} ms {:>10.0} ev/s {:>7.2}",
        took.as_secs_f64() * 1e3,
        EVENTS as f64 / took.as_secs_f64(),
        took.as_secs_f64() / baseline.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let app = TestApp::spawn().await;
    let body = json!({"repo": "https://example.com/o/r.git", "prompt": "p"});
    let js = app.js().clone();
    println!("events: {EVENTS} message events, nats-server on loopback, release build\n");
    println!(
        "{:<44} {:>12} {:>13} {:>7}",
        "", "total", "throughput", "ratio"
    );

    // Appending: plain publishes (awaiting each ack) vs EventWriter.
    let raw_task = app.submit(&body).await;
    let subject = names::event_subject(&raw_task);
    let started = Instant::now();
    for i in 0..EVENTS {
        let ev = TaskEvent {
            v: 1,
            task_id: raw_task,
            seq: i as u64 + 2,
            ts: openclaw_common::now(),
            attempt: 1,
            kind: delta(i),
        };
        js.publish(subject.clone(), serde_json::to_vec(&ev).unwrap().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let raw_append = started.elapsed();
    let task = app.submit(&body).await;
    let mut writer = app.stores().events.writer(app.queued_event(&task).await, 1);
    let started = Instant::now();
    for i in 0..EVENTS {
        writer.publish(delta(i)).await.unwrap();
    }
    let append = started.elapsed();
    writer
        .publish(openclaw_tests::completed_event("done"))
        .await
        .unwrap();
    line(
        "raw JetStream publish, awaiting each ack",
        raw_append,
        raw_append,
    );
    line(
        "EventWriter::publish (per-task sequence)",
        append,
        raw_append,
    );

    // Reading: straight from the stream vs SSE through the bridge (history, then the end).
    let started = Instant::now();
    let mut direct = Box::pin(app.stores().events.follow(&task).await.unwrap());
    let mut n = 0;
    while let Some(ev) = direct.next().await {
        n += 1;
        if ev.unwrap().kind.is_terminal() {
            break;
        }
    }
    let read_direct = started.elapsed();
    assert_eq!(n, EVENTS + 2);
    let started = Instant::now();
    let r = app
        .http
        .get(format!("{}/v1/tasks/{task}/events", app.base))
        .send()
        .await
        .unwrap();
    let frames = SseReader::new(r).collect().await;
    let read_sse = started.elapsed();
    assert_eq!(frames.len(), EVENTS + 2);
    println!();
    line(
        "ordered consumer on the task's subject",
        read_direct,
        read_direct,
    );
    line(
        "GET /v1/tasks/{id}/events (SSE via bridge)",
        read_sse,
        read_direct,
    );
}
