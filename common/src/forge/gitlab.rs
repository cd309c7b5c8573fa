//! GitLab's REST API (v4; gitlab.com or a self-managed instance) with a personal, group or
//! project access token: merge requests for tasks, notes for answers, members for permissions.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::http;
use super::{
    CommentId, Forge, ForgeError, ForgeRepo, NewPullRequest, Permission, PullRequestHead,
    PullRequestRef, PullRequestState, Thread,
};
use crate::config::{ConfigError, EnvReader, Secret};
use crate::egress::{RepoPolicy, RepoUrl};

const FORGE: &str = "GitLab";
/// GitLab's Developer role: may push, so may ask an agent to.
const DEVELOPER: u64 = 30;

/// Where GitLab is and the token for it.
pub struct GitLabConfig {
    /// `OPENCLAW_GITLAB_API_URL`: `https://gitlab.com/api/v4`, or `https://HOST/api/v4`.
    pub api_url: url::Url,
    /// The API's host, which is its repositories' too.
    pub web_host: String,
    /// `GITLAB_TOKEN` (scopes `api`; a project or group access token narrows it).
    pub token: Secret,
}

impl std::fmt::Debug for GitLabConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitLabConfig")
            .field("api_url", &self.api_url.as_str())
            .finish_non_exhaustive()
    }
}

impl GitLabConfig {
    /// `None` without `GITLAB_TOKEN`. The API URL obeys the repository address rules.
    pub fn from_env(env: &EnvReader<'_>, policy: &RepoPolicy) -> Result<Option<Self>, ConfigError> {
        let Some(token) = env.secret("GITLAB_TOKEN") else {
            return Ok(None);
        };
        let raw = env.string_or("OPENCLAW_GITLAB_API_URL", "https://gitlab.com/api/v4");
        let api_url = http::api_url(&raw, policy).map_err(|expected| ConfigError::Invalid {
            var: "OPENCLAW_GITLAB_API_URL",
            value: raw,
            expected,
        })?;
        let web_host = api_url.host_str().unwrap_or_default().to_ascii_lowercase();
        Ok(Some(Self {
            api_url,
            web_host,
            token,
        }))
    }

    /// The project `url` names (`group/subgroup/project`), when its host is this GitLab's.
    pub fn repo_of(&self, url: &RepoUrl) -> Option<ForgeRepo> {
        ForgeRepo::from_nested_path(&ForgeRepo::path_on(url, &self.web_host)?)
    }

    /// `https://gitlab.com/group/project/-/compare/base...head`.
    pub fn compare_url(&self, repo: &ForgeRepo, base: &str, head: &str) -> String {
        let api = &self.api_url;
        let port = api.port().map(|p| format!(":{p}")).unwrap_or_default();
        format!(
            "{}://{}{port}/{repo}/-/compare/{base}...{head}",
            api.scheme(),
            self.web_host
        )
    }

    pub fn secrets(&self) -> Vec<&Secret> {
        vec![&self.token]
    }
}

/// A GitLab client. Cheap to clone.
#[derive(Clone)]
pub struct GitLab {
    config: Arc<GitLabConfig>,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct MergeRequest {
    iid: u64,
    web_url: String,
    state: String,
    #[serde(default)]
    draft: bool,
}

impl MergeRequest {
    fn into_state(self) -> PullRequestState {
        PullRequestState {
            open: self.state == "opened",
            pull_request: PullRequestRef {
                url: self.web_url,
                number: self.iid,
                draft: self.draft,
            },
        }
    }
}

impl GitLab {
    pub fn new(config: Arc<GitLabConfig>) -> Result<Self, ForgeError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("openclaw/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ForgeError::Invalid(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { config, http })
    }

    /// One call under `projects/<group%2Fproject>/…`, or elsewhere when `project` is `None`.
    async fn call<T: DeserializeOwned>(
        &self,
        what: &'static str,
        method: Method,
        project: Option<&ForgeRepo>,
        path: &[&str],
        query: &[(&str, &str)],
        body: Option<serde_json::Value>,
    ) -> Result<T, ForgeError> {
        let id = project.map(ToString::to_string);
        let mut full: Vec<&str> = Vec::new();
        if let Some(id) = &id {
            // The project's path is one segment, its slashes encoded (`group%2Fproject`).
            full.extend(["projects", id.as_str()]);
        }
        full.extend(path);
        let call = http::Call {
            forge: FORGE,
            what,
            method,
            url: http::join(&self.config.api_url, &full)?,
            query,
            body,
            headers: vec![("PRIVATE-TOKEN", self.config.token.expose().to_owned())],
        };
        http::send(&self.http, call).await
    }

    fn notes_path(thread: Thread) -> (&'static str, String) {
        match thread {
            Thread::Issue(n) => ("issues", n.to_string()),
            Thread::PullRequest(n) => ("merge_requests", n.to_string()),
        }
    }
}

impl Forge for GitLab {
    fn repo_of(&self, url: &RepoUrl) -> Option<ForgeRepo> {
        self.config.repo_of(url)
    }

    async fn find_pull_request(
        &self,
        repo: &ForgeRepo,
        branch: &str,
    ) -> Result<Option<PullRequestState>, ForgeError> {
        let found: Vec<MergeRequest> = self
            .call(
                "looking up the task's merge request",
                Method::GET,
                Some(repo),
                &["merge_requests"],
                &[("source_branch", branch), ("state", "all")],
                None,
            )
            .await?;
        let mut found: Vec<PullRequestState> =
            found.into_iter().map(MergeRequest::into_state).collect();
        found.sort_by_key(|p| !p.open);
        Ok(found.into_iter().next())
    }

    async fn create_pull_request(
        &self,
        repo: &ForgeRepo,
        new: &NewPullRequest,
    ) -> Result<PullRequestRef, ForgeError> {
        // A draft is a title starting with `Draft:` (GitLab's own convention).
        let title = if new.draft {
            format!("Draft: {}", new.title)
        } else {
            new.title.clone()
        };
        let created: MergeRequest = self
            .call(
                "opening the task's merge request",
                Method::POST,
                Some(repo),
                &["merge_requests"],
                &[],
                Some(serde_json::json!({
                    "source_branch": new.head,
                    "target_branch": new.base,
                    "title": title,
                    "description": new.body,
                })),
            )
            .await?;
        Ok(created.into_state().pull_request)
    }

    async fn update_pull_request(
        &self,
        repo: &ForgeRepo,
        number: u64,
        title: &str,
        body: &str,
    ) -> Result<PullRequestRef, ForgeError> {
        let updated: MergeRequest = self
            .call(
                "updating the task's merge request",
                Method::PUT,
                Some(repo),
                &["merge_requests", &number.to_string()],
                &[],
                Some(serde_json::json!({"title": title, "description": body})),
            )
            .await?;
        Ok(updated.into_state().pull_request)
    }

    fn compare_url(&self, repo: &ForgeRepo, base: &str, head: &str) -> String {
        self.config.compare_url(repo, base, head)
    }

    async fn pull_request_head(
        &self,
        repo: &ForgeRepo,
        number: u64,
    ) -> Result<PullRequestHead, ForgeError> {
        #[derive(Deserialize)]
        struct Wire {
            title: String,
            state: String,
            source_branch: String,
            source_project_id: u64,
            target_project_id: u64,
        }
        let mr: Wire = self
            .call(
                "reading a merge request",
                Method::GET,
                Some(repo),
                &["merge_requests", &number.to_string()],
                &[],
                None,
            )
            .await?;
        Ok(PullRequestHead {
            branch: (mr.source_project_id == mr.target_project_id).then_some(mr.source_branch),
            title: mr.title,
            open: mr.state == "opened",
        })
    }

    async fn permission(&self, repo: &ForgeRepo, user: &str) -> Result<Permission, ForgeError> {
        #[derive(Deserialize)]
        struct User {
            id: u64,
        }
        #[derive(Deserialize)]
        struct Member {
            access_level: u64,
        }
        let users: Vec<User> = self
            .call(
                "finding a user",
                Method::GET,
                None,
                &["users"],
                &[("username", user)],
                None,
            )
            .await?;
        let Some(found) = users.first() else {
            return Ok(Permission::Read);
        };
        let member: Result<Member, _> = self
            .call(
                "reading a user's role",
                Method::GET,
                Some(repo),
                &["members", "all", &found.id.to_string()],
                &[],
                None,
            )
            .await;
        match member {
            Ok(m) if m.access_level >= DEVELOPER => Ok(Permission::Write),
            Ok(_) | Err(ForgeError::Refused { status: 404, .. }) => Ok(Permission::Read),
            Err(e) => Err(e),
        }
    }

    async fn comment(
        &self,
        repo: &ForgeRepo,
        thread: Thread,
        body: &str,
    ) -> Result<CommentId, ForgeError> {
        #[derive(Deserialize)]
        struct Note {
            id: u64,
        }
        let (kind, number) = Self::notes_path(thread);
        let note: Note = self
            .call(
                "commenting",
                Method::POST,
                Some(repo),
                &[kind, &number, "notes"],
                &[],
                Some(serde_json::json!({ "body": body })),
            )
            .await?;
        Ok(CommentId(note.id))
    }

    async fn edit_comment(
        &self,
        repo: &ForgeRepo,
        thread: Thread,
        comment: CommentId,
        body: &str,
    ) -> Result<(), ForgeError> {
        let (kind, number) = Self::notes_path(thread);
        let _: serde_json::Value = self
            .call(
                "editing a comment",
                Method::PUT,
                Some(repo),
                &[kind, &number, "notes", &comment.0.to_string()],
                &[],
                Some(serde_json::json!({ "body": body })),
            )
            .await?;
        Ok(())
    }

    async fn delete_branch(&self, repo: &ForgeRepo, branch: &str) -> Result<(), ForgeError> {
        // The branch is one segment, its slashes encoded.
        match self
            .call::<()>(
                "deleting a branch",
                Method::DELETE,
                Some(repo),
                &["repository", "branches", branch],
                &[],
                None,
            )
            .await
        {
            Err(ForgeError::Refused { status: 404, .. }) | Ok(()) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Option<GitLabConfig>, ConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        GitLabConfig::from_env(&EnvReader(&env), &RepoPolicy::default())
    }

    #[test]
    fn projects_in_groups_belong_to_their_gitlab() {
        assert!(config(&[]).expect("nothing").is_none());
        let gitlab = config(&[("GITLAB_TOKEN", "glpat-x")])
            .expect("valid")
            .expect("configured");
        let repo =
            |raw: &str| gitlab.repo_of(&RepoUrl::parse(raw, &RepoPolicy::default()).expect("url"));
        let nested = repo("https://gitlab.com/group/sub/project.git").expect("a project");
        assert_eq!(
            (nested.owner.as_str(), nested.name.as_str()),
            ("group/sub", "project")
        );
        assert_eq!(
            repo("git@gitlab.com:group/project.git")
                .map(|r| r.to_string())
                .as_deref(),
            Some("group/project")
        );
        assert_eq!(repo("https://github.com/group/project.git"), None);
        assert_eq!(repo("https://gitlab.com/project.git"), None);
        assert_eq!(
            gitlab.compare_url(&nested, "main", "openclaw/1"),
            "https://gitlab.com/group/sub/project/-/compare/main...openclaw/1"
        );
        assert!(!format!("{gitlab:?}").contains("glpat-x"));
        let err = config(&[
            ("GITLAB_TOKEN", "t"),
            ("OPENCLAW_GITLAB_API_URL", "https://10.0.0.1/api/v4"),
        ])
        .expect_err("private");
        assert!(err.to_string().contains("OPENCLAW_GITLAB_API_URL"), "{err}");
    }
}
