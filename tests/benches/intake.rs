//! Intake is the hot path. This measures `POST /v1/tasks` through the bridge (HTTP, JSON
//! validation, the task publish, then its status record and `queued` event) against the floor
//! it cannot beat: one raw JetStream publish of the same task, acknowledged. Both run in this
//! process against the same real nats-server, sequentially and with 16 requests in flight.
//!
//! Output: per-request mean and p99, throughput, and the ratio bridge / raw.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use openclaw_common::ids::{AgentName, BranchName, RepoUrl, TaskId};
use openclaw_common::task::TaskSpec;
use openclaw_tests::app::TestApp;
use serde_json::json;

const REQUESTS: usize = 2000;
const IN_FLIGHT: usize = 16;

struct Run {
    total: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn mean(&self) -> Duration {
        self.latencies.iter().sum::<Duration>() / self.latencies.len() as u32
    }
    fn p99(&mut self) -> Duration {
        self.latencies.sort();
        self.latencies[self.latencies.len() * 99 / 100]
    }
    fn per_sec(&self) -> f64 {
        self.latencies.len() as f64 / self.total.as_secs_f64()
    }
}

async fn measure<F, Fut>(concurrency: usize, op: F) -> Run
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    let latencies: Vec<Duration> = futures_util::stream::iter(0..REQUESTS)
        .map(|i| {
            let fut = op(i);
            async move {
                let t = Instant::now();
                fut.await;
                t.elapsed()
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    Run {
        total: started.elapsed(),
        latencies,
    }
}

fn spec() -> TaskSpec {
    let id = TaskId::new();
    TaskSpec {
        v: 1,
        id,
        agent: AgentName::parse("doc-writer").unwrap(),
        repo: Some(
            RepoUrl::parse("https://example.com/org/repo.git", &Default::default()).unwrap(),
        ),
        prompt: "Document the public API of the storage module".into(),
        branch: None,
        push_branch: BranchName::for_task(&id),
        model: None,
        metadata: Default::default(),
        created_at: openclaw_common::now(),
        history: Vec::new(),
        replay_of: None,
    }
}

#[tokio::main]
async fn main() {
    let app = TestApp::spawn().await;
    let js = app.js().clone();
    let body = json!({"repo": "https://example.com/org/repo.git",
                      "prompt": "Document the public API of the storage module"});
    let url = format!("{}/v1/tasks", app.base);
    let http = reqwest::Client::new();

    // Warm both paths (connections, stream caches) before measuring.
    for _ in 0..50 {
        app.submit(&body).await;
    }

    println!("intake: {REQUESTS} requests each, nats-server on loopback, release build\n");
    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>8}",
        "", "mean", "p99", "req/s", "ratio"
    );
    for concurrency in [1, IN_FLIGHT] {
        let mut raw = measure(concurrency, |_| {
            let js = js.clone();
            async move {
                let spec = spec();
                let msg = async_nats::jetstream::message::PublishMessage::build()
                    .payload(spec.to_json())
                    .message_id(spec.id.to_string());
                js.send_publish("openclaw.tasks.doc-writer", msg)
                    .await
                    .unwrap()
                    .await
                    .unwrap();
            }
        })
        .await;
        let mut bridge = measure(concurrency, |_| {
            let req = http.post(&url).json(&body);
            async move {
                let r = req.send().await.unwrap();
                assert_eq!(r.status(), 202);
            }
        })
        .await;
        let ratio = bridge.mean().as_secs_f64() / raw.mean().as_secs_f64();
        for (name, run, r) in [
            ("raw JetStream publish", &mut raw, None),
            ("POST /v1/tasks (bridge)", &mut bridge, Some(ratio)),
        ] {
            let p99 = run.p99();
            println!(
                "{:<28} {:>8.0}µs {:>8.0}µs {:>10.0} {:>8}",
                format!("{name}, {concurrency} in flight"),
                run.mean().as_secs_f64() * 1e6,
                p99.as_secs_f64() * 1e6,
                run.per_sec(),
                r.map_or("1.00".to_owned(), |r| format!("{r:.2}")),
            );
        }
    }
}
