//! The coder's setup step and checks: taken from the repository's `.openclaw.toml` (its
//! `[commands]` table) or else the profile's `[agent.sandbox]`, run in the same sandbox as
//! the model's commands, each setup command's output published as it comes.

use std::time::Duration;

use openclaw_common::agents::{Check, REPO_FILE, RepoFile, SandboxSettings};
use openclaw_common::egress::HostList;
use openclaw_common::event::EventKind;
use openclaw_common::store::{EventWriter, StoreError};

use crate::secrets::Secrets;
use crate::tools::Toolbox;

/// Largest `.openclaw.toml` read.
const MAX_REPO_FILE_BYTES: u64 = 64 * 1024;
/// Most of the repository's `AGENTS.md` put in the system prompt (its head).
const MAX_AGENTS_MD_BYTES: usize = 8 * 1024;

/// The setup commands and the checks of a task: the repository's, where its file names them,
/// else the profile's.
pub(crate) struct Plan {
    pub setup: Vec<String>,
    pub checks: Vec<Check>,
    /// For the system prompt: the checks that will run, and the repository's `AGENTS.md`
    /// (guidance for agents, as Codex and others read it; its commands are not run).
    pub notes: String,
    /// Hosts commands reach during setup, and during the agent's commands and checks: the
    /// profile's, with the repository's where the profile lets it add them.
    pub setup_hosts: HostList,
    pub agent_hosts: HostList,
    /// Hosts the repository asked for that the profile does not let it add: said in the
    /// task's events.
    pub refused_hosts: HostList,
}

impl Plan {
    /// Reads the repository's file in `tools`' checkout (confined like every tool path).
    pub(crate) fn of(tools: &Toolbox, settings: &SandboxSettings) -> Result<Self, String> {
        let repo = match tools.resolve(REPO_FILE) {
            Ok(path) if path.is_file() => {
                let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                if size > MAX_REPO_FILE_BYTES {
                    return Err(format!(
                        "{REPO_FILE} is {size} bytes; at most {MAX_REPO_FILE_BYTES} are read"
                    ));
                }
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read {REPO_FILE}: {e}"))?;
                RepoFile::parse(&text)?
            }
            _ => RepoFile::default(),
        };
        let net = &settings.network;
        let (setup_added, setup_refused) = net.repo_may_allow.split_covered(&repo.network.setup);
        let (agent_added, agent_refused) = net.repo_may_allow.split_covered(&repo.network.agent);
        let repo = repo.commands;
        let checks = repo.checks.unwrap_or_else(|| settings.checks.clone());
        let mut notes = String::new();
        if !checks.is_empty() {
            notes.push_str("Before your work is committed these checks run and must pass:\n");
            for run in &checks {
                notes.push_str(&format!("- `{run}`\n"));
            }
        }
        if let Ok(path) = tools.resolve("AGENTS.md")
            && path.is_file()
            && let Ok(head) = read_head(&path, MAX_AGENTS_MD_BYTES)
        {
            notes.push_str(&format!(
                "\nThe repository's AGENTS.md (its guidance for agents):\n\n{head}\n"
            ));
        }
        let agent_hosts = net.agent.union(&agent_added);
        if agent_hosts.is_empty() {
            notes.push_str(
                "\nYour commands have no network: work with what the setup step installed.\n",
            );
        } else {
            notes.push_str(&format!(
                "\nYour commands reach only these hosts, through the proxy in $HTTPS_PROXY: {agent_hosts}.\n"
            ));
        }
        Ok(Self {
            setup: repo.setup.unwrap_or_else(|| settings.setup.clone()),
            checks: checks.into_iter().map(|run| Check::Shell { run }).collect(),
            notes,
            setup_hosts: net.setup.union(&setup_added),
            agent_hosts,
            refused_hosts: setup_refused.union(&agent_refused),
        })
    }
}

/// At most `max` bytes of the start of `path` (whatever the file's size), with a line saying
/// so when there is more.
fn read_head(path: &std::path::Path, max: usize) -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(max as u64 + 1)
        .read_to_end(&mut bytes)?;
    let more = bytes.len() > max;
    bytes.truncate(max);
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if more {
        text.push_str("\n[… the rest of the file is not shown]");
    }
    Ok(text)
}

/// Runs the setup commands in order, each a `setup` tool call and result in the events with
/// its output in between; the first failure is the error (its output's tail included).
pub(crate) async fn run(
    tools: &Toolbox,
    events: &mut EventWriter,
    secrets: &Secrets,
    setup: &[String],
    timeout: Duration,
) -> Result<Result<(), String>, StoreError> {
    for (n, line) in setup.iter().enumerate() {
        let call_id = format!("setup-{}", n + 1);
        events
            .publish(EventKind::ToolCall {
                call_id: call_id.clone(),
                name: "setup".into(),
                arguments: secrets.redact(&serde_json::json!({ "command": line }).to_string()),
            })
            .await?;
        let result = crate::live::publishing(events, secrets, &call_id, |live| {
            tools.run_shell(line, timeout, Some(live))
        })
        .await?;
        let (ok, output) = match &result {
            Ok(out) => (true, secrets.redact(out)),
            Err(err) => (false, secrets.redact(err)),
        };
        events
            .publish(EventKind::ToolResult {
                call_id,
                name: "setup".into(),
                ok,
                output: crate::tools::output::head_and_tail(&output, 4096),
            })
            .await?;
        if !ok {
            return Ok(Err(format!(
                "setup command `{line}` failed: {}",
                crate::tools::output::head_and_tail(&output, 2048)
            )));
        }
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_head_of_a_large_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("AGENTS.md");
        std::fs::write(&path, "a".repeat(5 * 1024 * 1024)).unwrap();
        let head = read_head(&path, 100).unwrap();
        assert!(head.starts_with(&"a".repeat(100)));
        assert!(
            head.ends_with("[… the rest of the file is not shown]"),
            "{head}"
        );
        assert!(head.len() < 200);
        std::fs::write(&path, "short\n").unwrap();
        assert_eq!(read_head(&path, 100).unwrap(), "short\n");
    }
}
