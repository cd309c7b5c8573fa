//! HTTP handlers. Thin: parse, call the stores, shape the answer.

pub mod audit;
pub mod compat;
pub mod events;
pub mod health;
pub mod openai;
pub mod tasks;
pub mod usage;

/// Response header naming the task a chat request started, so a client can follow it at
/// `/v1/tasks/{id}/events` after a disconnect (and the audit trail can name it).
pub const TASK_ID_HEADER: &str = "x-openclaw-task-id";
