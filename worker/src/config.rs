//! Worker configuration, from the environment.

use std::path::PathBuf;
use std::time::Duration;

use openclaw_common::agents::AgentCatalog;
use openclaw_common::config::{ConfigError, Env, EnvReader, NatsConfig, Secret};
use openclaw_common::egress::HostList;
use openclaw_common::egress::RepoPolicy;
use openclaw_common::ids::AgentName;

/// How to reach the OpenAI-compatible gateway (LiteLLM).
#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// Base URL ending in `/v1` (appended when `LITELLM_BASE_URL` lacks it).
    pub base_url: String,
    /// Sent as `Authorization: Bearer`.
    pub api_key: Option<Secret>,
    /// Model when neither the task nor the agent profile names one.
    pub default_model: String,
    /// Retries of one model call on 429, 5xx and connection errors.
    pub max_retries: usize,
    /// First retry delay; doubles with jitter up to `max_retry_delay`.
    pub retry_base: Duration,
    pub max_retry_delay: Duration,
    /// Deadline of one model call, streaming included.
    pub request_timeout: Duration,
}

/// Git credentials and identity. Credentials are handed to libgit2 in its credentials callback
/// only: never in a URL, `.git/config`, a log line or an event.
#[derive(Debug, Clone)]
pub struct GitConfig {
    pub username: Option<String>,
    pub token: Option<Secret>,
    pub ssh_key_path: Option<PathBuf>,
    pub ssh_key: Option<Secret>,
    pub ssh_passphrase: Option<Secret>,
    /// Host keys trusted for ssh remotes (`GIT_SSH_KNOWN_HOSTS`, a known_hosts file). Without
    /// it, libgit2's own check applies (the user's `~/.ssh/known_hosts`).
    pub ssh_known_hosts: Option<PathBuf>,
    /// The only remotes the credentials above are offered to (`OPENCLAW_GIT_CREDENTIAL_HOSTS`):
    /// checked on the URL libgit2 is talking to, after redirects. Required when credentials
    /// are configured: without it a task could name any host and receive the token.
    pub credential_hosts: HostList,
    pub author_name: String,
    pub author_email: String,
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub nats: NatsConfig,
    /// The agent whose tasks this worker takes (`OPENCLAW_AGENT`).
    pub agent: AgentName,
    pub agents: AgentCatalog,
    /// How long to wait for a task before exiting with nothing to do.
    pub fetch_wait: Duration,
    /// Delay before a task that failed transiently is delivered again.
    pub nak_delay: Duration,
    /// Exit code when no task was waiting (`OPENCLAW_NO_TASK_EXIT_CODE`, default 0).
    pub no_task_exit_code: u8,
    /// Names this worker in events and status (`OPENCLAW_WORKER_ID`, default host-pid).
    pub worker_id: String,
    /// Parent of the per-task checkout (default: the system temp dir).
    pub work_dir: Option<PathBuf>,
    pub repo_policy: RepoPolicy,
    pub llm: LlmConfig,
    pub git: GitConfig,
    /// What an hour of a worker costs (`OPENCLAW_WORKER_COST_PER_HOUR`, USD), to estimate each
    /// task's compute cost apart from the model's price.
    pub worker_cost_per_hour: Option<f64>,
    /// Where traces go: Langfuse (all three `LANGFUSE_*` variables), an OTLP collector
    /// (`OTEL_EXPORTER_OTLP_ENDPOINT`), both, or nowhere.
    pub tracing: crate::traces::TracingConfig,
    /// GitHub, where the work of tasks on its repositories becomes pull requests.
    pub github: Option<std::sync::Arc<openclaw_common::forge::github::GitHubConfig>>,
    /// GitLab, where it becomes merge requests.
    pub gitlab: Option<std::sync::Arc<openclaw_common::forge::gitlab::GitLabConfig>>,
    /// Every secret value of this configuration, gathered once ([`WorkerConfig::secrets`]).
    secrets: crate::secrets::Secrets,
}

impl LlmConfig {
    /// The gateway settings alone (`LITELLM_*`): what `--check-gateway` needs.
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        Self::from_reader(&EnvReader(env))
    }

    fn from_reader(env: &EnvReader<'_>) -> Result<Self, ConfigError> {
        let mut base_url = env.string_or("LITELLM_BASE_URL", "http://litellm.litellm:4000");
        while base_url.ends_with('/') {
            base_url.pop();
        }
        if !base_url.ends_with("/v1") {
            base_url.push_str("/v1");
        }
        Ok(Self {
            base_url,
            api_key: env.secret("LITELLM_API_KEY"),
            default_model: env.string_or("LITELLM_MODEL_NAME", "bedrock/claude-4.5-sonnet"),
            max_retries: env.parse("LITELLM_MAX_RETRIES", 4, "a number of retries")?,
            retry_base: env.seconds("LITELLM_RETRY_BASE_SECS", Duration::from_millis(500))?,
            max_retry_delay: env
                .seconds("LITELLM_MAX_RETRY_DELAY_SECS", Duration::from_secs(30))?,
            request_timeout: env.seconds("LITELLM_TIMEOUT_SECS", Duration::from_secs(300))?,
        })
    }
}

impl WorkerConfig {
    /// The files holding the worker's credentials and keys: no sandboxed command may reach
    /// them.
    pub fn secret_files(&self) -> Vec<PathBuf> {
        let auth = &self.nats.auth;
        let mut files: Vec<PathBuf> = [&auth.creds, &auth.nkey_seed, &self.git.ssh_key_path]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        if let Some((_, key)) = &auth.client_cert {
            files.push(key.clone());
        }
        if let Some(key) = std::env::var_os("OPENCLAW_GITHUB_APP_PRIVATE_KEY_FILE") {
            files.push(PathBuf::from(key));
        }
        files
    }

    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let env = EnvReader(env);
        let agent_raw = env.string_or("OPENCLAW_AGENT", "doc-writer");
        let agent = AgentName::parse(&agent_raw).map_err(|e| ConfigError::Invalid {
            var: "OPENCLAW_AGENT",
            value: agent_raw,
            expected: e.to_string(),
        })?;
        let agents =
            AgentCatalog::load(env.string("OPENCLAW_AGENTS").map(PathBuf::from).as_deref())
                .map_err(|e| ConfigError::Refused(e.to_string()))?;
        if agents.get(&agent).is_none() {
            return Err(ConfigError::Refused(format!(
                "OPENCLAW_AGENT={agent} is not a configured agent (known: {})",
                agents
                    .names()
                    .map(|a| a.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into());
        let tracing = crate::traces::TracingConfig::from_env(&env)?;
        let langfuse_secret = env.secret("LANGFUSE_SECRET_KEY");
        let git = GitConfig {
            username: env.string("GIT_USERNAME"),
            token: env.secret("GIT_TOKEN"),
            ssh_key_path: env.string("GIT_SSH_KEY_PATH").map(PathBuf::from),
            ssh_key: env.secret("GIT_SSH_KEY"),
            ssh_passphrase: env.secret("GIT_SSH_PASSPHRASE"),
            ssh_known_hosts: env.string("GIT_SSH_KNOWN_HOSTS").map(PathBuf::from),
            credential_hosts: match env.string("OPENCLAW_GIT_CREDENTIAL_HOSTS") {
                None => HostList::default(),
                Some(raw) => HostList::parse(&raw).map_err(|e| ConfigError::Invalid {
                    var: "OPENCLAW_GIT_CREDENTIAL_HOSTS",
                    value: raw.clone(),
                    expected: format!("comma-separated host or host:port entries ({e})"),
                })?,
            },
            author_name: env.string_or("OPENCLAW_GIT_AUTHOR_NAME", "OpenClaw"),
            author_email: env.string_or("OPENCLAW_GIT_AUTHOR_EMAIL", "openclaw@localhost"),
        };
        let has_credentials =
            git.token.is_some() || git.ssh_key.is_some() || git.ssh_key_path.is_some();
        if has_credentials && git.credential_hosts.is_empty() {
            return Err(ConfigError::Refused(
                "git credentials are configured (GIT_TOKEN, GIT_SSH_KEY or GIT_SSH_KEY_PATH) but \
                 OPENCLAW_GIT_CREDENTIAL_HOSTS is not: set it to the hosts they belong to (for \
                 example github.com), or any repo a task names would receive them"
                    .into(),
            ));
        }
        let repo_policy = RepoPolicy::from_env(&env)?;
        let github = openclaw_common::forge::github::GitHubConfig::from_env(&env, &repo_policy)?
            .map(std::sync::Arc::new);
        let gitlab = openclaw_common::forge::gitlab::GitLabConfig::from_env(&env, &repo_policy)?
            .map(std::sync::Arc::new);
        Ok(Self {
            github,
            gitlab,
            nats: NatsConfig::from_env(&env)?,
            agent,
            agents,
            fetch_wait: env.seconds("OPENCLAW_FETCH_WAIT_SECS", Duration::from_secs(5))?,
            nak_delay: env.seconds("OPENCLAW_NAK_DELAY_SECS", Duration::from_secs(10))?,
            no_task_exit_code: env.parse("OPENCLAW_NO_TASK_EXIT_CODE", 0, "an exit code 0-255")?,
            worker_id: env
                .string("OPENCLAW_WORKER_ID")
                .unwrap_or_else(|| format!("{host}-{}", std::process::id())),
            work_dir: env.string("OPENCLAW_WORK_DIR").map(PathBuf::from),
            repo_policy,
            llm: LlmConfig::from_reader(&env)?,
            tracing,
            secrets: crate::secrets::Secrets::default(),
            worker_cost_per_hour: match env.string("OPENCLAW_WORKER_COST_PER_HOUR") {
                None => None,
                Some(raw) => Some(
                    raw.parse::<f64>()
                        .ok()
                        .filter(|r| r.is_finite() && *r >= 0.0)
                        .ok_or(ConfigError::Invalid {
                            var: "OPENCLAW_WORKER_COST_PER_HOUR",
                            value: raw,
                            expected: "a price in US dollars per hour, such as 0.04".into(),
                        })?,
                ),
            },
            git,
        }
        .with_secrets(langfuse_secret.as_ref()))
    }
}

impl WorkerConfig {
    /// Every configured secret value (LLM key, git token, ssh key and passphrase, NATS
    /// password and token, Langfuse secret, GitHub token): what the worker takes out of everything it
    /// publishes that came from outside (gateway and git error messages, tool calls and
    /// output, streamed text), since a gateway may echo the key it refused and a model may
    /// repeat what it found.
    pub fn secrets(&self) -> &crate::secrets::Secrets {
        &self.secrets
    }

    /// `text` with every secret of [`WorkerConfig::secrets`] replaced by `[redacted]`.
    pub fn redact(&self, text: &str) -> String {
        self.secrets.redact(text)
    }

    /// This configuration with its secrets gathered (Langfuse's secret key is kept only
    /// for this, not as a setting).
    fn with_secrets(mut self, langfuse_secret: Option<&Secret>) -> Self {
        let auth = &self.nats.auth;
        let forge_secrets = self
            .github
            .iter()
            .flat_map(|g| g.secrets())
            .chain(self.gitlab.iter().flat_map(|g| g.secrets()));
        self.secrets = crate::secrets::Secrets::new(
            [
                self.llm.api_key.as_ref(),
                self.git.token.as_ref(),
                self.git.ssh_key.as_ref(),
                self.git.ssh_passphrase.as_ref(),
                langfuse_secret,
                auth.user_password.as_ref().map(|(_, p)| p),
                auth.token.as_ref(),
            ]
            .into_iter()
            .flatten()
            .chain(forge_secrets)
            .map(|s| s.expose().to_owned()),
        );
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    /// An environment that remembers every name asked for.
    struct Recording {
        vars: HashMap<String, String>,
        asked: RefCell<Vec<String>>,
    }

    impl Env for Recording {
        fn get(&self, var: &str) -> Option<String> {
            self.asked.borrow_mut().push(var.to_owned());
            self.vars.get(var).cloned()
        }
        fn vars(&self) -> Vec<(String, String)> {
            self.vars.clone().into_iter().collect()
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Recording {
        Recording {
            vars: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            asked: RefCell::new(Vec::new()),
        }
    }

    #[test]
    fn the_worker_reads_only_the_variables_local_dispatch_hands_on() {
        let env = env(&[
            ("GIT_TOKEN", "t0ken-value"),
            ("OPENCLAW_GIT_CREDENTIAL_HOSTS", "github.com"),
        ]);
        WorkerConfig::from_env(&env).expect("valid");
        let asked = env.asked.borrow();
        assert!(asked.len() > 20, "{asked:?}");
        for name in asked.iter() {
            assert!(
                openclaw_common::config::WORKER_ENV_VARS.contains(&name.as_str()),
                "the worker reads {name}, which local dispatch does not hand on: add it to WORKER_ENV_VARS"
            );
        }
    }

    #[test]
    fn credentials_without_their_hosts_are_refused() {
        for creds in [
            ("GIT_TOKEN", "t0ken-value"),
            ("GIT_SSH_KEY", "key"),
            ("GIT_SSH_KEY_PATH", "/k"),
        ] {
            let err = WorkerConfig::from_env(&env(&[creds]))
                .unwrap_err()
                .to_string();
            assert!(err.contains("OPENCLAW_GIT_CREDENTIAL_HOSTS"), "{err}");
            assert!(!err.contains("t0ken-value"), "{err}");
        }
        let err = WorkerConfig::from_env(&env(&[
            ("GIT_TOKEN", "t0ken-value"),
            ("OPENCLAW_GIT_CREDENTIAL_HOSTS", "https://github.com"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("OPENCLAW_GIT_CREDENTIAL_HOSTS"), "{err}");
        assert!(
            WorkerConfig::from_env(&env(&[])).is_ok(),
            "no credentials, no list needed"
        );
    }
}
