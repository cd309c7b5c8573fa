//! The audit trail of state-changing requests: a layer around the API that records, for every
//! `POST` (submit, cancel, replay, chat, message, webhook), who (principal and acting user), what
//! (request, task), when, from where (the peer's address) and how it ended (the status), in
//! the audit stream (`openclaw_common::store::AuditLog`); the webhooks and token reloads
//! record theirs here too. Records never hold a token or a prompt.

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::Response;
use openclaw_common::store::AuditRecord;

use crate::principals::{Caller, Reloaded};
use crate::serve::PeerAddr;
use crate::state::AppState;

/// Who a request acted as and on which task, when no [`Caller`] says (a webhook: the forge
/// user who asked), set by the handler on its response.
#[derive(Debug, Clone)]
pub struct Acted {
    pub by: openclaw_common::task::SubmittedBy,
    pub task: Option<openclaw_common::ids::TaskId>,
}

/// What a request did, by its method and path (`None`: nothing changed).
fn action(method: &Method, path: &str) -> Option<&'static str> {
    if method != Method::POST {
        return None;
    }
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    match parts.as_slice() {
        ["", "v1", "tasks"] => Some("submit"),
        ["", "v1", "tasks", _, "cancel"] => Some("cancel"),
        ["", "v1", "tasks", _, "replay"] => Some("replay"),
        ["", "v1", "chat", "completions"] => Some("chat"),
        ["", "message"] => Some("message"),
        ["", "v1", "webhooks", _] => Some("webhook"),
        _ => None,
    }
}

/// The task a request named in its path (`/v1/tasks/{id}/…`).
fn task_in_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/v1/tasks/")?;
    let id = rest.split('/').next()?;
    openclaw_common::ids::TaskId::parse(id)
        .ok()
        .map(|id| id.to_string())
}

/// Records every state-changing request after it is answered. Outside authentication, so
/// refused tokens are recorded too (as `unauthenticated`); the caller comes back from the
/// authentication layer in the response's extensions.
pub async fn record_changes(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(action) = action(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    let request = format!("{} {}", req.method(), req.uri().path());
    let mut task_id = task_in_path(req.uri().path());
    let from = req
        .extensions()
        .get::<PeerAddr>()
        .map(|p| p.0.ip().to_string());
    let response = next.run(req).await;
    let caller = response.extensions().get::<Caller>().cloned();
    let acted = response.extensions().get::<Acted>().cloned();
    if let Some(task) = acted.as_ref().and_then(|a| a.task) {
        task_id = Some(task.to_string());
    }
    if task_id.is_none() {
        // A submit's 202 names the new task; a chat names it in its own header.
        task_id = response
            .headers()
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(task_in_path)
            .or_else(|| {
                response
                    .headers()
                    .get(crate::routes::TASK_ID_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            });
    }
    let by = caller
        .as_ref()
        .map(Caller::submitted_by)
        .or(acted.map(|a| a.by));
    let record = AuditRecord {
        ts: openclaw_common::now(),
        action: action.into(),
        principal: by
            .as_ref()
            .map_or_else(|| "unauthenticated".into(), |b| b.principal.clone()),
        user: by.as_ref().and_then(|b| b.user.clone()),
        team: by.and_then(|b| b.team),
        request: Some(request),
        task_id,
        status: response.status().as_u16(),
        from,
        detail: None,
    };
    write(&state, &record).await;
    response
}

/// Stores `record`; a failure is logged, never the request's. The record is sent before the
/// answer (so records keep the order of the requests), its acknowledgement awaited off the
/// request's path: a submit still waits for one durable write, its task's.
pub async fn write(state: &AppState, record: &AuditRecord) {
    let sent = match state.stores() {
        Ok(stores) => stores.audit.send(record).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let (action, principal) = (record.action.clone(), record.principal.clone());
    match sent {
        Ok(ack) => {
            tokio::spawn(async move {
                if let Err(e) = ack.await {
                    tracing::warn!(%action, %principal, error = %e, "audit record not stored");
                }
            });
        }
        Err(e) => tracing::warn!(%action, %principal, error = %e, "audit record not stored"),
    }
}

/// The tokens file watcher's audit: each reload, as `token_reload`.
pub fn token_reload(state: AppState) -> impl Fn(&Reloaded) + Send + 'static {
    move |outcome: &Reloaded| {
        let detail = match outcome {
            Reloaded::Unchanged => return,
            Reloaded::Loaded(n) => format!("loaded {n} principals"),
            Reloaded::Refused(why) => format!("refused, the last good file stays: {why}"),
        };
        let record = AuditRecord {
            ts: openclaw_common::now(),
            action: "token_reload".into(),
            principal: "bridge".into(),
            user: None,
            team: None,
            request: None,
            task_id: None,
            status: 0,
            from: None,
            detail: Some(detail),
        };
        let state = state.clone();
        tokio::spawn(async move { write(&state, &record).await });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_changing_requests_are_named() {
        let id = openclaw_common::ids::TaskId::new();
        for (method, path, want) in [
            (Method::POST, "/v1/tasks".to_owned(), Some("submit")),
            (
                Method::POST,
                format!("/v1/tasks/{id}/cancel"),
                Some("cancel"),
            ),
            (
                Method::POST,
                format!("/v1/tasks/{id}/replay"),
                Some("replay"),
            ),
            (
                Method::POST,
                "/v1/chat/completions".to_owned(),
                Some("chat"),
            ),
            (Method::POST, "/message".to_owned(), Some("message")),
            (
                Method::POST,
                "/v1/webhooks/github".to_owned(),
                Some("webhook"),
            ),
            (Method::GET, "/v1/tasks".to_owned(), None),
            (Method::POST, "/v1/tasks/x/y/z".to_owned(), None),
        ] {
            assert_eq!(action(&method, &path), want, "{method} {path}");
        }
        assert_eq!(
            task_in_path(&format!("/v1/tasks/{id}/cancel")),
            Some(id.to_string())
        );
        assert_eq!(task_in_path("/v1/tasks/not-an-id/cancel"), None);
    }
}
