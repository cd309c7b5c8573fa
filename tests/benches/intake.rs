//! Intake is the hot path. This measures `POST /v1/tasks` through the bridge (HTTP, JSON
//! validation, the one task publish) against the floor it cannot beat: one raw JetStream
//! publish of the same task, acknowledged. Both run in this process against the same real
//! nats-server, with 1, 16 and 64 requests in flight; then submits paced at 1,000/s.
//!
//! Output: per-request p50 and p99, throughput, and the throughput ratio bridge / raw.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use openclaw_common::task::TaskSpec;
use openclaw_tests::app::TestApp;
use serde_json::json;

const REQUESTS: usize = 2000;
/// The paced run: submits started at this rate, whatever the answers take.
const PACED_PER_SEC: u64 = 1000;

struct Run {
    total: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn percentile(&mut self, p: usize) -> Duration {
        self.latencies.sort();
        self.latencies[self.latencies.len() * p / 100]
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
    openclaw_tests::doc_writer_task(
        "https://example.com/org/repo.git",
        "Document the public API of the storage module",
    )
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
        "{:<34} {:>9} {:>9} {:>9} {:>8}",
        "", "p50", "p99", "req/s", "ratio"
    );
    for concurrency in [1, 16, 64] {
        let mut raw = measure(concurrency, |_| {
            let js = js.clone();
            async move {
                let spec = spec();
                let msg = async_nats::jetstream::message::PublishMessage::build()
                    .payload(spec.to_json())
                    .message_id(spec.id.to_string());
                let subject = openclaw_common::names::task_subject(&spec.agent, &spec.id);
                js.send_publish(subject, msg).await.unwrap().await.unwrap();
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
        // Throughput of the bridge as a share of the raw publish's.
        let ratio = bridge.per_sec() / raw.per_sec();
        for (name, run, r) in [
            ("raw JetStream publish", &mut raw, None),
            ("POST /v1/tasks", &mut bridge, Some(ratio)),
        ] {
            println!(
                "{:<34} {:>7.0}µs {:>7.0}µs {:>9.0} {:>8}",
                format!("{name}, {concurrency} in flight"),
                run.percentile(50).as_secs_f64() * 1e6,
                run.percentile(99).as_secs_f64() * 1e6,
                run.per_sec(),
                r.map_or("1.00".to_owned(), |r| format!("{r:.2}")),
            );
        }
    }

    // Open loop: a submit every millisecond for 3 s, each timed from its own start.
    let started = Instant::now();
    let mut pending = Vec::new();
    let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 / PACED_PER_SEC));
    for _ in 0..3 * PACED_PER_SEC {
        ticks.tick().await;
        let req = http.post(&url).json(&body);
        pending.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 202);
            t.elapsed()
        }));
    }
    let mut latencies = Vec::new();
    for p in pending {
        latencies.push(p.await.unwrap());
    }
    let mut paced = Run {
        total: started.elapsed(),
        latencies,
    };
    println!(
        "{:<34} {:>7.0}µs {:>7.0}µs {:>9.0} {:>8}",
        format!("POST /v1/tasks, paced {PACED_PER_SEC}/s"),
        paced.percentile(50).as_secs_f64() * 1e6,
        paced.percentile(99).as_secs_f64() * 1e6,
        paced.per_sec(),
        "",
    );
}
