//! The tools the model can call. Every path is confined to the task's checkout: no absolute
//! paths, no `..`, nothing under `.git`, and no symlink that leads out. A refused call is a
//! tool error the model sees and can correct, never a crash of the task.

use std::path::{Path, PathBuf};
use std::time::Duration;

use openclaw_common::agents::{AgentProfile, ToolName};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::commands::{CommandEnv, check_arguments};
use crate::paths;
use crate::secrets::Secrets;

mod command;
mod edit;
mod files;
pub mod output;
pub mod search;

use files::read_window;
use output::{MAX_RESULT_BYTES, head_and_tail};

/// Lines `read_file` shows when the model names no `limit`, and the most it may ask for.
const DEFAULT_READ_LINES: u64 = 400;
const MAX_READ_LINES: u64 = 2000;
/// Most bytes of one line `read_file` shows; the rest is replaced by a marker.
const MAX_READ_LINE_BYTES: usize = 500;
/// Most bytes one `read_file` answer holds: a window stops early past it, and says where to
/// go on. Under [`MAX_RESULT_BYTES`], so a window is never cut in its middle.
const MAX_READ_OUTPUT: usize = 20 * 1024;
/// Largest file `edit_file` rewrites (it holds the whole file): the size `write_file` takes.
const MAX_EDIT_BYTES: u64 = MAX_WRITE_BYTES as u64;
/// Largest content `write_file` accepts.
const MAX_WRITE_BYTES: usize = 1024 * 1024;
/// Largest arguments of one tool call (raw JSON); above, the call is refused unread. Room for
/// a `write_file` of [`MAX_WRITE_BYTES`] with JSON escaping.
pub const MAX_ARGUMENT_BYTES: usize = 2 * MAX_WRITE_BYTES;

/// The tools of one task, bound to its working directory.
pub struct Toolbox {
    /// The checkout (or scratch dir), canonicalized: every path must stay under it.
    root: PathBuf,
    /// Which tools the agent profile offers.
    tools: Vec<ToolName>,
    /// Programs `run_command` may start.
    commands: Vec<String>,
    /// Whether kubectl, helm and aws may only read.
    commands_read_only: bool,
    /// The whole environment of a `run_command` child (built, never inherited).
    command_env: CommandEnv,
    command_timeout: Duration,
    /// The worker's secrets: a write that would put one in the checkout (and so in a commit)
    /// is refused.
    secrets: Secrets,
    /// Files written, edited or moved into place by this run (relative paths): what the
    /// checks look at.
    touched: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// The policy of the kernel sandbox `run_command` runs shell command lines in, for a
    /// profile with `[agent.sandbox]`.
    sandbox_policy: Option<openclaw_sandbox::Policy>,
    /// The sandbox, prepared from the policy at its first use (once the worker's secret files
    /// are known); `Err` says which layer is missing (every command is refused so).
    sandbox: std::sync::OnceLock<Result<openclaw_sandbox::Sandbox, String>>,
    /// Cancelled when the worker is told to stop: a running command (and its group) is
    /// stopped at once rather than at its time limit.
    stop: tokio_util::sync::CancellationToken,
    /// The egress proxy of the sandboxed commands, when the profile or the repository allows
    /// them hosts; `None`: no network at all.
    network: Option<std::sync::Arc<crate::proxy::EgressProxy>>,
}

/// A channel what a running command does is sent to as it comes.
pub type LiveOutput = tokio::sync::mpsc::Sender<Live>;

/// What a running command did, as it comes.
#[derive(Debug)]
pub enum Live {
    /// Output, in chunks as the pipes give them (full channel: the chunk is not sent — the
    /// tool result still has it all).
    Output(Vec<u8>),
    /// A host the egress proxy refused it.
    Refused(crate::proxy::Refusal),
}

/// The variables that point HTTP clients (pip, npm, cargo, git, curl) at the egress proxy;
/// `NO_PROXY` empty, so nothing goes around it (nothing could: the sandbox reaches only the
/// proxy's port).
const PROXY_VARS: &[&str] = &[
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// The shell `run_command` runs a command line with (`sh -c`).
const SHELL: &str = "/bin/sh";

/// Layers `OPENCLAW_SANDBOX_DISABLE` (comma-separated) switches off, as if the kernel lacked
/// them: for tests of the refusal and of running with less.
pub const SANDBOX_DISABLE_VAR: &str = "OPENCLAW_SANDBOX_DISABLE";

/// A tool's answer: `Ok` output or an error text, both shown to the model.
pub type ToolOutput = Result<String, String>;

impl Toolbox {
    /// `scratch` is a directory outside `root` for the commands' `HOME`, `TMPDIR` and
    /// kubeconfig: nothing there is committed, and the model's file tools cannot reach it.
    pub fn new(
        root: &Path,
        scratch: &Path,
        profile: &AgentProfile,
        secrets: Secrets,
    ) -> std::io::Result<Self> {
        let mut command_env =
            CommandEnv::build(scratch, &profile.command_env, |k| std::env::var(k).ok())?;
        if profile.sandbox.is_some() {
            // Python's bytecode cache judges a source by its mtime in seconds and its size: an
            // edit within the second that keeps the size (`a - b` → `a + b`) would run the old
            // code. Nor does the cache belong in the checkout.
            command_env
                .vars
                .push(("PYTHONDONTWRITEBYTECODE".into(), "1".into()));
        }
        let root = root.canonicalize()?;
        let sandbox_policy = match &profile.sandbox {
            Some(settings) => Some(sandbox_policy(
                settings,
                profile,
                &root,
                &scratch.canonicalize()?,
            )),
            None => None,
        };
        Ok(Self {
            root,
            tools: profile.tools.clone(),
            commands: profile.commands.clone(),
            commands_read_only: profile.commands_read_only,
            command_env,
            command_timeout: Duration::from_secs(profile.command_timeout_secs),
            secrets,
            touched: Default::default(),
            sandbox_policy,
            sandbox: std::sync::OnceLock::new(),
            stop: tokio_util::sync::CancellationToken::new(),
            network: None,
        })
    }

    /// Gives the sandboxed commands the network `proxy` allows (and nothing else): their
    /// sandbox lets TCP reach its port only, and their environment names it. Before the first
    /// command (the sandbox is prepared once); no effect on a profile without a sandbox.
    pub fn set_network(&mut self, proxy: std::sync::Arc<crate::proxy::EgressProxy>) {
        let Some(policy) = &mut self.sandbox_policy else {
            return;
        };
        policy.connect_port = Some(proxy.port());
        let url = proxy.url();
        self.command_env
            .vars
            .retain(|(k, _)| !PROXY_VARS.contains(&k.as_str()));
        for var in PROXY_VARS {
            let value = if var.eq_ignore_ascii_case("no_proxy") {
                ""
            } else {
                url.as_str()
            };
            self.command_env.vars.push(((*var).into(), value.into()));
        }
        self.network = Some(proxy);
    }

    /// Stops running commands when `stop` is cancelled (the worker's termination).
    pub fn with_stop(mut self, stop: tokio_util::sync::CancellationToken) -> Self {
        self.stop = stop;
        self
    }

    /// The worker's secret files (credentials, keys): the sandbox is refused when one of them
    /// would be within its reach.
    pub fn with_secret_files(mut self, files: Vec<PathBuf>) -> Self {
        if let Some(policy) = &mut self.sandbox_policy {
            policy.secrets = files;
        }
        self
    }

    /// The sandbox of this profile's commands: `None` without `[agent.sandbox]`; `Err` when
    /// it cannot run (the missing layer named).
    pub fn sandbox(&self) -> Option<Result<&openclaw_sandbox::Sandbox, &str>> {
        let policy = self.sandbox_policy.as_ref()?;
        let prepared = self
            .sandbox
            .get_or_init(|| openclaw_sandbox::Sandbox::new(policy).map_err(|e| e.to_string()));
        Some(prepared.as_ref().map_err(String::as_str))
    }

    /// Runs a shell command line in the sandbox, in the checkout, for at most `timeout`: the
    /// setup step, the checks and the model's `run_command` all come here.
    pub async fn run_shell(
        &self,
        line: &str,
        timeout: Duration,
        live: Option<LiveOutput>,
    ) -> ToolOutput {
        let sandbox = match self.sandbox() {
            Some(Ok(sandbox)) => sandbox,
            Some(Err(why)) => return Err(why.to_owned()),
            None => return Err("this agent runs no shell commands".into()),
        };
        if !Path::new(SHELL).exists() {
            return Err(format!(
                "this worker's image has no {SHELL}: run this agent in an image with a shell and the repository's toolchains (OPENCLAW_WORKER_IMAGE_<AGENT>; the README's \"The coder agent\")"
            ));
        }
        let mut cmd = std::process::Command::new(SHELL);
        cmd.arg("-c")
            .arg(line)
            .env_clear()
            .envs(self.command_env.vars.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.root);
        sandbox.confine(&mut cmd);
        let live_refusals = live.clone();
        let ran = command::run(
            tokio::process::Command::from(cmd),
            timeout,
            live,
            &self.stop,
        )
        .await
        .map_err(|e| format!("cannot start the command: {e}"))?;
        let limits = self.sandbox_policy.as_ref().map(|policy| policy.limits);
        let output = ran.into_shell_output(timeout, limits);
        let refused = self
            .network
            .as_ref()
            .map(|proxy| proxy.take_refused())
            .unwrap_or_default();
        if refused.is_empty() {
            return output;
        }
        // The model learns what it could not reach, and the task's events say it too.
        let mut note = String::from("\n[network] refused by the sandbox's egress proxy:");
        for refusal in refused {
            note.push_str(&format!("\n- {refusal}"));
            if let Some(live) = &live_refusals {
                let _ = live.send(Live::Refused(refusal)).await;
            }
        }
        output.map(|out| out + &note).map_err(|err| err + &note)
    }

    /// The checkout the tools work in (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The files this run wrote, edited or moved into place.
    pub fn touched(&self) -> std::collections::BTreeSet<String> {
        self.touched.lock().map(|t| t.clone()).unwrap_or_default()
    }

    fn touch(&self, path: &Path) {
        if let (Ok(rel), Ok(mut touched)) = (path.strip_prefix(&self.root), self.touched.lock()) {
            touched.insert(rel.to_string_lossy().into_owned());
        }
    }

    /// The OpenAI `tools` array for the offered tools.
    pub fn definitions(&self) -> Vec<Value> {
        self.tools.iter().map(|t| self.definition(*t)).collect()
    }

    fn definition(&self, tool: ToolName) -> Value {
        let (name, description, parameters) = match tool {
            ToolName::ListFiles => (
                "list_files",
                "List the repository's files under a directory, sorted, as git would see them (.gitignore'd files and .git left out), with the true total when there are more than shown. Narrow with `glob` (e.g. `*.md`, `docs/**`) or `max_depth`.",
                json!({"type":"object","properties":{
                    "path":{"type":"string","description":"Directory relative to the repository root; default '.'"},
                    "glob":{"type":"string"},
                    "max_depth":{"type":"integer","minimum":1},
                    "limit":{"type":"integer","minimum":1,"maximum":1000}}}),
            ),
            ToolName::ReadFile => (
                "read_file",
                "Read a text file of the repository as numbered lines (`N: text`), 400 lines from line `offset` (1-based, default 1) unless `limit` asks for another number (at most 2000). The first line says which lines these are of how many; long lines are cut with a marker. Read further windows with a larger offset.",
                json!({"type":"object","properties":{"path":{"type":"string"},"offset":{"type":"integer","minimum":1},"limit":{"type":"integer","minimum":1,"maximum":MAX_READ_LINES}},"required":["path"]}),
            ),
            ToolName::WriteFile => (
                "write_file",
                "Create or overwrite a file of the repository with the given content. To change part of an existing file, use edit_file.",
                json!({"type":"object","properties":{"path":{"type":"string"},"content":{"type":"string"}},"required":["path","content"]}),
            ),
            ToolName::EditFile => (
                "edit_file",
                "Replace old_text with new_text in a file. old_text must match the file exactly (copy it from read_file without the line numbers) and occur once, unless replace_all is set; if it is not found exactly, lines that match ignoring indentation are used when they are unique, else the closest lines are shown. Several changes to one file: pass `edits` (applied in order, all or none). The answer shows the edited lines, numbered.",
                json!({"type":"object","properties":{
                    "path":{"type":"string"},
                    "old_text":{"type":"string"},
                    "new_text":{"type":"string"},
                    "replace_all":{"type":"boolean"},
                    "edits":{"type":"array","items":{"type":"object","properties":{
                        "old_text":{"type":"string"},"new_text":{"type":"string"},"replace_all":{"type":"boolean"}},
                        "required":["old_text","new_text"]}}},
                    "required":["path"]}),
            ),
            ToolName::DeleteFile => (
                "delete_file",
                "Delete a file of the repository.",
                json!({"type":"object","properties":{"path":{"type":"string"}},"required":["path"]}),
            ),
            ToolName::MoveFile => (
                "move_file",
                "Move or rename a file of the repository; the destination must not exist.",
                json!({"type":"object","properties":{"from":{"type":"string"},"to":{"type":"string"}},"required":["from","to"]}),
            ),
            ToolName::Search => (
                "search",
                "Search the repository's text files like ripgrep: `pattern` is a regular expression (set literal for plain text), .gitignore'd and binary files are skipped. output_mode `content` (default) shows `path:line: text` (the line cut around the match; `context` lines around it), `files` the matching paths, `count` matches per file. The last line gives the true totals; narrow with `path` or `glob` (e.g. `*.rs`).",
                json!({"type":"object","properties":{
                    "pattern":{"type":"string"},
                    "literal":{"type":"boolean"},
                    "path":{"type":"string"},
                    "glob":{"type":"string"},
                    "case_insensitive":{"type":"boolean"},
                    "output_mode":{"type":"string","enum":["content","files","count"]},
                    "context":{"type":"integer","minimum":0,"maximum":5},
                    "limit":{"type":"integer","minimum":1,"maximum":500}},
                    "required":["pattern"]}),
            ),
            ToolName::RunCommand if self.sandbox_policy.is_some() => (
                "run_command",
                "Run a shell command line (/bin/sh -c) in the repository's root, in a sandbox: no network, files writable only in the repository and in $HOME and $TMPDIR, anything still running when the command returns is stopped. Use it to build, run tests and linters, and inspect. The answer is the exit status (when not 0) and the output (stdout, then stderr marked [stderr]); long output keeps its beginning and end.",
                json!({"type":"object","properties":{
                    "command":{"type":"string","description":"A shell command line, e.g. `python -m pytest -x -q tests/test_x.py`"},
                    "timeout_secs":{"type":"integer","minimum":1,"maximum": self.command_timeout.as_secs()}},
                    "required":["command"]}),
            ),
            ToolName::RunCommand => (
                "run_command",
                "Run an allowed program with arguments in the working directory. The answer is its output (stdout, then stderr marked [stderr]); long output keeps its beginning and end.",
                json!({"type":"object","properties":{
                    "command":{"type":"string","enum": self.commands},
                    "args":{"type":"array","items":{"type":"string"}}},
                    "required":["command"]}),
            ),
        };
        json!({"type":"function","function":{"name":name,"description":description,"parameters":parameters}})
    }

    /// Runs the tool `name` with the model's raw JSON `arguments`. Whatever it answers, output
    /// or error, is at most [`MAX_RESULT_BYTES`] ([`head_and_tail`]).
    pub async fn call(&self, name: &str, arguments: &str) -> ToolOutput {
        self.call_live(name, arguments, None).await
    }

    /// [`Toolbox::call`], with the output of a command sent to `live` as it comes.
    pub async fn call_live(
        &self,
        name: &str,
        arguments: &str,
        live: Option<LiveOutput>,
    ) -> ToolOutput {
        match self.call_unbounded(name, arguments, live).await {
            Ok(out) => Ok(head_and_tail(&out, MAX_RESULT_BYTES)),
            Err(err) => Err(head_and_tail(&err, MAX_RESULT_BYTES)),
        }
    }

    async fn call_unbounded(
        &self,
        name: &str,
        arguments: &str,
        live: Option<LiveOutput>,
    ) -> ToolOutput {
        let tool = match name {
            "list_files" => ToolName::ListFiles,
            "read_file" => ToolName::ReadFile,
            "write_file" => ToolName::WriteFile,
            "edit_file" => ToolName::EditFile,
            "delete_file" => ToolName::DeleteFile,
            "move_file" => ToolName::MoveFile,
            "search" => ToolName::Search,
            "run_command" => ToolName::RunCommand,
            other => return Err(format!("unknown tool {other:?}")),
        };
        if !self.tools.contains(&tool) {
            return Err(format!("tool {name} is not available to this agent"));
        }
        if arguments.len() > MAX_ARGUMENT_BYTES {
            return Err(format!(
                "arguments of {} bytes are larger than the {MAX_ARGUMENT_BYTES} bytes a tool call may have",
                arguments.len()
            ));
        }
        let args: Value = if arguments.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(arguments)
                .map_err(|e| format!("arguments are not valid JSON ({e}); send a JSON object"))?
        };
        match tool {
            ToolName::ListFiles => self.list_files(parse(args)?).await,
            ToolName::ReadFile => self.read_file(parse(args)?).await,
            ToolName::WriteFile => self.write_file(parse(args)?).await,
            ToolName::EditFile => self.edit_file(parse(args)?).await,
            ToolName::DeleteFile => self.delete_file(parse(args)?).await,
            ToolName::MoveFile => self.move_file(parse(args)?).await,
            ToolName::Search => self.search(parse(args)?).await,
            ToolName::RunCommand if self.sandbox_policy.is_some() => {
                let args: ShellArgs = parse(args)?;
                let timeout = args
                    .timeout_secs
                    .map_or(self.command_timeout, Duration::from_secs)
                    .clamp(Duration::from_secs(1), self.command_timeout);
                self.run_shell(&args.command, timeout, live).await
            }
            ToolName::RunCommand => self.run_command(parse(args)?).await,
        }
    }

    /// Resolves a model-given relative path inside the root, or says why not
    /// ([`paths::confine`]).
    pub fn resolve(&self, rel: &str) -> Result<PathBuf, String> {
        paths::confine(&self.root, rel)
    }

    async fn list_files(&self, args: search::ListArgs) -> ToolOutput {
        let start = self.resolve(args.path.as_deref().unwrap_or("."))?;
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || search::list(&root, &start, &args))
            .await
            .map_err(|e| format!("listing failed: {e}"))?
    }

    async fn read_file(&self, args: ReadArgs) -> ToolOutput {
        let path = self.regular_file(&args.path).await?;
        let first = args.offset.unwrap_or(1).max(1);
        let limit = args
            .limit
            .unwrap_or(DEFAULT_READ_LINES)
            .clamp(1, MAX_READ_LINES);
        let shown = args.path.clone();
        tokio::task::spawn_blocking(move || read_window(&path, &shown, first, limit))
            .await
            .map_err(|e| format!("{}: {e}", args.path))?
    }

    /// `rel` resolved in the checkout, if it is a regular file.
    async fn regular_file(&self, rel: &str) -> Result<PathBuf, String> {
        let path = self.resolve(rel)?;
        let meta = tokio::fs::metadata(&path)
            .await
            .map_err(|_| format!("{rel}: no such file"))?;
        if !meta.is_file() {
            return Err(format!("{rel}: not a file"));
        }
        Ok(path)
    }

    /// The whole text of `rel`, for tools that rewrite it.
    async fn whole_text(&self, rel: &str) -> Result<String, String> {
        let path = self.regular_file(rel).await?;
        let size = tokio::fs::metadata(&path)
            .await
            .map_err(|e| format!("{rel}: {e}"))?
            .len();
        if size > MAX_EDIT_BYTES {
            return Err(format!(
                "{rel}: {size} bytes, larger than the {MAX_EDIT_BYTES} bytes edit_file rewrites; write the file anew in parts or change it with a command"
            ));
        }
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| format!("{rel}: {e}"))?;
        String::from_utf8(bytes).map_err(|_| format!("{rel}: not a UTF-8 text file"))
    }

    async fn write_file(&self, args: WriteArgs) -> ToolOutput {
        if args.content.len() > MAX_WRITE_BYTES {
            return Err(format!("content is larger than {MAX_WRITE_BYTES} bytes"));
        }
        if self.secrets.found_in(&args.content) {
            return Err(format!(
                "{}: not written: the content holds a credential of this worker, which must never be committed; leave it out",
                args.path
            ));
        }
        let path = self.resolve(&args.path)?;
        if path == self.root {
            return Err("path must name a file".into());
        }
        if path.is_dir() {
            return Err(format!("{}: is a directory", args.path));
        }
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| format!("{}: {e}", args.path))?;
        }
        // Recheck after creating directories: nothing may have redirected the path meanwhile.
        let path = self.resolve(&args.path)?;
        tokio::fs::write(&path, args.content.as_bytes())
            .await
            .map_err(|e| format!("{}: {e}", args.path))?;
        self.touch(&path);
        Ok(format!(
            "wrote {} bytes to {}",
            args.content.len(),
            args.path
        ))
    }

    async fn edit_file(&self, args: EditArgs) -> ToolOutput {
        let edits = match (args.edits, args.old_text, args.new_text) {
            (Some(edits), None, None) if !edits.is_empty() => edits,
            (None, Some(old_text), Some(new_text)) => vec![edit::Edit {
                old_text,
                new_text,
                replace_all: args.replace_all,
            }],
            _ => {
                return Err("give either old_text and new_text, or a non-empty edits array".into());
            }
        };
        let current = self.whole_text(&args.path).await?;
        let (updated, places) =
            edit::apply(&current, &edits).map_err(|e| format!("{}: {e}", args.path))?;
        self.write_file(WriteArgs {
            path: args.path.clone(),
            content: updated.clone(),
        })
        .await?;
        Ok(format!(
            "edited {} ({} change{}):\n{}",
            args.path,
            places.len(),
            if places.len() == 1 { "" } else { "s" },
            edit::snippets(&updated, &places)
        ))
    }

    async fn delete_file(&self, args: PathArg) -> ToolOutput {
        let rel = args.path.ok_or("path is required")?;
        let path = self.regular_file(&rel).await?;
        tokio::fs::remove_file(&path)
            .await
            .map_err(|e| format!("{rel}: {e}"))?;
        Ok(format!("deleted {rel}"))
    }

    async fn move_file(&self, args: MoveArgs) -> ToolOutput {
        let from = self.regular_file(&args.from).await?;
        let to = self.resolve(&args.to)?;
        if to == self.root || tokio::fs::symlink_metadata(&to).await.is_ok() {
            return Err(format!(
                "{}: exists already; delete it first or pick another name",
                args.to
            ));
        }
        if let Some(parent) = to.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| format!("{}: {e}", args.to))?;
        }
        // Recheck after creating directories: nothing may have redirected the path meanwhile.
        let to = self.resolve(&args.to)?;
        tokio::fs::rename(&from, &to)
            .await
            .map_err(|e| format!("{} → {}: {e}", args.from, args.to))?;
        self.touch(&to);
        Ok(format!("moved {} to {}", args.from, args.to))
    }

    async fn search(&self, args: search::SearchArgs) -> ToolOutput {
        let start = self.resolve(args.path.as_deref().unwrap_or("."))?;
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || search::search(&root, &start, &args))
            .await
            .map_err(|e| format!("search failed: {e}"))?
    }

    async fn run_command(&self, args: CommandArgs) -> ToolOutput {
        if !self.commands.iter().any(|c| c == &args.command) {
            return Err(format!(
                "command {:?} is not allowed; allowed: {}",
                args.command,
                self.commands.join(", ")
            ));
        }
        check_arguments(
            &args.command,
            &args.args,
            &self.root,
            self.commands_read_only,
        )?;
        let mut cmd = tokio::process::Command::new(&args.command);
        cmd.args(&args.args)
            .env_clear()
            .envs(self.command_env.vars.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.root);
        cmd.process_group(0);
        let ran = command::run(cmd, self.command_timeout, None, &self.stop)
            .await
            .map_err(|e| format!("cannot start {}: {e}", args.command))?;
        ran.into_output(&args.command, self.command_timeout)
    }
}

/// The sandbox policy of a profile's commands: read-write the checkout and the scratch
/// directory, read the system's directories and the profile's `readable`.
fn sandbox_policy(
    settings: &openclaw_common::agents::SandboxSettings,
    profile: &AgentProfile,
    root: &Path,
    scratch: &Path,
) -> openclaw_sandbox::Policy {
    let mut policy = openclaw_sandbox::Policy::new(
        vec![root.to_path_buf(), scratch.to_path_buf()],
        openclaw_sandbox::Limits {
            processes: settings.max_processes,
            file_bytes: settings.max_file_bytes,
            cpu_secs: settings.max_cpu_secs.unwrap_or(
                profile
                    .command_timeout_secs
                    .max(settings.setup_timeout_secs)
                    .saturating_mul(2),
            ),
        },
    );
    policy
        .readable
        .extend(settings.readable.iter().map(PathBuf::from));
    policy.allow_missing = settings
        .allow_missing
        .iter()
        .filter_map(|l| openclaw_sandbox::Layer::parse(l))
        .collect();
    policy.disabled = std::env::var(SANDBOX_DISABLE_VAR)
        .unwrap_or_default()
        .split(',')
        .filter_map(openclaw_sandbox::Layer::parse)
        .collect();
    policy
}

fn parse<T: for<'de> Deserialize<'de>>(args: Value) -> Result<T, String> {
    serde_json::from_value(args).map_err(|e| format!("invalid arguments: {e}"))
}

#[derive(Deserialize)]
struct ShellArgs {
    command: String,
    timeout_secs: Option<u64>,
}

#[derive(Deserialize)]
struct PathArg {
    path: Option<String>,
}

#[derive(Deserialize)]
struct ReadArgs {
    path: String,
    offset: Option<u64>,
    limit: Option<u64>,
}

#[derive(Deserialize)]
struct WriteArgs {
    path: String,
    content: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EditArgs {
    path: String,
    old_text: Option<String>,
    new_text: Option<String>,
    #[serde(default)]
    replace_all: bool,
    edits: Option<Vec<edit::Edit>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveArgs {
    from: String,
    to: String,
}

#[derive(Deserialize)]
struct CommandArgs {
    command: String,
    #[serde(default)]
    args: Vec<String>,
}

#[cfg(test)]
mod tests;
