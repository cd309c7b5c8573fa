//! GitHub's REST API (github.com and Enterprise Server), with a token or as a GitHub App.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::app::AppKey;
use super::http;
use super::{
    CommentId, Forge, ForgeError, ForgeRepo, NewPullRequest, Permission, PullRequestHead,
    PullRequestRef, PullRequestState, Thread,
};
use crate::config::{ConfigError, EnvReader, Secret};
use crate::egress::{RepoPolicy, RepoUrl};

const FORGE: &str = "GitHub";
/// The REST API version every request asks for (GitHub's `X-GitHub-Api-Version`).
const API_VERSION: &str = "2022-11-28";
/// What a GitHub App's installation token may do: the four permissions the README asks the
/// App for, no more.
const APP_PERMISSIONS: &str =
    r#"{"contents":"write","pull_requests":"write","issues":"write","metadata":"read"}"#;

/// How the project authenticates to GitHub.
pub enum GitHubAuth {
    /// `GITHUB_TOKEN`: a personal or fine-grained access token.
    Token(Secret),
    /// `OPENCLAW_GITHUB_APP_ID` + `OPENCLAW_GITHUB_APP_PRIVATE_KEY_FILE`: an installation token
    /// is minted per repository, for that repository alone, and expires within the hour.
    App {
        app_id: u64,
        key: Arc<AppKey>,
        /// `OPENCLAW_GITHUB_APP_INSTALLATION_ID`; otherwise looked up per repository.
        installation_id: Option<u64>,
    },
}

/// Where GitHub is and how to talk to it.
pub struct GitHubConfig {
    /// `OPENCLAW_GITHUB_API_URL`: `https://api.github.com`, or `https://HOST/api/v3`.
    pub api_url: url::Url,
    /// The host repositories of this forge live on: `github.com` for `api.github.com`, else
    /// the API's own host (Enterprise Server).
    pub web_host: String,
    pub auth: GitHubAuth,
}

impl std::fmt::Debug for GitHubConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubConfig")
            .field("api_url", &self.api_url.as_str())
            .field(
                "auth",
                &match self.auth {
                    GitHubAuth::Token(_) => "token",
                    GitHubAuth::App { .. } => "app",
                },
            )
            .finish_non_exhaustive()
    }
}

impl GitHubConfig {
    /// `None` when neither a token nor an App is configured. The API URL obeys the repository
    /// policy's address rules (https, no private or internal host unless allowed).
    pub fn from_env(env: &EnvReader<'_>, policy: &RepoPolicy) -> Result<Option<Self>, ConfigError> {
        let token = env.secret("GITHUB_TOKEN");
        let app_id = env.string("OPENCLAW_GITHUB_APP_ID");
        let auth = match (token, app_id) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => {
                return Err(ConfigError::Refused(
                    "both GITHUB_TOKEN and OPENCLAW_GITHUB_APP_ID are set: choose one".into(),
                ));
            }
            (Some(token), None) => GitHubAuth::Token(token),
            (None, Some(raw)) => {
                let app_id = raw.parse().map_err(|_| ConfigError::Invalid {
                    var: "OPENCLAW_GITHUB_APP_ID",
                    value: raw.clone(),
                    expected: "the App's numeric id".into(),
                })?;
                let path = env
                    .string("OPENCLAW_GITHUB_APP_PRIVATE_KEY_FILE")
                    .ok_or_else(|| {
                        ConfigError::Refused(
                        "OPENCLAW_GITHUB_APP_ID is set but OPENCLAW_GITHUB_APP_PRIVATE_KEY_FILE \
                         is not: name the App's private key (PEM)"
                            .into(),
                    )
                    })?;
                let pem = std::fs::read_to_string(&path).map_err(|e| ConfigError::Invalid {
                    var: "OPENCLAW_GITHUB_APP_PRIVATE_KEY_FILE",
                    value: path.clone(),
                    expected: format!("a readable PEM file ({e})"),
                })?;
                let key = AppKey::from_pem(&pem).map_err(|e| ConfigError::Invalid {
                    var: "OPENCLAW_GITHUB_APP_PRIVATE_KEY_FILE",
                    value: path,
                    expected: e,
                })?;
                GitHubAuth::App {
                    app_id,
                    key: Arc::new(key),
                    installation_id: env.parse_opt(
                        "OPENCLAW_GITHUB_APP_INSTALLATION_ID",
                        "the installation's numeric id",
                    )?,
                }
            }
        };
        let raw = env.string_or("OPENCLAW_GITHUB_API_URL", "https://api.github.com");
        let api_url = http::api_url(&raw, policy).map_err(|expected| ConfigError::Invalid {
            var: "OPENCLAW_GITHUB_API_URL",
            value: raw,
            expected,
        })?;
        let host = api_url.host_str().unwrap_or_default().to_ascii_lowercase();
        let web_host = if host == "api.github.com" {
            "github.com".to_owned()
        } else {
            host
        };
        Ok(Some(Self {
            api_url,
            web_host,
            auth,
        }))
    }

    /// The repository `url` names, when its host is this forge's.
    pub fn repo_of(&self, url: &RepoUrl) -> Option<ForgeRepo> {
        ForgeRepo::from_path(&ForgeRepo::path_on(url, &self.web_host)?)
    }

    /// A browser link comparing `head` with `base` (`https://github.com/o/r/compare/b...h`).
    pub fn compare_url(&self, repo: &ForgeRepo, base: &str, head: &str) -> String {
        let api = &self.api_url;
        let web = if self.web_host == "github.com" {
            "https://github.com".to_owned()
        } else {
            let port = api.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{}{port}", api.scheme(), self.web_host)
        };
        format!("{web}/{}/{}/compare/{base}...{head}", repo.owner, repo.name)
    }

    /// The secrets of this configuration, for the redaction lists.
    pub fn secrets(&self) -> Vec<&Secret> {
        match &self.auth {
            GitHubAuth::Token(token) => vec![token],
            GitHubAuth::App { .. } => Vec::new(),
        }
    }
}

/// A GitHub client for one deployment. Cheap to clone.
#[derive(Clone)]
pub struct GitHub {
    config: Arc<GitHubConfig>,
    http: reqwest::Client,
    /// Installation tokens by repository, with when to stop using them.
    tokens: Arc<Mutex<HashMap<ForgeRepo, (Secret, Instant)>>>,
}

#[derive(Deserialize)]
struct PullRequestWire {
    number: u64,
    html_url: String,
    state: String,
    #[serde(default)]
    draft: Option<bool>,
}

impl PullRequestWire {
    fn into_state(self) -> PullRequestState {
        PullRequestState {
            open: self.state == "open",
            pull_request: PullRequestRef {
                url: self.html_url,
                number: self.number,
                draft: self.draft.unwrap_or(false),
            },
        }
    }
}

impl GitHub {
    pub fn new(config: Arc<GitHubConfig>) -> Result<Self, ForgeError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            // The token goes to the API host only: a redirect elsewhere is not followed.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("openclaw/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ForgeError::Invalid(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            config,
            http,
            tokens: Arc::default(),
        })
    }

    pub fn config(&self) -> &GitHubConfig {
        &self.config
    }

    /// As a GitHub App: the installation token for `repo` (minted now or kept), which also
    /// serves git over https as user `x-access-token`. `None` with a configured token.
    pub async fn installation_token(&self, repo: &ForgeRepo) -> Result<Option<Secret>, ForgeError> {
        match self.config.auth {
            GitHubAuth::Token(_) => Ok(None),
            GitHubAuth::App { .. } => self.token_for(repo).await.map(Some),
        }
    }

    /// The token a request about `repo` carries: the configured one, or an installation token
    /// minted for this one repository (kept until ten minutes before it expires).
    async fn token_for(&self, repo: &ForgeRepo) -> Result<Secret, ForgeError> {
        let (app_id, key, installation_id) = match &self.config.auth {
            GitHubAuth::Token(token) => return Ok(token.clone()),
            GitHubAuth::App {
                app_id,
                key,
                installation_id,
            } => (*app_id, key, *installation_id),
        };
        if let Ok(tokens) = self.tokens.lock()
            && let Some((token, until)) = tokens.get(repo)
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let jwt = Secret::new(
            key.jwt(app_id, crate::now().unix_timestamp())
                .map_err(ForgeError::Invalid)?,
        );
        let installation = match installation_id {
            Some(id) => id,
            None => {
                #[derive(Deserialize)]
                struct Installation {
                    id: u64,
                }
                let found: Installation = self
                    .send(
                        "finding the App's installation",
                        Method::GET,
                        &["repos", &repo.owner, &repo.name, "installation"],
                        &[],
                        None,
                        &jwt,
                    )
                    .await?;
                found.id
            }
        };
        #[derive(Deserialize)]
        struct AccessToken {
            token: String,
            #[serde(with = "time::serde::rfc3339")]
            expires_at: time::OffsetDateTime,
        }
        let permissions: serde_json::Value = serde_json::from_str(APP_PERMISSIONS)
            .map_err(|e| ForgeError::Invalid(e.to_string()))?;
        let minted: AccessToken = self
            .send(
                "minting an installation token",
                Method::POST,
                &[
                    "app",
                    "installations",
                    &installation.to_string(),
                    "access_tokens",
                ],
                &[],
                Some(serde_json::json!({"repositories": [repo.name], "permissions": permissions})),
                &jwt,
            )
            .await?;
        let left = (minted.expires_at - crate::now()).whole_seconds().max(0) as u64;
        let until = Instant::now() + Duration::from_secs(left.saturating_sub(600));
        let token = Secret::new(minted.token);
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.insert(repo.clone(), (token.clone(), until));
        }
        Ok(token)
    }

    /// One API call about `repo`, with the token for it.
    async fn call<T: DeserializeOwned>(
        &self,
        what: &'static str,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        body: Option<serde_json::Value>,
        repo: &ForgeRepo,
    ) -> Result<T, ForgeError> {
        let token = self.token_for(repo).await?;
        self.send(what, method, path, query, body, &token).await
    }

    /// One request to the API, retried while GitHub is down or rate-limiting.
    async fn send<T: DeserializeOwned>(
        &self,
        what: &'static str,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        body: Option<serde_json::Value>,
        token: &Secret,
    ) -> Result<T, ForgeError> {
        let call = http::Call {
            forge: FORGE,
            what,
            method,
            url: http::join(&self.config.api_url, path)?,
            query,
            body,
            headers: vec![
                ("Authorization", format!("Bearer {}", token.expose())),
                ("Accept", "application/vnd.github+json".to_owned()),
                ("X-GitHub-Api-Version", API_VERSION.to_owned()),
            ],
        };
        http::send(&self.http, call).await
    }
}

impl Forge for GitHub {
    fn repo_of(&self, url: &RepoUrl) -> Option<ForgeRepo> {
        self.config.repo_of(url)
    }

    async fn find_pull_request(
        &self,
        repo: &ForgeRepo,
        branch: &str,
    ) -> Result<Option<PullRequestState>, ForgeError> {
        let head = format!("{}:{branch}", repo.owner);
        let found: Vec<PullRequestWire> = self
            .call(
                "looking up the task's pull request",
                Method::GET,
                &["repos", &repo.owner, &repo.name, "pulls"],
                &[("head", &head), ("state", "all"), ("per_page", "10")],
                None,
                repo,
            )
            .await?;
        // Newest first (GitHub's default order): an open one wins over older closed ones.
        let mut found: Vec<PullRequestState> =
            found.into_iter().map(PullRequestWire::into_state).collect();
        found.sort_by_key(|p| !p.open);
        Ok(found.into_iter().next())
    }

    async fn create_pull_request(
        &self,
        repo: &ForgeRepo,
        new: &NewPullRequest,
    ) -> Result<PullRequestRef, ForgeError> {
        let created: PullRequestWire = self
            .call(
                "opening the task's pull request",
                Method::POST,
                &["repos", &repo.owner, &repo.name, "pulls"],
                &[],
                Some(serde_json::json!({
                    "title": new.title,
                    "head": new.head,
                    "base": new.base,
                    "body": new.body,
                    "draft": new.draft,
                    "maintainer_can_modify": true,
                })),
                repo,
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
        let updated: PullRequestWire = self
            .call(
                "updating the task's pull request",
                Method::PATCH,
                &[
                    "repos",
                    &repo.owner,
                    &repo.name,
                    "pulls",
                    &number.to_string(),
                ],
                &[],
                Some(serde_json::json!({"title": title, "body": body})),
                repo,
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
        struct Repo {
            full_name: String,
        }
        #[derive(Deserialize)]
        struct Head {
            #[serde(rename = "ref")]
            branch: String,
            repo: Option<Repo>,
        }
        #[derive(Deserialize)]
        struct Pull {
            title: String,
            state: String,
            head: Head,
        }
        let pull: Pull = self
            .call(
                "reading a pull request",
                Method::GET,
                &[
                    "repos",
                    &repo.owner,
                    &repo.name,
                    "pulls",
                    &number.to_string(),
                ],
                &[],
                None,
                repo,
            )
            .await?;
        let own = pull
            .head
            .repo
            .is_some_and(|r| r.full_name.eq_ignore_ascii_case(&repo.to_string()));
        Ok(PullRequestHead {
            branch: own.then_some(pull.head.branch),
            title: pull.title,
            open: pull.state == "open",
        })
    }

    async fn permission(&self, repo: &ForgeRepo, user: &str) -> Result<Permission, ForgeError> {
        #[derive(Deserialize)]
        struct Level {
            permission: String,
        }
        let level: Level = self
            .call(
                "reading a user's permission",
                Method::GET,
                &[
                    "repos",
                    &repo.owner,
                    &repo.name,
                    "collaborators",
                    user,
                    "permission",
                ],
                &[],
                None,
                repo,
            )
            .await?;
        // `maintain` is reported as `write`, `triage` as `read` (GitHub's legacy levels).
        Ok(match level.permission.as_str() {
            "admin" | "maintain" | "write" => Permission::Write,
            _ => Permission::Read,
        })
    }

    async fn comment(
        &self,
        repo: &ForgeRepo,
        thread: Thread,
        body: &str,
    ) -> Result<CommentId, ForgeError> {
        // Issues and pull requests share numbers and the issue comments API.
        let number = thread.number();
        #[derive(Deserialize)]
        struct Created {
            id: u64,
        }
        let created: Created = self
            .call(
                "commenting",
                Method::POST,
                &[
                    "repos",
                    &repo.owner,
                    &repo.name,
                    "issues",
                    &number.to_string(),
                    "comments",
                ],
                &[],
                Some(serde_json::json!({ "body": body })),
                repo,
            )
            .await?;
        Ok(CommentId(created.id))
    }

    async fn delete_branch(&self, repo: &ForgeRepo, branch: &str) -> Result<(), ForgeError> {
        // `git/refs/heads/<branch>` with the branch's own slashes: GitHub's `ref` parameter
        // spans segments (`x-multi-segment` in its description).
        let mut path = vec!["repos", &repo.owner, &repo.name, "git", "refs", "heads"];
        path.extend(branch.split('/'));
        match self
            .call::<()>("deleting a branch", Method::DELETE, &path, &[], None, repo)
            .await
        {
            // "Reference does not exist": deleted already.
            Err(ForgeError::Refused { status: 422, .. }) | Ok(()) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn edit_comment(
        &self,
        repo: &ForgeRepo,
        _thread: Thread,
        comment: CommentId,
        body: &str,
    ) -> Result<(), ForgeError> {
        let _: serde_json::Value = self
            .call(
                "editing a comment",
                Method::PATCH,
                &[
                    "repos",
                    &repo.owner,
                    &repo.name,
                    "issues",
                    "comments",
                    &comment.0.to_string(),
                ],
                &[],
                Some(serde_json::json!({ "body": body })),
                repo,
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(
        pairs: &[(&str, &str)],
        policy: &RepoPolicy,
    ) -> Result<Option<GitHubConfig>, ConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        GitHubConfig::from_env(&EnvReader(&env), policy)
    }

    #[test]
    fn github_com_repositories_belong_to_api_github_com() {
        let config = config(&[("GITHUB_TOKEN", "t")], &RepoPolicy::default())
            .expect("valid")
            .expect("configured");
        let github = config;
        let repo =
            |raw: &str| github.repo_of(&RepoUrl::parse(raw, &RepoPolicy::default()).expect("url"));
        let expected = Some(ForgeRepo {
            owner: "octo-org".into(),
            name: "hello.world".into(),
        });
        assert_eq!(
            repo("https://github.com/octo-org/hello.world.git"),
            expected
        );
        assert_eq!(repo("https://GitHub.com/octo-org/hello.world"), expected);
        assert_eq!(repo("git@github.com:octo-org/hello.world.git"), expected);
        assert_eq!(
            repo("ssh://git@github.com/octo-org/hello.world.git"),
            expected
        );
        assert_eq!(repo("https://gitlab.com/octo-org/hello.world.git"), None);
        assert_eq!(repo("https://github.com.evil.example/octo-org/x.git"), None);
        assert_eq!(repo("https://github.com/octo-org/a/b.git"), None);
        assert_eq!(repo("https://github.com/../x.git"), None);
        assert_eq!(
            github.compare_url(expected.as_ref().expect("repo"), "main", "openclaw/1"),
            "https://github.com/octo-org/hello.world/compare/main...openclaw/1"
        );
    }

    #[test]
    fn the_api_url_obeys_the_address_rules() {
        let strict = RepoPolicy::default();
        let token = ("GITHUB_TOKEN", "t");
        for bad in [
            "http://api.github.com",
            "https://127.0.0.1/api/v3",
            "https://169.254.169.254/api/v3",
            "https://user:pw@ghe.example.com/api/v3",
            "not a url",
        ] {
            let err = config(&[token, ("OPENCLAW_GITHUB_API_URL", bad)], &strict)
                .expect_err(bad)
                .to_string();
            assert!(err.contains("OPENCLAW_GITHUB_API_URL"), "{err}");
        }
        let ghes = config(
            &[
                token,
                ("OPENCLAW_GITHUB_API_URL", "https://ghe.example.com/api/v3/"),
            ],
            &strict,
        )
        .expect("valid")
        .expect("configured");
        assert_eq!(ghes.api_url.as_str(), "https://ghe.example.com/api/v3");
        assert_eq!(ghes.web_host, "ghe.example.com");
        let loopback = RepoPolicy {
            allow_private: true,
            allow_http: true,
            ..RepoPolicy::default()
        };
        assert!(
            config(
                &[
                    token,
                    ("OPENCLAW_GITHUB_API_URL", "http://127.0.0.1:9/api/v3")
                ],
                &loopback
            )
            .is_ok()
        );
    }

    #[test]
    fn one_way_to_authenticate() {
        let policy = RepoPolicy::default();
        assert!(config(&[], &policy).expect("nothing").is_none());
        let err = config(
            &[("GITHUB_TOKEN", "t"), ("OPENCLAW_GITHUB_APP_ID", "1")],
            &policy,
        )
        .expect_err("refused");
        assert!(err.to_string().contains("choose one"), "{err}");
        let err = config(&[("OPENCLAW_GITHUB_APP_ID", "1")], &policy).expect_err("refused");
        assert!(err.to_string().contains("PRIVATE_KEY_FILE"), "{err}");
        let config = config(&[("GITHUB_TOKEN", "ghp_secret")], &policy)
            .expect("valid")
            .expect("configured");
        assert!(!format!("{config:?}").contains("ghp_secret"));
        assert_eq!(config.secrets().len(), 1);
    }
}
