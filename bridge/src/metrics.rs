//! Prometheus metrics of the bridge, in the text exposition format at `GET /metrics`.
//! Hand-rolled: a handful of counters and gauges do not need a metrics framework.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

/// A counter family: one value per label set.
#[derive(Default)]
struct Family(Mutex<BTreeMap<Vec<(&'static str, String)>, u64>>);

impl Family {
    fn inc(&self, labels: Vec<(&'static str, String)>) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(labels).or_default() += 1;
        }
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        if let Ok(m) = self.0.lock() {
            for (labels, value) in m.iter() {
                let labels: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| {
                        format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
                    })
                    .collect();
                let _ = writeln!(out, "{name}{{{}}} {value}", labels.join(","));
            }
        }
    }
}

/// Every metric of the bridge. Shared through `AppState`.
#[derive(Default)]
pub struct Metrics {
    /// HTTP requests by method, matched route and status.
    requests: Family,
    /// Tasks accepted, by agent and whether the submit was a duplicate.
    submitted: Family,
    /// Worker processes started by the local dispatcher, by agent.
    workers_started: Family,
    /// Tasks marked failed after JetStream gave up on them.
    abandoned: Family,
    /// Workers that ended before taking a task or never ran, by agent and a short reason.
    start_failures: Family,
    /// Open event streams (SSE and chat streams).
    pub streams_open: AtomicI64,
    /// Workers running, as the dispatcher last counted them.
    workers_running: AtomicI64,
}

impl Metrics {
    pub fn request(&self, method: &str, route: &str, status: u16) {
        self.requests.inc(vec![
            ("method", method.to_owned()),
            ("route", route.to_owned()),
            ("status", status.to_string()),
        ]);
    }

    pub fn submitted(&self, agent: &str, duplicate: bool) {
        self.submitted.inc(vec![
            ("agent", agent.to_owned()),
            ("duplicate", duplicate.to_string()),
        ]);
    }

    pub fn worker_started(&self, agent: &str) {
        self.workers_started.inc(vec![("agent", agent.to_owned())]);
    }

    /// The dispatcher's latest count of running workers.
    pub fn set_workers_running(&self, n: usize) {
        self.workers_running
            .store(i64::try_from(n).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    /// A worker of `agent` failed to start; `reason` is one of a few fixed labels
    /// (`exited`, `spawn`, `unschedulable`, `image`, `pod_config`, `job_refused`).
    pub fn worker_start_failed(&self, agent: &str, reason: &'static str) {
        self.start_failures.inc(vec![
            ("agent", agent.to_owned()),
            ("reason", reason.to_owned()),
        ]);
    }

    pub fn abandoned(&self, agent: &str) {
        self.abandoned.inc(vec![("agent", agent.to_owned())]);
    }

    pub fn render(&self, nats_connected: bool) -> String {
        let mut out = String::new();
        self.requests.render(
            &mut out,
            "openclaw_http_requests_total",
            "HTTP requests by method, route and status.",
        );
        self.submitted.render(
            &mut out,
            "openclaw_tasks_submitted_total",
            "Tasks accepted, by agent and duplicate.",
        );
        self.workers_started.render(
            &mut out,
            "openclaw_workers_started_total",
            "Workers started (processes or Jobs), by agent.",
        );
        self.start_failures.render(
            &mut out,
            "openclaw_worker_start_failures_total",
            "Workers that ended before taking a task or never ran, by agent and reason.",
        );
        self.abandoned.render(
            &mut out,
            "openclaw_tasks_abandoned_total",
            "Tasks failed after JetStream's max deliveries.",
        );
        for (name, help, value) in [
            (
                "openclaw_event_streams_open",
                "Open event streams.",
                self.streams_open.load(Ordering::Relaxed),
            ),
            (
                "openclaw_workers_running",
                "Workers running (processes, or unfinished Jobs) as last seen by the dispatcher.",
                self.workers_running.load(Ordering::Relaxed),
            ),
            (
                "openclaw_nats_connected",
                "1 when the NATS connection is up.",
                i64::from(nats_connected),
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}

/// Counts an open stream for as long as it lives.
pub struct StreamGauge(std::sync::Arc<Metrics>);

impl StreamGauge {
    pub fn open(metrics: &std::sync::Arc<Metrics>) -> Self {
        metrics.streams_open.fetch_add(1, Ordering::Relaxed);
        Self(metrics.clone())
    }
}

impl Drop for StreamGauge {
    fn drop(&mut self) {
        self.0.streams_open.fetch_sub(1, Ordering::Relaxed);
    }
}
