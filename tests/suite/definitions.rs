//! The `nats/*.json` files are what the nats CLI takes and what the server accepts.

use async_nats::jetstream::{consumer, stream};
use openclaw_common::names;
use openclaw_tests::{nats::NatsServer, workspace_root};

fn read(file: &str) -> String {
    std::fs::read_to_string(workspace_root().join("nats").join(file))
        .unwrap_or_else(|e| panic!("nats/{file}: {e}"))
}

#[tokio::test]
async fn nats_definition_files_create_the_streams_and_consumer() {
    openclaw_tests::init();
    let nats = NatsServer::start();
    let js = async_nats::jetstream::new(nats.client().await);

    let tasks: stream::Config = serde_json::from_str(&read("tasks.json")).expect("tasks.json");
    let events: stream::Config = serde_json::from_str(&read("events.json")).expect("events.json");
    assert_eq!(tasks.name, names::TASKS_STREAM);
    assert_eq!(events.name, names::EVENTS_STREAM);
    assert_eq!(tasks.subjects, ["openclaw.tasks.>"]);
    assert_eq!(events.subjects, ["openclaw.events.>"]);

    let mut created = js
        .create_stream(tasks.clone())
        .await
        .expect("server accepts tasks.json");
    let info = created.info().await.expect("stream info");
    assert_eq!(info.config.retention, stream::RetentionPolicy::Limits);
    assert_eq!(info.config.storage, stream::StorageType::File);
    assert_eq!(info.config.max_age, tasks.max_age);
    js.create_stream(events)
        .await
        .expect("server accepts events.json");

    let consumer: consumer::pull::Config =
        serde_json::from_str(&read("worker-consumer.json")).expect("worker-consumer.json");
    let agent = openclaw_common::ids::AgentName::parse("doc-writer").expect("agent name");
    assert_eq!(consumer.filter_subjects, names::agent_task_subjects(&agent));
    let mut c = created
        .create_consumer(consumer)
        .await
        .expect("server accepts worker-consumer.json");
    let info = c.info().await.expect("consumer info");
    assert_eq!(
        info.config.durable_name.as_deref(),
        Some("worker-doc-writer")
    );
    assert_eq!(info.config.ack_policy, consumer::AckPolicy::Explicit);

    let advisories: stream::Config =
        serde_json::from_str(&read("advisories.json")).expect("advisories.json");
    assert_eq!(advisories.name, names::ADVISORIES_STREAM);
    assert_eq!(
        advisories.subjects,
        [format!(
            "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.>",
            names::TASKS_STREAM
        )]
    );
    let advisories = js
        .create_stream(advisories)
        .await
        .expect("server accepts advisories.json");
    let consumer: consumer::pull::Config =
        serde_json::from_str(&read("advisories-consumer.json")).expect("advisories-consumer.json");
    assert_eq!(
        consumer.durable_name.as_deref(),
        Some(names::ADVISORIES_CONSUMER)
    );
    advisories
        .create_consumer(consumer)
        .await
        .expect("server accepts advisories-consumer.json");
}

#[tokio::test]
async fn setup_is_idempotent_and_applies_changed_definitions() {
    openclaw_tests::init();
    let nats = NatsServer::start();
    let js = openclaw_common::store::context(nats.client().await);
    let agents = openclaw_common::agents::AgentCatalog::built_in();
    let mut cfg = openclaw_common::config::NatsConfig {
        url: nats.url(),
        auth: Default::default(),
        replicas: 1,
        ack_wait: std::time::Duration::from_secs(30),
        max_deliver: 3,
        audit_max_age: None,
    };
    openclaw_common::store::ensure_all(&js, &cfg, &agents)
        .await
        .expect("first setup");
    openclaw_common::store::ensure_all(&js, &cfg, &agents)
        .await
        .expect("second setup");

    // An operator shortened max_age by hand; the next start puts the definition back.
    let mut drifted = openclaw_common::store::tasks_stream_config(&cfg).unwrap();
    drifted.max_age = std::time::Duration::from_secs(2 * 24 * 3600);
    js.update_stream(drifted).await.expect("manual change");
    cfg.ack_wait = std::time::Duration::from_secs(45);
    openclaw_common::store::ensure_all(&js, &cfg, &agents)
        .await
        .expect("third setup");
    let mut s = js.get_stream(names::TASKS_STREAM).await.unwrap();
    let want = openclaw_common::store::tasks_stream_config(&cfg).unwrap();
    assert_eq!(s.info().await.unwrap().config.max_age, want.max_age);
    let mut c = s
        .get_consumer::<consumer::pull::Config>("worker-devops")
        .await
        .expect("one consumer per agent");
    assert_eq!(c.info().await.unwrap().config.ack_wait, cfg.ack_wait);

    // A change the server cannot apply is reported with the stream's name.
    let mut memory = openclaw_common::store::events_stream_config(&cfg).unwrap();
    memory.storage = stream::StorageType::Memory;
    js.delete_stream(names::EVENTS_STREAM).await.unwrap();
    js.create_stream(memory).await.unwrap();
    let err = openclaw_common::store::ensure_all(&js, &cfg, &agents)
        .await
        .expect_err("storage cannot change in place")
        .to_string();
    assert!(
        err.contains(names::EVENTS_STREAM) && err.contains("storage"),
        "{err}"
    );
}
