//! The Kubernetes Job dispatcher against an HTTP server speaking the Kubernetes API: one Job
//! per waiting task, bounded, from the template of the task's agent; more only as Jobs finish.

use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use futures_util::StreamExt;
use openclaw_common::names;
use openclaw_tests::app::TestApp;
use openclaw_tests::eventually;
use openclaw_tests::kube::FakeKubeApi;
use serde_json::{Value, json};

async fn app(kube: &FakeKubeApi, extra: &[(&str, &str)]) -> TestApp {
    builder(TestApp::builder(), kube, extra).spawn().await
}

fn builder(
    b: openclaw_tests::app::TestAppBuilder,
    kube: &FakeKubeApi,
    extra: &[(&str, &str)],
) -> openclaw_tests::app::TestAppBuilder {
    let mut b = b
        .env("OPENCLAW_DISPATCH", "kubernetes")
        .env("OPENCLAW_KUBE_API_URL", kube.url.clone())
        .env("OPENCLAW_KUBE_NAMESPACE", "agents")
        .env("OPENCLAW_DISPATCH_POLL_SECS", "0.2");
    for (k, v) in extra {
        b = b.env(k, *v);
    }
    b
}

async fn jobs_eventually(kube: &FakeKubeApi, n: usize) -> Vec<Value> {
    eventually(20, &format!("{n} jobs"), || async {
        let jobs = kube.jobs();
        (jobs.len() == n).then_some(jobs)
    })
    .await
}

/// Takes one task off the agent's consumer and acknowledges it, as a worker does.
async fn work_one(app: &TestApp, agent: &str) {
    take_one(app, agent).await.double_ack().await.unwrap();
}

/// Takes one task off the agent's consumer, as a worker does, without acknowledging it.
async fn take_one(app: &TestApp, agent: &str) -> async_nats::jetstream::Message {
    let stream = app.js().get_stream(names::TASKS_STREAM).await.unwrap();
    let consumer = stream
        .get_consumer::<pull::Config>(&format!("worker-{agent}"))
        .await
        .unwrap();
    let mut batch = consumer
        .fetch()
        .max_messages(1)
        .expires(Duration::from_secs(5))
        .messages()
        .await
        .unwrap();
    batch.next().await.expect("a task").unwrap()
}

#[tokio::test]
async fn one_job_per_waiting_task_bounded_and_more_only_as_jobs_finish() {
    let kube = FakeKubeApi::start().await;
    let app = app(
        &kube,
        &[
            ("OPENCLAW_MAX_JOBS", "2"),
            (
                "OPENCLAW_WORKER_IMAGE",
                "registry.example/openclaw-worker:test",
            ),
        ],
    )
    .await;
    let body = json!({"repo": "https://example.com/o/r.git", "prompt": "p"});
    for _ in 0..3 {
        app.submit(&body).await;
    }
    let jobs = jobs_eventually(&kube, 2).await;
    // Two more passes of the dispatcher saw the third task and started nothing.
    kube.passes(2).await;
    assert_eq!(kube.jobs().len(), 2, "bounded by OPENCLAW_MAX_JOBS");

    let job = &jobs[0];
    assert_eq!(job["metadata"]["namespace"], "agents");
    assert!(
        job["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("openclaw-worker-doc-writer-")
    );
    assert_eq!(
        job["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "openclaw-bridge"
    );
    assert_eq!(
        job["metadata"]["labels"]["openclaw.dev/agent"],
        "doc-writer"
    );
    assert_eq!(job["spec"]["backoffLimit"], 0);
    assert!(job["spec"]["ttlSecondsAfterFinished"].as_i64().unwrap() > 0);
    assert!(job["spec"]["activeDeadlineSeconds"].as_i64().unwrap() > 0);
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["nodeSelector"]["kubernetes.io/arch"], "arm64");
    assert_eq!(pod["nodeSelector"]["karpenter.sh/capacity-type"], "spot");
    assert_eq!(pod["tolerations"][0]["key"], "openclaw.dev/worker");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["restartPolicy"], "Never");
    let container = &pod["containers"][0];
    assert_eq!(container["image"], "registry.example/openclaw-worker:test");
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    let env: Vec<(String, String)> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["value"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(
        env.contains(&("OPENCLAW_AGENT".into(), "doc-writer".into())),
        "{env:?}"
    );
    assert!(
        env.contains(&("NATS_URL".into(), app.nats.url())),
        "{env:?}"
    );

    // Two workers do their tasks and their Jobs complete: one more Job for the last task.
    work_one(&app, "doc-writer").await;
    work_one(&app, "doc-writer").await;
    for j in &jobs {
        kube.finish(j["metadata"]["name"].as_str().unwrap(), "Complete");
    }
    let jobs = jobs_eventually(&kube, 3).await;
    work_one(&app, "doc-writer").await;
    kube.finish(jobs[2]["metadata"]["name"].as_str().unwrap(), "Complete");
    kube.passes(2).await;
    assert_eq!(kube.jobs().len(), 3, "nothing waits, so no more Jobs");
}

#[tokio::test]
async fn each_agent_gets_its_own_template() {
    let kube = FakeKubeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut template: Value = serde_json::from_str(
        &std::fs::read_to_string(
            openclaw_tests::workspace_root().join("deploy/base/job-templates/default.json"),
        )
        .unwrap(),
    )
    .unwrap();
    std::fs::write(dir.path().join("default.json"), template.to_string()).unwrap();
    template["spec"]["template"]["spec"]["containers"][0]["image"] =
        json!("registry.example/openclaw-worker-devops:1");
    template["spec"]["template"]["spec"]["serviceAccountName"] = json!("openclaw-devops-readonly");
    std::fs::write(dir.path().join("devops.json"), template.to_string()).unwrap();
    let app = app(
        &kube,
        &[("OPENCLAW_JOB_TEMPLATES", dir.path().to_str().unwrap())],
    )
    .await;

    app.submit(&json!({"agent": "devops", "prompt": "what runs?"}))
        .await;
    let jobs = jobs_eventually(&kube, 1).await;
    let pod = &jobs[0]["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["image"],
        "registry.example/openclaw-worker-devops:1"
    );
    assert_eq!(pod["serviceAccountName"], "openclaw-devops-readonly");
    assert_eq!(
        jobs[0]["metadata"]["labels"]["openclaw.dev/agent"],
        "devops"
    );

    app.submit_example().await;
    let jobs = jobs_eventually(&kube, 2).await;
    let doc = jobs
        .iter()
        .find(|j| j["metadata"]["labels"]["openclaw.dev/agent"] == "doc-writer")
        .unwrap();
    assert_eq!(
        doc["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/openclaw/openclaw-worker:0.1.0"
    );
}

#[tokio::test]
async fn the_install_sets_the_worker_images_in_one_place_each() {
    let kube = FakeKubeApi::start().await;
    let templates = openclaw_tests::workspace_root().join("deploy/base/job-templates");
    let app = app(
        &kube,
        &[
            ("OPENCLAW_JOB_TEMPLATES", templates.to_str().unwrap()),
            (
                "OPENCLAW_WORKER_IMAGE",
                "123.dkr.ecr.example/openclaw-worker:2",
            ),
            (
                "OPENCLAW_WORKER_IMAGE_DEVOPS",
                "123.dkr.ecr.example/openclaw-worker-devops:2",
            ),
        ],
    )
    .await;
    app.submit(&json!({"agent": "devops", "prompt": "what runs?"}))
        .await;
    app.submit_example().await;
    let jobs = jobs_eventually(&kube, 2).await;
    let image_of = |agent: &str| {
        jobs.iter()
            .find(|j| j["metadata"]["labels"]["openclaw.dev/agent"] == agent)
            .unwrap()["spec"]["template"]["spec"]["containers"][0]["image"]
            .clone()
    };
    assert_eq!(
        image_of("doc-writer"),
        "123.dkr.ecr.example/openclaw-worker:2"
    );
    assert_eq!(
        image_of("devops"),
        "123.dkr.ecr.example/openclaw-worker-devops:2"
    );
}

#[tokio::test]
async fn a_task_orphaned_by_a_lost_pod_gets_one_waiting_job() {
    let kube = FakeKubeApi::start().await;
    let app = app(&kube, &[("OPENCLAW_ACK_WAIT_SECS", "30")]).await;
    app.submit_example().await;
    let jobs = jobs_eventually(&kube, 1).await;
    // The worker takes the task, then its node vanishes: no ack, the Job fails.
    let _held = take_one(&app, "doc-writer").await;
    kube.finish(jobs[0]["metadata"]["name"].as_str().unwrap(), "Failed");

    // One Job waits for the redelivery (ack_wait + margin), and no more are started meanwhile.
    let jobs = jobs_eventually(&kube, 2).await;
    let env = &jobs[1]["spec"]["template"]["spec"]["containers"][0]["env"];
    let wait = env
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "OPENCLAW_FETCH_WAIT_SECS")
        .expect("a fetch wait");
    assert_eq!(wait["value"], "32");
    kube.passes(2).await;
    assert_eq!(kube.jobs().len(), 2, "one waiting Job covers the wait");
}

#[tokio::test]
async fn only_the_lease_holder_dispatches_and_a_standby_takes_over() {
    let kube = FakeKubeApi::start().await;
    // The server outlives both bridges.
    let nats = openclaw_tests::nats::NatsServer::start();
    let first = builder(
        TestApp::builder().nats(nats.alias()),
        &kube,
        &[("OPENCLAW_INSTANCE_ID", "bridge-a")],
    )
    .spawn()
    .await;
    let second = builder(
        TestApp::builder().nats(nats.alias()),
        &kube,
        &[("OPENCLAW_INSTANCE_ID", "bridge-b")],
    )
    .spawn()
    .await;
    let body = json!({"repo": "https://example.com/o/r.git", "prompt": "p"});
    for _ in 0..3 {
        first.submit(&body).await;
    }
    jobs_eventually(&kube, 3).await;
    kube.passes(2).await;
    assert_eq!(kube.jobs().len(), 3, "two bridges, but one Job per task");
    let started = |app: &TestApp| {
        let url = format!("{}/metrics", app.base);
        let http = app.http.clone();
        async move {
            let text = http.get(url).send().await.unwrap().text().await.unwrap();
            text.lines()
                .find(|l| l.starts_with("openclaw_workers_started_total{agent=\"doc-writer\"}"))
                .map(|l| l.rsplit(' ').next().unwrap().to_owned())
        }
    };
    assert_eq!(
        started(&first).await.as_deref(),
        Some("3"),
        "the holder created them all"
    );
    assert_eq!(started(&second).await, None, "the standby created none");

    // The holder shuts down and gives the lease up; the standby dispatches from then on.
    first.shutdown().await;
    second.submit(&body).await;
    jobs_eventually(&kube, 4).await;
    assert_eq!(started(&second).await.as_deref(), Some("1"));
}

/// The `waiting` reasons of a task, in order.
async fn waiting_reasons(app: &TestApp, id: &openclaw_common::ids::TaskId) -> Vec<String> {
    app.stores()
        .events
        .history(id)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.kind {
            openclaw_common::event::EventKind::Waiting { reason } => Some(reason),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_pod_that_cannot_start_is_the_tasks_waiting_reason() {
    let kube = FakeKubeApi::start().await;
    let app = app(&kube, &[]).await;
    let id = app.submit_example().await;
    let job = jobs_eventually(&kube, 1).await[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();

    // No ARM64 spot capacity: the scheduler's condition, as the API server reports it.
    let unschedulable =
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.";
    kube.set_pod(
        &job,
        json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
               "reason": "Unschedulable", "message": unschedulable}]}),
    );
    let want = format!("no node for the worker pod: {unschedulable}");
    eventually(10, "the unschedulable reason", || async {
        let status = app.status(&id).await;
        (status["waiting_reason"] == want.as_str()).then_some(())
    })
    .await;

    // Then scheduled, but its image cannot be pulled.
    kube.set_pod(
        &job,
        json!({"phase": "Pending", "containerStatuses": [{"name": "worker", "ready": false,
               "restartCount": 0, "image": "ghcr.io/openclaw/openclaw-worker:0.1.0", "imageID": "",
               "state": {"waiting": {"reason": "ImagePullBackOff",
                         "message": "Back-off pulling image \"ghcr.io/openclaw/openclaw-worker:0.1.0\""}}}]}),
    );
    eventually(10, "the image reason", || async {
        let reason = app.status(&id).await["waiting_reason"]
            .as_str()
            .map(str::to_owned)?;
        reason
            .starts_with("image ghcr.io/openclaw/openclaw-worker:0.1.0 cannot be pulled")
            .then_some(())
    })
    .await;
    let reasons = waiting_reasons(&app, &id).await;
    assert_eq!(reasons.len(), 2, "one event per change: {reasons:?}");
    assert_eq!(reasons[0], want);
    assert_eq!(kube.jobs().len(), 1, "a pending Job is not replaced");
    let ready: Value = app.get("/ready").await.json().await.unwrap();
    assert_eq!(ready["dispatch"], "degraded");
    let scrape = app.get("/metrics").await.text().await.unwrap();
    for label in ["unschedulable", "image"] {
        assert!(
            scrape.contains(&format!(
                "openclaw_worker_start_failures_total{{agent=\"doc-writer\",reason=\"{label}\"}} 1"
            )),
            "{scrape}"
        );
    }
}

#[tokio::test]
async fn a_worker_pod_that_exits_at_start_backs_off_with_its_termination_message() {
    let kube = FakeKubeApi::start().await;
    let app = app(&kube, &[]).await;
    let id = app.submit_example().await;
    let message = "invalid configuration: NATS_USER and NATS_PASSWORD go together";
    let fail = |job: &str| {
        kube.set_pod(
            job,
            json!({"phase": "Failed", "containerStatuses": [{"name": "worker", "ready": false,
                   "restartCount": 0, "image": "w", "imageID": "",
                   "state": {"terminated": {"exitCode": 2, "reason": "Error", "message": message}}}]}),
        );
        kube.finish(job, "Failed");
    };
    let first = jobs_eventually(&kube, 1).await[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    fail(&first);
    let want = format!("workers for doc-writer exit at start: {message}");
    eventually(10, "the worker's words on the task", || async {
        (app.status(&id).await["waiting_reason"] == want.as_str()).then_some(())
    })
    .await;
    // The next Job comes after a pause, not at the next poll (every 0.2 s).
    let second = jobs_eventually(&kube, 2).await[1]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    fail(&second);
    // Five passes (polling every 0.2 s) inside the 2 s pause start nothing.
    kube.passes(5).await;
    assert_eq!(
        kube.jobs().len(),
        2,
        "backing off (2 s after the second failure)"
    );
    jobs_eventually(&kube, 3).await;
    assert_eq!(waiting_reasons(&app, &id).await, [want]);
}

#[tokio::test]
async fn a_bridge_that_may_not_create_jobs_says_so_on_the_task() {
    let kube = FakeKubeApi::start().await;
    kube.refuse_jobs(true);
    let app = app(&kube, &[]).await;
    let id = app.submit_example().await;
    let reason = app.waiting_reason(&id, 10).await;
    assert!(
        reason.starts_with("the bridge may not create Jobs:") && reason.contains("forbidden"),
        "{reason}"
    );
    // Once allowed, the Job comes and the reason is cleared by the worker that starts.
    kube.refuse_jobs(false);
    jobs_eventually(&kube, 1).await;
}

#[tokio::test]
async fn a_bridge_without_the_kubernetes_api_tells_the_tasks() {
    let app = TestApp::builder()
        .env("OPENCLAW_DISPATCH", "kubernetes")
        .env(
            "OPENCLAW_KUBE_API_URL",
            format!("http://127.0.0.1:{}", openclaw_tests::free_port()),
        )
        .env("OPENCLAW_KUBE_NAMESPACE", "agents")
        .env("OPENCLAW_DISPATCH_POLL_SECS", "0.2")
        .spawn()
        .await;
    let id = app.submit_example().await;
    let reason = app.waiting_reason(&id, 15).await;
    assert!(
        reason.starts_with("the bridge cannot read its worker Jobs")
            || reason.starts_with("the bridge cannot reach the Kubernetes API"),
        "{reason}"
    );
}
