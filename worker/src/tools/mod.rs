//! The tools the model can call. Every path is confined to the task's checkout: no absolute
//! paths, no `..`, nothing under `.git`, and no symlink that leads out. A refused call is a
//! tool error the model sees and can correct, never a crash of the task.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use openclaw_common::agents::{AgentProfile, ToolName};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::commands::{CommandEnv, check_arguments};

mod files;

use crate::paths;
use crate::secrets::Secrets;
use files::{around, read_window, walk};

/// Lines `read_file` shows when the model names no `limit`, and the most it may ask for.
const DEFAULT_READ_LINES: u64 = 400;
const MAX_READ_LINES: u64 = 2000;
/// Most bytes of one line `read_file` shows; the rest is replaced by a marker.
const MAX_READ_LINE_BYTES: usize = 500;
/// Most bytes one `read_file` answer holds: a window stops early past it, and says where to
/// go on.
const MAX_READ_OUTPUT: usize = 64 * 1024;
/// Largest file `edit_file` rewrites (it holds the whole file): the size `write_file` takes.
const MAX_EDIT_BYTES: u64 = MAX_WRITE_BYTES as u64;
/// Largest content `write_file` accepts.
const MAX_WRITE_BYTES: usize = 1024 * 1024;
/// Most entries `list_files` returns.
const MAX_LIST_ENTRIES: usize = 500;
/// Most matches `search` returns.
const MAX_SEARCH_MATCHES: usize = 100;
/// Largest arguments of one tool call (raw JSON); above, the call is refused unread. Room for
/// a `write_file` of [`MAX_WRITE_BYTES`] with JSON escaping.
pub const MAX_ARGUMENT_BYTES: usize = 2 * MAX_WRITE_BYTES;
/// Largest file `search` reads.
const MAX_SEARCH_FILE_BYTES: u64 = 1024 * 1024;
/// Most bytes of a matching line `search` shows, around the match.
const MAX_SEARCH_LINE_BYTES: usize = 240;
/// Most output bytes `run_command` returns (stdout and stderr together).
const MAX_COMMAND_OUTPUT: usize = 64 * 1024;

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
}

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
        let command_env =
            CommandEnv::build(scratch, &profile.command_env, |k| std::env::var(k).ok())?;
        Ok(Self {
            root: root.canonicalize()?,
            tools: profile.tools.clone(),
            commands: profile.commands.clone(),
            commands_read_only: profile.commands_read_only,
            command_env,
            command_timeout: Duration::from_secs(profile.command_timeout_secs),
            secrets,
        })
    }

    /// The OpenAI `tools` array for the offered tools.
    pub fn definitions(&self) -> Vec<Value> {
        self.tools.iter().map(|t| self.definition(*t)).collect()
    }

    fn definition(&self, tool: ToolName) -> Value {
        let (name, description, parameters) = match tool {
            ToolName::ListFiles => (
                "list_files",
                "List files under a directory of the repository (recursive, .git excluded).",
                json!({"type":"object","properties":{"path":{"type":"string","description":"Directory relative to the repository root; default '.'"}}}),
            ),
            ToolName::ReadFile => (
                "read_file",
                "Read a text file of the repository as numbered lines (`N: text`), 400 lines from line `offset` (1-based, default 1) unless `limit` asks for another number (at most 2000). The first line says which lines these are of how many; long lines are cut with a marker. Read further windows with a larger offset.",
                json!({"type":"object","properties":{"path":{"type":"string"},"offset":{"type":"integer","minimum":1},"limit":{"type":"integer","minimum":1,"maximum":MAX_READ_LINES}},"required":["path"]}),
            ),
            ToolName::WriteFile => (
                "write_file",
                "Create or overwrite a file of the repository with the given content.",
                json!({"type":"object","properties":{"path":{"type":"string"},"content":{"type":"string"}},"required":["path","content"]}),
            ),
            ToolName::EditFile => (
                "edit_file",
                "Replace one exact occurrence of old_text in a file with new_text (for small edits without rewriting the file).",
                json!({"type":"object","properties":{"path":{"type":"string"},"old_text":{"type":"string"},"new_text":{"type":"string"}},"required":["path","old_text","new_text"]}),
            ),
            ToolName::Search => (
                "search",
                "Find lines containing a text (case-sensitive) in the repository's text files.",
                json!({"type":"object","properties":{"pattern":{"type":"string"},"path":{"type":"string"}},"required":["pattern"]}),
            ),
            ToolName::RunCommand => (
                "run_command",
                "Run an allowed program with arguments in the working directory.",
                json!({"type":"object","properties":{
                    "command":{"type":"string","enum": self.commands},
                    "args":{"type":"array","items":{"type":"string"}}},
                    "required":["command"]}),
            ),
        };
        json!({"type":"function","function":{"name":name,"description":description,"parameters":parameters}})
    }

    /// Runs the tool `name` with the model's raw JSON `arguments`.
    pub async fn call(&self, name: &str, arguments: &str) -> ToolOutput {
        let tool = match name {
            "list_files" => ToolName::ListFiles,
            "read_file" => ToolName::ReadFile,
            "write_file" => ToolName::WriteFile,
            "edit_file" => ToolName::EditFile,
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
            ToolName::Search => self.search(parse(args)?).await,
            ToolName::RunCommand => self.run_command(parse(args)?).await,
        }
    }

    /// Resolves a model-given relative path inside the root, or says why not
    /// ([`paths::confine`]).
    pub fn resolve(&self, rel: &str) -> Result<PathBuf, String> {
        paths::confine(&self.root, rel)
    }

    fn relative(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned()
    }

    async fn list_files(&self, args: PathArg) -> ToolOutput {
        let start = self.resolve(args.path.as_deref().unwrap_or("."))?;
        let root = self.root.clone();
        let files = tokio::task::spawn_blocking(move || walk(&root, &start))
            .await
            .map_err(|e| format!("listing failed: {e}"))??;
        if files.is_empty() {
            return Ok("(no files)".into());
        }
        let mut out: Vec<String> = files
            .iter()
            .take(MAX_LIST_ENTRIES)
            .map(|p| self.relative(p))
            .collect();
        if files.len() > MAX_LIST_ENTRIES {
            out.push(format!("… and {} more", files.len() - MAX_LIST_ENTRIES));
        }
        Ok(out.join("\n"))
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
        Ok(format!(
            "wrote {} bytes to {}",
            args.content.len(),
            args.path
        ))
    }

    async fn edit_file(&self, args: EditArgs) -> ToolOutput {
        if args.old_text.is_empty() {
            return Err("old_text must not be empty".into());
        }
        let current = self.whole_text(&args.path).await?;
        match current.matches(&args.old_text).count() {
            0 => {
                return Err(format!(
                    "{}: old_text was not found; read the file and copy it exactly",
                    args.path
                ));
            }
            1 => {}
            n => {
                return Err(format!(
                    "{}: old_text occurs {n} times; include more context so it is unique",
                    args.path
                ));
            }
        }
        let updated = current.replacen(&args.old_text, &args.new_text, 1);
        self.write_file(WriteArgs {
            path: args.path.clone(),
            content: updated,
        })
        .await?;
        Ok(format!("edited {}", args.path))
    }

    async fn search(&self, args: SearchArgs) -> ToolOutput {
        if args.pattern.is_empty() {
            return Err("pattern must not be empty".into());
        }
        let start = self.resolve(args.path.as_deref().unwrap_or("."))?;
        let root = self.root.clone();
        let pattern = args.pattern.clone();
        let matches = tokio::task::spawn_blocking(move || -> Result<Vec<String>, String> {
            let mut out = Vec::new();
            let mut skipped = 0usize;
            for file in walk(&root, &start)? {
                // Whole files are read: a generated or vendored giant is left out, and said so.
                if std::fs::metadata(&file).map_or(true, |m| m.len() > MAX_SEARCH_FILE_BYTES) {
                    skipped += 1;
                    continue;
                }
                let Ok(text) = std::fs::read_to_string(&file) else {
                    continue;
                };
                for (n, line) in text.lines().enumerate() {
                    if let Some(at) = line.find(&pattern) {
                        let rel = file
                            .strip_prefix(&root)
                            .unwrap_or(&file)
                            .to_string_lossy()
                            .into_owned();
                        out.push(format!(
                            "{rel}:{}: {}",
                            n + 1,
                            around(line, at, pattern.len())
                        ));
                        if out.len() >= MAX_SEARCH_MATCHES {
                            return Ok(out);
                        }
                    }
                }
            }
            if skipped > 0 {
                out.push(format!(
                    "({skipped} files larger than {MAX_SEARCH_FILE_BYTES} bytes were not searched)"
                ));
            }
            Ok(out)
        })
        .await
        .map_err(|e| format!("search failed: {e}"))??;
        if matches.is_empty() {
            Ok(format!("no matches for {:?}", args.pattern))
        } else {
            Ok(matches.join("\n"))
        }
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
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", args.command))?;
        let mut stdout = child.stdout.take().ok_or("no stdout")?;
        let mut stderr = child.stderr.take().ok_or("no stderr")?;
        let run = async {
            let mut out = Vec::new();
            let mut err = Vec::new();
            let mut out_reader = (&mut stdout).take(MAX_COMMAND_OUTPUT as u64 + 1);
            let mut err_reader = (&mut stderr).take(MAX_COMMAND_OUTPUT as u64 + 1);
            let (a, b, status) = tokio::join!(
                out_reader.read_to_end(&mut out),
                err_reader.read_to_end(&mut err),
                child.wait(),
            );
            a.and(b).and(status.map(|s| (s, out, err)))
        };
        let (status, out, err) = match tokio::time::timeout(self.command_timeout, run).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(format!("{} failed: {e}", args.command)),
            Err(_) => {
                return Err(format!(
                    "{} timed out after {:?}",
                    args.command, self.command_timeout
                ));
            }
        };
        let mut text = String::from_utf8_lossy(&out).into_owned();
        if !err.is_empty() {
            text.push_str("\n[stderr]\n");
            text.push_str(&String::from_utf8_lossy(&err));
        }
        if text.len() > MAX_COMMAND_OUTPUT {
            let mut cut = MAX_COMMAND_OUTPUT;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str("\n[output truncated]");
        }
        match status.code() {
            Some(0) => Ok(text),
            code => Err(format!("exit status {code:?}\n{text}")),
        }
    }
}

fn parse<T: for<'de> Deserialize<'de>>(args: Value) -> Result<T, String> {
    serde_json::from_value(args).map_err(|e| format!("invalid arguments: {e}"))
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
struct EditArgs {
    path: String,
    old_text: String,
    new_text: String,
}

#[derive(Deserialize)]
struct SearchArgs {
    pattern: String,
    path: Option<String>,
}

#[derive(Deserialize)]
struct CommandArgs {
    command: String,
    #[serde(default)]
    args: Vec<String>,
}

#[cfg(test)]
mod tests;
