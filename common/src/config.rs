//! Reading configuration from the environment: typed values, clear errors that name the
//! variable and list what is accepted, and secrets that cannot be printed.

use std::fmt;
use std::time::Duration;

/// A configuration value that went wrong, naming the variable at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}={value:?} is not valid: expected {expected}")]
    Invalid {
        var: &'static str,
        value: String,
        expected: String,
    },
    #[error("{0}")]
    Refused(String),
}

/// A secret (token, key, password). `Debug` and `Display` print `[redacted]`; the value is
/// reachable only through [`Secret::expose`], so it is visible where it is used.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A source of configuration values; the process environment in production, a map in tests.
pub trait Env {
    fn get(&self, var: &str) -> Option<String>;
    /// Every variable, for handing a configuration on to a child process.
    fn vars(&self) -> Vec<(String, String)>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, var: &str) -> Option<String> {
        std::env::var(var).ok().filter(|v| !v.is_empty())
    }
    fn vars(&self) -> Vec<(String, String)> {
        std::env::vars().collect()
    }
}

impl Env for std::collections::HashMap<String, String> {
    fn get(&self, var: &str) -> Option<String> {
        self.get(var).cloned().filter(|v| !v.is_empty())
    }
    fn vars(&self) -> Vec<(String, String)> {
        self.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// Typed access to an [`Env`], each getter naming the variable in its error.
pub struct EnvReader<'a>(pub &'a dyn Env);

impl EnvReader<'_> {
    /// The set ones of `names`, in that order (names chosen at run time, e.g. by a profile).
    pub fn named<'n>(&self, names: impl IntoIterator<Item = &'n str>) -> Vec<(String, String)> {
        names
            .into_iter()
            .filter_map(|name| self.0.get(name).map(|v| (name.to_owned(), v)))
            .collect()
    }

    pub fn string(&self, var: &'static str) -> Option<String> {
        self.0.get(var)
    }

    pub fn string_or(&self, var: &'static str, default: &str) -> String {
        self.0.get(var).unwrap_or_else(|| default.to_owned())
    }

    pub fn secret(&self, var: &'static str) -> Option<Secret> {
        self.0.get(var).map(Secret)
    }

    pub fn bool(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.0.get(var) {
            None => Ok(default),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(ConfigError::Invalid {
                    var,
                    value: v,
                    expected: "one of true, false, 1, 0, yes, no, on, off".into(),
                }),
            },
        }
    }

    pub fn parse<T: std::str::FromStr>(
        &self,
        var: &'static str,
        default: T,
        expected: &str,
    ) -> Result<T, ConfigError> {
        match self.0.get(var) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| ConfigError::Invalid {
                var,
                value: v,
                expected: expected.into(),
            }),
        }
    }

    /// An optional value: `None` when unset.
    pub fn parse_opt<T: std::str::FromStr>(
        &self,
        var: &'static str,
        expected: &str,
    ) -> Result<Option<T>, ConfigError> {
        self.0
            .get(var)
            .map(|v| {
                v.parse().map_err(|_| ConfigError::Invalid {
                    var,
                    value: v,
                    expected: expected.into(),
                })
            })
            .transpose()
    }

    /// A duration given in (possibly fractional) seconds.
    pub fn seconds(&self, var: &'static str, default: Duration) -> Result<Duration, ConfigError> {
        match self.0.get(var) {
            None => Ok(default),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0)
                .map(Duration::from_secs_f64)
                .ok_or(ConfigError::Invalid {
                    var,
                    value: v,
                    expected: "a positive number of seconds".into(),
                }),
        }
    }

    /// One of a fixed set of names.
    pub fn choice<T: Copy>(
        &self,
        var: &'static str,
        default: T,
        choices: &[(&str, T)],
    ) -> Result<T, ConfigError> {
        let Some(v) = self.0.get(var) else {
            return Ok(default);
        };
        choices
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(&v))
            .map(|(_, value)| *value)
            .ok_or_else(|| ConfigError::Invalid {
                var,
                value: v,
                expected: format!(
                    "one of {}",
                    choices
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }
}

/// Every variable the worker reads. Local dispatch hands a worker these from the bridge's
/// environment, by name, and nothing else of it (plus the profiles' `command_env` names and
/// [`PROCESS_ENV_VARS`]); a test in the worker checks that its configuration reads no other.
pub const WORKER_ENV_VARS: &[&str] = &[
    "NATS_URL",
    "NATS_CREDS",
    "NATS_NKEY_SEED",
    "NATS_USER",
    "NATS_PASSWORD",
    "NATS_TOKEN",
    "NATS_CA",
    "NATS_CERT",
    "NATS_KEY",
    "OPENCLAW_STREAM_REPLICAS",
    "OPENCLAW_ACK_WAIT_SECS",
    "OPENCLAW_MAX_DELIVER",
    "OPENCLAW_AUDIT_MAX_AGE_DAYS",
    "OPENCLAW_AGENT",
    "OPENCLAW_AGENTS",
    "OPENCLAW_FETCH_WAIT_SECS",
    "OPENCLAW_NAK_DELAY_SECS",
    "OPENCLAW_NO_TASK_EXIT_CODE",
    "OPENCLAW_WORKER_ID",
    "OPENCLAW_WORK_DIR",
    "OPENCLAW_TERMINATION_LOG",
    "OPENCLAW_WORKER_COST_PER_HOUR",
    "OPENCLAW_ALLOW_FILE_REPOS",
    "OPENCLAW_ALLOW_HTTP_REPOS",
    "OPENCLAW_ALLOW_PRIVATE_REPOS",
    "OPENCLAW_REPO_HOSTS",
    "OPENCLAW_GIT_CREDENTIAL_HOSTS",
    "OPENCLAW_GIT_AUTHOR_NAME",
    "OPENCLAW_GIT_AUTHOR_EMAIL",
    "LITELLM_BASE_URL",
    "LITELLM_API_KEY",
    "LITELLM_MODEL_NAME",
    "LITELLM_MAX_RETRIES",
    "LITELLM_RETRY_BASE_SECS",
    "LITELLM_MAX_RETRY_DELAY_SECS",
    "LITELLM_TIMEOUT_SECS",
    "GIT_USERNAME",
    "GIT_TOKEN",
    "GIT_SSH_KEY_PATH",
    "GIT_SSH_KEY",
    "GIT_SSH_PASSPHRASE",
    "GIT_SSH_KNOWN_HOSTS",
    "GITHUB_TOKEN",
    "OPENCLAW_GITHUB_API_URL",
    "OPENCLAW_GITHUB_APP_ID",
    "OPENCLAW_GITHUB_APP_PRIVATE_KEY_FILE",
    "OPENCLAW_GITHUB_APP_INSTALLATION_ID",
    "GITLAB_TOKEN",
    "OPENCLAW_GITLAB_API_URL",
    "LANGFUSE_HOST",
    "LANGFUSE_PUBLIC_KEY",
    "LANGFUSE_SECRET_KEY",
    "OPENCLAW_ENVIRONMENT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "RUST_LOG",
    "OPENCLAW_LOG_FORMAT",
];

/// What any process needs to run at all, handed to every child from its parent's own
/// environment: where programs are, the home and temp directories, the locale and zone.
pub const PROCESS_ENV_VARS: &[&str] = &["PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ"];

/// How a client proves who it is to NATS (one way at most) and which TLS it speaks. Without
/// any, every pod that reaches NATS could read every prompt and inject tasks.
#[derive(Debug, Clone, Default)]
pub struct NatsAuth {
    /// `NATS_CREDS`: a `.creds` file (user JWT and NKey seed, as `nsc` writes it).
    pub creds: Option<std::path::PathBuf>,
    /// `NATS_NKEY_SEED`: a file holding an NKey seed (a file, so the seed is not in the
    /// environment).
    pub nkey_seed: Option<std::path::PathBuf>,
    /// `NATS_USER` and `NATS_PASSWORD`.
    pub user_password: Option<(String, Secret)>,
    /// `NATS_TOKEN`.
    pub token: Option<Secret>,
    /// `NATS_CA`: roots to trust for the server's certificate; implies TLS.
    pub ca: Option<std::path::PathBuf>,
    /// `NATS_CERT` and `NATS_KEY`: a client certificate for mutual TLS; implies TLS.
    pub client_cert: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl NatsAuth {
    pub fn from_env(env: &EnvReader<'_>) -> Result<Self, ConfigError> {
        let path = |var: &'static str| env.string(var).map(std::path::PathBuf::from);
        let user_password = match (env.string("NATS_USER"), env.secret("NATS_PASSWORD")) {
            (Some(u), Some(p)) => Some((u, p)),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Refused(
                    "NATS_USER and NATS_PASSWORD go together".into(),
                ));
            }
        };
        let client_cert = match (path("NATS_CERT"), path("NATS_KEY")) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Refused(
                    "NATS_CERT and NATS_KEY go together (a client certificate and its key)".into(),
                ));
            }
        };
        let auth = Self {
            creds: path("NATS_CREDS"),
            nkey_seed: path("NATS_NKEY_SEED"),
            user_password,
            token: env.secret("NATS_TOKEN"),
            ca: path("NATS_CA"),
            client_cert,
        };
        let ways = [
            auth.creds.is_some(),
            auth.nkey_seed.is_some(),
            auth.user_password.is_some(),
            auth.token.is_some(),
        ]
        .into_iter()
        .filter(|set| *set)
        .count();
        if ways > 1 {
            return Err(ConfigError::Refused(
                "set one of NATS_CREDS, NATS_NKEY_SEED, NATS_USER/NATS_PASSWORD or NATS_TOKEN, not several".into(),
            ));
        }
        Ok(auth)
    }

    /// Whether TLS is required of the connection (a `tls://` URL requires it too).
    pub fn tls(&self) -> bool {
        self.ca.is_some() || self.client_cert.is_some()
    }
}

/// How to reach NATS and how to shape the JetStream objects; read by both binaries.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// Server URL(s), comma separated as the NATS clients accept them.
    pub url: String,
    /// Credentials and TLS.
    pub auth: NatsAuth,
    /// Replicas of every stream and bucket: 1 on one machine, 3 in a cluster.
    pub replicas: usize,
    /// How long a worker may hold a task without an ack or progress ack before JetStream
    /// redelivers it to another worker.
    pub ack_wait: Duration,
    /// How many times a task is delivered before it is given up as failed.
    pub max_deliver: i64,
    /// How long audit records are kept (`OPENCLAW_AUDIT_MAX_AGE_DAYS`); `None`: the stream
    /// definition's 90 days.
    pub audit_max_age: Option<Duration>,
}

impl NatsConfig {
    /// Every server of `url`: the client starts with one of them and also follows the
    /// servers the cluster advertises.
    pub fn servers(&self) -> Vec<String> {
        self.url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect()
    }

    pub fn from_env(env: &EnvReader<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            url: env.string_or("NATS_URL", "nats://127.0.0.1:4222"),
            auth: NatsAuth::from_env(env)?,
            replicas: env.parse("OPENCLAW_STREAM_REPLICAS", 1, "1, 3 or 5")?,
            ack_wait: env.seconds("OPENCLAW_ACK_WAIT_SECS", Duration::from_secs(300))?,
            max_deliver: env.parse("OPENCLAW_MAX_DELIVER", 5, "a positive integer")?,
            audit_max_age: match env.string("OPENCLAW_AUDIT_MAX_AGE_DAYS") {
                None => None,
                Some(_) => Some(Duration::from_secs(
                    env.parse::<u64>("OPENCLAW_AUDIT_MAX_AGE_DAYS", 90, "a number of days")?
                        .clamp(1, 36_500)
                        * 86_400,
                )),
            },
        })
    }
}

/// A URL with any user name and password replaced, safe for logs and errors.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparseable url>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn choice_error_lists_valid_values() {
        let env: HashMap<String, String> = [("MODE".into(), "bogus".into())].into();
        let err = EnvReader(&env)
            .choice("MODE", 1, &[("none", 1), ("local", 2)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("MODE") && err.contains("none, local"), "{err}");
    }

    #[test]
    fn nats_url_takes_a_comma_separated_list_of_servers() {
        let env: HashMap<String, String> = [(
            "NATS_URL".into(),
            "nats://nats-0.nats:4222, nats://nats-1.nats:4222,nats://nats-2.nats:4222,".into(),
        )]
        .into();
        let cfg = NatsConfig::from_env(&EnvReader(&env)).unwrap();
        assert_eq!(
            cfg.servers(),
            [
                "nats://nats-0.nats:4222",
                "nats://nats-1.nats:4222",
                "nats://nats-2.nats:4222"
            ]
        );
    }

    #[test]
    fn redact_url_strips_credentials() {
        assert_eq!(
            redact_url("https://user:tok@example.com/r.git"),
            "https://example.com/r.git"
        );
    }
}
