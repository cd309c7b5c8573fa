//! The JetStream objects, created (or updated) from the `nats/*.json` definitions.

use std::time::Duration;

use async_nats::jetstream::{Context, consumer, kv, stream};

use crate::agents::AgentCatalog;
use crate::config::NatsConfig;
use crate::ids::AgentName;
use crate::names;

use super::*;

/// The stream definitions, in the form `nats stream add --config` takes.
pub const TASKS_STREAM_JSON: &str = include_str!("../../../nats/tasks.json");
pub const EVENTS_STREAM_JSON: &str = include_str!("../../../nats/events.json");
/// The worker consumer definition (for `doc-writer`; other agents differ in name and filter).
pub const WORKER_CONSUMER_JSON: &str = include_str!("../../../nats/worker-consumer.json");
/// The stream keeping max-deliveries advisories, and the bridges' consumer of it.
pub const ADVISORIES_STREAM_JSON: &str = include_str!("../../../nats/advisories.json");
pub const AUDIT_STREAM_JSON: &str = include_str!("../../../nats/audit.json");
pub const ADVISORIES_CONSUMER_JSON: &str = include_str!("../../../nats/advisories-consumer.json");

/// The tasks stream definition with this deployment's replicas.
pub fn tasks_stream_config(cfg: &NatsConfig) -> Result<stream::Config, StoreError> {
    stream_config(TASKS_STREAM_JSON, "nats/tasks.json", cfg)
}

/// The events stream definition with this deployment's replicas.
pub fn events_stream_config(cfg: &NatsConfig) -> Result<stream::Config, StoreError> {
    stream_config(EVENTS_STREAM_JSON, "nats/events.json", cfg)
}

/// The audit stream definition with this deployment's replicas and retention.
pub fn audit_stream_config(cfg: &NatsConfig) -> Result<stream::Config, StoreError> {
    let mut config = stream_config(AUDIT_STREAM_JSON, "nats/audit.json", cfg)?;
    if let Some(max_age) = cfg.audit_max_age {
        config.max_age = max_age;
    }
    Ok(config)
}

/// The advisories stream definition with this deployment's replicas.
pub fn advisories_stream_config(cfg: &NatsConfig) -> Result<stream::Config, StoreError> {
    stream_config(ADVISORIES_STREAM_JSON, "nats/advisories.json", cfg)
}

/// The bridges' consumer of the advisories stream.
pub fn advisories_consumer_config(cfg: &NatsConfig) -> Result<consumer::pull::Config, StoreError> {
    let mut config: consumer::pull::Config = serde_json::from_str(ADVISORIES_CONSUMER_JSON)
        .map_err(|e| {
            StoreError::Setup(format!("nats/advisories-consumer.json does not parse: {e}"))
        })?;
    config.num_replicas = cfg.replicas;
    Ok(config)
}

fn stream_config(json: &str, file: &str, cfg: &NatsConfig) -> Result<stream::Config, StoreError> {
    let mut config: stream::Config = serde_json::from_str(json)
        .map_err(|e| StoreError::Setup(format!("{file} does not parse: {e}")))?;
    config.num_replicas = cfg.replicas;
    Ok(config)
}

/// The worker consumer of `agent`, from the shared definition.
pub fn worker_consumer_config(
    agent: &AgentName,
    cfg: &NatsConfig,
) -> Result<consumer::pull::Config, StoreError> {
    let mut config: consumer::pull::Config = serde_json::from_str(WORKER_CONSUMER_JSON)
        .map_err(|e| StoreError::Setup(format!("nats/worker-consumer.json does not parse: {e}")))?;
    config.durable_name = Some(names::worker_consumer(agent));
    config.name = None;
    config.filter_subject = String::new();
    config.filter_subjects = names::agent_task_subjects(agent);
    config.description = Some(format!(
        "Workers of the {agent} agent fetch their task here."
    ));
    config.ack_wait = cfg.ack_wait;
    config.max_deliver = cfg.max_deliver;
    config.num_replicas = cfg.replicas;
    Ok(config)
}

/// The status bucket definition.
pub fn status_bucket_config(cfg: &NatsConfig) -> kv::Config {
    kv::Config {
        bucket: names::STATUS_BUCKET.to_owned(),
        description: "Latest status of every OpenClaw task, keyed by task id.".to_owned(),
        history: 1,
        max_age: Duration::from_secs(7 * 24 * 3600),
        storage: stream::StorageType::File,
        num_replicas: cfg.replicas,
        ..Default::default()
    }
}

/// Creates or updates every stream, consumer and bucket. Idempotent: run by the bridge at every
/// start. A stream whose live definition differs is updated; a difference the server cannot
/// apply (storage type, say) is reported with the stream's name and the server's reason.
pub async fn ensure_all(
    js: &Context,
    cfg: &NatsConfig,
    agents: &AgentCatalog,
) -> Result<(), StoreError> {
    let tasks = ensure_stream(js, tasks_stream_config(cfg)?).await?;
    ensure_stream(js, events_stream_config(cfg)?).await?;
    ensure_stream(js, audit_stream_config(cfg)?).await?;
    for agent in agents.names() {
        ensure_consumer(&tasks, worker_consumer_config(agent, cfg)?).await?;
    }
    let advisories = ensure_stream(js, advisories_stream_config(cfg)?).await?;
    ensure_consumer(&advisories, advisories_consumer_config(cfg)?).await?;
    ensure_bucket(js, status_bucket_config(cfg)).await?;
    ensure_bucket(js, sessions_bucket_config(cfg)).await?;
    ensure_bucket(js, leases_bucket_config(cfg)).await?;
    ensure_bucket(js, deliveries_bucket_config(cfg)).await?;
    ensure_bucket(js, quotas_bucket_config(cfg)).await?;
    ensure_bucket(js, parked_bucket_config(cfg)).await?;
    Ok(())
}

/// Creates the durable consumer `config` names on `stream`, or updates it in place (its
/// delivery counts kept).
async fn ensure_consumer(
    stream: &stream::Stream,
    config: consumer::pull::Config,
) -> Result<(), StoreError> {
    let name = config.durable_name.clone().unwrap_or_default();
    stream.create_consumer(config).await.map_err(|e| {
        StoreError::Setup(format!(
            "consumer {name} on {}: {e}",
            stream.cached_info().config.name
        ))
    })?;
    Ok(())
}

async fn ensure_stream(js: &Context, want: stream::Config) -> Result<stream::Stream, StoreError> {
    let name = want.name.clone();
    let mut stream = js
        .get_or_create_stream(want.clone())
        .await
        .map_err(|e| StoreError::Setup(format!("stream {name}: {e}")))?;
    let have = stream
        .info()
        .await
        .map_err(|e| StoreError::Setup(format!("stream {name}: {e}")))?
        .config
        .clone();
    let differs = stream_differences(&have, &want);
    if !differs.is_empty() {
        tracing::info!(stream = %name, fields = ?differs, "stream definition changed; updating");
        js.update_stream(want).await.map_err(|e| {
            StoreError::Setup(format!(
                "stream {name} differs from its definition in {differs:?} and cannot be updated: {e}"
            ))
        })?;
    }
    Ok(stream)
}

/// The fields of a stream definition we set, and that differ between `have` and `want`.
fn stream_differences(have: &stream::Config, want: &stream::Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |name, same: bool| {
        if !same {
            out.push(name)
        }
    };
    check("subjects", have.subjects == want.subjects);
    check("retention", have.retention == want.retention);
    check("storage", have.storage == want.storage);
    check("num_replicas", have.num_replicas == want.num_replicas);
    check("max_age", have.max_age == want.max_age);
    check(
        "max_message_size",
        have.max_message_size == want.max_message_size,
    );
    check(
        "max_messages_per_subject",
        have.max_messages_per_subject == want.max_messages_per_subject,
    );
    check(
        "duplicate_window",
        have.duplicate_window == want.duplicate_window,
    );
    check("discard", have.discard == want.discard);
    check("allow_direct", have.allow_direct == want.allow_direct);
    out
}

async fn ensure_bucket(js: &Context, config: kv::Config) -> Result<kv::Store, StoreError> {
    match js.get_key_value(&config.bucket).await {
        Ok(store) => Ok(store),
        Err(_) => {
            let name = config.bucket.clone();
            js.create_key_value(config)
                .await
                .map_err(|e| StoreError::Setup(format!("KV bucket {name}: {e}")))
        }
    }
}

/// The leases bucket definition.
pub fn leases_bucket_config(cfg: &NatsConfig) -> kv::Config {
    kv::Config {
        bucket: names::LEASES_BUCKET.to_owned(),
        description: "OpenClaw leases: which bridge instance dispatches workers.".to_owned(),
        history: 1,
        storage: stream::StorageType::File,
        num_replicas: cfg.replicas,
        ..Default::default()
    }
}

/// The webhook deliveries bucket: a delivery id is remembered for 7 days (GitHub redelivers
/// deliveries of the last 3).
pub fn deliveries_bucket_config(cfg: &NatsConfig) -> kv::Config {
    kv::Config {
        bucket: names::DELIVERIES_BUCKET.to_owned(),
        description: "OpenClaw webhook deliveries: delivery id to the task it made.".to_owned(),
        history: 1,
        max_age: Duration::from_secs(7 * 24 * 3600),
        storage: stream::StorageType::File,
        num_replicas: cfg.replicas,
        ..Default::default()
    }
}

/// The quotas bucket definition: a ledger untouched for 40 days (past any month it counts)
/// goes.
pub fn quotas_bucket_config(cfg: &NatsConfig) -> kv::Config {
    kv::Config {
        bucket: names::QUOTAS_BUCKET.to_owned(),
        description:
            "OpenClaw quota ledgers: tasks in flight, recent submits, spend per day and month."
                .to_owned(),
        history: 1,
        max_age: Duration::from_secs(40 * 24 * 3600),
        storage: stream::StorageType::File,
        num_replicas: cfg.replicas,
        ..Default::default()
    }
}

/// The parked tasks bucket definition: a task waits for room for at most a week.
pub fn parked_bucket_config(cfg: &NatsConfig) -> kv::Config {
    kv::Config {
        bucket: names::PARKED_BUCKET.to_owned(),
        description:
            "OpenClaw tasks accepted over their owner's in-flight limit, until there is room."
                .to_owned(),
        history: 1,
        max_age: Duration::from_secs(7 * 24 * 3600),
        storage: stream::StorageType::File,
        num_replicas: cfg.replicas,
        ..Default::default()
    }
}

/// The sessions bucket definition: a conversation is continued for 30 days.
pub fn sessions_bucket_config(cfg: &NatsConfig) -> kv::Config {
    kv::Config {
        bucket: names::SESSIONS_BUCKET.to_owned(),
        description: "OpenClaw conversations: session key to the branch its tasks build on."
            .to_owned(),
        history: 1,
        max_age: Duration::from_secs(30 * 24 * 3600),
        storage: stream::StorageType::File,
        num_replicas: cfg.replicas,
        ..Default::default()
    }
}
