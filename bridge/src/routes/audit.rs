//! `GET /v1/audit`: the audit trail, newest first, for admins.

use axum::Json;
use axum::extract::{Extension, State};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::principals::Caller;
use crate::state::AppState;

/// Most records one answer holds, and most it looks through for a filter.
const MAX_LIMIT: usize = 1000;
const MAX_SCAN: usize = 20_000;

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    limit: Option<String>,
    action: Option<String>,
    principal: Option<String>,
    user: Option<String>,
    task_id: Option<String>,
}

/// `GET /v1/audit?limit=N&action=A&principal=P&user=U&task_id=T`.
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !caller.is_admin() {
        return Err(ApiError::Forbidden("the audit trail is for admins".into()));
    }
    let limit = super::limit_param(q.limit.as_deref(), 100, MAX_LIMIT)?;
    let matches =
        |want: &Option<String>, have: Option<&str>| want.as_deref().is_none_or(|w| have == Some(w));
    let records = state
        .stores()?
        .audit
        .recent(limit, MAX_SCAN, |r| {
            matches(&q.action, Some(&r.action))
                && matches(&q.principal, Some(&r.principal))
                && matches(&q.user, r.user.as_deref())
                && matches(&q.task_id, r.task_id.as_deref())
        })
        .await?;
    Ok(Json(json!({ "records": records })))
}
