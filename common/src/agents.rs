//! Agent profiles: configured, not compiled in. The built-in set (`deploy/base/agents.toml`, also
//! what the Kubernetes manifests mount) ships
//! `doc-writer` and `devops`; `OPENCLAW_AGENTS` points at a TOML file that replaces it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::egress::HostList;
use crate::ids::AgentName;

const BUILT_IN: &str = include_str!("../../deploy/base/agents.toml");

#[derive(Debug, thiserror::Error)]
pub enum AgentsError {
    #[error("cannot read agent profiles from {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("agent profiles in {origin} are invalid: {message}")]
    Invalid { origin: String, message: String },
}

/// A tool the agent loop can offer the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolName {
    ListFiles,
    ReadFile,
    WriteFile,
    EditFile,
    DeleteFile,
    MoveFile,
    Search,
    RunCommand,
}

/// A check of the work before it is committed ([`AgentProfile::checks`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawCheck")]
pub enum Check {
    /// Every relative link and anchor in the Markdown files the run changed resolves.
    MarkdownLinks,
    /// A command that must exit 0.
    Command { command: String, args: Vec<String> },
    /// A shell command line that must exit 0, run as the coder's `run_command` runs it (in
    /// the sandbox).
    Shell { run: String },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawCheck {
    Named(String),
    Command {
        command: String,
        #[serde(default)]
        args: Vec<String>,
    },
    Shell {
        run: String,
    },
}

impl TryFrom<RawCheck> for Check {
    type Error = String;

    fn try_from(raw: RawCheck) -> Result<Self, String> {
        match raw {
            RawCheck::Named(name) if name == "markdown-links" => Ok(Check::MarkdownLinks),
            RawCheck::Named(name) => Err(format!(
                "unknown check {name:?}: the built-in check is \"markdown-links\"; a command is {{ command = \"…\", args = [\"…\"] }}"
            )),
            RawCheck::Command { command, args } => Ok(Check::Command { command, args }),
            RawCheck::Shell { run } => Ok(Check::Shell { run }),
        }
    }
}

/// Bounds on one task's agent loop; reaching one fails the task with that reason.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Model calls per task.
    pub max_steps: u32,
    /// Tokens per task that cost full price: output tokens, plus input tokens that were not
    /// read from the provider's prompt cache — when the gateway reports no cache reads, the
    /// input a request adds to the one before (the history resent with every step is not
    /// counted again).
    pub max_tokens: u64,
    /// Spend per task in USD, as the gateway reports each call's cost; `None`: no cap.
    #[serde(default)]
    pub max_cost_usd: Option<f64>,
    /// Most tokens of one answer (`max_tokens` of each request).
    #[serde(default = "default_max_output_tokens")]
    pub max_output_tokens: u32,
    /// The model's context window in tokens; `None`: LiteLLM's model info says (its
    /// `max_input_tokens`), else [`DEFAULT_CONTEXT_WINDOW`]. Old tool results are elided
    /// above 70 % of it and the history condensed above 85 %.
    #[serde(default)]
    pub context_window: Option<u64>,
    /// Wall-clock seconds per attempt.
    pub max_wall_secs: u64,
    /// Tool calls run from one model answer; the rest are refused back to the model, so one
    /// answer cannot start thousands of commands under one step.
    #[serde(default = "default_tool_calls_per_answer")]
    pub max_tool_calls_per_answer: u32,
    /// Bytes a clone may download; a larger repository fails the task (not retried) before
    /// it fills the worker's disk.
    #[serde(default = "default_max_repo_bytes")]
    pub max_repo_bytes: u64,
    /// Files a checkout may hold; more fail the task (not retried).
    #[serde(default = "default_max_repo_files")]
    pub max_repo_files: u64,
    /// Free disk the agent must still have once the repository is checked out; less fails
    /// the task (not retried) before the model is called.
    #[serde(default = "default_min_free_disk_bytes")]
    pub min_free_disk_bytes: u64,
}

/// The context window assumed when neither the profile nor the gateway names one: the
/// smallest of the models the kit configures, with room.
pub const DEFAULT_CONTEXT_WINDOW: u64 = 128_000;

fn default_max_output_tokens() -> u32 {
    8192
}

fn default_min_free_disk_bytes() -> u64 {
    256 * 1024 * 1024
}

fn default_tool_calls_per_answer() -> u32 {
    16
}

fn default_max_repo_bytes() -> u64 {
    2 * 1024 * 1024 * 1024
}

fn default_max_repo_files() -> u64 {
    250_000
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_steps: 30,
            max_tokens: 400_000,
            max_cost_usd: None,
            max_output_tokens: default_max_output_tokens(),
            context_window: None,
            max_wall_secs: 1800,
            max_tool_calls_per_answer: default_tool_calls_per_answer(),
            max_repo_bytes: default_max_repo_bytes(),
            max_repo_files: default_max_repo_files(),
            min_free_disk_bytes: default_min_free_disk_bytes(),
        }
    }
}

impl Limits {
    pub fn max_wall(&self) -> Duration {
        Duration::from_secs(self.max_wall_secs)
    }
}

/// One agent profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentProfile {
    pub name: AgentName,
    #[serde(default)]
    pub description: String,
    pub system_prompt: String,
    pub tools: Vec<ToolName>,
    /// Model for this agent; `None` uses `LITELLM_MODEL_NAME`.
    #[serde(default)]
    pub model: Option<String>,
    /// Whether tasks must name a repo. Agents without one work in an empty scratch directory.
    #[serde(default = "yes")]
    pub repo_required: bool,
    /// Repo used when a task names none (optional).
    #[serde(default)]
    pub default_repo: Option<String>,
    /// Programs `run_command` may start (bare names, looked up on PATH).
    #[serde(default)]
    pub commands: Vec<String>,
    #[serde(default = "default_command_timeout")]
    pub command_timeout_secs: u64,
    /// Limits kubectl, helm and aws to verbs that only read (default true; see
    /// `openclaw_worker::commands`).
    #[serde(default = "yes")]
    pub commands_read_only: bool,
    /// Worker environment variables `run_command` children receive (e.g. `AWS_REGION`); they
    /// get nothing else of the worker's environment. The local dispatcher hands these on from
    /// the bridge by name.
    #[serde(default)]
    pub command_env: Vec<String>,
    #[serde(default)]
    pub limits: Limits,
    /// Run when the model says it is done, before the commit; problems go back to the model
    /// (at most twice). `"markdown-links"`, or `{ command = "…", args = […] }` run as
    /// `run_command` runs it (the program must be one of `commands`).
    #[serde(default)]
    pub checks: Vec<Check>,
    /// After the checks pass, show the model its diff (capped) once and ask it to confirm or
    /// fix: one more model call per task.
    #[serde(default)]
    pub review_diff: bool,
    /// Open a pull request for a completed task's work when its submit does not say (the
    /// submit's `pull_request` wins). Needs a forge for the repository's host.
    #[serde(default)]
    pub pull_request: bool,
    /// Seconds a task may wait to start before it fails with the reason it waited
    /// (overrides `OPENCLAW_QUEUE_TIMEOUT_SECS`).
    #[serde(default)]
    pub queue_timeout_secs: Option<u64>,
    /// Commands run in the kernel sandbox: `run_command` takes a shell command line (any
    /// program the image has) instead of an allowlisted program, and a setup step runs first.
    #[serde(default)]
    pub sandbox: Option<SandboxSettings>,
}

/// The sandbox of a profile's commands (see `openclaw_sandbox`): the limits of every
/// command, and the setup and checks used when the repository's `.openclaw.toml` names none.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSettings {
    /// Shell command lines run before the agent, in the sandbox (a failure fails the task).
    #[serde(default)]
    pub setup: Vec<String>,
    /// Shell command lines that must pass before the work is committed.
    #[serde(default)]
    pub checks: Vec<String>,
    /// Seconds each setup command may run.
    #[serde(default = "default_setup_timeout")]
    pub setup_timeout_secs: u64,
    /// Processes (and threads) of the worker's user at once.
    #[serde(default = "default_max_processes")]
    pub max_processes: u64,
    /// Largest file a command may write.
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
    /// CPU seconds per process; default twice the command's time limit.
    #[serde(default)]
    pub max_cpu_secs: Option<u64>,
    /// Directories readable (and executable) besides the system's: toolchains elsewhere.
    #[serde(default)]
    pub readable: Vec<String>,
    /// Layers this profile accepts running without (`landlock`, `seccomp`,
    /// `process-limit`); the task's events say so. Default: none — a missing layer refuses
    /// the commands.
    #[serde(default)]
    pub allow_missing: Vec<String>,
    /// Hosts commands reach through the worker's egress proxy; none by default.
    #[serde(default)]
    pub network: NetworkSettings,
}

/// The network of a profile's sandboxed commands: HTTPS (and plain HTTP where an entry names
/// its port) to the listed hosts through a proxy in the worker that applies the repositories'
/// egress policy (no internal addresses unless `OPENCLAW_ALLOW_PRIVATE_REPOS`). Entries are
/// `host`, `host:port` or `*.domain[:port]`; without a port, 443.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSettings {
    /// During the setup step (dependency registries).
    #[serde(default, deserialize_with = "host_patterns")]
    pub setup: HostList,
    /// During the agent's own commands and the checks.
    #[serde(default, deserialize_with = "host_patterns")]
    pub agent: HostList,
    /// What a repository's `.openclaw.toml` `[network]` may add to either (its other entries
    /// are refused, and the task's events say so). Default: nothing.
    #[serde(default, deserialize_with = "host_patterns")]
    pub repo_may_allow: HostList,
}

fn host_patterns<'de, D: serde::Deserializer<'de>>(d: D) -> Result<HostList, D::Error> {
    let entries = Vec::<String>::deserialize(d)?;
    HostList::parse_patterns(entries.iter().map(String::as_str)).map_err(serde::de::Error::custom)
}

/// The hosts a repository's `.openclaw.toml` asks its commands to reach:
///
/// ```toml
/// [network]
/// setup = ["registry.npmjs.org"]
/// agent = []
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoNetwork {
    #[serde(default, deserialize_with = "host_patterns")]
    pub setup: HostList,
    #[serde(default, deserialize_with = "host_patterns")]
    pub agent: HostList,
}

/// What a repository's `.openclaw.toml` says:
///
/// ```toml
/// [commands]
/// setup = ["pip install --no-index -e ."]   # before the agent, in the sandbox
/// checks = ["python -m pytest -q"]          # must pass before the work is committed
///
/// [network]                                 # see RepoNetwork
/// setup = ["registry.npmjs.org"]
/// ```
///
/// The repository is not trusted: these run in the same sandbox as the model's commands, and
/// nothing here widens what the profile allows (its hosts only within the profile's
/// `repo_may_allow`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RepoFile {
    #[serde(default)]
    pub commands: RepoCommands,
    #[serde(default)]
    pub network: RepoNetwork,
}

/// The `[commands]` table of `.openclaw.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RepoCommands {
    #[serde(default)]
    pub setup: Option<Vec<String>>,
    #[serde(default)]
    pub checks: Option<Vec<String>>,
}

/// The file a repository names its setup, checks and hosts in.
pub const REPO_FILE: &str = ".openclaw.toml";

impl RepoFile {
    /// Parses `.openclaw.toml` (only its `[commands]` and `[network]` tables are read; other
    /// tables are left for other tools).
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str::<RepoFile>(text).map_err(|e| format!("{REPO_FILE} is not valid: {e}"))
    }
}

/// The sandbox layers a profile may name in `allow_missing`.
pub const SANDBOX_LAYERS: &[&str] = &["landlock", "seccomp", "process-limit"];

fn default_setup_timeout() -> u64 {
    600
}

fn default_max_processes() -> u64 {
    512
}

fn default_max_file_bytes() -> u64 {
    1024 * 1024 * 1024
}

fn yes() -> bool {
    true
}

fn default_command_timeout() -> u64 {
    60
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    agent: Vec<AgentProfile>,
}

/// The configured agents, by name.
#[derive(Debug, Clone)]
pub struct AgentCatalog {
    agents: BTreeMap<AgentName, AgentProfile>,
}

impl AgentCatalog {
    /// The profiles shipped with the project.
    pub fn built_in() -> Self {
        Self::parse(BUILT_IN, "built-in agents.toml").expect("the built-in agents.toml is valid")
    }

    /// `OPENCLAW_AGENTS` when set, else the built-in profiles.
    pub fn load(path: Option<&Path>) -> Result<Self, AgentsError> {
        match path {
            None => Ok(Self::built_in()),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| AgentsError::Read {
                    path: p.display().to_string(),
                    source,
                })?;
                Self::parse(&text, &p.display().to_string())
            }
        }
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, AgentsError> {
        let invalid = |message: String| AgentsError::Invalid {
            origin: origin.to_owned(),
            message,
        };
        let file: File = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let mut agents = BTreeMap::new();
        for profile in file.agent {
            if profile.tools.contains(&ToolName::RunCommand)
                && profile.commands.is_empty()
                && profile.sandbox.is_none()
            {
                return Err(invalid(format!(
                    "agent {} offers run_command but allows no commands (name them in `commands`, or run any in a `[agent.sandbox]`)",
                    profile.name
                )));
            }
            if let Some(sandbox) = &profile.sandbox
                && let Some(bad) = sandbox
                    .allow_missing
                    .iter()
                    .find(|l| !SANDBOX_LAYERS.contains(&l.as_str()))
            {
                return Err(invalid(format!(
                    "agent {}: sandbox.allow_missing names {bad:?}; the layers are {SANDBOX_LAYERS:?}",
                    profile.name
                )));
            }
            if let Some(dup) = agents.insert(profile.name.clone(), profile) {
                return Err(invalid(format!("agent {} is defined twice", dup.name)));
            }
        }
        if agents.is_empty() {
            return Err(invalid("no [[agent]] defined".into()));
        }
        Ok(Self { agents })
    }

    /// Makes `repo` the repository of `agent`'s tasks that name none (the starter kit's
    /// `GIT_REPO_URL` for doc-writer). `false` when there is no such agent.
    pub fn set_default_repo(&mut self, agent: &AgentName, repo: String) -> bool {
        match self.agents.get_mut(agent) {
            Some(profile) => {
                profile.default_repo = Some(repo);
                true
            }
            None => false,
        }
    }

    pub fn get(&self, name: &AgentName) -> Option<&AgentProfile> {
        self.agents.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &AgentName> {
        self.agents.keys()
    }

    pub fn profiles(&self) -> impl Iterator<Item = &AgentProfile> {
        self.agents.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_profiles_parse() {
        let c = AgentCatalog::built_in();
        let doc = c.get(&AgentName::parse("doc-writer").unwrap()).unwrap();
        assert!(doc.repo_required);
        assert!(!doc.tools.contains(&ToolName::RunCommand));
        let devops = c.get(&AgentName::parse("devops").unwrap()).unwrap();
        assert!(!devops.repo_required);
        assert_eq!(devops.commands, ["kubectl", "helm", "aws"]);
    }

    #[test]
    fn run_command_without_allowlist_is_refused() {
        let err = AgentCatalog::parse(
            "[[agent]]\nname='x'\nsystem_prompt='p'\ntools=['run_command']\n",
            "t",
        )
        .unwrap_err();
        assert!(err.to_string().contains("allows no commands"), "{err}");
    }

    #[test]
    fn the_coder_reaches_registries_at_setup_and_nothing_after() {
        let c = AgentCatalog::built_in();
        let coder = c.get(&AgentName::parse("coder").unwrap()).unwrap();
        let net = &coder.sandbox.as_ref().unwrap().network;
        let pypi = crate::egress::Remote::new("pypi.org", 443).unwrap();
        assert!(net.setup.allows(&pypi));
        assert!(net.agent.is_empty() && net.repo_may_allow.is_empty());
    }

    #[test]
    fn a_bad_host_entry_is_named() {
        let profile = "[[agent]]\nname='x'\nsystem_prompt='p'\ntools=['run_command']\n[agent.sandbox]\n[agent.sandbox.network]\nsetup=['pypi.org', 'https://evil.io/x']\n";
        let err = AgentCatalog::parse(profile, "t").unwrap_err().to_string();
        assert!(err.contains(r#""https://evil.io/x" is not host"#), "{err}");
        let err = RepoFile::parse("[network]\nagent = ['*.com']\n").unwrap_err();
        assert!(err.contains("*.com") && err.contains(REPO_FILE), "{err}");
        let repo = RepoFile::parse(
            "[commands]\nchecks=['make test']\n[network]\nsetup=['registry.npmjs.org']\n[tool.other]\nx=1\n",
        )
        .unwrap();
        assert_eq!(repo.commands.checks.unwrap(), ["make test"]);
        assert_eq!(repo.network.setup.to_string(), "registry.npmjs.org");
    }
}
