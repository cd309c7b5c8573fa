//! A small Kubernetes API server for the Job dispatcher's tests (no cluster can run here):
//! list and create `batch/v1` Jobs in any namespace, with names, uids and resource versions
//! filled in as the real server does, label selectors honoured, and conditions set by tests;
//! list their pods, whose status (scheduling, image pulls, exits) tests set as the kubelet
//! reports it; refuse Job creation with 403 as RBAC does.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

#[derive(Default)]
struct Store {
    jobs: Vec<Value>,
    pods: Vec<Value>,
    version: u64,
    /// How many times Jobs were listed: each dispatcher pass lists them once.
    job_lists: u64,
    /// When set, creating a Job answers 403 as an API server does to a service account whose
    /// Role lacks `create` on jobs.
    refuse_jobs: bool,
}

pub struct FakeKubeApi {
    pub url: String,
    store: Arc<Mutex<Store>>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeKubeApi {
    pub async fn start() -> Self {
        let store = Arc::new(Mutex::new(Store::default()));
        let app = axum::Router::new()
            .route(
                "/apis/batch/v1/namespaces/{ns}/jobs",
                get(list).post(create),
            )
            .route("/api/v1/namespaces/{ns}/pods", get(list_pods))
            .fallback(|| async { status(StatusCode::NOT_FOUND, "NotFound", "no such resource") })
            .with_state(store.clone());
        let (url, server) = crate::serve(app).await;
        Self { url, store, server }
    }

    /// Waits until the dispatcher has looked at the Jobs `passes` more times from now: what
    /// a test that proves "no more Jobs" waits on, instead of sleeping.
    pub async fn passes(&self, passes: u64) {
        let from = self.store.lock().expect("store").job_lists;
        crate::eventually(20, "more dispatcher passes", || async {
            (self.store.lock().expect("store").job_lists >= from + passes).then_some(())
        })
        .await;
    }

    /// Every Job created so far.
    pub fn jobs(&self) -> Vec<Value> {
        self.store.lock().expect("store").jobs.clone()
    }

    /// Makes Job creation answer 403 Forbidden (or work again).
    pub fn refuse_jobs(&self, refuse: bool) {
        self.store.lock().expect("store").refuse_jobs = refuse;
    }

    /// Gives Job `job` a pod with `status` (as the Job controller and the kubelet would),
    /// labelled like the Job's pod template.
    pub fn set_pod(&self, job: &str, status: Value) {
        let mut store = self.store.lock().expect("store");
        store.version += 1;
        let version = store.version.to_string();
        let job_value = store
            .jobs
            .iter()
            .find(|j| j["metadata"]["name"] == job)
            .unwrap_or_else(|| panic!("no job {job}"))
            .clone();
        let mut labels = job_value["spec"]["template"]["metadata"]["labels"].clone();
        labels["job-name"] = json!(job);
        let name = format!("{job}-pod");
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": job_value["metadata"]["namespace"],
                         "labels": labels, "uid": uuid::Uuid::now_v7().to_string(),
                         "resourceVersion": version},
            "spec": job_value["spec"]["template"]["spec"],
            "status": status,
        });
        store
            .pods
            .retain(|p| p["metadata"]["name"] != name.as_str());
        store.pods.push(pod);
    }

    /// Marks the Job finished, as the Job controller does when its pod ends.
    pub fn finish(&self, name: &str, condition: &str) {
        let mut store = self.store.lock().expect("store");
        store.version += 1;
        let version = store.version.to_string();
        let job = store
            .jobs
            .iter_mut()
            .find(|j| j["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no job {name}"));
        job["metadata"]["resourceVersion"] = json!(version);
        job["status"] = json!({"conditions": [{"type": condition, "status": "True"}],
                               "completionTime": "2026-11-25T00:00:00Z"});
    }
}

impl Drop for FakeKubeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    (
        code,
        Json(
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "reason": reason, "message": message, "code": code.as_u16()}),
        ),
    )
        .into_response()
}

fn matches(job: &Value, selector: &str) -> bool {
    selector
        .split(',')
        .filter(|t| !t.is_empty())
        .all(|term| match term.split_once('=') {
            Some((k, v)) => job["metadata"]["labels"][k] == v,
            None => !job["metadata"]["labels"][term].is_null(),
        })
}

async fn list(
    State(store): State<Arc<Mutex<Store>>>,
    Path(ns): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let mut store = store.lock().expect("store");
    store.job_lists += 1;
    listing(&store.jobs, store.version, &ns, &q, "batch/v1", "JobList")
}

async fn list_pods(
    State(store): State<Arc<Mutex<Store>>>,
    Path(ns): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let store = store.lock().expect("store");
    listing(&store.pods, store.version, &ns, &q, "v1", "PodList")
}

/// The objects of namespace `ns` that the query's label selector selects, as a list.
fn listing(
    objects: &[Value],
    version: u64,
    ns: &str,
    q: &std::collections::HashMap<String, String>,
    api_version: &str,
    kind: &str,
) -> Response {
    let selector = q.get("labelSelector").cloned().unwrap_or_default();
    let items: Vec<Value> = objects
        .iter()
        .filter(|o| o["metadata"]["namespace"] == ns && matches(o, &selector))
        .cloned()
        .collect();
    Json(json!({"apiVersion": api_version, "kind": kind,
                "metadata": {"resourceVersion": version.to_string()}, "items": items}))
    .into_response()
}

async fn create(
    State(store): State<Arc<Mutex<Store>>>,
    Path(ns): Path<String>,
    Json(mut job): Json<Value>,
) -> Response {
    if job["apiVersion"] != "batch/v1" || job["kind"] != "Job" {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "expected a batch/v1 Job",
        );
    }
    if job["spec"]["template"]["spec"]["containers"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        return status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            "spec.template.spec.containers: Required value",
        );
    }
    let mut store = store.lock().expect("store");
    if store.refuse_jobs {
        return status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!(
                "jobs.batch is forbidden: User \"system:serviceaccount:{ns}:openclaw-bridge\" cannot create resource \"jobs\" in API group \"batch\" in the namespace \"{ns}\""
            ),
        );
    }
    store.version += 1;
    let name = match (
        job["metadata"]["name"].as_str(),
        job["metadata"]["generateName"].as_str(),
    ) {
        (Some(n), _) => n.to_owned(),
        (None, Some(prefix)) => format!(
            "{prefix}{}",
            &uuid::Uuid::now_v7().simple().to_string()[27..]
        ),
        (None, None) => {
            return status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                "metadata.name: Required value",
            );
        }
    };
    if store.jobs.iter().any(|j| {
        j["metadata"]["name"] == name.as_str() && j["metadata"]["namespace"] == ns.as_str()
    }) {
        return status(StatusCode::CONFLICT, "AlreadyExists", "job exists");
    }
    let meta = &mut job["metadata"];
    meta["name"] = json!(name);
    meta["namespace"] = json!(ns);
    meta["uid"] = json!(uuid::Uuid::now_v7().to_string());
    meta["resourceVersion"] = json!(store.version.to_string());
    meta["creationTimestamp"] = json!("2026-11-25T00:00:00Z");
    store.jobs.push(job.clone());
    (StatusCode::CREATED, Json(job)).into_response()
}
