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

/// A list's `limit` query parameter: `default` when absent, else a number from 1 to `max`
/// (a 400 naming the field otherwise).
pub(crate) fn limit_param(
    raw: Option<&str>,
    default: usize,
    max: usize,
) -> Result<usize, crate::error::ApiError> {
    match raw {
        None => Ok(default),
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                crate::error::ApiError::field(
                    "limit",
                    format!("limit must be a number from 1 to {max}"),
                )
            }),
    }
}
