//! A small Kubernetes API server for the Job dispatcher's tests (no cluster can run here):
//! list and create `batch/v1` Jobs in any namespace, with names, uids and resource versions
//! filled in as the real server does, label selectors honoured, and conditions set by tests.

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
    version: u64,
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
            .fallback(|| async { status(StatusCode::NOT_FOUND, "NotFound", "no such resource") })
            .with_state(store.clone());
        let (url, server) = crate::serve(app).await;
        Self { url, store, server }
    }

    /// Every Job created so far.
    pub fn jobs(&self) -> Vec<Value> {
        self.store.lock().expect("store").jobs.clone()
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
    let store = store.lock().expect("store");
    let selector = q.get("labelSelector").cloned().unwrap_or_default();
    let items: Vec<Value> = store
        .jobs
        .iter()
        .filter(|j| j["metadata"]["namespace"] == ns.as_str() && matches(j, &selector))
        .cloned()
        .collect();
    Json(json!({"apiVersion": "batch/v1", "kind": "JobList",
                "metadata": {"resourceVersion": store.version.to_string()}, "items": items}))
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
