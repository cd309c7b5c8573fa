//! A scripted GitHub REST API for the suite: GitHub is an outside service, so the harness
//! speaks its published contract in its place. Every request is checked against GitHub's
//! official OpenAPI description ([`OpenApi::github`]); a request GitHub would refuse is
//! answered 422 and recorded as a violation, which [`ScriptedGitHub::assert_contract`] fails
//! on. Answers are the description's own examples with this server's state patched in, and are
//! checked against the response schemas too.
//!
//! Served under `/api/v3`, as GitHub Enterprise Server is, so the client's base-path handling
//! is exercised. State: pull requests, installation tokens (for a GitHub App whose key the test
//! generates), issue comments and collaborators' permissions.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::openapi::{OpenApi, Operation};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path under the API base, such as `/repos/o/r/pulls`.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
    pub authorization: Option<String>,
    /// The operation id the description gives it (`pulls/create`), empty when none matched.
    pub operation: String,
}

/// A comment on an issue or pull request.
#[derive(Debug, Clone)]
pub struct Comment {
    pub id: u64,
    pub repo: String,
    pub number: u64,
    pub body: String,
    /// How many times it was edited.
    pub edits: u32,
}

/// A pull request the server holds.
#[derive(Debug, Clone)]
pub struct Pull {
    pub number: u64,
    pub repo: String,
    pub head: String,
    pub base: String,
    pub title: String,
    pub body: String,
    pub draft: bool,
    pub open: bool,
}

struct App {
    id: u64,
    installation_id: u64,
    public_der: Vec<u8>,
}

#[derive(Default)]
struct State {
    token: String,
    app: Option<App>,
    /// Installation tokens minted, with the repositories (names) each may reach.
    installation_tokens: Vec<(String, Vec<String>)>,
    requests: Vec<Recorded>,
    violations: Vec<String>,
    pulls: Vec<Pull>,
    next_number: u64,
    web: String,
    /// Held: the next create stores its pull request, says so here, and never answers.
    hold_create: Option<oneshot::Sender<u64>>,
    comments: Vec<Comment>,
    /// Refs deleted (`heads/<branch>`).
    deleted_refs: Vec<String>,
    /// The value the next installation token gets (a git server can then be told it).
    next_token: Option<String>,
    /// Users' permission levels (`admin`, `write`, `read`, …); others have `read`.
    permissions: HashMap<String, String>,
}

/// The running server; stops when dropped.
pub struct ScriptedGitHub {
    /// `OPENCLAW_GITHUB_API_URL` for it.
    pub api_url: String,
    /// The host:port its repositories' URLs and pages use (the forge's web host).
    pub web: String,
    /// The token it accepts (token authentication).
    pub token: String,
    state: Arc<Mutex<State>>,
    server: tokio::task::JoinHandle<()>,
}

/// A GitHub App the scripted server knows: its id and the private key file the test made.
pub struct GitHubApp {
    pub id: u64,
    pub installation_id: u64,
    pub key_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl ScriptedGitHub {
    /// A server accepting [`ScriptedGitHub::token`].
    pub async fn start() -> Self {
        crate::init();
        // Load (and fail loudly about) the description before serving.
        let _ = OpenApi::github();
        let state = Arc::new(Mutex::new(State {
            token: format!("ghp_{}", uuid::Uuid::now_v7().simple()),
            next_number: 1347,
            ..State::default()
        }));
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let (url, server) = crate::serve(router).await;
        let web = url.trim_start_matches("http://").to_owned();
        let token = {
            let mut s = state.lock().expect("github lock");
            s.web = url.clone();
            s.token.clone()
        };
        Self {
            api_url: format!("{url}/api/v3"),
            web,
            token,
            state,
            server,
        }
    }

    /// A server that also knows a GitHub App, whose private key the test generates now
    /// (`openssl genrsa`, PKCS#1 PEM as GitHub hands them out).
    pub async fn start_with_app() -> (Self, GitHubApp) {
        let github = Self::start().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let key_file = dir.path().join("app.private-key.pem");
        let ok = std::process::Command::new("openssl")
            .args(["genrsa", "-traditional", "-out"])
            .arg(&key_file)
            .arg("2048")
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl is installed (scripts/tools.sh)")
            .success();
        assert!(ok, "openssl genrsa failed");
        let pem = std::fs::read_to_string(&key_file).expect("key");
        let key = openclaw_common::forge::app::AppKey::from_pem(&pem).expect("a usable key");
        let app = GitHubApp {
            id: 31_337,
            installation_id: 4_242_424,
            key_file,
            _dir: dir,
        };
        github.lock().app = Some(App {
            id: app.id,
            installation_id: app.installation_id,
            public_der: key.public_der(),
        });
        (github, app)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("github lock")
    }

    /// The settings that point a bridge or worker at this server with its token.
    pub fn token_env(&self) -> Vec<(String, String)> {
        vec![
            ("GITHUB_TOKEN".into(), self.token.clone()),
            ("OPENCLAW_GITHUB_API_URL".into(), self.api_url.clone()),
        ]
    }

    /// The settings for `app` instead of a token.
    pub fn app_env(&self, app: &GitHubApp) -> Vec<(String, String)> {
        vec![
            ("OPENCLAW_GITHUB_APP_ID".into(), app.id.to_string()),
            (
                "OPENCLAW_GITHUB_APP_PRIVATE_KEY_FILE".into(),
                app.key_file.display().to_string(),
            ),
            ("OPENCLAW_GITHUB_API_URL".into(), self.api_url.clone()),
        ]
    }

    /// Gives `user` permission `level` (`write`, `admin`, `read`, `none`) on every repository.
    pub fn set_permission(&self, user: &str, level: &str) {
        self.lock()
            .permissions
            .insert(user.to_owned(), level.to_owned());
    }

    /// The refs deleted through the API (`heads/<branch>`).
    pub fn deleted_refs(&self) -> Vec<String> {
        self.lock().deleted_refs.clone()
    }

    pub fn comments(&self) -> Vec<Comment> {
        self.lock().comments.clone()
    }

    pub fn pulls(&self) -> Vec<Pull> {
        self.lock().pulls.clone()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// The next installation token minted will be `token`.
    pub fn mint_next_as(&self, token: &str) {
        self.lock().next_token = Some(token.to_owned());
    }

    /// The installation tokens minted so far.
    pub fn installation_tokens(&self) -> Vec<String> {
        self.lock()
            .installation_tokens
            .iter()
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// The next pull request create is stored and then never answered (the client dies
    /// waiting); the receiver gets its number once it is stored.
    pub fn hold_next_create(&self) -> oneshot::Receiver<u64> {
        let (tx, rx) = oneshot::channel();
        self.lock().hold_create = Some(tx);
        rx
    }

    /// Fails with every request that broke GitHub's contract, and every answer of this server
    /// that did.
    pub fn assert_contract(&self) {
        let violations = self.lock().violations.clone();
        assert!(
            violations.is_empty(),
            "requests GitHub's OpenAPI description refuses:\n{}",
            violations.join("\n")
        );
    }
}

impl Drop for ScriptedGitHub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// GitHub's error body.
fn error(status: StatusCode, message: &str) -> (StatusCode, Value) {
    (
        status,
        json!({
            "message": message,
            "documentation_url": "https://docs.github.com/rest",
            "status": status.as_u16().to_string(),
        }),
    )
}

async fn handle(
    axum::extract::State(state): axum::extract::State<Arc<Mutex<State>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(path) = uri.path().strip_prefix("/api/v3") else {
        return reply(error(StatusCode::NOT_FOUND, "Not Found"));
    };
    let path = path.to_owned();
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let json_body: Option<Value> = if body.is_empty() {
        None
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => Some(v),
            Err(e) => {
                let mut s = state.lock().expect("github lock");
                s.violations
                    .push(format!("{method} {path}: body is not JSON ({e})"));
                return reply(error(StatusCode::BAD_REQUEST, "Problems parsing JSON"));
            }
        }
    };
    let api = OpenApi::github();
    let operation = api.operation(method.as_str(), &path);
    let mut recorded = Recorded {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        body: json_body.clone(),
        authorization: authorization.clone(),
        operation: String::new(),
    };
    let op = match operation {
        Ok(op) => op,
        Err(e) => {
            let mut s = state.lock().expect("github lock");
            s.violations.push(e);
            s.requests.push(recorded);
            return reply(error(StatusCode::NOT_FOUND, "Not Found"));
        }
    };
    recorded.operation = op.id.clone();
    let mut problems = api.check_request(&op, &query, json_body.as_ref());
    for (name, expected) in [
        ("accept", "application/vnd.github+json"),
        ("x-github-api-version", "2022-11-28"),
    ] {
        if headers.get(name).and_then(|v| v.to_str().ok()) != Some(expected) {
            problems.push(format!("header {name} is not {expected}"));
        }
    }
    if headers.get("user-agent").is_none() {
        // GitHub refuses requests without one.
        problems.push("no User-Agent header".into());
    }
    let (hold, answer) = {
        let mut s = state.lock().expect("github lock");
        s.requests.push(recorded);
        if !problems.is_empty() {
            let list = problems.join("; ");
            s.violations
                .push(format!("{method} {path} ({}): {list}", op.id));
            return reply(error(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("Invalid request: {list}"),
            ));
        }
        let answer = answer(
            &mut s,
            &op,
            authorization.as_deref(),
            &query,
            json_body.as_ref(),
        );
        if let Ok((status, body)) = &answer {
            let wrong = api.check_response(&op, status.as_u16(), body);
            if !wrong.is_empty() {
                s.violations.push(format!(
                    "the scripted server's own {} answer breaks the schema: {}",
                    op.id,
                    wrong.join("; ")
                ));
            }
        }
        let hold =
            if op.id == "pulls/create" && answer.as_ref().is_ok_and(|(st, _)| st.is_success()) {
                s.hold_create.take().map(|tx| {
                    let number = s.pulls.last().map_or(0, |p| p.number);
                    let _ = tx.send(number);
                })
            } else {
                None
            };
        (hold.is_some(), answer)
    };
    if hold {
        std::future::pending::<()>().await;
    }
    reply(answer.unwrap_or_else(|e| e))
}

fn reply((status, body): (StatusCode, Value)) -> Response {
    if status == StatusCode::NO_CONTENT {
        return status.into_response();
    }
    (status, axum::Json(body)).into_response()
}

/// Whether `authorization` may act on repository `repo` (`owner/name`).
fn may_act_on(s: &State, authorization: Option<&str>, repo: &str) -> bool {
    let Some(token) = authorization.and_then(|a| a.strip_prefix("Bearer ")) else {
        return false;
    };
    if token == s.token {
        return true;
    }
    let name = repo.rsplit('/').next().unwrap_or("");
    s.installation_tokens
        .iter()
        .any(|(t, repos)| t == token && repos.iter().any(|r| r == name))
}

/// The App's JWT in `authorization`, checked as GitHub does: RS256 under the App's key, `iss`
/// its id, at most ten minutes long, not expired.
fn app_jwt_valid(s: &State, authorization: Option<&str>) -> Result<(), String> {
    let app = s.app.as_ref().ok_or("this server has no App")?;
    let jwt = authorization
        .and_then(|a| a.strip_prefix("Bearer "))
        .ok_or("no bearer JWT")?;
    let claims = openclaw_common::forge::app::verify_jwt(jwt, &app.public_der)?;
    let now = openclaw_common::now().unix_timestamp();
    let (iat, exp) = (
        claims["iat"].as_i64().ok_or("no iat")?,
        claims["exp"].as_i64().ok_or("no exp")?,
    );
    if claims["iss"] != json!(app.id.to_string()) && claims["iss"] != json!(app.id) {
        return Err(format!("iss {} is not the App", claims["iss"]));
    }
    if exp - iat > 600 || exp <= now || iat > now + 60 {
        return Err(format!("bad lifetime: iat {iat}, exp {exp}, now {now}"));
    }
    Ok(())
}

/// A status and a JSON body; an error is one with GitHub's error body.
type Answer = Result<(StatusCode, Value), (StatusCode, Value)>;

/// The server's answer to a request the description accepts.
fn answer(
    s: &mut State,
    op: &Operation,
    authorization: Option<&str>,
    query: &[(String, String)],
    body: Option<&Value>,
) -> Answer {
    let api = OpenApi::github();
    let param = |name: &str| {
        op.path_params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let repo = format!("{}/{}", param("owner"), param("repo"));
    let app_call = op.id.starts_with("apps/");
    if app_call {
        if let Err(why) = app_jwt_valid(s, authorization) {
            s.violations
                .push(format!("{}: the App's JWT is refused: {why}", op.id));
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "A JSON web token could not be decoded",
            ));
        }
    } else if !may_act_on(s, authorization, &repo) {
        return Err(error(StatusCode::UNAUTHORIZED, "Bad credentials"));
    }
    let field = |name: &str| {
        body.and_then(|b| b.get(name))
            .cloned()
            .unwrap_or(Value::Null)
    };
    match op.id.as_str() {
        "apps/get-repo-installation" => {
            let mut example = api.example(op, 200);
            example["id"] = json!(s.app.as_ref().map_or(0, |a| a.installation_id));
            Ok((StatusCode::OK, example))
        }
        "apps/create-installation-access-token" => {
            let installation: u64 = param("installation_id").parse().unwrap_or(0);
            if s.app.as_ref().map(|a| a.installation_id) != Some(installation) {
                return Err(error(StatusCode::NOT_FOUND, "Not Found"));
            }
            let repos: Vec<String> = field("repositories")
                .as_array()
                .map(|r| {
                    r.iter()
                        .filter_map(|n| n.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let token = s
                .next_token
                .take()
                .unwrap_or_else(|| format!("ghs_{}", uuid::Uuid::now_v7().simple()));
            s.installation_tokens.push((token.clone(), repos));
            let mut example = api.example(op, 201);
            example["token"] = json!(token);
            let expires = openclaw_common::now() + time::Duration::hours(1);
            example["expires_at"] = json!(
                expires
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            );
            Ok((StatusCode::CREATED, example))
        }
        "pulls/list" => {
            let mut found: Vec<&Pull> = s.pulls.iter().filter(|p| p.repo == repo).collect();
            if let Some((_, head)) = query.iter().find(|(n, _)| n == "head") {
                found.retain(|p| format!("{}:{}", param("owner"), p.head) == *head);
            }
            found.reverse();
            let template = api.example(op, 200)[0].clone();
            let items = found
                .into_iter()
                .map(|p| pull_json(template.clone(), p, &s.web))
                .collect();
            Ok((StatusCode::OK, Value::Array(items)))
        }
        "pulls/create" => {
            let head = field("head").as_str().unwrap_or("").to_owned();
            if s.pulls
                .iter()
                .any(|p| p.repo == repo && p.head == head && p.open)
            {
                return Err((
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({
                        "message": "Validation Failed",
                        "errors": [{"resource": "PullRequest", "code": "custom",
                            "message": format!("A pull request already exists for {}:{head}.", param("owner"))}],
                        "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
                        "status": "422"
                    }),
                ));
            }
            let pull = Pull {
                number: s.next_number,
                repo,
                head,
                base: field("base").as_str().unwrap_or("").to_owned(),
                title: field("title").as_str().unwrap_or("").to_owned(),
                body: field("body").as_str().unwrap_or("").to_owned(),
                draft: field("draft").as_bool().unwrap_or(false),
                open: true,
            };
            s.next_number += 1;
            s.pulls.push(pull.clone());
            Ok((
                StatusCode::CREATED,
                pull_json(api.example(op, 201), &pull, &s.web),
            ))
        }
        "pulls/update" | "pulls/get" => {
            let number: u64 = param("pull_number").parse().unwrap_or(0);
            let web = s.web.clone();
            let Some(pull) = s
                .pulls
                .iter_mut()
                .find(|p| p.repo == repo && p.number == number)
            else {
                return Err(error(StatusCode::NOT_FOUND, "Not Found"));
            };
            if let Some(title) = field("title").as_str() {
                pull.title = title.to_owned();
            }
            if let Some(text) = field("body").as_str() {
                pull.body = text.to_owned();
            }
            let pull = pull.clone();
            Ok((StatusCode::OK, pull_json(api.example(op, 200), &pull, &web)))
        }
        "git/delete-ref" => {
            s.deleted_refs.push(param("ref"));
            Ok((StatusCode::NO_CONTENT, Value::Null))
        }
        "repos/get-collaborator-permission-level" => {
            let user = param("username");
            let level = s
                .permissions
                .get(&user)
                .cloned()
                .unwrap_or_else(|| "read".to_owned());
            let mut example = api.example(op, 200);
            example["permission"] = json!(level);
            example["role_name"] = json!(level);
            example["user"]["login"] = json!(user);
            // GitHub's example user lacks the `role_name` its schema requires.
            example["user"]["role_name"] = json!(level);
            Ok((StatusCode::OK, example))
        }
        "issues/create-comment" => {
            let number: u64 = param("issue_number").parse().unwrap_or(0);
            let id = 1_000 + s.comments.len() as u64;
            let body_text = field("body").as_str().unwrap_or("").to_owned();
            s.comments.push(Comment {
                id,
                repo: repo.clone(),
                number,
                body: body_text.clone(),
                edits: 0,
            });
            let mut example = api.example(op, 201);
            example["id"] = json!(id);
            example["body"] = json!(body_text);
            Ok((StatusCode::CREATED, example))
        }
        "issues/update-comment" => {
            let id: u64 = param("comment_id").parse().unwrap_or(0);
            let Some(comment) = s.comments.iter_mut().find(|c| c.id == id && c.repo == repo) else {
                return Err(error(StatusCode::NOT_FOUND, "Not Found"));
            };
            comment.body = field("body").as_str().unwrap_or("").to_owned();
            comment.edits += 1;
            let body_text = comment.body.clone();
            let mut example = api.example(op, 200);
            example["id"] = json!(id);
            example["body"] = json!(body_text);
            Ok((StatusCode::OK, example))
        }
        other => {
            s.violations
                .push(format!("the scripted server does not serve {other} yet"));
            Err(error(StatusCode::NOT_IMPLEMENTED, "not scripted"))
        }
    }
}

/// The description's pull request example with `pull` patched in.
fn pull_json(mut example: Value, pull: &Pull, web: &str) -> Value {
    let (owner, name) = pull.repo.split_once('/').unwrap_or(("", ""));
    example["number"] = json!(pull.number);
    example["html_url"] = json!(format!("{web}/{owner}/{name}/pull/{}", pull.number));
    example["state"] = json!(if pull.open { "open" } else { "closed" });
    example["title"] = json!(pull.title);
    example["body"] = json!(pull.body);
    example["draft"] = json!(pull.draft);
    example["head"]["ref"] = json!(pull.head);
    example["head"]["label"] = json!(format!("{owner}:{}", pull.head));
    example["base"]["ref"] = json!(pull.base);
    example["base"]["label"] = json!(format!("{owner}:{}", pull.base));
    for side in ["head", "base"] {
        example[side]["repo"]["full_name"] = json!(pull.repo);
        example[side]["repo"]["name"] = json!(name);
        example[side]["repo"]["owner"]["login"] = json!(owner);
    }
    // No reviewers or teams here (and GitHub's example team lacks the `type` its schema
    // requires).
    example["requested_teams"] = json!([]);
    example["requested_reviewers"] = json!([]);
    example
}

/// One of GitHub's own example payloads of webhook `event` (npm `@octokit/webhooks-examples`),
/// the first whose `action` is `action` and that `pick` accepts.
pub fn webhook_example(event: &str, action: &str, pick: impl Fn(&Value) -> bool) -> Value {
    use std::sync::OnceLock;
    static ALL: OnceLock<Value> = OnceLock::new();
    let all = ALL.get_or_init(|| {
        let path = crate::openapi::contract_dir().join("webhook-examples.json");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "GitHub's webhook examples are missing at {} ({e}): run `bash scripts/tools.sh`",
                path.display()
            )
        });
        serde_json::from_str(&text).expect("the examples are JSON")
    });
    all.as_array()
        .expect("a list of events")
        .iter()
        .filter(|e| e["name"] == event)
        .flat_map(|e| e["examples"].as_array().cloned().unwrap_or_default())
        .find(|p| p["action"] == action && pick(p))
        .unwrap_or_else(|| panic!("no {event}.{action} example fits"))
}

/// `payload` as if it were about `repo` (`owner/name`, cloned from `clone_url`) and sent by
/// `sender`: the example's other fields stay GitHub's.
pub fn about(mut payload: Value, repo: &str, clone_url: &str, sender: &str) -> Value {
    let (owner, name) = repo.split_once('/').expect("owner/name");
    payload["repository"]["full_name"] = json!(repo);
    payload["repository"]["name"] = json!(name);
    payload["repository"]["owner"]["login"] = json!(owner);
    payload["repository"]["clone_url"] = json!(clone_url);
    payload["sender"]["login"] = json!(sender);
    payload["sender"]["type"] = json!("User");
    payload
}

/// Delivers `payload` to a bridge's webhook route as GitHub does: the event and delivery id in
/// their headers, the body signed with `secret` (`X-Hub-Signature-256`).
pub async fn deliver(
    bridge: &str,
    secret: &str,
    event: &str,
    delivery: &str,
    payload: &Value,
) -> reqwest::Response {
    let body = serde_json::to_vec(payload).expect("JSON");
    let signature = openclaw_common::forge::webhook::github_signature(secret.as_bytes(), &body);
    reqwest::Client::new()
        .post(format!("{bridge}/v1/webhooks/github"))
        .header("Content-Type", "application/json")
        .header("User-Agent", "GitHub-Hookshot/test")
        .header("X-GitHub-Event", event)
        .header("X-GitHub-Delivery", delivery)
        .header("X-Hub-Signature-256", signature)
        .body(body)
        .send()
        .await
        .expect("the bridge answers")
}
