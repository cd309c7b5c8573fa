//! Shared vocabulary of the OpenClaw bridge and worker.
//!
//! Layout:
//! - [`ids`]: parse-don't-validate newtypes (`TaskId`, `AgentName`, `RepoUrl`, `BranchName`).
//! - [`task`]: the task a client submits, as stored in the tasks stream.
//! - [`event`]: the progress events of a task, as stored in the events stream.
//! - [`status`]: the latest state of a task, as stored in the status KV bucket.
//! - [`lifecycle`]: the rules of a task's life (claims, ends, which end wins), decided
//!   without NATS over the [`lifecycle::Ledger`] the stores implement.
//! - [`session`]: conversations whose tasks continue on one branch.
//! - [`names`]: stream, subject, bucket and consumer names in one place.
//! - [`store`]: the only JetStream code: creating those streams (from `nats/*.json`), and the
//!   typed stores over them.
//! - [`backoff`]: the pauses of every retry loop (doubling to a cap).
//! - [`agents`]: agent profiles (built-in defaults, or a TOML file).
//! - [`egress`]: where the worker may connect (repo policy) and offer credentials (host lists).
//! - [`config`]: reading typed configuration from the environment; secrets that cannot be printed.
//! - [`otel`]: OpenTelemetry export (Langfuse v4 and/or an OTLP collector), `traceparent`.
//! - [`signals`]: SIGTERM or Ctrl-C, for graceful shutdown.
//! - [`telemetry`]: the one `tracing` set-up used by the binaries and the tests.

pub mod agents;
pub mod backoff;
pub mod config;
pub mod egress;
pub mod event;
pub mod forge;
pub mod ids;
pub mod lifecycle;
pub mod names;
pub mod otel;
pub mod session;
pub mod signals;
pub mod status;
pub mod store;
pub mod submitter;
pub mod task;
pub mod telemetry;
pub mod usage;

/// Version of the task, event and status JSON schema. Bumped on incompatible changes; readers
/// refuse records with a newer major version instead of misreading them.
pub const SCHEMA_VERSION: u32 = 1;

/// Current time, the one clock every record uses.
pub fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}
