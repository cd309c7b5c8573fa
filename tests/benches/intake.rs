//! Intake is the hot path. This measures `POST /v1/tasks` through the bridge (HTTP, JSON
//! validation, the one task publish) against the floor it cannot beat: one raw JetStream
//! publish of the same task, acknowledged. Both run in this process against the same real
//! nats-server, with 1, 16 and 64 requests in flight, in alternating rounds (so a slow moment
//! of the machine falls on both); then submits paced at 1,000/s.
//!
//! Requests are sent the way wrk sends them: kept-alive HTTP/1 connections, one request at a
//! time on each, the request's bytes built once and the response read straight off the
//! socket. The load generator shares the machine with the bridge and nats-server, so a heavy
//! client would understate the bridge; a raw publish needs no generator beyond its own client.
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

use futures_util::StreamExt;
use openclaw_common::task::TaskSpec;
use openclaw_tests::app::TestApp;
use openclaw_tests::nats::NatsServer;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

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

/// One kept-alive HTTP/1 connection of the load generator.
struct Connection {
    stream: TcpStream,
    /// The response being read; reused, so a request allocates nothing.
    buf: Vec<u8>,
}

impl Connection {
    async fn open(addr: &str) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Connection {
            stream,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Writes `request` and reads its whole response (head, then `Content-Length` bytes of
    /// body); returns the status code. One request at a time, so nothing follows the body.
    async fn exchange(&mut self, request: &[u8]) -> u16 {
        self.stream.write_all(request).await.unwrap();
        self.buf.clear();
        let (head_len, body_len) = loop {
            assert!(
                self.stream.read_buf(&mut self.buf).await.unwrap() > 0,
                "the bridge closed a kept-alive connection"
            );
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..end]).unwrap();
                let length = head
                    .lines()
                    .filter_map(|line| line.split_once(':'))
                    .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                    .map(|(_, value)| value.trim().parse::<usize>().unwrap())
                    .expect("a response with Content-Length");
                break (end + 4, length);
            }
        };
        while self.buf.len() < head_len + body_len {
            assert!(self.stream.read_buf(&mut self.buf).await.unwrap() > 0);
        }
        assert_eq!(
            self.buf.len(),
            head_len + body_len,
            "bytes after the response"
        );
        // "HTTP/1.1 202 Accepted"
        std::str::from_utf8(&self.buf[9..12])
            .unwrap()
            .parse()
            .unwrap()
    }
}

/// One request, sent over and over on a fixed set of kept-alive connections, the way wrk
/// drives a server: the request's bytes built once, one write per request, the response read
/// straight off the socket. The generator shares the two cores with the bridge and
/// nats-server, so it is kept as lean as wrk rather than a full HTTP client.
struct HttpLoad {
    /// Idle connections. A request holds a permit of `slots` while it uses one, so there is
    /// always one to take.
    idle: std::sync::Mutex<Vec<Connection>>,
    slots: Semaphore,
    /// `POST /v1/tasks` (expecting 202), or `GET /health` (expecting 200): the bridge's HTTP
    /// alone, with no NATS behind it.
    request: Vec<u8>,
    expected: u16,
}

impl HttpLoad {
    async fn connect(app: &TestApp, connections: usize, body: Option<&serde_json::Value>) -> Self {
        let addr = app.base.trim_start_matches("http://");
        let mut idle = Vec::with_capacity(connections);
        for _ in 0..connections {
            idle.push(Connection::open(addr).await);
        }
        let (request, expected) = match body {
            Some(body) => {
                let body = serde_json::to_vec(body).unwrap();
                let mut request = format!(
                    "POST /v1/tasks HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {}\r\n\
                     content-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    app.token.as_deref().unwrap(),
                    body.len()
                )
                .into_bytes();
                request.extend_from_slice(&body);
                (request, 202)
            }
            None => (
                format!("GET /health HTTP/1.1\r\nhost: {addr}\r\n\r\n").into_bytes(),
                200,
            ),
        };
        HttpLoad {
            idle: std::sync::Mutex::new(idle),
            slots: Semaphore::new(connections),
            request,
            expected,
        }
    }

    /// One request; panics unless it gets the expected status.
    async fn send(&self) {
        let _slot = self.slots.acquire().await.unwrap();
        let mut connection = self.idle.lock().unwrap().pop().unwrap();
        assert_eq!(connection.exchange(&self.request).await, self.expected);
        self.idle.lock().unwrap().push(connection);
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
                // The message a submit stores, headers and all.
                let spec = spec();
                let (subject, msg) =
                    openclaw_common::store::task_message(&spec, &spec.id.to_string(), None, None);
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
