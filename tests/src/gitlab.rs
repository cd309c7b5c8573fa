//! A scripted GitLab REST API (v4) for the suite, as GitLab documents it: the routes the
//! project uses, their required and allowed fields, `PRIVATE-TOKEN` authentication, the
//! project id as its URL-encoded path. GitLab publishes no complete machine-readable
//! description to check against, so the contract is written out here from its API docs
//! (merge requests, notes, members, users, branches); any other request, an unknown field or a
//! missing required one is a violation [`ScriptedGitLab::assert_contract`] fails on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A merge request the server holds.
#[derive(Debug, Clone)]
pub struct MergeRequest {
    pub iid: u64,
    pub project: String,
    pub source_branch: String,
    pub target_branch: String,
    pub title: String,
    pub description: String,
    pub open: bool,
}

/// A note (comment) on an issue or merge request.
#[derive(Debug, Clone)]
pub struct Note {
    pub id: u64,
    /// `issues` or `merge_requests`.
    pub on: String,
    pub iid: u64,
    pub body: String,
    pub edits: u32,
}

#[derive(Default)]
struct State {
    token: String,
    web: String,
    merge_requests: Vec<MergeRequest>,
    notes: Vec<Note>,
    /// Access levels by username (30 = Developer); others are not members. A user's id is
    /// 500 + their place in this order.
    members: std::collections::BTreeMap<String, u64>,
    deleted_branches: Vec<String>,
    /// Operations seen, as `METHOD route`.
    seen: Vec<String>,
    violations: Vec<String>,
}

/// The running server; stops when dropped.
pub struct ScriptedGitLab {
    /// `OPENCLAW_GITLAB_API_URL` for it.
    pub api_url: String,
    /// host:port of its pages and repositories.
    pub web: String,
    pub token: String,
    state: Arc<Mutex<State>>,
    server: tokio::task::JoinHandle<()>,
}

impl ScriptedGitLab {
    pub async fn start() -> Self {
        crate::init();
        let state = Arc::new(Mutex::new(State {
            token: format!("glpat-{}", uuid::Uuid::now_v7().simple()),
            ..State::default()
        }));
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let (url, server) = crate::serve(router).await;
        let token = {
            let mut s = state.lock().expect("gitlab lock");
            s.web = url.clone();
            s.token.clone()
        };
        Self {
            api_url: format!("{url}/api/v4"),
            web: url.trim_start_matches("http://").to_owned(),
            token,
            state,
            server,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("gitlab lock")
    }

    pub fn token_env(&self) -> Vec<(String, String)> {
        vec![
            ("GITLAB_TOKEN".into(), self.token.clone()),
            ("OPENCLAW_GITLAB_API_URL".into(), self.api_url.clone()),
        ]
    }

    /// Makes `user` a member of every project at `access_level` (30 Developer, 20 Reporter).
    pub fn set_member(&self, user: &str, access_level: u64) {
        self.lock().members.insert(user.to_owned(), access_level);
    }

    pub fn merge_requests(&self) -> Vec<MergeRequest> {
        self.lock().merge_requests.clone()
    }

    pub fn notes(&self) -> Vec<Note> {
        self.lock().notes.clone()
    }

    pub fn seen(&self) -> Vec<String> {
        self.lock().seen.clone()
    }

    pub fn assert_contract(&self) {
        let violations = self.lock().violations.clone();
        assert!(
            violations.is_empty(),
            "requests GitLab's API refuses:\n{}",
            violations.join("\n")
        );
    }
}

impl Drop for ScriptedGitLab {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn percent_decode(segment: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The documented fields of a request body: required, then allowed.
fn fields(route: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    Some(match route {
        "POST projects/:id/merge_requests" => (
            &["source_branch", "target_branch", "title"],
            &[
                "description",
                "assignee_id",
                "labels",
                "remove_source_branch",
                "squash",
                "allow_collaboration",
            ],
        ),
        "PUT projects/:id/merge_requests/:iid" => (
            &[],
            &[
                "title",
                "description",
                "target_branch",
                "state_event",
                "labels",
            ],
        ),
        "POST projects/:id/issues/:iid/notes"
        | "POST projects/:id/merge_requests/:iid/notes"
        | "PUT projects/:id/issues/:iid/notes/:note_id"
        | "PUT projects/:id/merge_requests/:iid/notes/:note_id" => (&["body"], &["internal"]),
        _ => return None,
    })
}

async fn handle(
    axum::extract::State(state): axum::extract::State<Arc<Mutex<State>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = state.lock().expect("gitlab lock");
    let Some(path) = uri.path().strip_prefix("/api/v4/") else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"message": "404 Not Found"})),
        )
            .into_response();
    };
    let segments: Vec<String> = path.split('/').map(percent_decode).collect();
    let query: HashMap<String, String> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    };
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    // The route as GitLab's docs write it, and its parameters.
    let (route, project, ids): (String, String, Vec<String>) = match segs.as_slice() {
        ["users"] => (format!("{method} users"), String::new(), vec![]),
        ["projects", id, rest @ ..] => {
            let shape: Vec<&str> = rest
                .iter()
                .enumerate()
                .map(|(i, p)| match (i, *p) {
                    (1, _) if rest[0] == "merge_requests" || rest[0] == "issues" => ":iid",
                    (3, _) if rest.get(2) == Some(&"notes") => ":note_id",
                    (2, _) if rest[..2] == ["members", "all"] => ":user_id",
                    (2, _) if rest[..2] == ["repository", "branches"] => ":branch",
                    (_, p) => p,
                })
                .collect();
            let ids = rest
                .iter()
                .zip(&shape)
                .filter(|(_, s)| s.starts_with(':'))
                .map(|(v, _)| (*v).to_owned())
                .collect();
            (
                format!("{method} projects/:id/{}", shape.join("/")),
                (*id).to_owned(),
                ids,
            )
        }
        _ => (format!("{method} {path}"), String::new(), vec![]),
    };
    s.seen.push(route.clone());
    let known = [
        "GET users",
        "GET projects/:id/merge_requests",
        "POST projects/:id/merge_requests",
        "GET projects/:id/merge_requests/:iid",
        "PUT projects/:id/merge_requests/:iid",
        "GET projects/:id/members/all/:user_id",
        "POST projects/:id/issues/:iid/notes",
        "PUT projects/:id/issues/:iid/notes/:note_id",
        "POST projects/:id/merge_requests/:iid/notes",
        "PUT projects/:id/merge_requests/:iid/notes/:note_id",
        "DELETE projects/:id/repository/branches/:branch",
    ];
    if !known.contains(&route.as_str()) {
        s.violations.push(format!(
            "{route} is not an endpoint the scripted GitLab knows"
        ));
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"message": "404 Not Found"})),
        )
            .into_response();
    }
    if headers.get("private-token").and_then(|v| v.to_str().ok()) != Some(s.token.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"message": "401 Unauthorized"})),
        )
            .into_response();
    }
    if let Some((required, allowed)) = fields(&route) {
        let object = body.as_object().cloned().unwrap_or_default();
        for name in required {
            if !object.get(*name).is_some_and(Value::is_string) {
                s.violations
                    .push(format!("{route}: {name} is required (a string)"));
            }
        }
        for name in object.keys() {
            if !required.contains(&name.as_str()) && !allowed.contains(&name.as_str()) {
                s.violations
                    .push(format!("{route}: {name} is not a field of it"));
            }
        }
    }
    if route == "GET projects/:id/merge_requests"
        && let Some(state) = query.get("state")
        && !["opened", "closed", "locked", "merged", "all"].contains(&state.as_str())
    {
        s.violations
            .push(format!("{route}: state={state} is not one GitLab takes"));
    }
    let web = s.web.clone();
    let mr_json = |mr: &MergeRequest| {
        json!({
            "id": 10_000 + mr.iid, "iid": mr.iid, "project_id": 1,
            "title": mr.title, "description": mr.description,
            "state": if mr.open { "opened" } else { "closed" },
            "draft": mr.title.starts_with("Draft:"),
            "web_url": format!("{web}/{}/-/merge_requests/{}", mr.project, mr.iid),
            "source_branch": mr.source_branch, "target_branch": mr.target_branch,
            "source_project_id": 1, "target_project_id": 1
        })
    };
    let field = |name: &str| body[name].as_str().unwrap_or("").to_owned();
    let (status, answer) = match route.as_str() {
        "GET users" => {
            let name = query.get("username").cloned().unwrap_or_default();
            let found: Vec<Value> = s
                .members
                .keys()
                .position(|u| *u == name)
                .map(|i| json!({"id": 500 + i, "username": name, "state": "active"}))
                .into_iter()
                .collect();
            (StatusCode::OK, Value::Array(found))
        }
        "GET projects/:id/members/all/:user_id" => {
            let id: usize = ids[0].parse().unwrap_or(0);
            let by_position: Vec<&String> = s.members.keys().collect();
            match id.checked_sub(500).and_then(|i| by_position.get(i)) {
                Some(user) => (
                    StatusCode::OK,
                    json!({"id": id, "username": user, "access_level": s.members[*user]}),
                ),
                None => (StatusCode::NOT_FOUND, json!({"message": "404 Not found"})),
            }
        }
        "GET projects/:id/merge_requests" => {
            let branch = query.get("source_branch").cloned();
            let mut found: Vec<Value> = s
                .merge_requests
                .iter()
                .filter(|m| {
                    m.project == project && branch.as_ref().is_none_or(|b| *b == m.source_branch)
                })
                .map(mr_json)
                .collect();
            found.reverse();
            (StatusCode::OK, Value::Array(found))
        }
        "POST projects/:id/merge_requests" => {
            let source = field("source_branch");
            if s.merge_requests
                .iter()
                .any(|m| m.project == project && m.source_branch == source && m.open)
            {
                (
                    StatusCode::CONFLICT,
                    json!({"message": [format!("Another open merge request already exists for this source branch: !{}", 1)]}),
                )
            } else {
                let mr = MergeRequest {
                    iid: s.merge_requests.len() as u64 + 1,
                    project: project.clone(),
                    source_branch: source,
                    target_branch: field("target_branch"),
                    title: field("title"),
                    description: field("description"),
                    open: true,
                };
                s.merge_requests.push(mr.clone());
                (StatusCode::CREATED, mr_json(&mr))
            }
        }
        "GET projects/:id/merge_requests/:iid" | "PUT projects/:id/merge_requests/:iid" => {
            let iid: u64 = ids[0].parse().unwrap_or(0);
            let put = method == Method::PUT;
            match s
                .merge_requests
                .iter_mut()
                .find(|m| m.project == project && m.iid == iid)
            {
                Some(mr) => {
                    if put {
                        if let Some(t) = body["title"].as_str() {
                            mr.title = t.to_owned();
                        }
                        if let Some(d) = body["description"].as_str() {
                            mr.description = d.to_owned();
                        }
                    }
                    let mr = mr.clone();
                    (StatusCode::OK, mr_json(&mr))
                }
                None => (StatusCode::NOT_FOUND, json!({"message": "404 Not found"})),
            }
        }
        "POST projects/:id/issues/:iid/notes" | "POST projects/:id/merge_requests/:iid/notes" => {
            let id = 7_000 + s.notes.len() as u64;
            let note = Note {
                id,
                on: segments[2].clone(),
                iid: ids[0].parse().unwrap_or(0),
                body: field("body"),
                edits: 0,
            };
            let answer = json!({"id": id, "body": note.body, "noteable_iid": note.iid});
            s.notes.push(note);
            (StatusCode::CREATED, answer)
        }
        "PUT projects/:id/issues/:iid/notes/:note_id"
        | "PUT projects/:id/merge_requests/:iid/notes/:note_id" => {
            let id: u64 = ids[1].parse().unwrap_or(0);
            let on = segments[2].clone();
            let text = field("body");
            match s.notes.iter_mut().find(|n| n.id == id && n.on == on) {
                Some(note) => {
                    note.body = text;
                    note.edits += 1;
                    (StatusCode::OK, json!({"id": id, "body": note.body}))
                }
                None => (StatusCode::NOT_FOUND, json!({"message": "404 Not found"})),
            }
        }
        "DELETE projects/:id/repository/branches/:branch" => {
            s.deleted_branches.push(ids[0].clone());
            return StatusCode::NO_CONTENT.into_response();
        }
        _ => (
            StatusCode::NOT_IMPLEMENTED,
            json!({"message": "not scripted"}),
        ),
    };
    (status, axum::Json(answer)).into_response()
}
