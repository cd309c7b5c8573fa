//! A three-node JetStream cluster (R3 streams and buckets) losing a node while tasks flow:
//! submits every few hundred milliseconds, a worker per task, an SSE client following each
//! task, the status of every task and `/ready` polled throughout. Then, for every submit that
//! got a 202: it completed once, with one commit; its SSE client saw events 1..n with no gap
//! and no repeat across its reconnects; its status never went backwards. Every submit got a
//! 202 or a 503, none hung; `/ready` never hung and is ready again at the end.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use openclaw_common::event::{EventKind, TaskEvent};
use openclaw_common::ids::TaskId;
use openclaw_common::names;
use openclaw_tests::app::TestApp;
use openclaw_tests::git::BareRepo;
use openclaw_tests::llm::ScriptedLlm;
use openclaw_tests::nats::NatsCluster;
use openclaw_tests::sse::SseReader;
use serde_json::json;
use tokio::sync::watch;

use openclaw_tests::flow::{doc_script, local_dispatch};

/// What happens to the cluster while tasks flow.
#[derive(Debug, Clone, Copy)]
enum Disruption {
    /// SIGKILL the node leading this stream, wait, start it again.
    KillLeaderOf(&'static str),
    /// SIGKILL a node leading neither the tasks nor the events stream.
    KillFollower,
    /// Restart every node in turn, each once the cluster has its streams back.
    RollingRestart,
}

/// Longest a submit or a `/ready` may take, outage or not: the bridge's retries are bounded
/// well under this, then it answers 503.
const NEVER_HANGS: Duration = Duration::from_secs(15);

/// One submit's outcome as the client saw it.
struct Submitted {
    status: u16,
    took: Duration,
    id: Option<TaskId>,
}

/// Order of states: a status may only move forward in it.
fn rank(state: &str) -> u8 {
    match state {
        "queued" => 0,
        "running" => 1,
        _ => 2,
    }
}

/// Follows `id`'s events to its end, reconnecting with `Last-Event-ID` whenever the stream
/// breaks or the bridge answers 503; asserts every event arrives once, in order.
async fn follow(
    http: reqwest::Client,
    base: String,
    token: String,
    id: TaskId,
    ended: Arc<AtomicUsize>,
) -> Followed {
    let mut seen: Vec<TaskEvent> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        assert!(Instant::now() < deadline, "task {id} did not end: {seen:?}");
        let mut req = http
            .get(format!("{base}/v1/tasks/{id}/events"))
            .bearer_auth(&token);
        if let Some(last) = seen.last() {
            req = req.header("Last-Event-ID", last.seq.to_string());
        }
        let response = match req.send().await {
            Ok(r) if r.status() == 200 => r,
            _ => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut sse = SseReader::new(response);
        while let Ok(Some(frame)) = sse.try_next().await {
            let event: TaskEvent = serde_json::from_str(&frame.data).expect("event JSON");
            let expected = seen.last().map_or(1, |e| e.seq + 1);
            assert_eq!(
                event.seq,
                expected,
                "task {id}: event {} after {:?} (a gap or a repeat)",
                event.seq,
                seen.iter().map(|e| e.seq).collect::<Vec<_>>()
            );
            let end = event.kind.is_terminal();
            seen.push(event);
            if end {
                ended.fetch_add(1, Ordering::SeqCst);
                return (seen, Instant::now());
            }
        }
    }
}

/// A task's events as its SSE client saw them, and when it saw the end.
type Followed = (Vec<TaskEvent>, Instant);

/// Everything the clients saw, gathered while the cluster is disrupted.
struct Observed {
    submits: Vec<Submitted>,
    /// Each accepted task's follower: its events, and when it saw the end.
    followers: Vec<(TaskId, tokio::task::JoinHandle<Followed>)>,
    /// When submits stopped.
    stopped_at: Instant,
    /// Status answers per task, in the order received.
    statuses: HashMap<TaskId, Vec<String>>,
    /// `/ready` answers: status and time taken.
    ready: Vec<(u16, Duration)>,
}

async fn run(disruption: Disruption) {
    let llm = ScriptedLlm::turns(doc_script()).await;
    let cluster = NatsCluster::start().await;
    let mut app = local_dispatch(
        TestApp::builder().token("cluster-token").cluster(cluster),
        &llm,
        &[
            ("OPENCLAW_MAX_WORKERS", "4"),
            // Tasks come faster than the default cap of 30 worker starts a minute.
            ("OPENCLAW_MAX_STARTS_PER_MINUTE", "1000"),
            // A worker that lost NATS for longer than its retries gives its task back when it
            // can, else JetStream redelivers it after ack_wait (5 minutes by default): short
            // here, so such a task shows up within the test.
            ("OPENCLAW_ACK_WAIT_SECS", "15"),
        ],
    )
    .spawn()
    .await;
    let repo = BareRepo::new();
    let (stop, stopped) = watch::channel(false);
    let http = reqwest::Client::builder()
        .timeout(NEVER_HANGS + Duration::from_secs(30))
        .build()
        .unwrap();
    let base = app.base.clone();
    let token = "cluster-token".to_owned();
    // Submits accepted, and tasks whose SSE client saw the end: what paces the disruption
    // (no fixed sleeps).
    let accepted = Arc::new(AtomicUsize::new(0));
    let ended = Arc::new(AtomicUsize::new(0));

    // Submits, each followed by its own SSE client.
    let submitter = {
        let (http, base, token, repo_url) =
            (http.clone(), base.clone(), token.clone(), repo.file_url());
        let mut stopped = stopped.clone();
        let (accepted, ended) = (accepted.clone(), ended.clone());
        tokio::spawn(async move {
            let mut submits = Vec::new();
            let mut followers = Vec::new();
            let mut n = 0;
            while !*stopped.borrow() {
                n += 1;
                let started = Instant::now();
                let r = http
                    .post(format!("{base}/v1/tasks"))
                    .bearer_auth(&token)
                    .json(&json!({"repo": repo_url, "prompt": format!("Document it ({n})")}))
                    .send()
                    .await
                    .expect("a submit is answered");
                let status = r.status().as_u16();
                let body: serde_json::Value = r.json().await.unwrap_or_default();
                let id = body["id"].as_str().map(|s| TaskId::parse(s).unwrap());
                if let (202, Some(id)) = (status, id) {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let follower = tokio::spawn(follow(
                        http.clone(),
                        base.clone(),
                        token.clone(),
                        id,
                        ended.clone(),
                    ));
                    followers.push((id, follower));
                }
                submits.push(Submitted {
                    status,
                    took: started.elapsed(),
                    id,
                });
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(250)) => {}
                    _ = stopped.changed() => {}
                }
            }
            (submits, followers)
        })
    };
    // Polls the status of every task it has heard of, and `/ready`.
    let poller = {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        let stopped = stopped.clone();
        tokio::spawn(async move {
            let mut statuses: HashMap<TaskId, Vec<String>> = HashMap::new();
            let mut ready = Vec::new();
            while !*stopped.borrow() {
                let started = Instant::now();
                let r = http.get(format!("{base}/ready")).send().await;
                ready.push((r.map_or(0, |r| r.status().as_u16()), started.elapsed()));
                let listed = http
                    .get(format!("{base}/v1/tasks?limit=500"))
                    .bearer_auth(&token)
                    .send()
                    .await;
                if let Ok(r) = listed
                    && r.status() == 200
                    && let Ok(body) = r.json::<serde_json::Value>().await
                {
                    for task in body["tasks"].as_array().into_iter().flatten() {
                        let id = TaskId::parse(task["id"].as_str().unwrap()).unwrap();
                        let state = task["status"].as_str().unwrap().to_owned();
                        let history = statuses.entry(id).or_default();
                        if history.last() != Some(&state) {
                            history.push(state);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (statuses, ready)
        })
    };

    // Tasks flow before, during and after the disruption: each phase lasts until `n` tasks
    // were seen to end in it and `n + 1` more submits were accepted.
    let ends_seen = |n: usize, phase: &'static str| {
        let (accepted, ended) = (accepted.clone(), ended.clone());
        async move {
            let ends = ended.load(Ordering::SeqCst) + n;
            let submits = accepted.load(Ordering::SeqCst) + n + 1;
            openclaw_tests::eventually(180, phase, || {
                let (accepted, ended) = (accepted.clone(), ended.clone());
                async move {
                    (ended.load(Ordering::SeqCst) >= ends
                        && accepted.load(Ordering::SeqCst) >= submits)
                        .then_some(())
                }
            })
            .await;
        }
    };
    ends_seen(3, "three tasks to end before the disruption").await;
    let js = app.js().clone();
    let cluster = app.cluster.as_mut().unwrap();
    match disruption {
        Disruption::KillLeaderOf(stream) => {
            let leader = cluster.leader_of(&js, stream).await;
            cluster.kill(leader);
            ends_seen(2, "two tasks to end with the leader gone").await;
            cluster.restart(leader);
        }
        Disruption::KillFollower => {
            let tasks = cluster.leader_of(&js, names::TASKS_STREAM).await;
            let events = cluster.leader_of(&js, names::EVENTS_STREAM).await;
            let follower = (0..3).find(|i| *i != tasks && *i != events).unwrap();
            cluster.kill(follower);
            ends_seen(2, "two tasks to end with a follower gone").await;
            cluster.restart(follower);
        }
        Disruption::RollingRestart => {
            for node in 0..3 {
                cluster.kill(node);
                ends_seen(1, "a task to end with a node restarting").await;
                cluster.restart(node);
                // As a rollout waits for the pod to be ready.
                cluster_ready(cluster, &js).await;
            }
        }
    }
    cluster_ready(cluster, &js).await;
    ends_seen(2, "two tasks to end with the cluster whole again").await;
    stop.send(true).unwrap();
    let stopped_at = Instant::now();
    let (submits, followers) = submitter.await.unwrap();
    let (statuses, ready) = poller.await.unwrap();
    check(
        &app,
        &repo,
        Observed {
            submits,
            followers,
            stopped_at,
            statuses,
            ready,
        },
        disruption,
    )
    .await;
}

/// Waits until the cluster answers JetStream requests and every stream and bucket has a
/// leader: what a rollout waits for before it restarts the next node.
async fn cluster_ready(cluster: &NatsCluster, js: &async_nats::jetstream::Context) {
    cluster.wait_for_jetstream().await;
    for stream in [names::TASKS_STREAM, names::EVENTS_STREAM]
        .into_iter()
        .map(str::to_owned)
        .chain(
            [
                names::STATUS_BUCKET,
                names::SESSIONS_BUCKET,
                names::LEASES_BUCKET,
                names::DELIVERIES_BUCKET,
            ]
            .map(|b| format!("KV_{b}")),
        )
    {
        cluster.leader_of(js, &stream).await;
    }
}

async fn check(app: &TestApp, repo: &BareRepo, seen: Observed, disruption: Disruption) {
    let accepted = seen.submits.iter().filter(|s| s.status == 202).count();
    let refused = seen.submits.len() - accepted;
    eprintln!(
        "{disruption:?}: {} submits, {accepted} accepted, {refused} refused; slowest {:?}; /ready answers {:?}",
        seen.submits.len(),
        seen.submits.iter().map(|s| s.took).max(),
        seen.ready
            .iter()
            .fold(BTreeMap::<u16, usize>::new(), |mut m, (s, _)| {
                *m.entry(*s).or_default() += 1;
                m
            }),
    );
    assert!(accepted >= 10, "too few tasks got through to test anything");
    for s in &seen.submits {
        assert!(
            s.status == 202 || s.status == 503,
            "a submit got {} ({:?})",
            s.status,
            s.id
        );
        assert!(s.took < NEVER_HANGS, "a submit took {:?}", s.took);
    }
    for (status, took) in &seen.ready {
        assert!(
            *took < NEVER_HANGS,
            "/ready took {took:?} (answered {status})"
        );
    }
    // Every accepted task ran to completion once, with one commit, seen gaplessly.
    let mut last_end = seen.stopped_at;
    let mut took = Vec::new();
    for (id, follower) in seen.followers {
        let (events, ended) = follower
            .await
            .expect("the follower checks order as it goes");
        last_end = last_end.max(ended);
        if let (Some(first), Some(last)) = (events.first(), events.last()) {
            let started = events
                .iter()
                .find(|e| e.kind.name() == "started")
                .map_or(first.ts, |e| e.ts);
            took.push((
                (started - first.ts).as_seconds_f64(),
                (last.ts - started).as_seconds_f64(),
            ));
        }
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
        assert_eq!(kinds.first(), Some(&"queued"), "{id}: {kinds:?}");
        assert!(
            matches!(
                events.last().map(|e| &e.kind),
                Some(EventKind::Completed { .. })
            ),
            "{id} did not complete: {kinds:?}"
        );
        assert_eq!(
            kinds.iter().filter(|k| **k == "completed").count(),
            1,
            "{id}: {kinds:?}"
        );
        let commits = repo.new_commits(&format!("openclaw/{id}"));
        assert_eq!(commits.len(), 1, "{id}: {commits:?}");
        // The status follows the events: at once, or (when the store stopped answering
        // between the two) once the task's redelivery records it.
        openclaw_tests::eventually(60, "the status to say completed", || async {
            (app.status(&id).await["status"] == "completed").then_some(())
        })
        .await;
    }
    took.sort_by(|a, b| a.1.total_cmp(&b.1));
    eprintln!(
        "{disruption:?}: the last task ended {:?} after submits stopped; (waited, ran) s: {took:?}",
        last_end - seen.stopped_at
    );
    for (id, history) in &seen.statuses {
        assert!(
            history.windows(2).all(|w| rank(&w[0]) < rank(&w[1])),
            "the status of {id} went backwards: {history:?}"
        );
    }
    // Ready again at the end.
    let r = app.get("/ready").await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_tasks_stream_leader_loses_no_task() {
    run(Disruption::KillLeaderOf(names::TASKS_STREAM)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_events_stream_leader_loses_no_event() {
    run(Disruption::KillLeaderOf(names::EVENTS_STREAM)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_a_follower_changes_nothing() {
    run(Disruption::KillFollower).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_all_three_loses_nothing() {
    run(Disruption::RollingRestart).await;
}

/// Connects as the binaries do with `NATS_URL = nats_url`, kills the server the client is on,
/// and checks that it moves to another, names it, and works through it.
async fn moves_when_its_server_dies(mut cluster: NatsCluster, nats_url: String) {
    let env: HashMap<String, String> = [("NATS_URL".to_owned(), nats_url)].into();
    let config =
        openclaw_common::config::NatsConfig::from_env(&openclaw_common::config::EnvReader(&env))
            .unwrap();
    let client = openclaw_common::store::connect(&config, "cluster-test", "test", false)
        .await
        .unwrap();
    let server_of = |name: &str| name.split(' ').next().unwrap().to_owned();
    let first = openclaw_tests::eventually(10, "a server", || async {
        openclaw_common::store::connected_server(&client)
    })
    .await;
    let node: usize = server_of(&first)[1..].parse().unwrap();
    cluster.kill(node);
    let second = openclaw_tests::eventually(30, "another server", || async {
        openclaw_common::store::connected_server(&client).filter(|s| *s != first)
    })
    .await;
    assert_ne!(server_of(&second), server_of(&first), "{first} -> {second}");
    // Core NATS works through the new server (JetStream may still be electing a leader).
    let mut echo = client.subscribe("cluster-test.echo").await.unwrap();
    client
        .publish("cluster-test.echo", "over the new server".into())
        .await
        .unwrap();
    let got = openclaw_tests::within(10, "the echo", echo.next())
        .await
        .unwrap();
    assert_eq!(&got.payload[..], b"over the new server");
}

#[tokio::test]
async fn a_client_given_every_server_moves_to_another_when_its_own_dies() {
    let cluster = NatsCluster::start().await;
    // As an operator writes the list: commas and spaces.
    let url = cluster.url().replace(',', ", ");
    moves_when_its_server_dies(cluster, url).await;
}

#[tokio::test]
async fn a_client_given_one_server_learns_the_others_from_the_cluster() {
    let cluster = NatsCluster::start().await;
    let url = cluster.nodes[0].url();
    moves_when_its_server_dies(cluster, url).await;
}
