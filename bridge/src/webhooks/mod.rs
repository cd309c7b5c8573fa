//! Forge webhooks in: `POST /v1/webhooks/github`. The one route meant to be reachable from
//! outside the cluster, so it trusts nothing before the body's HMAC verifies: unsigned or
//! wrongly signed deliveries get 401 and leave nothing behind.
//!
//! A delivery becomes at most one task — its delivery id is claimed in the deliveries bucket
//! before the task is queued, whichever bridge it reaches, however late it is redelivered —
//! and only for users who may write to the repository (asked of the forge, remembered for a
//! minute). The bridge answers where it was asked: one comment, "on it" at once, edited with
//! the outcome when the task ends ([`answer`]).

pub mod answer;
pub mod door;
pub mod trigger;

pub use door::Door;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use openclaw_common::egress::RepoUrl;
use openclaw_common::forge::{Forge, ForgeError, ForgeRepo, Thread};
use openclaw_common::ids::{BranchName, TaskId};
use openclaw_common::task::{PullRequestAsk, TaskOrigin, TaskSpec, Turn, TurnRole};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::AppState;
use trigger::{PayloadRepo, ReviewLine, Trigger};

/// `POST /v1/webhooks/github`.
pub async fn github(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (Some(hooks), Some(door)) = (&state.config.github_webhooks, &state.github) else {
        return Err(ApiError::NotFound(
            "GitHub webhooks are not set up on this bridge (OPENCLAW_GITHUB_WEBHOOK_SECRET)".into(),
        ));
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if !openclaw_common::forge::webhook::github_signature_valid(
        hooks.secret.expose().as_bytes(),
        &body,
        header("x-hub-signature-256"),
    ) {
        return Err(ApiError::BadSignature(
            "missing or invalid X-Hub-Signature-256: the body must be signed with the webhook secret".into(),
        ));
    }
    let event = header("x-github-event")
        .ok_or_else(|| ApiError::field("X-GitHub-Event", "X-GitHub-Event is required"))?;
    let delivery = header("x-github-delivery")
        .filter(|d| delivery_id_valid(d))
        .ok_or_else(|| {
            ApiError::field(
                "X-GitHub-Delivery",
                "X-GitHub-Delivery must be the delivery's id (letters, digits and -)",
            )
        })?;
    let payload: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::field("body", format!("the payload is not JSON: {e}")))?;
    let asked = trigger::github(event, &payload, &hooks.mention, &hooks.label);
    handle(&state, door, hooks, delivery, asked).await
}

/// `POST /v1/webhooks/gitlab`: GitLab sends its secret token as is (`X-Gitlab-Token`),
/// compared in constant time before the body is read.
pub async fn gitlab(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (Some(hooks), Some(door)) = (&state.config.gitlab_webhooks, &state.gitlab) else {
        return Err(ApiError::NotFound(
            "GitLab webhooks are not set up on this bridge (OPENCLAW_GITLAB_WEBHOOK_TOKEN)".into(),
        ));
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let given = header("x-gitlab-token").unwrap_or("").as_bytes();
    let expected = hooks.secret.expose().as_bytes();
    if !bool::from(subtle::ConstantTimeEq::ct_eq(given, expected)) {
        return Err(ApiError::BadSignature(
            "missing or invalid X-Gitlab-Token: it must be the webhook's secret token".into(),
        ));
    }
    let event = header("x-gitlab-event")
        .ok_or_else(|| ApiError::field("X-Gitlab-Event", "X-Gitlab-Event is required"))?;
    // GitLab's delivery id: `Idempotency-Key` (the same on its retries), else the event's UUID.
    let delivery = header("idempotency-key")
        .or_else(|| header("x-gitlab-event-uuid"))
        .filter(|d| delivery_id_valid(d))
        .ok_or_else(|| {
            ApiError::field(
                "X-Gitlab-Event-UUID",
                "X-Gitlab-Event-UUID (or Idempotency-Key) must be the delivery's id",
            )
        })?;
    let payload: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::field("body", format!("the payload is not JSON: {e}")))?;
    let asked = trigger::gitlab(event, &payload, &hooks.mention, &hooks.label);
    handle(&state, door, hooks, delivery, asked).await
}

fn delivery_id_valid(d: &str) -> bool {
    !d.is_empty() && d.len() <= 100 && d.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// What a verified delivery asks for, done.
async fn handle<F: Forge>(
    state: &AppState,
    door: &Door<F>,
    hooks: &crate::config::WebhookConfig,
    delivery: &str,
    asked: Trigger,
) -> Result<Response, ApiError> {
    let request = match asked {
        Trigger::Ignore(why) => return Ok(ignored(&why)),
        Trigger::Closed { repo, branch } => {
            return closed(state, door, hooks, &repo, &branch).await;
        }
        request => request,
    };
    match task_for(state, door, hooks, request).await? {
        Planned::Ignore(why) => Ok(ignored(&why)),
        Planned::Task(spec, repo, thread) => {
            let (id, by) = (spec.id, spec.submitted_by.clone());
            let mut response = queue(state, door, *spec, &repo, thread, delivery).await?;
            // Who and which task, for the audit record.
            if let Some(by) = by {
                // A redelivery answers with the task its first delivery made, not this id.
                let task = (response.status() == StatusCode::ACCEPTED).then_some(id);
                response
                    .extensions_mut()
                    .insert(crate::audit::Acted { by, task });
            }
            Ok(response)
        }
    }
}

fn ignored(why: &str) -> Response {
    tracing::info!(reason = %why, "webhook asks for no work");
    (StatusCode::OK, Json(json!({ "ignored": why }))).into_response()
}

enum Planned {
    Ignore(String),
    Task(Box<TaskSpec>, ForgeRepo, Thread),
}

fn forge_failure(e: ForgeError) -> ApiError {
    tracing::warn!(error = %e, "GitHub did not answer as needed");
    ApiError::Unavailable(format!("{e}; redeliver the webhook once GitHub answers"))
}

/// The task `request` asks for, or why none is made (the repository is not this forge's, the
/// sender may not write to it, the pull request is not a task's).
async fn task_for<F: Forge>(
    state: &AppState,
    door: &Door<F>,
    hooks: &crate::config::WebhookConfig,
    request: Trigger,
) -> Result<Planned, ApiError> {
    let (payload_repo, sender, asked_on) = match &request {
        Trigger::Issue {
            repo,
            sender,
            number,
            ..
        }
        | Trigger::PullRequest {
            repo,
            sender,
            number,
            ..
        } => (
            repo.clone(),
            sender.clone(),
            match &request {
                Trigger::PullRequest { .. } => Thread::PullRequest(*number),
                _ => Thread::Issue(*number),
            },
        ),
        Trigger::Ignore(why) => return Ok(Planned::Ignore(why.clone())),
        Trigger::Closed { .. } => return Ok(Planned::Ignore("not a request for work".into())),
    };
    let sender = &sender;
    let Some((url, repo)) = own_repo(state, door, &payload_repo) else {
        return Ok(Planned::Ignore(format!(
            "{} is not a repository this deployment works on",
            payload_repo.full_name
        )));
    };
    if !door.may_write(&repo, sender).await.map_err(forge_failure)? {
        if hooks.reply_to_readers {
            let reply = format!(
                "{}\n@{sender}: only people who may write to {repo} can ask me for work here.",
                trigger::COMMENT_MARKER
            );
            door.client
                .comment(&repo, asked_on, &reply)
                .await
                .map_err(forge_failure)?;
        }
        return Ok(Planned::Ignore(format!(
            "{sender} may not write to {repo}, so may not ask for work there"
        )));
    }
    let id = TaskId::new();
    let origin = |thread: Thread| TaskOrigin {
        forge: door.name.into(),
        repo: repo.to_string(),
        number: thread.number(),
        pull_request: matches!(thread, Thread::PullRequest(_)),
        comment_id: None,
        requested_by: sender.clone(),
    };
    let spec = match request {
        Trigger::Issue {
            number,
            title,
            body,
            instruction,
            ..
        } => {
            let mut prompt = format!("GitHub issue #{number} of {repo}: {title}\n\n{body}\n");
            if !instruction.is_empty() {
                prompt.push_str(&format!("\n{sender} asks: {instruction}\n"));
            }
            TaskSpec {
                v: openclaw_common::SCHEMA_VERSION,
                id,
                agent: hooks.agent.clone(),
                repo: Some(url),
                prompt: cut(&prompt),
                branch: None,
                push_branch: BranchName::for_task(&id),
                model: None,
                metadata: Default::default(),
                created_at: openclaw_common::now(),
                history: Vec::new(),
                replay_of: None,
                pull_request: Some(PullRequestAsk {
                    open: true,
                    closes: Some(number),
                    ..PullRequestAsk::default()
                }),
                origin: Some(origin(Thread::Issue(number))),
                submitted_by: Some(webhook_submitter(door.name, sender)),
            }
        }
        Trigger::PullRequest {
            number,
            instruction,
            line,
            ..
        } => {
            let head = door
                .client
                .pull_request_head(&repo, number)
                .await
                .map_err(forge_failure)?;
            let Some(task) = head
                .branch
                .as_deref()
                .and_then(|b| b.strip_prefix("openclaw/"))
                .and_then(|t| TaskId::parse(t).ok())
            else {
                return Ok(Planned::Ignore(format!(
                    "pull request #{number} was not opened by a task"
                )));
            };
            let stores = state.stores()?;
            let Some(earlier) = stores.status_of(&task).await? else {
                return Ok(Planned::Ignore(format!(
                    "pull request #{number} names task {task}, which this deployment no longer knows"
                )));
            };
            let mut prompt = format!(
                "Follow-up on pull request #{number} of {repo} (\"{}\"), on its branch {}.\n\n{sender} asks: {instruction}\n",
                head.title, earlier.push_branch
            );
            if let Some(ReviewLine {
                path,
                line,
                diff_hunk,
            }) = line
            {
                let at = line.map(|l| format!(" line {l}")).unwrap_or_default();
                prompt.push_str(&format!(
                    "\nThe comment is on {path}{at}:\n```diff\n{diff_hunk}\n```\n"
                ));
            }
            // What the earlier task was asked and answered, so the follow-up does not start
            // from nothing.
            let mut history = Vec::new();
            if let Some(seq) = earlier.seq
                && let Ok(first) = stores.tasks.get(seq).await
            {
                history.push(Turn {
                    role: TurnRole::User,
                    content: first.prompt,
                });
                if let Some(summary) = &earlier.summary {
                    history.push(Turn {
                        role: TurnRole::Assistant,
                        content: summary.clone(),
                    });
                }
            }
            TaskSpec {
                v: openclaw_common::SCHEMA_VERSION,
                id,
                agent: earlier.agent.clone(),
                repo: Some(url),
                prompt: cut(&prompt),
                branch: Some(earlier.push_branch.clone()),
                push_branch: earlier.push_branch.clone(),
                model: None,
                metadata: Default::default(),
                created_at: openclaw_common::now(),
                history: crate::conversation::bounded_history(history),
                replay_of: None,
                pull_request: Some(PullRequestAsk {
                    open: true,
                    title: Some(head.title),
                    ..PullRequestAsk::default()
                }),
                origin: Some(origin(Thread::PullRequest(number))),
                submitted_by: Some(webhook_submitter(door.name, sender)),
            }
        }
        Trigger::Ignore(why) => return Ok(Planned::Ignore(why)),
        Trigger::Closed { .. } => return Ok(Planned::Ignore("not a request for work".into())),
    };
    Ok(Planned::Task(Box::new(spec), repo, asked_on))
}

/// A webhook task acts for the forge user who asked (checked a writer of the repository), by
/// the forge's webhook principal (`github-webhook`, `gitlab-webhook`).
fn webhook_submitter(forge: &str, sender: &str) -> openclaw_common::task::SubmittedBy {
    openclaw_common::task::SubmittedBy {
        principal: format!("{forge}-webhook"),
        user: Some(format!("{forge}:{sender}")),
        team: None,
    }
}

/// The payload's repository when it is one this deployment may work on and the forge's own
/// (its clone URL maps back to its name).
fn own_repo<F: Forge>(
    state: &AppState,
    door: &Door<F>,
    named: &PayloadRepo,
) -> Option<(RepoUrl, ForgeRepo)> {
    let url = RepoUrl::parse(&named.clone_url, &state.config.repo_policy).ok()?;
    let repo = door.client.repo_of(&url)?;
    repo.to_string()
        .eq_ignore_ascii_case(&named.full_name)
        .then_some((url, repo))
}

/// A prompt within the intake's bound.
fn cut(prompt: &str) -> String {
    prompt
        .chars()
        .take(openclaw_common::task::MAX_PROMPT_CHARS)
        .collect()
}

/// Claims `delivery` for the task, says "on it" where it was asked, and queues the task; a
/// delivery claimed before answers with the task it made.
async fn queue<F: Forge>(
    state: &AppState,
    door: &Door<F>,
    mut spec: TaskSpec,
    repo: &ForgeRepo,
    thread: Thread,
    delivery: &str,
) -> Result<Response, ApiError> {
    let stores = state.stores()?;
    let key = format!("{}.{delivery}", door.name);
    if let Some(first) = stores.deliveries.claim(&key, &spec.id).await? {
        if stores.status_of(&first).await?.is_some() {
            tracing::info!(task_id = %first, delivery, "webhook delivered again; no second task");
            return Ok((
                StatusCode::OK,
                Json(json!({ "task": first, "duplicate": true })),
            )
                .into_response());
        }
        // Claimed by a bridge that stopped before it queued the task: queue it now, as the
        // task the claim names.
        if spec.push_branch == BranchName::for_task(&spec.id) {
            spec.push_branch = BranchName::for_task(&first);
        }
        spec.id = first;
    }
    let comment = door
        .client
        .comment(repo, thread, &answer::on_it(&spec.id))
        .await
        .map_err(forge_failure)?;
    if let Some(origin) = spec.origin.as_mut() {
        origin.comment_id = Some(comment.0);
    }
    let id = spec.id;
    crate::intake::enqueue(state, spec, &format!("{}-{delivery}", door.name)).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "task": id, "status_url": format!("/v1/tasks/{id}") })),
    )
        .into_response())
}

/// A pull request was closed: its branch is deleted when the deployment says so and it is a
/// task's (`openclaw/<id>` of a task this deployment knows) on a repository it works on.
async fn closed<F: Forge>(
    state: &AppState,
    door: &Door<F>,
    hooks: &crate::config::WebhookConfig,
    named: &PayloadRepo,
    branch: &str,
) -> Result<Response, ApiError> {
    if !hooks.delete_closed_branches {
        return Ok(ignored(
            "deleting the branches of closed pull requests is off (OPENCLAW_DELETE_CLOSED_BRANCHES)",
        ));
    }
    let Some(task) = branch
        .strip_prefix("openclaw/")
        .and_then(|t| TaskId::parse(t).ok())
    else {
        return Ok(ignored("the pull request's branch is not a task's"));
    };
    if state.stores()?.status_of(&task).await?.is_none() {
        return Ok(ignored(
            "the branch names a task this deployment does not know",
        ));
    }
    let Some((_, repo)) = own_repo(state, door, named) else {
        return Ok(ignored("not a repository this deployment works on"));
    };
    door.client
        .delete_branch(&repo, branch)
        .await
        .map_err(forge_failure)?;
    tracing::info!(task_id = %task, %branch, "deleted the branch of a closed pull request");
    Ok((StatusCode::OK, Json(json!({ "deleted": branch }))).into_response())
}
