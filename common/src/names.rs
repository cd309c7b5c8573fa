//! Every JetStream name the system uses, so the bridge, the worker, the `nats/` files and the
//! README cannot drift apart. The `nats/*.json` files are checked against these by a test.

use crate::ids::{AgentName, TaskId};

/// Stream holding submitted tasks, one subject per agent.
pub const TASKS_STREAM: &str = "OPENCLAW_TASKS";
/// Stream holding the progress events of every task, one subject per task.
pub const EVENTS_STREAM: &str = "OPENCLAW_EVENTS";
/// Stream holding the audit records of state-changing requests, one subject per action.
pub const AUDIT_STREAM: &str = "OPENCLAW_AUDIT";
/// Audit records are published on `openclaw.audit.<action>`.
pub const AUDIT_SUBJECT_PREFIX: &str = "openclaw.audit";
/// Stream keeping JetStream's max-deliveries advisories for [`TASKS_STREAM`], so none is lost
/// while no bridge is connected.
pub const ADVISORIES_STREAM: &str = "OPENCLAW_ADVISORIES";
/// Durable consumer the bridges take those advisories from (each handled by one bridge).
pub const ADVISORIES_CONSUMER: &str = "bridge-advisories";
/// KV bucket holding the latest status record of every task.
pub const STATUS_BUCKET: &str = "openclaw_tasks";
/// KV bucket of leases: which bridge instance dispatches workers now.
pub const LEASES_BUCKET: &str = "openclaw_leases";
/// KV bucket mapping a conversation (session key) to the branch its tasks build on.
pub const SESSIONS_BUCKET: &str = "openclaw_sessions";
/// KV bucket mapping a forge's webhook delivery id to the task it made: a redelivered webhook
/// makes no second task, whichever bridge it reaches, however late.
pub const DELIVERIES_BUCKET: &str = "openclaw_deliveries";
/// KV bucket of quota ledgers (tasks in flight, recent submits, spend), per owner and team.
pub const QUOTAS_BUCKET: &str = "openclaw_quotas";
/// KV bucket of tasks accepted over their owner's in-flight limit, until there is room.
pub const PARKED_BUCKET: &str = "openclaw_parked";

/// Subject a task is published on: one per task, under its agent, so the bridge reads a task
/// by id without an index ([`task_subject_by_id`]) and an agent's workers filter on
/// [`agent_task_subjects`].
pub fn task_subject(agent: &AgentName, task: &TaskId) -> String {
    format!("openclaw.tasks.{agent}.{task}")
}

/// Every task subject of one task id, whatever its agent.
pub fn task_subject_by_id(task: &TaskId) -> String {
    format!("openclaw.tasks.*.{task}")
}

/// The subject a version before 0.2 published `agent`'s tasks on (one per agent). Workers
/// still take tasks from it, so tasks in the stream at an upgrade run.
pub fn legacy_task_subject(agent: &AgentName) -> String {
    format!("openclaw.tasks.{agent}")
}

/// The subjects `agent`'s workers take tasks from: its per-task subjects and the legacy one.
pub fn agent_task_subjects(agent: &AgentName) -> Vec<String> {
    vec![
        format!("openclaw.tasks.{agent}.*"),
        legacy_task_subject(agent),
    ]
}

/// Subject the events of `task` are published on.
pub fn event_subject(task: &TaskId) -> String {
    format!("openclaw.events.{task}")
}

/// Subject of a task's diff (its pushed branch against its base, capped), beside its events in
/// the events stream; the last one is the task's (`GET /v1/tasks/{id}/diff`). Event readers
/// filter on [`event_subject`] exactly, so they never see it.
pub fn diff_subject(task: &TaskId) -> String {
    format!("openclaw.events.{task}.diff")
}

/// Durable pull consumer the workers of `agent` fetch from.
pub fn worker_consumer(agent: &AgentName) -> String {
    format!("worker-{agent}")
}

/// The inbox prefix of a NATS client acting as `user` (`bridge`, or `worker-<agent>` as
/// [`worker_consumer`] names it): the replies to its requests arrive there, and the shipped
/// permissions let only that user subscribe there, so no client reads another's replies.
pub fn inbox_prefix(user: &str) -> String {
    format!("_INBOX_{user}")
}

/// The bridge's NATS user, and so its inbox owner.
pub const BRIDGE_USER: &str = "bridge";

/// W3C trace context of the bridge's submit span on task messages, so the worker's spans join
/// the task's trace under it.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// Header carrying a task message's ticket: a random secret the bridge stamps on each task it
/// publishes when it answers the server's auth callout. Only the worker the consumer hands
/// the message to sees it, and presenting it (as [`task_user`]'s password) is how that worker
/// gets a NATS user for that one task's events and record (ARCHITECTURE.md, "NATS").
pub const TASK_TICKET_HEADER: &str = "Openclaw-Task-Ticket";

/// The NATS user name a worker presents with a ticket: the stream sequence of the task message
/// it holds, which the callout reads to check the ticket.
pub fn task_user(msg_seq: u64) -> String {
    format!("task-{msg_seq}")
}

/// The stream sequence a [`task_user`] name claims, if it is one.
pub fn task_user_seq(user: &str) -> Option<u64> {
    let digits = user.strip_prefix("task-")?;
    // Digits only: `u64::from_str` would also take a leading `+`.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Header carrying the task id on task messages, so `nats stream view` shows it.
pub const TASK_ID_HEADER: &str = "Openclaw-Task-Id";
/// Header carrying the schema version on task and event messages.
pub const SCHEMA_HEADER: &str = "Openclaw-Schema";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_user_names_one_stream_sequence_and_nothing_else_parses_as_one() {
        assert_eq!(task_user_seq(&task_user(42)), Some(42));
        for other in [
            "task-", "task-+1", "task--1", "task-1x", "task-1.2", "bridge", "Task-1", " task-1",
        ] {
            assert_eq!(task_user_seq(other), None, "{other}");
        }
        assert_eq!(task_user_seq("task-18446744073709551616"), None);
    }
}
