//! Task intake, status and cancel.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use openclaw_common::egress::RepoUrl;
use openclaw_common::ids::{AgentName, BranchName, TaskId};
use openclaw_common::status::{TaskState, TaskStatus};
use openclaw_common::store::Enqueued;
use openclaw_common::task::{MAX_PROMPT_CHARS, PullRequestAsk, TaskSpec};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::intake;
use crate::principals::Caller;
use crate::state::AppState;

/// The agent a task goes to when it names none.
pub const DEFAULT_AGENT: &str = "doc-writer";

/// Body of `POST /v1/tasks`. Every field is optional here so that a missing one is reported
/// by name, with what it should hold, rather than as a serde message.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitTask {
    pub repo: Option<String>,
    pub prompt: Option<String>,
    pub agent: Option<String>,
    pub branch: Option<String>,
    pub push_branch: Option<String>,
    pub model: Option<String>,
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// `true`, `false` or `{draft?, title?, base?}`.
    pub pull_request: Option<serde_json::Value>,
}

impl SubmitTask {
    /// Turns the request into a task, or names the field at fault.
    pub fn into_spec(self, state: &AppState) -> Result<TaskSpec, ApiError> {
        let prompt = self.prompt.unwrap_or_default();
        if prompt.trim().is_empty() {
            return Err(ApiError::field(
                "prompt",
                "prompt is required: say what the agent should do",
            ));
        }
        if prompt.chars().count() > MAX_PROMPT_CHARS {
            return Err(ApiError::field(
                "prompt",
                format!("prompt is longer than {MAX_PROMPT_CHARS} characters"),
            ));
        }
        let agents = &state.config.agents;
        // Always doc-writer, as the API promises: a deployment whose agents lack it gets a
        // clear 400 rather than a task for some other agent.
        let agent = AgentName::parse(self.agent.as_deref().unwrap_or(DEFAULT_AGENT))
            .map_err(|e| ApiError::field("agent", e.to_string()))?;
        let Some(profile) = agents.get(&agent) else {
            let known: Vec<_> = agents.names().map(AgentName::as_str).collect();
            return Err(ApiError::field(
                "agent",
                format!(
                    "unknown agent \"{agent}\"; known agents: {}",
                    known.join(", ")
                ),
            ));
        };
        let repo_raw = self.repo.or_else(|| profile.default_repo.clone());
        let repo = match repo_raw {
            Some(raw) => Some(
                RepoUrl::parse(&raw, &state.config.repo_policy)
                    .map_err(|e| ApiError::field("repo", e.to_string()))?,
            ),
            None if profile.repo_required => {
                return Err(ApiError::field(
                    "repo",
                    format!("repo is required for agent {agent}: the git URL to work on"),
                ));
            }
            None => None,
        };
        let branch = self
            .branch
            .map(|b| BranchName::parse(&b).map_err(|e| ApiError::field("branch", e.to_string())))
            .transpose()?;
        let id = TaskId::new();
        let push_branch = match self.push_branch {
            Some(b) => {
                BranchName::parse(&b).map_err(|e| ApiError::field("push_branch", e.to_string()))?
            }
            None => BranchName::for_task(&id),
        };
        if self
            .model
            .as_ref()
            .is_some_and(|m| m.is_empty() || m.len() > 200 || m.chars().any(char::is_control))
        {
            return Err(ApiError::field(
                "model",
                "model must be 1-200 printable characters",
            ));
        }
        let pull_request = self
            .pull_request
            .map(|raw| pull_request_ask(&raw))
            .transpose()?;
        if pull_request.as_ref().is_some_and(|p| p.open) {
            check_forge(state, repo.as_ref())?;
        }
        Ok(TaskSpec {
            v: openclaw_common::SCHEMA_VERSION,
            id,
            agent,
            repo,
            prompt,
            branch,
            push_branch,
            model: self.model,
            metadata: self.metadata.unwrap_or_default(),
            created_at: openclaw_common::now(),
            history: Vec::new(),
            replay_of: None,
            pull_request,
            origin: None,
            submitted_by: None,
        })
    }
}

/// The submit's `pull_request`: `true`, `false`, or `{draft?, title?, base?}` (which asks for
/// one), each part checked and named when wrong.
fn pull_request_ask(raw: &serde_json::Value) -> Result<PullRequestAsk, ApiError> {
    const EXPECTED: &str = "pull_request must be true, false or {\"draft\": bool, \"title\": \"…\", \"base\": \"branch\"}";
    let options = match raw {
        serde_json::Value::Bool(open) => {
            return Ok(PullRequestAsk {
                open: *open,
                ..PullRequestAsk::default()
            });
        }
        serde_json::Value::Object(options) => options,
        _ => return Err(ApiError::field("pull_request", EXPECTED)),
    };
    let mut ask = PullRequestAsk {
        open: true,
        ..PullRequestAsk::default()
    };
    for (key, value) in options {
        match (key.as_str(), value) {
            ("draft", serde_json::Value::Bool(draft)) => ask.draft = *draft,
            ("title", serde_json::Value::String(title))
                if !title.trim().is_empty()
                    && title.chars().count() <= 256
                    && !title.chars().any(char::is_control) =>
            {
                ask.title = Some(title.trim().to_owned());
            }
            ("title", _) => {
                return Err(ApiError::field(
                    "pull_request.title",
                    "pull_request.title must be 1-256 printable characters",
                ));
            }
            ("base", serde_json::Value::String(base)) => {
                ask.base = Some(
                    BranchName::parse(base)
                        .map_err(|e| ApiError::field("pull_request.base", e.to_string()))?,
                );
            }
            (other, _) => {
                return Err(ApiError::field(
                    &format!("pull_request.{other}"),
                    EXPECTED.to_owned(),
                ));
            }
        }
    }
    Ok(ask)
}

/// A pull request needs a repository on a forge this deployment can open pull requests on.
fn check_forge(state: &AppState, repo: Option<&RepoUrl>) -> Result<(), ApiError> {
    let Some(repo) = repo else {
        return Err(ApiError::field(
            "pull_request",
            "pull_request needs a repo: the task has none to open it on",
        ));
    };
    let config = &state.config;
    let hosts: Vec<&str> = config
        .github
        .iter()
        .map(|g| g.web_host.as_str())
        .chain(config.gitlab.iter().map(|g| g.web_host.as_str()))
        .collect();
    let on_github = config
        .github
        .as_ref()
        .is_some_and(|g| g.repo_of(repo).is_some());
    let on_gitlab = config
        .gitlab
        .as_ref()
        .is_some_and(|g| g.repo_of(repo).is_some());
    if on_github || on_gitlab {
        return Ok(());
    }
    Err(ApiError::field(
        "pull_request",
        if hosts.is_empty() {
            "this deployment has no forge to open pull requests on: set GITHUB_TOKEN, a GitHub App (OPENCLAW_GITHUB_APP_ID) or GITLAB_TOKEN on the bridge and the workers".to_owned()
        } else {
            format!(
                "pull requests are opened on repositories (owner/name) of {} only; this repo is not one",
                hosts.join(", ")
            )
        },
    ))
}

/// `Idempotency-Key`: 1-200 visible ASCII characters, used as the JetStream message id.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(raw) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = raw
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 200 && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::field(
                "Idempotency-Key",
                "Idempotency-Key must be 1-200 visible ASCII characters",
            )
        })?;
    Ok(Some(key.to_owned()))
}

/// `POST /v1/tasks`: 202 once JetStream has the task message — the one write of a submit; its
/// `queued` event and status are read from that message until a worker writes them.
/// The same `Idempotency-Key` within the duplicate window returns the first task.
pub async fn submit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SubmitTask>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let mut spec = body.into_spec(&state)?;
    spec.submitted_by = Some(caller.submitted_by());
    let msg_id = key.unwrap_or_else(|| spec.id.to_string());
    let enqueued = intake::enqueue(&state, spec, &msg_id).await?;
    accepted(&state, &enqueued).await
}

/// The body of a 202: the task and where to follow it.
#[derive(Serialize)]
struct Accepted<'a> {
    id: TaskId,
    status: TaskState,
    status_url: &'a str,
    events_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    replay_of: Option<TaskId>,
}

/// The 202 of an accepted task: where to follow it. For a duplicate, its current status.
async fn accepted(state: &AppState, enqueued: &Enqueued) -> Result<Response, ApiError> {
    let spec = &enqueued.spec;
    let current = if enqueued.duplicate {
        state
            .stores()?
            .status_of(&spec.id)
            .await?
            .map(|s| s.status)
            .unwrap_or(TaskState::Queued)
    } else {
        TaskState::Queued
    };
    let location = format!("/v1/tasks/{}", spec.id);
    let body = Json(Accepted {
        id: spec.id,
        status: current,
        status_url: &location,
        events_url: format!("{location}/events"),
        replay_of: spec.replay_of,
    })
    .into_response();
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], body).into_response())
}

/// `POST /v1/tasks/{id}/replay`: a new task from the stored spec of `id`, linked to it.
pub async fn replay(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_task_id(&id)?;
    let stores = state.stores()?;
    let status = visible_status(&state, &caller, &id).await?;
    let seq = status
        .seq
        .ok_or_else(|| ApiError::Conflict(format!("task {id} has no stored message to replay")))?;
    let original = stores.tasks.get(seq).await.map_err(|e| {
        tracing::warn!(task_id = %id, error = %e, "stored task message is gone");
        ApiError::Conflict(format!("the stored message of task {id} is no longer kept"))
    })?;
    let mut spec = original.replay();
    // The replay is the caller's request (its cost, its audit record).
    spec.submitted_by = Some(caller.submitted_by());
    // A task that stopped early left its work as a checkpoint on its branch: the replay starts
    // from there (and pushes to its own branch) instead of from scratch.
    if status.checkpoint.is_some() && status.status.is_terminal() {
        spec.branch = Some(original.push_branch.clone());
    }
    let msg_id = spec.id.to_string();
    let enqueued = intake::enqueue(&state, spec, &msg_id).await?;
    accepted(&state, &enqueued).await
}

pub(crate) fn parse_task_id(raw: &str) -> Result<TaskId, ApiError> {
    TaskId::parse(raw).map_err(|_| ApiError::NotFound(format!("no task {raw:?}")))
}

/// The status of task `id` when `caller` may see it; another's task is 404, the same answer
/// as a task that does not exist (a 403 would say it does).
pub(crate) async fn visible_status(
    state: &AppState,
    caller: &Caller,
    id: &TaskId,
) -> Result<TaskStatus, ApiError> {
    state
        .stores()?
        .status_of(id)
        .await?
        .filter(|t| caller.may_see(t.submitted_by.as_ref()))
        .ok_or_else(|| ApiError::NotFound(format!("no task {id}")))
}

/// `GET /v1/tasks/{id}`.
pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<TaskStatus>, ApiError> {
    let id = parse_task_id(&id)?;
    visible_status(&state, &caller, &id).await.map(Json)
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    limit: Option<String>,
    status: Option<String>,
    agent: Option<String>,
    user: Option<String>,
}

/// `GET /v1/tasks?limit=N&status=S&agent=A&user=U`: most recent first, only the caller's own
/// (every task for an admin), optionally only those in one state, of one agent, or (admins)
/// submitted by one user or principal.
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if q.user.is_some() && !caller.is_admin() {
        return Err(ApiError::field(
            "user",
            "user filters are for admins; you see your own tasks",
        ));
    }
    let limit = super::limit_param(q.limit.as_deref(), 20, 500)?;
    let status: Option<TaskState> = q
        .status
        .map(|s| {
            serde_json::from_value(json!(s)).map_err(|_| {
                ApiError::field(
                    "status",
                    "status must be one of queued, running, completed, failed, canceled",
                )
            })
        })
        .transpose()?;
    let agent = q
        .agent
        .map(|a| AgentName::parse(&a).map_err(|e| ApiError::field("agent", e.to_string())))
        .transpose()?;
    let by_user = |t: &TaskStatus| {
        q.user.as_deref().is_none_or(|u| {
            t.submitted_by
                .as_ref()
                .is_some_and(|b| b.who() == u || b.principal == u)
        })
    };
    let keep = |t: &TaskStatus| {
        status.is_none_or(|s| t.status == s)
            && agent.as_ref().is_none_or(|a| &t.agent == a)
            && caller.may_see(t.submitted_by.as_ref())
            && by_user(t)
    };
    let stores = state.stores()?;
    // Tasks with records are in the KV; those without are among the unfinished ones, read
    // from the stream after the KV (fresher: a task may get its record in between).
    let mut tasks: std::collections::BTreeMap<TaskId, TaskStatus> = stores
        .status
        .recent(limit, keep)
        .await?
        .into_iter()
        .map(|t| (t.id, t))
        .collect();
    for name in state.config.agents.names() {
        if agent.as_ref().is_none_or(|a| a == name) {
            for t in stores.unfinished(name).await? {
                if keep(&t) {
                    tasks.insert(t.id, t);
                } else {
                    tasks.remove(&t.id);
                }
            }
        }
    }
    // Task ids are UUID v7: newest first is descending id order.
    let tasks: Vec<TaskStatus> = tasks.into_values().rev().take(limit).collect();
    Ok(Json(json!({ "tasks": tasks })))
}

/// `POST /v1/tasks/{id}/cancel`: a queued task is canceled at once; a running one is flagged
/// and its worker stops at its next step. 409 for a task that already ended.
pub async fn cancel(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_task_id(&id)?;
    visible_status(&state, &caller, &id).await?;
    let status = intake::cancel(&state, &id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": id, "status": status.status, "cancel_requested": true })),
    )
        .into_response())
}

/// `GET /v1/tasks/{id}/diff`: what the task's pushed branch changes against its base, as its
/// worker stored it at its last push (capped, secrets taken out), as `text/x-diff`.
pub async fn diff(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_task_id(&id)?;
    visible_status(&state, &caller, &id).await?;
    let stores = state.stores()?;
    let diff = stores.events.diff(&id).await?.ok_or_else(|| {
        ApiError::NotFound(format!(
            "task {id} has pushed no work yet: its diff is stored with its commit"
        ))
    })?;
    Ok(([(header::CONTENT_TYPE, "text/x-diff; charset=utf-8")], diff).into_response())
}
