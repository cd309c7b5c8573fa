//! Bridge configuration, from the environment. Unknown or malformed values are refused at
//! start with a message naming the variable and what it accepts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use openclaw_common::agents::AgentCatalog;
use openclaw_common::config::{ConfigError, Env, EnvReader, NatsConfig, Secret, WORKER_ENV_VARS};
use openclaw_common::egress::{RepoPolicy, RepoUrl};
use openclaw_common::ids::AgentName;

/// Who starts workers for queued tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchMode {
    /// The bridge starts `openclaw-worker` child processes (the embedded local default).
    Local,
    /// The bridge creates worker Jobs in Kubernetes.
    Kubernetes,
    /// The bridge starts none: KEDA's ScaledJob (or an operator) does.
    None,
}

/// Settings of the `kubernetes` dispatcher.
#[derive(Debug, Clone)]
pub struct KubernetesDispatchConfig {
    /// Namespace of the worker Jobs (`OPENCLAW_KUBE_NAMESPACE`, default: the bridge's own).
    pub namespace: String,
    /// Directory of Job templates, `<agent>.json` or `default.json` (`OPENCLAW_JOB_TEMPLATES`);
    /// `None`: the built-in `deploy/base/job-templates/default.json`.
    pub templates: Option<PathBuf>,
    /// Worker image of the agents that use the default template (`OPENCLAW_WORKER_IMAGE`):
    /// the one place an install sets it (the templates are JSON in a ConfigMap).
    pub image: Option<String>,
    /// Per agent, an image replacing its template's, whatever the template
    /// (`OPENCLAW_WORKER_IMAGE_<AGENT>`, e.g. `OPENCLAW_WORKER_IMAGE_DEVOPS`).
    pub agent_images: Vec<(AgentName, String)>,
    /// API server URL (`OPENCLAW_KUBE_API_URL`); `None`: in-cluster config or kubeconfig.
    pub api_url: Option<String>,
    /// Most unfinished worker Jobs at once (`OPENCLAW_MAX_JOBS`).
    pub max_jobs: usize,
    /// How often pending work is looked for when nothing wakes the dispatcher earlier.
    pub poll_interval: Duration,
}

/// Settings of the `local` dispatcher.
#[derive(Debug, Clone)]
pub struct LocalDispatchConfig {
    /// The worker binary to start (`OPENCLAW_WORKER_BIN`, default: beside the bridge binary).
    pub worker_bin: PathBuf,
    /// Most worker processes at once (`OPENCLAW_MAX_WORKERS`).
    pub max_workers: usize,
    /// How often pending work is looked for when nothing wakes the dispatcher earlier.
    pub poll_interval: Duration,
    /// The worker's configuration, handed on from the bridge's own environment by name: the
    /// variables the worker reads ([`WORKER_ENV_VARS`]) and those the agent profiles pass to
    /// their commands, nothing else (a secret under another name stays with the bridge).
    /// Explicit so that tests configure workers through the same map as the bridge.
    pub worker_env: Vec<(String, String)>,
}

/// Everything the bridge needs to run.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// Names this bridge instance, as the holder of the dispatch lease (`OPENCLAW_INSTANCE_ID`,
    /// default host name and process id).
    pub instance_id: String,
    /// Address to listen on (`OPENCLAW_LISTEN`).
    pub listen: SocketAddr,
    pub nats: NatsConfig,
    /// Bearer token every route but `/health` requires (`OPENCLAW_GATEWAY_TOKEN`, alias
    /// `BRIDGE_AUTH_TOKEN`). `None`: no auth, allowed only on loopback or when opted in.
    pub auth_token: Option<Secret>,
    /// API tokens with an identity (`OPENCLAW_TOKENS_FILE`, TOML; see `principals`), read
    /// again when the file changes.
    pub tokens_file: Option<std::path::PathBuf>,
    /// Limits of a principal (and the users it acts for) whose token entry sets none
    /// (`OPENCLAW_DEFAULT_MAX_IN_FLIGHT`, `…_MAX_SUBMITS_PER_MINUTE`, `…_MAX_COST_USD_PER_DAY`,
    /// `…_MAX_COST_USD_PER_MONTH`); unset: no limit.
    pub default_limits: crate::principals::Limits,
    /// What a task reserves of a budget when its agent sets no `max_cost_usd`
    /// (`OPENCLAW_TASK_COST_RESERVE_USD`, default 1).
    pub task_cost_reserve_usd: f64,
    /// `OPENCLAW_OVER_LIMIT=queue`: a task over its owner's in-flight limit is accepted and
    /// waits (with the reason) until there is room, instead of a 429. Rates and budgets refuse.
    pub over_limit_queue: bool,
    pub dispatch: DispatchMode,
    pub local: LocalDispatchConfig,
    pub kubernetes: KubernetesDispatchConfig,
    /// Most worker starts per agent in any minute, whatever else (`OPENCLAW_MAX_STARTS_PER_MINUTE`).
    pub max_starts_per_minute: usize,
    /// How long a task may wait to start before it fails with the reason it waited
    /// (`OPENCLAW_QUEUE_TIMEOUT_SECS`; a profile's `queue_timeout_secs` overrides it). `None`:
    /// tasks wait as long as the tasks stream keeps them.
    pub queue_timeout: Option<Duration>,
    /// Which repo URL schemes beyond https/ssh tasks may use.
    pub repo_policy: RepoPolicy,
    /// The agents tasks may name.
    pub agents: AgentCatalog,
    /// Where the submit spans go (the same targets as the workers').
    pub tracing: openclaw_common::otel::TracingConfig,
    /// Open connections and header deadline of the listener.
    pub connections: crate::serve::ConnectionLimits,
    /// Largest request body accepted (413 beyond).
    pub body_limit: usize,
    /// Deadline for producing a response (SSE streams count only until their headers).
    pub request_timeout: Duration,
    /// Interval of SSE keep-alive comments while a task is quiet.
    pub sse_keep_alive: Duration,
    /// How often the streams, consumers and buckets are checked and recreated if missing.
    pub jetstream_recheck: Duration,
    /// Agent of `/message` requests whose Host names none (`OPENCLAW_DEFAULT_AGENT`).
    pub default_agent: AgentName,
    /// Which agent a `/message` request is for, by the first label of the Host it was sent to
    /// (`OPENCLAW_HOST_AGENTS`, default `doc-writer=doc-writer,devops-agent=devops`): the
    /// starter kit's example agents each have their own Service in front of this bridge.
    pub host_agents: Vec<(String, AgentName)>,
    /// Quiet time after which `/message` streams a "still working" line.
    pub still_working_after: Duration,
    /// The issuer of per-task NATS users when this bridge answers the server's auth callout
    /// (`OPENCLAW_NATS_CALLOUT_SEED`: a file holding the account seed whose public key the
    /// server's `auth_callout { issuer }` names). Then every task it publishes carries a
    /// ticket. `None`: no callout, and workers write with their own users.
    pub callout: Option<crate::callout::CalloutConfig>,
    /// GitHub (`GITHUB_TOKEN` or a GitHub App, `OPENCLAW_GITHUB_API_URL`): which repositories
    /// pull requests can be opened on, and the webhooks' secret.
    pub github: Option<std::sync::Arc<openclaw_common::forge::github::GitHubConfig>>,
    /// GitHub webhooks (`OPENCLAW_GITHUB_WEBHOOK_SECRET`): `None` refuses them.
    pub github_webhooks: Option<WebhookConfig>,
    /// GitLab (`GITLAB_TOKEN`, `OPENCLAW_GITLAB_API_URL`): merge requests and answers.
    pub gitlab: Option<std::sync::Arc<openclaw_common::forge::gitlab::GitLabConfig>>,
    /// GitLab webhooks (`OPENCLAW_GITLAB_WEBHOOK_TOKEN`): `None` refuses them.
    pub gitlab_webhooks: Option<WebhookConfig>,
}

/// What turns a forge's webhook into a task.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The HMAC key GitHub signs deliveries with; the token GitLab sends with them.
    pub secret: Secret,
    /// `OPENCLAW_MENTION` (default `@openclaw`): a comment naming it asks for work.
    pub mention: String,
    /// `OPENCLAW_GITHUB_LABEL` (default `openclaw`, GitLab's too): an issue given it asks for
    /// work.
    pub label: String,
    /// `OPENCLAW_WEBHOOK_AGENT` (default: the default agent): who works on issues.
    pub agent: AgentName,
    /// `OPENCLAW_DELETE_CLOSED_BRANCHES` (default false): a task's branch is deleted when its
    /// pull request is closed or merged.
    pub delete_closed_branches: bool,
    /// `OPENCLAW_WEBHOOK_REPLY_TO_READERS` (default false): a user who may not write and asks
    /// for work gets one reply saying so (otherwise nothing).
    pub reply_to_readers: bool,
}

impl BridgeConfig {
    /// The agent of a `/message` request sent to `host` (`doc-writer.openclaw:8080` →
    /// doc-writer): the first label of the host name in [`Self::host_agents`], else the default.
    pub fn agent_for_host(&self, host: Option<&str>) -> &AgentName {
        let label = host
            .map(|h| {
                h.split([':', '.'])
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        self.host_agents
            .iter()
            .find(|(h, _)| *h == label)
            .map_or(&self.default_agent, |(_, agent)| agent)
    }

    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let env = EnvReader(env);
        let listen_raw = env.string_or("OPENCLAW_LISTEN", "0.0.0.0:8080");
        let listen: SocketAddr = listen_raw.parse().map_err(|_| ConfigError::Invalid {
            var: "OPENCLAW_LISTEN",
            value: listen_raw.clone(),
            expected: "an address such as 0.0.0.0:8080 or 127.0.0.1:8080".into(),
        })?;
        let auth_token = env
            .secret("OPENCLAW_GATEWAY_TOKEN")
            .or_else(|| env.secret("BRIDGE_AUTH_TOKEN"));
        let tokens_file = env
            .string("OPENCLAW_TOKENS_FILE")
            .map(std::path::PathBuf::from);
        let optional_count = |var: &'static str| -> Result<Option<u32>, ConfigError> {
            env.string(var)
                .map(|_| env.parse::<u32>(var, 0, "a whole number"))
                .transpose()
        };
        let optional_usd = |var: &'static str| -> Result<Option<f64>, ConfigError> {
            env.string(var)
                .map(|raw| {
                    raw.trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite() && *v >= 0.0)
                        .ok_or(ConfigError::Invalid {
                            var,
                            value: raw.clone(),
                            expected: "an amount in USD, such as 25 or 2.5".into(),
                        })
                })
                .transpose()
        };
        let default_limits = crate::principals::Limits {
            max_in_flight: optional_count("OPENCLAW_DEFAULT_MAX_IN_FLIGHT")?,
            max_submits_per_minute: optional_count("OPENCLAW_DEFAULT_MAX_SUBMITS_PER_MINUTE")?,
            max_cost_usd_per_day: optional_usd("OPENCLAW_DEFAULT_MAX_COST_USD_PER_DAY")?,
            max_cost_usd_per_month: optional_usd("OPENCLAW_DEFAULT_MAX_COST_USD_PER_MONTH")?,
        };
        let task_cost_reserve_usd = optional_usd("OPENCLAW_TASK_COST_RESERVE_USD")?.unwrap_or(1.0);
        let over_limit_queue = env.choice(
            "OPENCLAW_OVER_LIMIT",
            false,
            &[("refuse", false), ("queue", true)],
        )?;
        let allow_no_auth = env.bool("OPENCLAW_ALLOW_NO_AUTH", false)?;
        if auth_token.is_none()
            && tokens_file.is_none()
            && !listen.ip().is_loopback()
            && !allow_no_auth
        {
            return Err(ConfigError::Refused(format!(
                "refusing to listen on {listen} without authentication: set \
                 OPENCLAW_GATEWAY_TOKEN or OPENCLAW_TOKENS_FILE, listen on a loopback address, \
                 or set OPENCLAW_ALLOW_NO_AUTH=true to accept unauthenticated requests"
            )));
        }
        let dispatch = env.choice(
            "OPENCLAW_DISPATCH",
            DispatchMode::Local,
            &[
                ("local", DispatchMode::Local),
                ("kubernetes", DispatchMode::Kubernetes),
                ("none", DispatchMode::None),
            ],
        )?;
        let worker_bin = match env.string("OPENCLAW_WORKER_BIN") {
            Some(p) => PathBuf::from(p),
            None => std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(|d| d.join("openclaw-worker")))
                .unwrap_or_else(|| PathBuf::from("openclaw-worker")),
        };
        if dispatch == DispatchMode::Local && !worker_bin.is_file() {
            return Err(ConfigError::Refused(format!(
                "local dispatch needs the worker binary, and {} does not exist: build it \
                 (cargo build -p openclaw-worker), set OPENCLAW_WORKER_BIN, or set \
                 OPENCLAW_DISPATCH=none",
                worker_bin.display()
            )));
        }
        let agents_path = env.string("OPENCLAW_AGENTS").map(PathBuf::from);
        let mut agents = AgentCatalog::load(agents_path.as_deref())
            .map_err(|e| ConfigError::Refused(e.to_string()))?;
        let repo_policy = RepoPolicy::from_env(&env)?;
        // The starter kit's doc-writer takes its repository from GIT_REPO_URL.
        if let Some(raw) = env.string("GIT_REPO_URL") {
            let repo = RepoUrl::parse(&raw, &repo_policy).map_err(|e| ConfigError::Invalid {
                var: "GIT_REPO_URL",
                value: openclaw_common::config::redact_url(&raw),
                expected: e.to_string(),
            })?;
            let doc_writer =
                AgentName::parse("doc-writer").map_err(|e| ConfigError::Refused(e.to_string()))?;
            if !agents.set_default_repo(&doc_writer, repo.to_string()) {
                return Err(ConfigError::Refused(
                    "GIT_REPO_URL is the doc-writer agent's repository, and no doc-writer agent is configured".into(),
                ));
            }
        }
        // doc-writer when configured, else the first agent by name.
        let fallback = agents
            .names()
            .find(|a| a.as_str() == "doc-writer")
            .or_else(|| agents.names().next())
            .map_or("doc-writer", AgentName::as_str);
        let default_agent_raw = env.string_or("OPENCLAW_DEFAULT_AGENT", fallback);
        let default_agent = AgentName::parse(&default_agent_raw)
            .ok()
            .filter(|a| agents.get(a).is_some())
            .ok_or_else(|| ConfigError::Invalid {
                var: "OPENCLAW_DEFAULT_AGENT",
                value: default_agent_raw.clone(),
                expected: format!(
                    "one of the configured agents: {}",
                    agents
                        .names()
                        .map(AgentName::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?;
        let host_agents_raw = env.string_or(
            "OPENCLAW_HOST_AGENTS",
            "doc-writer=doc-writer,devops-agent=devops",
        );
        let mut host_agents = Vec::new();
        for entry in host_agents_raw
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let parsed = entry.split_once('=').and_then(|(host, agent)| {
                Some((
                    host.trim().to_ascii_lowercase(),
                    AgentName::parse(agent.trim()).ok()?,
                ))
            });
            match parsed {
                // An agent this deployment does not run is left out of the default map.
                Some((host, agent)) if agents.get(&agent).is_some() => {
                    host_agents.push((host, agent))
                }
                Some(_) if env.string("OPENCLAW_HOST_AGENTS").is_none() => {}
                _ => {
                    return Err(ConfigError::Invalid {
                        var: "OPENCLAW_HOST_AGENTS",
                        value: host_agents_raw.clone(),
                        expected: "comma-separated host=agent entries naming configured agents"
                            .into(),
                    });
                }
            }
        }
        let instance_id = env.string("OPENCLAW_INSTANCE_ID").unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "bridge".into());
            format!("{host}-{}", std::process::id())
        });
        let callout = env
            .string("OPENCLAW_NATS_CALLOUT_SEED")
            .map(|path| {
                crate::callout::CalloutConfig::from_seed_file("OPENCLAW_NATS_CALLOUT_SEED", &path)
            })
            .transpose()?;
        let github = openclaw_common::forge::github::GitHubConfig::from_env(&env, &repo_policy)?
            .map(std::sync::Arc::new);
        let gitlab = openclaw_common::forge::gitlab::GitLabConfig::from_env(&env, &repo_policy)?
            .map(std::sync::Arc::new);
        let webhooks = |secret_var: &'static str, forge: &str, configured: bool| {
            let Some(secret) = env.secret(secret_var) else {
                return Ok(None);
            };
            if !configured {
                return Err(ConfigError::Refused(format!(
                    "{secret_var} is set but no {forge} token is: the bridge could not check \
                     who asks, nor answer"
                )));
            }
            let raw = env.string_or("OPENCLAW_WEBHOOK_AGENT", default_agent.as_str());
            let agent = AgentName::parse(&raw)
                .ok()
                .filter(|a| agents.get(a).is_some())
                .ok_or_else(|| ConfigError::Invalid {
                    var: "OPENCLAW_WEBHOOK_AGENT",
                    value: raw.clone(),
                    expected: "a configured agent".into(),
                })?;
            let mention = env.string_or("OPENCLAW_MENTION", "@openclaw");
            if mention.len() < 2 || mention.chars().any(char::is_whitespace) {
                return Err(ConfigError::Invalid {
                    var: "OPENCLAW_MENTION",
                    value: mention,
                    expected: "a handle such as @openclaw".into(),
                });
            }
            Ok(Some(WebhookConfig {
                secret,
                mention,
                label: env.string_or("OPENCLAW_GITHUB_LABEL", "openclaw"),
                agent,
                delete_closed_branches: env.bool("OPENCLAW_DELETE_CLOSED_BRANCHES", false)?,
                reply_to_readers: env.bool("OPENCLAW_WEBHOOK_REPLY_TO_READERS", false)?,
            }))
        };
        let github_webhooks = webhooks(
            "OPENCLAW_GITHUB_WEBHOOK_SECRET",
            "GitHub (GITHUB_TOKEN or OPENCLAW_GITHUB_APP_ID)",
            github.is_some(),
        )?;
        let gitlab_webhooks = webhooks(
            "OPENCLAW_GITLAB_WEBHOOK_TOKEN",
            "GitLab (GITLAB_TOKEN)",
            gitlab.is_some(),
        )?;
        Ok(Self {
            github_webhooks,
            gitlab_webhooks,
            gitlab,
            github,
            callout,
            instance_id,
            listen,
            nats: NatsConfig::from_env(&env)?,
            auth_token,
            tokens_file,
            default_limits,
            task_cost_reserve_usd,
            over_limit_queue,
            dispatch,
            local: LocalDispatchConfig {
                worker_bin,
                max_workers: env.parse("OPENCLAW_MAX_WORKERS", 2, "a positive integer")?,
                poll_interval: env
                    .seconds("OPENCLAW_DISPATCH_POLL_SECS", Duration::from_secs(2))?,
                worker_env: env.named(
                    WORKER_ENV_VARS.iter().copied().chain(
                        agents
                            .profiles()
                            .flat_map(|p| p.command_env.iter().map(String::as_str)),
                    ),
                ),
            },
            kubernetes: KubernetesDispatchConfig {
                namespace: env
                    .string("OPENCLAW_KUBE_NAMESPACE")
                    .or_else(own_namespace)
                    .unwrap_or_else(|| "openclaw".into()),
                templates: env.string("OPENCLAW_JOB_TEMPLATES").map(PathBuf::from),
                image: env.string("OPENCLAW_WORKER_IMAGE"),
                agent_images: agents
                    .names()
                    .filter_map(|agent| {
                        let var = format!(
                            "OPENCLAW_WORKER_IMAGE_{}",
                            agent.as_str().to_ascii_uppercase().replace('-', "_")
                        );
                        env.0.get(&var).map(|image| (agent.clone(), image))
                    })
                    .collect(),
                api_url: env.string("OPENCLAW_KUBE_API_URL"),
                max_jobs: env.parse("OPENCLAW_MAX_JOBS", 10, "a positive integer")?,
                poll_interval: env
                    .seconds("OPENCLAW_DISPATCH_POLL_SECS", Duration::from_secs(2))?,
            },
            max_starts_per_minute: env.parse(
                "OPENCLAW_MAX_STARTS_PER_MINUTE",
                30,
                "a positive number of starts",
            )?,
            queue_timeout: match env.string("OPENCLAW_QUEUE_TIMEOUT_SECS") {
                None => None,
                Some(_) => Some(env.seconds("OPENCLAW_QUEUE_TIMEOUT_SECS", Duration::ZERO)?),
            },
            repo_policy,
            agents,
            tracing: openclaw_common::otel::TracingConfig::from_env(&env)?,
            connections: crate::serve::ConnectionLimits {
                max_connections: env.parse(
                    "OPENCLAW_MAX_CONNECTIONS",
                    1024,
                    "a positive number of connections",
                )?,
                header_timeout: env
                    .seconds("OPENCLAW_HEADER_TIMEOUT_SECS", Duration::from_secs(10))?,
            },
            body_limit: env.parse("OPENCLAW_BODY_LIMIT_BYTES", 1 << 20, "a number of bytes")?,
            request_timeout: env
                .seconds("OPENCLAW_REQUEST_TIMEOUT_SECS", Duration::from_secs(30))?,
            sse_keep_alive: env.seconds("OPENCLAW_SSE_KEEPALIVE_SECS", Duration::from_secs(15))?,
            jetstream_recheck: env
                .seconds("OPENCLAW_JETSTREAM_RECHECK_SECS", Duration::from_secs(30))?,
            default_agent,
            host_agents,
            still_working_after: env
                .seconds("OPENCLAW_STILL_WORKING_SECS", Duration::from_secs(30))?,
        })
    }
}

/// The namespace this pod runs in, when in a cluster (the default of
/// `OPENCLAW_KUBE_NAMESPACE`).
fn own_namespace() -> Option<String> {
    std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn no_token_on_a_public_address_is_refused() {
        let none = ("OPENCLAW_DISPATCH", "none");
        let err = BridgeConfig::from_env(&env(&[none]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("OPENCLAW_ALLOW_NO_AUTH"), "{err}");
        assert!(BridgeConfig::from_env(&env(&[none, ("OPENCLAW_ALLOW_NO_AUTH", "true")])).is_ok());
        assert!(BridgeConfig::from_env(&env(&[none, ("OPENCLAW_LISTEN", "127.0.0.1:0")])).is_ok());
        assert!(BridgeConfig::from_env(&env(&[none, ("BRIDGE_AUTH_TOKEN", "t")])).is_ok());
    }

    #[test]
    fn local_dispatch_without_a_worker_binary_is_refused() {
        let err = BridgeConfig::from_env(&env(&[
            ("OPENCLAW_LISTEN", "127.0.0.1:0"),
            ("OPENCLAW_WORKER_BIN", "/nonexistent/openclaw-worker"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("/nonexistent/openclaw-worker") && err.contains("OPENCLAW_DISPATCH=none"),
            "{err}"
        );
    }

    #[test]
    fn unknown_dispatch_lists_the_valid_ones() {
        let err = BridgeConfig::from_env(&env(&[
            ("OPENCLAW_LISTEN", "127.0.0.1:0"),
            ("OPENCLAW_DISPATCH", "kubernetess"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("OPENCLAW_DISPATCH") && err.contains("local, kubernetes, none"),
            "{err}"
        );
    }
}
