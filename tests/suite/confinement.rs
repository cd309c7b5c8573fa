//! Each worker confined to its own task on NATS, under the shipped permissions
//! (nats/permissions.json), TLS and the bridge's auth callout: a worker's own user may only
//! take and ack its agent's tasks, and the per-task user a ticket gets may touch only the
//! task whose message carried it. Every refusal is the server's, observed on the connection
//! (a `Permissions Violation` naming the subject, or the connection refused), and what was
//! attacked is read back unchanged.

use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use futures_util::StreamExt;
use openclaw_common::ids::TaskId;
use openclaw_common::names;
use openclaw_tests::app::TestApp;
use openclaw_tests::git::BareRepo;
use openclaw_tests::llm::ScriptedLlm;
use openclaw_tests::nats::{BRIDGE, NatsServer, WORKER_PASSWORD};
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;

use openclaw_tests::flow::{events_until_end, kinds};

/// A client whose server errors (permission violations) the test reads.
struct Watched {
    client: async_nats::Client,
    errors: UnboundedReceiver<String>,
    inbox: String,
}

async fn connect_watched(
    nats: &NatsServer,
    user: &str,
    password: &str,
) -> Result<Watched, async_nats::ConnectError> {
    let (tx, errors) = tokio::sync::mpsc::unbounded_channel();
    let inbox = names::inbox_prefix(user);
    let ca = nats.security.as_ref().expect("a secured server").ca.clone();
    let client = async_nats::ConnectOptions::with_user_and_password(user.into(), password.into())
        .add_root_certificates(ca)
        .require_tls(true)
        .custom_inbox_prefix(inbox.clone())
        .max_reconnects(Some(1))
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    let _ = tx.send(e.to_string());
                }
            }
        })
        .connect(nats.url())
        .await?;
    Ok(Watched {
        client,
        errors,
        inbox,
    })
}

impl Watched {
    async fn next_error(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(10), self.errors.recv())
            .await
            .expect("the server answers with an error")
            .expect("the connection is open")
    }

    /// Publishes (with a reply subject, as a request or a JetStream publish does) and waits
    /// for the server to refuse it.
    async fn publish_refused(&mut self, subject: &str, payload: &str) {
        self.client
            .publish_with_reply(
                subject.to_owned(),
                format!("{}.probe", self.inbox),
                payload.to_owned().into(),
            )
            .await
            .expect("sent");
        self.refused("publish to", subject).await;
    }

    /// Waits for the server's refusal of what was just sent to `subject`.
    async fn refused(&mut self, what: &str, subject: &str) {
        self.client.flush().await.expect("flushed");
        let refused = self.next_error().await;
        assert!(
            refused.to_lowercase().contains("permissions violation") && refused.contains(subject),
            "{what} {subject}: {refused}"
        );
    }

    async fn subscribe_refused(&mut self, subject: &str) {
        let _subscription = self
            .client
            .subscribe(subject.to_owned())
            .await
            .expect("sent");
        self.refused("subscribe to", subject).await;
    }

    /// A request the server lets through, and its answer.
    async fn request(&mut self, subject: &str, payload: &str) -> async_nats::Message {
        let answer = self
            .client
            .request(subject.to_owned(), payload.to_owned().into())
            .await
            .unwrap_or_else(|e| panic!("request to {subject}: {e}"));
        assert!(self.errors.try_recv().is_err(), "refused: {subject}");
        answer
    }
}

fn record_get(id: &TaskId) -> String {
    format!(
        "$JS.API.DIRECT.GET.KV_{b}.$KV.{b}.{id}",
        b = names::STATUS_BUCKET
    )
}

#[tokio::test]
async fn a_worker_reads_and_writes_only_the_task_it_holds() {
    let app = secured_app(&["doc-writer", "devops"]).await;
    let repo = BareRepo::new();
    let held = app
        .submit(&json!({"repo": repo.file_url(), "prompt": "The task the attacker holds"}))
        .await;
    let victim = app
        .submit(&json!({"repo": repo.file_url(), "prompt": "Another doc-writer task"}))
        .await;
    let devops = app
        .submit(
            &json!({"repo": repo.file_url(), "prompt": "Secret devops work", "agent": "devops"}),
        )
        .await;
    let (_, devops_seq) = app.stores().tasks.find(&devops).await.unwrap().unwrap();
    let (_, victim_seq) = app.stores().tasks.find(&victim).await.unwrap().unwrap();

    // A doc-writer worker takes a task the way every worker does: from its consumer.
    let worker_user = "worker-doc-writer";
    let mut worker = connect_watched(&app.nats, worker_user, WORKER_PASSWORD)
        .await
        .expect("the worker's own user connects");
    let js = openclaw_common::store::context(worker.client.clone());
    let consumer = js
        .get_stream_no_info(names::TASKS_STREAM)
        .await
        .unwrap()
        .get_consumer::<pull::Config>("worker-doc-writer")
        .await
        .expect("its own consumer");
    let mut batch = consumer
        .fetch()
        .max_messages(1)
        .expires(Duration::from_secs(10))
        .messages()
        .await
        .unwrap();
    let msg = batch.next().await.expect("a task").expect("a message");
    let held_seq = msg.info().unwrap().stream_sequence;
    let ticket = msg
        .headers
        .as_ref()
        .and_then(|h| h.get(names::TASK_TICKET_HEADER))
        .expect("the bridge stamps a ticket on each task")
        .as_str()
        .to_owned();
    assert!(String::from_utf8_lossy(&msg.payload).contains(&held.to_string()));

    // Its own user reads no task message (that is how the devops prompt leaked), and writes
    // no event or record of any task.
    worker
        .publish_refused(
            &format!("$JS.API.STREAM.MSG.GET.{}", names::TASKS_STREAM),
            &json!({"last_by_subj": format!("openclaw.tasks.devops.{devops}")}).to_string(),
        )
        .await;
    worker
        .publish_refused(
            &format!(
                "$JS.API.DIRECT.GET.{}.openclaw.tasks.devops.{devops}",
                names::TASKS_STREAM
            ),
            "",
        )
        .await;
    worker
        .publish_refused(
            &names::event_subject(&devops),
            &json!({"kind": "completed"}).to_string(),
        )
        .await;
    worker
        .publish_refused(&format!("$KV.openclaw_tasks.{devops}"), "{}")
        .await;
    worker.publish_refused(&record_get(&held), "").await;
    worker
        .publish_refused(&format!("$JS.API.STREAM.INFO.{}", names::TASKS_STREAM), "")
        .await;
    worker.subscribe_refused("_INBOX.>").await;

    // The ticket gets a user for the held task, and that user reads the held task's record
    // (which the callout made sure exists) ...
    let task_user = names::task_user(held_seq);
    let mut task = connect_watched(&app.nats, &task_user, &ticket)
        .await
        .expect("the ticket signs in");
    let record = task.request(&record_get(&held), "").await;
    let record: serde_json::Value = serde_json::from_slice(&record.payload).unwrap();
    assert_eq!(record["id"], held.to_string());
    assert_eq!(record["seq"], held_seq);
    // ... and nothing of any other task: not its record, its events or its message.
    task.publish_refused(&record_get(&victim), "").await;
    task.publish_refused(&record_get(&devops), "").await;
    task.publish_refused(
        &format!(
            "$JS.API.DIRECT.GET.{}.openclaw.events.{victim}",
            names::EVENTS_STREAM
        ),
        "",
    )
    .await;
    for stream in [
        names::EVENTS_STREAM,
        names::TASKS_STREAM,
        "KV_openclaw_tasks",
    ] {
        task.publish_refused(
            &format!("$JS.API.STREAM.MSG.GET.{stream}"),
            &json!({"seq": 1}).to_string(),
        )
        .await;
    }
    task.publish_refused(
        &format!("$JS.API.DIRECT.GET.{}", names::TASKS_STREAM),
        &json!({"seq": victim_seq}).to_string(),
    )
    .await;
    for other in [&victim, &devops] {
        task.publish_refused(
            &names::event_subject(other),
            &json!({"kind": "completed"}).to_string(),
        )
        .await;
        task.publish_refused(&format!("$KV.openclaw_tasks.{other}"), "{}")
            .await;
    }
    task.publish_refused("openclaw.tasks.doc-writer.x", "{}")
        .await;
    for inbox in ["_INBOX.>", "_INBOX_bridge.>", "_INBOX_worker-doc-writer.>"] {
        task.subscribe_refused(inbox).await;
    }

    // The callout grants nothing for a ticket presented for another message, a wrong ticket,
    // a message without one, or a name that is no task user.
    let refusals = [
        (names::task_user(victim_seq), ticket.clone()),
        (names::task_user(devops_seq), ticket.clone()),
        (task_user.clone(), format!("{ticket}x")),
        (task_user.clone(), String::new()),
        (names::task_user(held_seq + 1_000), ticket.clone()),
        ("task-+1".into(), ticket.clone()),
        ("admin-ish".into(), ticket.clone()),
    ];
    for (user, password) in refusals {
        let refused = connect_watched(&app.nats, &user, &password).await;
        assert!(refused.is_err(), "{user} signed in");
    }

    // What was attacked is as it was: nothing was written about the victim or the devops
    // task (no events; their `queued` is read from their messages), and both are queued.
    for id in [&victim, &devops] {
        let history = app.stores().events.history(id).await.unwrap();
        assert!(history.is_empty(), "{id}: {:?}", kinds(&history));
        assert!(app.stores().status.get(id).await.unwrap().is_none(), "{id}");
        let status = app.status(id).await;
        assert_eq!(status["status"], "queued", "{status}");
    }

    // And a worker under the same rules runs the victim to completion (the attacker still
    // holds its own task, so the consumer hands this worker the next one).
    let nats_env = worker_nats(&app);
    let llm = ScriptedLlm::turns(crate::security::doc_script()).await;
    let (_, events) = openclaw_tests::flow::complete_task(
        &app,
        &llm,
        &victim,
        &openclaw_tests::flow::borrowed(&nats_env),
    )
    .await;
    assert_eq!(kinds(&events).first(), Some(&"queued"));
    let done = events_until_end(&app, &victim).await;
    assert_eq!(kinds(&done).last(), Some(&"completed"));
    drop(msg);
}

/// A secured bridge answering the callout, without dispatch.
pub(crate) async fn secured_app(agents: &[&str]) -> TestApp {
    let nats = NatsServer::start_secured(agents);
    let seed = nats.security.as_ref().unwrap().callout_seed();
    let mut builder =
        TestApp::builder().env("OPENCLAW_NATS_CALLOUT_SEED", seed.display().to_string());
    for (k, v) in nats.client_env(BRIDGE.0, BRIDGE.1) {
        builder = builder.env(&k, v);
    }
    builder.nats(nats).spawn().await
}

/// The worker's NATS settings under the shipped model: its NKey user and the test CA.
fn worker_nats(app: &TestApp) -> Vec<(&'static str, String)> {
    let security = app.nats.security.as_ref().unwrap();
    vec![
        ("NATS_CA", security.ca.display().to_string()),
        (
            "NATS_NKEY_SEED",
            security.worker_seed("doc-writer").display().to_string(),
        ),
    ]
}

#[tokio::test]
async fn a_copy_republished_by_hand_with_its_ticket_runs_as_a_replay_under_its_own_user() {
    let app = secured_app(&["doc-writer"]).await;
    let repo = BareRepo::new();
    let first = app
        .submit(&json!({"repo": repo.file_url(), "prompt": "Document it"}))
        .await;
    let nats_env = worker_nats(&app);
    let llm = ScriptedLlm::turns(crate::security::doc_script()).await;
    openclaw_tests::flow::complete_task(
        &app,
        &llm,
        &first,
        &openclaw_tests::flow::borrowed(&nats_env),
    )
    .await;
    // The per-task user may store the task's diff beside its events.
    let diff = app.get(&format!("/v1/tasks/{first}/diff")).await;
    assert_eq!(diff.status(), 200);
    assert!(diff.text().await.unwrap().contains("+# Usage"));

    // The operator's copy (README, "Viewing and replaying tasks"): the stored body on the
    // same subject, a new message id, and the stored ticket.
    let stream = app.js().get_stream(names::TASKS_STREAM).await.unwrap();
    let stored = stream
        .get_last_raw_message_by_subject(&names::task_subject(
            &openclaw_common::ids::AgentName::parse("doc-writer").unwrap(),
            &first,
        ))
        .await
        .unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", "operator-rerun-1");
    headers.insert(
        names::TASK_TICKET_HEADER,
        stored
            .headers
            .get(names::TASK_TICKET_HEADER)
            .unwrap()
            .as_str(),
    );
    let ack = app
        .js()
        .publish_with_headers(stored.subject.to_string(), headers, stored.payload.clone())
        .await
        .unwrap()
        .await
        .unwrap();
    let copy = app
        .stores()
        .tasks
        .message(ack.sequence)
        .await
        .unwrap()
        .unwrap();
    let replay = TaskId::for_republished(&first, ack.sequence, copy.time);

    let llm = ScriptedLlm::turns(crate::security::doc_script()).await;
    openclaw_tests::flow::complete_task(
        &app,
        &llm,
        &replay,
        &openclaw_tests::flow::borrowed(&nats_env),
    )
    .await;
    assert_eq!(app.status(&replay).await["replay_of"], first.to_string());
    assert_eq!(app.status(&first).await["status"], "completed");
    assert_eq!(
        repo.new_commits(&format!("openclaw/{replay}")).len(),
        1,
        "the replay pushed its own branch"
    );
}
