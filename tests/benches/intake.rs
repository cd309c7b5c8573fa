//! Intake is the hot path. This measures `POST /v1/tasks` through the bridge (HTTP, JSON
//! validation, the one task publish) against the floor it cannot beat: one raw JetStream
//! publish of the same task, acknowledged. Both run in this process against the same real
//! nats-server, with 1, 16 and 64 requests in flight, in alternating rounds (so a slow moment
//! of the machine falls on both); then submits paced at 1,000/s.
//!
//! Requests are sent the way wrk sends them: kept-alive HTTP/1 connections, one request at a
//! time on each, the body serialized once. The load generator shares the machine with the
//! bridge and nats-server, so a heavy client would understate the bridge; a raw publish needs
//! no generator beyond its own client.
//!
//! `GET /health` on the same connections is the bridge's HTTP alone (no NATS): the ceiling of
//! any request on this machine, shown beside the submit.
//!
//! Output: per-request p50 and p99, throughput, and the throughput ratio to the raw publish.
#![allow(clippy::unwrap_used)]

// The bridge binary's allocator (bridge/src/main.rs): the bridge runs in this process.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use openclaw_common::task::TaskSpec;
use openclaw_tests::app::TestApp;
use openclaw_tests::nats::NatsServer;
use serde_json::json;
use tokio::sync::{Mutex, mpsc};

const REQUESTS: usize = 2000;
/// Rounds of (raw, bridge) per concurrency; the figures are over all rounds.
const ROUNDS: usize = 5;
/// The paced run: submits started at this rate, whatever the answers take.
const PACED_PER_SEC: u64 = 1000;

#[derive(Default)]
struct Run {
    total: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn extend(&mut self, other: Run) {
        self.total += other.total;
        self.latencies.extend(other.latencies);
    }
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

/// One request, sent over and over on a fixed set of kept-alive connections; a request takes
/// a free connection (waiting for one when all are busy) and gives it back when answered.
struct HttpLoad {
    free: Mutex<mpsc::Receiver<SendRequest<Full<Bytes>>>>,
    give_back: mpsc::Sender<SendRequest<Full<Bytes>>>,
    addr: String,
    token: String,
    /// `POST /v1/tasks` with this body (expecting 202), or `GET /health` when `None`
    /// (expecting 200): the bridge's HTTP alone, with no NATS behind it.
    body: Option<Bytes>,
}

impl HttpLoad {
    async fn connect(app: &TestApp, connections: usize, body: Option<&serde_json::Value>) -> Self {
        let addr = app.base.trim_start_matches("http://").to_owned();
        let (give_back, free) = mpsc::channel(connections);
        for _ in 0..connections {
            let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let (sender, connection) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(connection);
            give_back.send(sender).await.unwrap();
        }
        HttpLoad {
            free: Mutex::new(free),
            give_back,
            addr,
            token: format!("Bearer {}", app.token.as_deref().unwrap()),
            body: body.map(|b| Bytes::from(serde_json::to_vec(b).unwrap())),
        }
    }

    /// One request; panics unless it succeeds.
    async fn send(&self) {
        let mut sender = self.free.lock().await.recv().await.unwrap();
        // Ready once the connection has finished the previous exchange.
        sender.ready().await.unwrap();
        let (request, expected) = match &self.body {
            Some(body) => (
                hyper::Request::post("/v1/tasks")
                    .header("authorization", &self.token)
                    .header("content-type", "application/json")
                    .body(Full::new(body.clone())),
                202,
            ),
            None => (hyper::Request::get("/health").body(Full::default()), 200),
        };
        let mut request = request.unwrap();
        request
            .headers_mut()
            .insert("host", self.addr.parse().unwrap());
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), expected);
        response.into_body().collect().await.unwrap();
        self.give_back.send(sender).await.unwrap();
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
    println!(
        "intake: {ROUNDS} rounds of {REQUESTS} requests each, nats-server on loopback, release build"
    );
    // The server's default fsync (every two minutes) and the deployment's (every write before
    // its ack; deploy/nats/values.yaml).
    for (setting, nats) in [
        ("sync_interval: default (2 min)", NatsServer::start()),
        ("sync_interval: always", NatsServer::start_syncing_always()),
    ] {
        println!("\nnats-server {setting}");
        let app = TestApp::builder()
            .token("bench-token")
            .nats(nats)
            .spawn()
            .await;
        measure_all(&app).await;
    }
}

async fn measure_all(app: &TestApp) {
    let js = app.js().clone();
    let body = json!({"repo": "https://example.com/org/repo.git",
                      "prompt": "Document the public API of the storage module"});

    // Warm both paths (connections, stream caches) before measuring.
    for _ in 0..50 {
        app.submit(&body).await;
    }
    println!(
        "{:<40} {:>9} {:>9} {:>9} {:>8}",
        "", "p50", "p99", "req/s", "ratio"
    );
    for concurrency in [1, 16, 64] {
        let submitter = HttpLoad::connect(app, concurrency, Some(&body)).await;
        let health = HttpLoad::connect(app, concurrency, None).await;
        let raw_publish = |_| {
            let js = js.clone();
            async move {
                let spec = spec();
                let msg = async_nats::jetstream::message::PublishMessage::build()
                    .payload(spec.to_json())
                    .message_id(spec.id.to_string());
                let subject = openclaw_common::names::task_subject(&spec.agent, &spec.id);
                js.send_publish(subject, msg).await.unwrap().await.unwrap();
            }
        };
        let mut raw = Run::default();
        let mut bridge = Run::default();
        let mut http = Run::default();
        for _ in 0..ROUNDS {
            raw.extend(measure(concurrency, raw_publish).await);
            bridge.extend(measure(concurrency, |_| submitter.send()).await);
            http.extend(measure(concurrency, |_| health.send()).await);
        }
        // Throughputs as a share of the raw publish's.
        let (bridge_ratio, http_ratio) = (
            bridge.per_sec() / raw.per_sec(),
            http.per_sec() / raw.per_sec(),
        );
        for (name, run, r) in [
            ("raw JetStream publish", &mut raw, None),
            ("POST /v1/tasks", &mut bridge, Some(bridge_ratio)),
            ("GET /health (HTTP alone)", &mut http, Some(http_ratio)),
        ] {
            println!(
                "{:<40} {:>7.0}µs {:>7.0}µs {:>9.0} {:>8}",
                format!("{name}, {concurrency} in flight"),
                run.percentile(50).as_secs_f64() * 1e6,
                run.percentile(99).as_secs_f64() * 1e6,
                run.per_sec(),
                r.map_or("1.00".to_owned(), |r| format!("{r:.2}")),
            );
        }
    }

    // Open loop: a submit every millisecond for 3 s, each timed from its own start (which
    // includes any wait for a free connection).
    let submitter = std::sync::Arc::new(HttpLoad::connect(app, 64, Some(&body)).await);
    let started = Instant::now();
    let mut pending = Vec::new();
    let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 / PACED_PER_SEC));
    for _ in 0..3 * PACED_PER_SEC {
        ticks.tick().await;
        let submitter = submitter.clone();
        pending.push(tokio::spawn(async move {
            let t = Instant::now();
            submitter.send().await;
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
        "{:<40} {:>7.0}µs {:>7.0}µs {:>9.0} {:>8}",
        format!("POST /v1/tasks, paced {PACED_PER_SEC}/s"),
        paced.percentile(50).as_secs_f64() * 1e6,
        paced.percentile(99).as_secs_f64() * 1e6,
        paced.per_sec(),
        "",
    );
}
