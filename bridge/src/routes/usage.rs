//! `GET /v1/usage`: what tasks used and cost, summed from their records, per user, agent or
//! model.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Extension, State};
use openclaw_common::status::TaskStatus;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::principals::Caller;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct UsageQuery {
    user: Option<String>,
    since: Option<String>,
    group_by: Option<String>,
}

/// The sums of one group.
#[derive(Debug, Default, Serialize)]
struct Totals {
    tasks: u64,
    /// What the gateway reported the tasks' model calls cost.
    cost_usd: f64,
    /// Tasks whose cost was not (fully) reported: their cost is unknown, not zero.
    tasks_without_cost: u64,
    model_calls: u64,
    input_tokens: u64,
    output_tokens: u64,
    worker_seconds: f64,
}

impl Totals {
    fn add(&mut self, t: &TaskStatus) {
        self.tasks += 1;
        let Some(u) = &t.usage else {
            return;
        };
        match u.cost_usd {
            Some(cost) => self.cost_usd += cost,
            None => self.tasks_without_cost += 1,
        }
        self.model_calls += u.model_calls;
        self.input_tokens += u.input_tokens;
        self.output_tokens += u.output_tokens;
        self.worker_seconds += u.worker_seconds;
    }
}

/// `since`: a date (`2026-12-01`, midnight UTC) or an RFC 3339 time; default the start of the
/// current UTC month.
fn since(raw: Option<&str>) -> Result<OffsetDateTime, ApiError> {
    let now = openclaw_common::now();
    let Some(raw) = raw else {
        return Ok(now
            .replace_day(1)
            .map(|d| d.replace_time(time::Time::MIDNIGHT))
            .unwrap_or(now));
    };
    let date = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(raw, &date)
        .map(|d| d.midnight().assume_utc())
        .or_else(|_| OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339))
        .map_err(|_| {
            ApiError::field(
                "since",
                "since must be a date (2026-12-01) or an RFC 3339 time (2026-12-01T00:00:00Z)",
            )
        })
}

/// `GET /v1/usage?user=U&since=S&group_by=user|agent|model`: admins any user's or everyone's,
/// others their own.
pub async fn usage(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let own = caller.submitted_by();
    if !caller.is_admin()
        && let Some(user) = &q.user
        && user != own.who()
    {
        return Err(ApiError::Forbidden(
            "you may read your own usage only; leave out user".into(),
        ));
    }
    let since = since(q.since.as_deref())?;
    let group_by = q.group_by.as_deref().unwrap_or("user");
    let key = |t: &TaskStatus| -> String {
        match group_by {
            "agent" => t.agent.to_string(),
            "model" => t
                .usage
                .as_ref()
                .and_then(|u| u.model.clone())
                .unwrap_or_else(|| "unknown".into()),
            _ => t
                .submitted_by
                .as_ref()
                .map_or_else(|| "unknown".into(), |b| b.who().to_owned()),
        }
    };
    if !["user", "agent", "model"].contains(&group_by) {
        return Err(ApiError::field(
            "group_by",
            "group_by must be user, agent or model",
        ));
    }
    let user = q.user.clone();
    let keep = |t: &TaskStatus| {
        t.created_at >= since
            && caller.may_see(t.submitted_by.as_ref())
            && user.as_deref().is_none_or(|u| {
                t.submitted_by
                    .as_ref()
                    .is_some_and(|b| b.who() == u || b.principal == u)
            })
    };
    let tasks = state.stores()?.status.recent(usize::MAX, keep).await?;
    let mut groups: BTreeMap<String, Totals> = BTreeMap::new();
    let mut total = Totals::default();
    // Oldest first: the same order every time, so the same records give the same sums.
    for t in tasks.iter().rev() {
        groups.entry(key(t)).or_default().add(t);
        total.add(t);
    }
    let since = since
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let groups: Vec<serde_json::Value> = groups
        .into_iter()
        .map(|(k, v)| {
            let mut g = serde_json::to_value(v).unwrap_or_default();
            g["key"] = json!(k);
            g
        })
        .collect();
    Ok(Json(json!({
        "since": since,
        "group_by": group_by,
        "groups": groups,
        "total": total,
    })))
}
