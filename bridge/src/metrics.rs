//! Prometheus metrics of the bridge, in the text exposition format at `GET /metrics`.
//! Hand-rolled: counters, gauges and two histogram families are about a hundred lines, and
//! the suite checks the output with `promtool check metrics`. The `prometheus-client` crate
//! would add OpenMetrics and a registry we do not need, and a build on 2 cores pays for every
//! crate; we would move to it for exemplars or native histograms.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

/// A counter family: one value per label set (a float, for dollars and seconds).
#[derive(Default)]
struct Family(Mutex<BTreeMap<Vec<(&'static str, String)>, f64>>);

impl Family {
    fn inc(&self, labels: &[(&'static str, &str)]) {
        self.add(labels, 1.0);
    }

    fn add(&self, labels: &[(&'static str, &str)], value: f64) {
        if let Ok(mut m) = self.0.lock()
            && let Some(series) = series(&mut m, labels)
        {
            *series += value;
        }
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        if let Ok(m) = self.0.lock() {
            for (labels, value) in m.iter() {
                let labels: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                let _ = writeln!(out, "{name}{{{}}} {value}", labels.join(","));
            }
        }
    }
}

/// The labels of one series, in order.
type Labels = Vec<(&'static str, String)>;

/// The value of the series `labels` in `m`, created at its default when new. Found by a scan
/// rather than a keyed lookup (the key owns its strings), so that counting a request allocates
/// nothing once its series exists; a family has tens of series.
fn series<'m, V: Default>(
    m: &'m mut BTreeMap<Labels, V>,
    labels: &[(&'static str, &str)],
) -> Option<&'m mut V> {
    let same = |key: &Labels| {
        key.len() == labels.len()
            && key
                .iter()
                .zip(labels)
                .all(|((k, v), (l, w))| k == l && v == w)
    };
    match m.keys().position(same) {
        Some(i) => m.values_mut().nth(i),
        None => Some(
            m.entry(labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect())
                .or_default(),
        ),
    }
}

/// One histogram series: counts per bucket (each observation counted in every bucket whose
/// bound it is under), sum and count.
#[derive(Default)]
struct Series {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

/// A histogram family: one series per label set.
struct Histograms {
    /// Upper bounds of the buckets (`le`), ascending; `+Inf` is implied.
    bounds: &'static [f64],
    series: Mutex<BTreeMap<Labels, Series>>,
}

impl Histograms {
    const fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    fn observe(&self, labels: &[(&'static str, &str)], value: f64) {
        if let Ok(mut m) = self.series.lock()
            && let Some(series) = series(&mut m, labels)
        {
            if series.buckets.is_empty() {
                series.buckets = vec![0; self.bounds.len()];
            }
            for (bucket, bound) in series.buckets.iter_mut().zip(self.bounds) {
                if value <= *bound {
                    *bucket += 1;
                }
            }
            series.sum += value;
            series.count += 1;
        }
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        if let Ok(m) = self.series.lock() {
            for (
                labels,
                Series {
                    buckets,
                    sum,
                    count,
                },
            ) in m.iter()
            {
                let base: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                for (bound, n) in self.bounds.iter().zip(buckets) {
                    let mut l = base.clone();
                    l.push(format!("le=\"{bound}\""));
                    let _ = writeln!(out, "{name}_bucket{{{}}} {n}", l.join(","));
                }
                let mut l = base.clone();
                l.push("le=\"+Inf\"".into());
                let _ = writeln!(out, "{name}_bucket{{{}}} {count}", l.join(","));
                let _ = writeln!(out, "{name}_sum{{{}}} {sum}", base.join(","));
                let _ = writeln!(out, "{name}_count{{{}}} {count}", base.join(","));
            }
        }
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Seconds from submit to the end of a task (every attempt included).
const DURATION_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
];
/// Seconds from submit to the first worker's claim.
const QUEUE_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];

/// Most users with a label of their own in the per-user metrics: the first this many seen
/// since the bridge started (typically the most active); everyone after them is `other`, so a
/// thousand users cannot make a thousand series.
pub const MAX_USER_LABELS: usize = 20;

/// Every metric of the bridge. Shared through `AppState`.
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
    /// Tasks that ended, by agent and outcome (completed, failed, canceled).
    finished: Family,
    /// Submit to end, by agent and outcome.
    durations: Histograms,
    /// Submit to the first claim by a worker, by agent.
    queue_times: Histograms,
    /// Model tokens of ended tasks, by agent, model and kind (input, output).
    llm_tokens: Family,
    /// What the gateway said ended tasks' model calls cost (USD), by agent, model and user.
    llm_cost: Family,
    /// Tasks that ended, by user and outcome.
    finished_by_user: Family,
    /// The users that have a label of their own ([`MAX_USER_LABELS`]; the rest are `other`).
    user_labels: Mutex<std::collections::BTreeSet<String>>,
    /// Worker wall time of ended tasks, by agent.
    worker_seconds: Family,
    /// Open event streams (SSE and chat streams).
    pub streams_open: AtomicI64,
    /// Workers running, as the dispatcher last counted them.
    workers_running: AtomicI64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            submitted: Family::default(),
            workers_started: Family::default(),
            abandoned: Family::default(),
            start_failures: Family::default(),
            finished: Family::default(),
            durations: Histograms::new(DURATION_BUCKETS),
            queue_times: Histograms::new(QUEUE_BUCKETS),
            llm_tokens: Family::default(),
            llm_cost: Family::default(),
            finished_by_user: Family::default(),
            user_labels: Mutex::default(),
            worker_seconds: Family::default(),
            streams_open: AtomicI64::new(0),
            workers_running: AtomicI64::new(0),
        }
    }
}

impl Metrics {
    /// A task of `agent` ended as `outcome` after `seconds` since its submit.
    pub fn task_finished(&self, agent: &str, outcome: &str, seconds: f64) {
        let labels = [("agent", agent), ("outcome", outcome)];
        self.finished.inc(&labels);
        self.durations.observe(&labels, seconds);
    }

    /// The label of `user` in the per-user metrics: its name while there is room, else
    /// `other` (`unknown` for a task without a submitter).
    fn user_label(&self, user: Option<&str>) -> String {
        let Some(user) = user else {
            return "unknown".into();
        };
        let Ok(mut known) = self.user_labels.lock() else {
            return "other".into();
        };
        if known.contains(user) || (known.len() < MAX_USER_LABELS && known.insert(user.to_owned()))
        {
            user.to_owned()
        } else {
            "other".into()
        }
    }

    /// A task `user` asked for ended as `outcome`.
    pub fn task_finished_for(&self, user: Option<&str>, outcome: &str) {
        let user = self.user_label(user);
        self.finished_by_user
            .inc(&[("user", user.as_str()), ("outcome", outcome)]);
    }

    /// What an ended task of `agent` (asked for by `user`) used, over its attempts.
    pub fn task_usage(
        &self,
        agent: &str,
        user: Option<&str>,
        usage: &openclaw_common::status::Usage,
    ) {
        let model = usage.model.as_deref().unwrap_or("unknown");
        for (kind, n) in [
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
        ] {
            self.llm_tokens.add(
                &[("agent", agent), ("model", model), ("kind", kind)],
                n as f64,
            );
        }
        if let Some(cost) = usage.cost_usd {
            let user = self.user_label(user);
            self.llm_cost.add(
                &[("agent", agent), ("model", model), ("user", user.as_str())],
                cost,
            );
        }
        self.worker_seconds
            .add(&[("agent", agent)], usage.worker_seconds);
    }

    /// A task of `agent` was first claimed by a worker `seconds` after its submit.
    pub fn task_started(&self, agent: &str, seconds: f64) {
        self.queue_times.observe(&[("agent", agent)], seconds);
    }

    pub fn request(&self, method: &str, route: &str, status: u16) {
        // HTTP statuses have three digits (100-999); written without allocating.
        let digits = [100, 10, 1].map(|d| b'0' + (status / d % 10) as u8);
        let status = std::str::from_utf8(&digits).unwrap_or("???");
        self.requests
            .inc(&[("method", method), ("route", route), ("status", status)]);
    }

    pub fn submitted(&self, agent: &str, duplicate: bool) {
        let duplicate = if duplicate { "true" } else { "false" };
        self.submitted
            .inc(&[("agent", agent), ("duplicate", duplicate)]);
    }

    pub fn worker_started(&self, agent: &str) {
        self.workers_started.inc(&[("agent", agent)]);
    }

    /// The dispatcher's latest count of running workers.
    pub fn set_workers_running(&self, n: usize) {
        self.workers_running
            .store(i64::try_from(n).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    /// A worker of `agent` failed to start; `reason` is one of a few fixed labels
    /// (`exited`, `spawn`, `unschedulable`, `image`, `pod_config`, `job_refused`).
    pub fn worker_start_failed(&self, agent: &str, reason: &'static str) {
        self.start_failures
            .inc(&[("agent", agent), ("reason", reason)]);
    }

    pub fn abandoned(&self, agent: &str) {
        self.abandoned.inc(&[("agent", agent)]);
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
        self.finished.render(
            &mut out,
            "openclaw_tasks_finished_total",
            "Tasks that ended, by agent and outcome.",
        );
        self.durations.render(
            &mut out,
            "openclaw_task_duration_seconds",
            "Seconds from submit to the end of a task, by agent and outcome.",
        );
        self.queue_times.render(
            &mut out,
            "openclaw_task_queue_seconds",
            "Seconds from submit to the first worker's claim, by agent.",
        );
        self.llm_tokens.render(
            &mut out,
            "openclaw_llm_tokens_total",
            "Model tokens of ended tasks, by agent, model and kind.",
        );
        self.llm_cost.render(
            &mut out,
            "openclaw_llm_cost_usd_total",
            "What the gateway said ended tasks' model calls cost, in US dollars, by agent, model and user (the first 20 users by name, the rest as other).",
        );
        self.finished_by_user.render(
            &mut out,
            "openclaw_tasks_finished_by_user_total",
            "Tasks that ended, by user (the first 20 by name, the rest as other) and outcome.",
        );
        self.worker_seconds.render(
            &mut out,
            "openclaw_worker_seconds_total",
            "Worker wall time of ended tasks, by agent.",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_user_series_are_bounded_and_the_rest_are_other() {
        let m = Metrics::default();
        for n in 0..MAX_USER_LABELS + 5 {
            m.task_finished_for(Some(&format!("user-{n}")), "completed");
        }
        m.task_finished_for(Some("user-0"), "failed");
        m.task_finished_for(None, "completed");
        let usage = openclaw_common::status::Usage {
            model: Some("m".into()),
            cost_usd: Some(0.25),
            ..Default::default()
        };
        m.task_usage("doc-writer", Some("a\"quote"), &usage);
        let out = m.render(true);
        let series = |name: &str| out.lines().filter(|l| l.starts_with(name)).count();
        // 20 named users completed, 5 more as one "other" series, user-0 failed, one unknown.
        assert_eq!(
            series("openclaw_tasks_finished_by_user_total{"),
            MAX_USER_LABELS + 3
        );
        assert!(out.contains(
            "openclaw_tasks_finished_by_user_total{user=\"other\",outcome=\"completed\"} 5"
        ));
        assert!(out.contains(
            "openclaw_tasks_finished_by_user_total{user=\"user-0\",outcome=\"failed\"} 1"
        ));
        assert!(out.contains(
            "openclaw_tasks_finished_by_user_total{user=\"unknown\",outcome=\"completed\"} 1"
        ));
        // A new user after the twenty is "other", its quote never reaching the output raw.
        assert!(
            out.contains(
                "openclaw_llm_cost_usd_total{agent=\"doc-writer\",model=\"m\",user=\"other\"} 0.25"
            ),
            "{out}"
        );
    }
}
