//! The argument layer of `run_command` for kubectl, helm and aws: each invocation is parsed as
//! its program parses it, then judged against an allowlist per program and verb.
//!
//! - **kubectl and helm** (cobra/pflag): `-sX`, `-s X`, `-s=X`, `--server X` and `--server=X`
//!   are one flag; short flags cluster (`-Aowide` is `-A -o wide`); long flags are never
//!   abbreviated. A flag not listed for the verb (or globally) is refused, whatever its form.
//! - **aws** (argparse, which takes any unique prefix of an option): an option must be spelled
//!   out in full, and one that is a prefix of a refused option (`--endpoint-u`, `--prof`) is
//!   refused by name. Operation parameters are too many to list, so they are free, but their
//!   values may carry no URL (aws-cli fetches `http(s)://` parameter values and reads
//!   `file://` ones).
//! - **Everywhere**: no value and no positional argument is a URL, names a path outside the
//!   checkout, or (for file flags) anything but a relative path inside it; verbs that mint or
//!   reveal credentials are refused even when writes are allowed.
//!
//! Why an allowlist: the denylist before it was bypassed by joined short flags, aws prefixes
//! and URLs as file arguments. What a flag is depends on the program's parser, so the check
//! parses the same way, and anything it does not know is refused with the reason.

use std::path::Path;

/// What a flag's value is, and so how it is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value {
    /// A boolean switch: no value (pflag also takes `--flag=true|false`).
    Switch,
    /// Free text: no URL, and no path outside the checkout in any `=`-separated part.
    Text,
    /// A file or directory of the checkout, relative.
    File,
    /// An API server path for `kubectl get --raw` (`/api/…`, `/apis/…`, `/healthz`, …).
    ApiPath,
    /// kubectl's `-o`: the printers that read no file.
    KubectlOutput,
    /// One of the listed words.
    OneOf(&'static [&'static str]),
}

/// A flag: its long name (without `--`), its one-letter form, its value.
#[derive(Debug, Clone, Copy)]
struct Flag(&'static str, Option<char>, Value);

/// Which positional arguments a verb takes after its name.
#[derive(Debug, Clone, Copy)]
enum Positionals {
    /// Any number (resource types, names), each checked as text.
    Any,
    /// None at all.
    Nothing,
    /// A subcommand from the list first, then any.
    Sub(&'static [&'static str]),
}

/// A verb of a pflag program: its name, whether it changes anything, what follows it.
#[derive(Debug, Clone, Copy)]
struct Verb {
    name: &'static str,
    writes: bool,
    positionals: Positionals,
    flags: &'static [Flag],
}

use Value::{ApiPath, File, KubectlOutput, OneOf, Switch, Text};

const DRY_RUN: Value = OneOf(&["none", "client", "server"]);

/// Flags every kubectl verb takes. Not `-v` (request dumps), not the connection flags.
const KUBECTL_GLOBAL: &[Flag] = &[
    Flag("namespace", Some('n'), Text),
    Flag("request-timeout", None, Text),
];

const KUBECTL_VERBS: &[Verb] = &[
    Verb {
        name: "get",
        writes: false,
        positionals: Positionals::Any,
        flags: &[
            Flag("selector", Some('l'), Text),
            Flag("field-selector", None, Text),
            Flag("all-namespaces", Some('A'), Switch),
            Flag("output", Some('o'), KubectlOutput),
            Flag("template", None, Text),
            Flag("show-labels", None, Switch),
            Flag("label-columns", Some('L'), Text),
            Flag("sort-by", None, Text),
            Flag("no-headers", None, Switch),
            Flag("show-kind", None, Switch),
            Flag("show-managed-fields", None, Switch),
            Flag("ignore-not-found", None, Switch),
            Flag("chunk-size", None, Text),
            Flag("subresource", None, Text),
            Flag("filename", Some('f'), File),
            Flag("recursive", Some('R'), Switch),
            Flag("raw", None, ApiPath),
        ],
    },
    Verb {
        name: "describe",
        writes: false,
        positionals: Positionals::Any,
        flags: &[
            Flag("selector", Some('l'), Text),
            Flag("all-namespaces", Some('A'), Switch),
            Flag("show-events", None, Switch),
            Flag("chunk-size", None, Text),
            Flag("filename", Some('f'), File),
            Flag("recursive", Some('R'), Switch),
        ],
    },
    Verb {
        name: "logs",
        writes: false,
        positionals: Positionals::Any,
        flags: &[
            Flag("container", Some('c'), Text),
            Flag("tail", None, Text),
            Flag("since", None, Text),
            Flag("since-time", None, Text),
            Flag("timestamps", None, Switch),
            Flag("previous", Some('p'), Switch),
            Flag("all-containers", None, Switch),
            Flag("selector", Some('l'), Text),
            Flag("prefix", None, Switch),
            Flag("limit-bytes", None, Text),
            Flag("max-log-requests", None, Text),
            Flag("ignore-errors", None, Switch),
        ],
    },
    Verb {
        name: "top",
        writes: false,
        positionals: Positionals::Sub(&["pod", "pods", "po", "node", "nodes", "no"]),
        flags: &[
            Flag("selector", Some('l'), Text),
            Flag("all-namespaces", Some('A'), Switch),
            Flag("containers", None, Switch),
            Flag("sort-by", None, Text),
            Flag("no-headers", None, Switch),
            Flag("sum", None, Switch),
        ],
    },
    Verb {
        name: "explain",
        writes: false,
        positionals: Positionals::Any,
        flags: &[
            Flag("recursive", None, Switch),
            Flag("api-version", None, Text),
            Flag(
                "output",
                Some('o'),
                OneOf(&["plaintext", "plaintext-openapiv2"]),
            ),
        ],
    },
    Verb {
        name: "api-resources",
        writes: false,
        positionals: Positionals::Nothing,
        flags: &[
            Flag("namespaced", None, Switch),
            Flag("api-group", None, Text),
            Flag("verbs", None, Text),
            Flag("output", Some('o'), OneOf(&["wide", "name"])),
            Flag("no-headers", None, Switch),
            Flag("sort-by", None, OneOf(&["name", "kind"])),
            Flag("cached", None, Switch),
        ],
    },
    Verb {
        name: "api-versions",
        writes: false,
        positionals: Positionals::Nothing,
        flags: &[],
    },
    Verb {
        name: "version",
        writes: false,
        positionals: Positionals::Nothing,
        flags: &[
            Flag("client", None, Switch),
            Flag("output", Some('o'), OneOf(&["json", "yaml"])),
        ],
    },
    // `cluster-info dump` writes files and prints every pod's logs: no subcommand.
    Verb {
        name: "cluster-info",
        writes: false,
        positionals: Positionals::Nothing,
        flags: &[],
    },
    Verb {
        name: "events",
        writes: false,
        positionals: Positionals::Nothing,
        flags: &[
            Flag("all-namespaces", Some('A'), Switch),
            Flag("for", None, Text),
            Flag("types", None, Text),
            Flag("output", Some('o'), KubectlOutput),
            Flag("no-headers", None, Switch),
            Flag("chunk-size", None, Text),
        ],
    },
    Verb {
        name: "auth",
        writes: false,
        positionals: Positionals::Sub(&["can-i", "whoami"]),
        flags: &[
            Flag("all-namespaces", Some('A'), Switch),
            Flag("list", None, Switch),
            Flag("quiet", Some('q'), Switch),
            Flag("no-headers", None, Switch),
            Flag("subresource", None, Text),
            Flag("output", Some('o'), OneOf(&["json", "yaml"])),
        ],
    },
    // Writes, for profiles with `commands_read_only = false`.
    Verb {
        name: "apply",
        writes: true,
        positionals: Positionals::Nothing,
        flags: &[
            Flag("filename", Some('f'), File),
            Flag("recursive", Some('R'), Switch),
            Flag("dry-run", None, DRY_RUN),
            Flag("server-side", None, Switch),
            Flag("force-conflicts", None, Switch),
            Flag("field-manager", None, Text),
            Flag("selector", Some('l'), Text),
            Flag("output", Some('o'), KubectlOutput),
            Flag("wait", None, Switch),
            Flag("timeout", None, Text),
        ],
    },
    Verb {
        name: "delete",
        writes: true,
        positionals: Positionals::Any,
        flags: &[
            Flag("filename", Some('f'), File),
            Flag("recursive", Some('R'), Switch),
            Flag("selector", Some('l'), Text),
            Flag("field-selector", None, Text),
            Flag("all", None, Switch),
            Flag("dry-run", None, DRY_RUN),
            Flag("wait", None, Switch),
            Flag("timeout", None, Text),
            Flag("grace-period", None, Text),
            Flag("ignore-not-found", None, Switch),
            Flag(
                "cascade",
                None,
                OneOf(&["background", "foreground", "orphan"]),
            ),
        ],
    },
    Verb {
        name: "scale",
        writes: true,
        positionals: Positionals::Any,
        flags: &[
            Flag("replicas", None, Text),
            Flag("current-replicas", None, Text),
            Flag("selector", Some('l'), Text),
            Flag("timeout", None, Text),
            Flag("dry-run", None, DRY_RUN),
        ],
    },
    Verb {
        name: "rollout",
        writes: true,
        positionals: Positionals::Sub(&["status", "history", "restart", "undo", "pause", "resume"]),
        flags: &[
            Flag("revision", None, Text),
            Flag("to-revision", None, Text),
            Flag("timeout", None, Text),
            Flag("watch", Some('w'), Switch),
            Flag("selector", Some('l'), Text),
            Flag("dry-run", None, DRY_RUN),
        ],
    },
    Verb {
        name: "label",
        writes: true,
        positionals: Positionals::Any,
        flags: KUBECTL_METADATA_FLAGS,
    },
    Verb {
        name: "annotate",
        writes: true,
        positionals: Positionals::Any,
        flags: KUBECTL_METADATA_FLAGS,
    },
    Verb {
        name: "patch",
        writes: true,
        positionals: Positionals::Any,
        flags: &[
            Flag("patch", Some('p'), Text),
            Flag("patch-file", None, File),
            Flag("type", None, OneOf(&["json", "merge", "strategic"])),
            Flag("dry-run", None, DRY_RUN),
            Flag("subresource", None, Text),
        ],
    },
    // Not `create token` (it mints a credential) nor `create secret`.
    Verb {
        name: "create",
        writes: true,
        positionals: Positionals::Sub(&[
            "configmap",
            "cm",
            "namespace",
            "ns",
            "deployment",
            "deploy",
            "job",
            "cronjob",
            "service",
            "svc",
        ]),
        flags: &[
            Flag("from-literal", None, Text),
            Flag("from-file", None, Text),
            Flag("image", None, Text),
            Flag("replicas", Some('r'), Text),
            Flag("port", None, Text),
            Flag("tcp", None, Text),
            Flag("schedule", None, Text),
            Flag("dry-run", None, DRY_RUN),
            Flag("output", Some('o'), KubectlOutput),
        ],
    },
];

/// The flags of `kubectl label` and `kubectl annotate`.
const KUBECTL_METADATA_FLAGS: &[Flag] = &[
    Flag("overwrite", None, Switch),
    Flag("selector", Some('l'), Text),
    Flag("all", None, Switch),
    Flag("dry-run", None, DRY_RUN),
];

const HELM_OUTPUT: Value = OneOf(&["table", "json", "yaml"]);

/// Flags every helm verb takes. Not `--debug`, not the connection and config-file flags.
const HELM_GLOBAL: &[Flag] = &[Flag("namespace", Some('n'), Text)];

const HELM_VERBS: &[Verb] = &[
    Verb {
        name: "list",
        writes: false,
        positionals: Positionals::Nothing,
        flags: HELM_LIST_FLAGS,
    },
    Verb {
        name: "ls",
        writes: false,
        positionals: Positionals::Nothing,
        flags: HELM_LIST_FLAGS,
    },
    Verb {
        name: "status",
        writes: false,
        positionals: Positionals::Any,
        flags: &[
            Flag("output", Some('o'), HELM_OUTPUT),
            Flag("revision", None, Text),
            Flag("show-desc", None, Switch),
            Flag("show-resources", None, Switch),
        ],
    },
    Verb {
        name: "history",
        writes: false,
        positionals: Positionals::Any,
        flags: &[
            Flag("output", Some('o'), HELM_OUTPUT),
            Flag("max", None, Text),
        ],
    },
    Verb {
        name: "get",
        writes: false,
        positionals: Positionals::Sub(&["all", "values", "manifest", "notes", "hooks", "metadata"]),
        flags: &[
            Flag("revision", None, Text),
            Flag("output", Some('o'), HELM_OUTPUT),
            Flag("all", Some('a'), Switch),
        ],
    },
    // A chart of the checkout (a path) or of a configured repository (`repo/name`): never a
    // URL or an OCI reference, which would fetch from anywhere.
    Verb {
        name: "show",
        writes: false,
        positionals: Positionals::Sub(&["all", "chart", "readme", "values", "crds"]),
        flags: &[
            Flag("version", None, Text),
            Flag("devel", None, Switch),
            Flag("jsonpath", None, Text),
        ],
    },
    // `search hub` asks Artifact Hub on the internet: only the configured repositories.
    Verb {
        name: "search",
        writes: false,
        positionals: Positionals::Sub(&["repo"]),
        flags: &[
            Flag("regexp", Some('r'), Switch),
            Flag("version", None, Text),
            Flag("versions", Some('l'), Switch),
            Flag("devel", None, Switch),
            Flag("output", Some('o'), HELM_OUTPUT),
            Flag("max-col-width", None, Text),
        ],
    },
    Verb {
        name: "version",
        writes: false,
        positionals: Positionals::Nothing,
        flags: &[Flag("short", None, Switch), Flag("template", None, Text)],
    },
    Verb {
        name: "lint",
        writes: false,
        positionals: Positionals::Any,
        flags: &[
            Flag("strict", None, Switch),
            Flag("values", Some('f'), File),
            Flag("set", None, Text),
            Flag("set-string", None, Text),
            Flag("with-subcharts", None, Switch),
            Flag("quiet", None, Switch),
        ],
    },
    Verb {
        name: "template",
        writes: false,
        positionals: Positionals::Any,
        flags: &[
            Flag("values", Some('f'), File),
            Flag("set", None, Text),
            Flag("set-string", None, Text),
            Flag("show-only", Some('s'), Text),
            Flag("include-crds", None, Switch),
            Flag("skip-crds", None, Switch),
            Flag("skip-tests", None, Switch),
            Flag("kube-version", None, Text),
            Flag("api-versions", Some('a'), Text),
            Flag("release-name", None, Switch),
            Flag("output-dir", None, File),
            Flag("is-upgrade", None, Switch),
            Flag("version", None, Text),
        ],
    },
    Verb {
        name: "install",
        writes: true,
        positionals: Positionals::Any,
        flags: HELM_RELEASE_FLAGS,
    },
    Verb {
        name: "upgrade",
        writes: true,
        positionals: Positionals::Any,
        flags: HELM_RELEASE_FLAGS,
    },
    Verb {
        name: "uninstall",
        writes: true,
        positionals: Positionals::Any,
        flags: &[
            Flag("keep-history", None, Switch),
            Flag("dry-run", None, Switch),
            Flag("wait", None, Switch),
            Flag("timeout", None, Text),
            Flag("no-hooks", None, Switch),
        ],
    },
    Verb {
        name: "rollback",
        writes: true,
        positionals: Positionals::Any,
        flags: &[
            Flag("dry-run", None, Switch),
            Flag("wait", None, Switch),
            Flag("timeout", None, Text),
            Flag("no-hooks", None, Switch),
        ],
    },
];

const HELM_LIST_FLAGS: &[Flag] = &[
    Flag("all-namespaces", Some('A'), Switch),
    Flag("all", Some('a'), Switch),
    Flag("output", Some('o'), HELM_OUTPUT),
    Flag("short", Some('q'), Switch),
    Flag("deployed", None, Switch),
    Flag("failed", None, Switch),
    Flag("pending", None, Switch),
    Flag("superseded", None, Switch),
    Flag("uninstalled", None, Switch),
    Flag("uninstalling", None, Switch),
    Flag("selector", Some('l'), Text),
    Flag("max", Some('m'), Text),
    Flag("offset", None, Text),
    Flag("date", Some('d'), Switch),
    Flag("reverse", Some('r'), Switch),
    Flag("filter", Some('f'), Text),
    Flag("no-headers", None, Switch),
    Flag("time-format", None, Text),
];

const HELM_RELEASE_FLAGS: &[Flag] = &[
    Flag("values", Some('f'), File),
    Flag("set", None, Text),
    Flag("set-string", None, Text),
    Flag("version", None, Text),
    Flag("wait", None, Switch),
    Flag("timeout", None, Text),
    Flag("atomic", None, Switch),
    Flag("dry-run", None, Switch),
    Flag("create-namespace", None, Switch),
    Flag("install", Some('i'), Switch),
    Flag("reuse-values", None, Switch),
    Flag("reset-values", None, Switch),
    Flag("description", None, Text),
    Flag("no-hooks", None, Switch),
];

/// aws options that may appear with any operation: exactly these names.
const AWS_GLOBAL: &[Flag] = &[
    Flag("region", None, Text),
    Flag(
        "output",
        None,
        OneOf(&["json", "text", "table", "yaml", "yaml-stream"]),
    ),
    Flag("query", None, Text),
    Flag("no-paginate", None, Switch),
    Flag("max-items", None, Text),
    Flag("page-size", None, Text),
    Flag("starting-token", None, Text),
    Flag("no-cli-pager", None, Switch),
    Flag("color", None, OneOf(&["on", "off", "auto"])),
    Flag("cli-read-timeout", None, Text),
    Flag("cli-connect-timeout", None, Text),
];

/// aws options that pick other credentials, endpoints or trust, or read input from files;
/// refused also as any prefix argparse would expand to them.
const AWS_REFUSED: &[&str] = &[
    "profile",
    "endpoint-url",
    "ca-bundle",
    "no-verify-ssl",
    "no-sign-request",
    "debug",
    "cli-input-json",
    "cli-input-yaml",
    "cli-binary-format",
    "cli-auto-prompt",
    "generate-cli-skeleton",
];

/// Words in an aws operation that mint, reveal or use credentials and secrets, refused under
/// any verb: `eks get-token`, `ecr get-login-password`, `sts get-session-token`,
/// `secretsmanager get-secret-value`, `kms decrypt`, `ssm get-parameter(s)`, …
const AWS_CREDENTIAL_WORDS: &[&str] = &[
    "token",
    "password",
    "credential",
    "secret",
    "decrypt",
    "presign",
    "assume-role",
    "login",
    "data-key",
    "get-parameter",
    "federation",
    "session",
    "sign",
];

/// aws read operations: these prefixes (and `s3 ls`), minus [`AWS_CREDENTIAL_WORDS`].
const AWS_READ_PREFIXES: &[&str] = &["describe-", "list-", "get-"];

/// Refuses `args` of `program`, or says why. `root` is the canonical checkout. kubectl, helm
/// and aws are parsed, and each value checked for what it is (an API path of `--raw` starts
/// with `/` and is not a file); any other program's arguments are each checked as paths.
pub fn check(program: &str, args: &[String], root: &Path, read_only: bool) -> Result<(), String> {
    match program {
        "kubectl" => check_pflag(
            program,
            args,
            root,
            read_only,
            KUBECTL_GLOBAL,
            KUBECTL_VERBS,
        ),
        "helm" => check_pflag(program, args, root, read_only, HELM_GLOBAL, HELM_VERBS),
        "aws" => check_aws(args, root, read_only),
        _ => args
            .iter()
            .try_for_each(|arg| crate::paths::check_argument(arg, root)),
    }
}

fn check_pflag(
    program: &str,
    args: &[String],
    root: &Path,
    read_only: bool,
    global: &[Flag],
    verbs: &[Verb],
) -> Result<(), String> {
    let name = args.first().map(String::as_str).unwrap_or("");
    if name.is_empty() || name.starts_with('-') {
        return Err(format!(
            "flags before the {program} command are not allowed: put the command first (for example `{program} get …`), flags after it"
        ));
    }
    let Some(verb) = verbs.iter().find(|v| v.name == name) else {
        return Err(format!(
            "{program} {name} is not allowed here; allowed: {}",
            allowed_verbs(verbs, read_only)
        ));
    };
    if read_only && verb.writes {
        return Err(format!(
            "{program} {name} is not allowed: this agent may only read ({})",
            allowed_verbs(verbs, true)
        ));
    }
    let parsed = parse_pflag(program, name, &args[1..], global, verb.flags)?;
    for (flag, value) in &parsed.flags {
        check_value(program, flag, value.as_deref(), root, verb.name)?;
    }
    match verb.positionals {
        Positionals::Any => {}
        Positionals::Nothing => {
            if let Some(extra) = parsed.positionals.first() {
                return Err(format!(
                    "{program} {name} takes no argument like {extra:?} here"
                ));
            }
        }
        Positionals::Sub(subs) => match parsed.positionals.first() {
            Some(sub) if subs.contains(&sub.as_str()) => {}
            other => {
                return Err(format!(
                    "{program} {name} needs one of: {} (got {other:?})",
                    subs.join(", ")
                ));
            }
        },
    }
    for positional in &parsed.positionals {
        check_text(program, positional, root)?;
        // Secrets' values are data the worker's identity may read but the model must not see.
        if program == "kubectl"
            && verb.name == "get"
            && positional
                .split([',', '/', '.'])
                .any(|part| part == "secret" || part == "secrets")
        {
            return Err(
                "kubectl get on secrets is not allowed: their values are credentials".into(),
            );
        }
    }
    if program == "helm"
        && let Some(chart) = parsed.positionals.last()
        && chart.starts_with("oci:")
    {
        return Err(format!(
            "helm {name}: charts from registries ({chart:?}) are not allowed"
        ));
    }
    Ok(())
}

fn allowed_verbs(verbs: &[Verb], read_only: bool) -> String {
    verbs
        .iter()
        .filter(|v| !(read_only && v.writes))
        .map(|v| v.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What pflag makes of the arguments after the verb.
struct Parsed {
    /// Each flag given, with its value (`None` for a switch).
    flags: Vec<(Flag, Option<String>)>,
    positionals: Vec<String>,
}

/// Parses as pflag does: `--long`, `--long=v`, `--long v`, `-x`, `-xv`, `-x=v`, `-x v`, and
/// clusters of one-letter switches ending in at most one flag with a value.
fn parse_pflag(
    program: &str,
    verb: &str,
    args: &[String],
    global: &[Flag],
    flags: &[Flag],
) -> Result<Parsed, String> {
    let lookup_long = |name: &str| global.iter().chain(flags).find(|f| f.0 == name).copied();
    let lookup_short = |c: char| global.iter().chain(flags).find(|f| f.1 == Some(c)).copied();
    let refused = |flag: &str| {
        Err(format!(
            "{program} {verb}: flag {flag} is not allowed here (the worker chooses the cluster, credentials and files)"
        ))
    };
    let mut parsed = Parsed {
        flags: Vec::new(),
        positionals: Vec::new(),
    };
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if arg == "--" {
            return Err(format!("{program} {verb}: `--` is not allowed here"));
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (long, None),
            };
            let Some(flag) = lookup_long(name) else {
                return refused(&format!("--{name}"));
            };
            let value = take_value(program, verb, flag, inline, &mut rest)?;
            parsed.flags.push((flag, value));
        } else if let Some(shorts) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
            for (at, c) in shorts.char_indices() {
                let Some(flag) = lookup_short(c) else {
                    return refused(&format!("-{c} (in {arg:?})"));
                };
                let after = &shorts[at + c.len_utf8()..];
                if flag.2 == Switch {
                    // pflag: `-A=true` sets a switch; a cluster goes on with the next letter.
                    if let Some(v) = after.strip_prefix('=') {
                        parsed.flags.push((flag, Some(v.to_owned())));
                        break;
                    }
                    parsed.flags.push((flag, None));
                    continue;
                }
                // A flag with a value takes the rest of the argument (after an optional `=`),
                // or the next argument when nothing is left.
                let inline = (!after.is_empty())
                    .then(|| after.strip_prefix('=').unwrap_or(after).to_owned());
                let value = take_value(program, verb, flag, inline, &mut rest)?;
                parsed.flags.push((flag, value));
                break;
            }
        } else {
            parsed.positionals.push(arg.clone());
        }
    }
    Ok(parsed)
}

fn take_value<'a>(
    program: &str,
    verb: &str,
    flag: Flag,
    inline: Option<String>,
    rest: &mut impl Iterator<Item = &'a String>,
) -> Result<Option<String>, String> {
    if flag.2 == Switch {
        return match inline.as_deref() {
            None | Some("true" | "false") => Ok(inline),
            Some(other) => Err(format!(
                "{program} {verb}: --{} is a switch and takes no value {other:?}",
                flag.0
            )),
        };
    }
    match inline.or_else(|| rest.next().cloned()) {
        Some(v) => Ok(Some(v)),
        None => Err(format!("{program} {verb}: --{} needs a value", flag.0)),
    }
}

fn check_value(
    program: &str,
    flag: &Flag,
    value: Option<&str>,
    root: &Path,
    verb: &str,
) -> Result<(), String> {
    let Some(value) = value else { return Ok(()) };
    let name = flag.0;
    match flag.2 {
        Switch => Ok(()),
        Text => check_text(program, value, root),
        File => {
            if value.contains("://") || value == "-" || value.starts_with("oci:") {
                return Err(format!(
                    "{program} --{name} {value:?}: only files of the working directory, not URLs or stdin"
                ));
            }
            crate::paths::confine(root, value)
                .map(|_| ())
                .map_err(|e| format!("{program} --{name}: {e}"))
        }
        ApiPath => {
            let ok = verb == "get"
                && value.starts_with('/')
                && !value.contains("://")
                && !value.split('/').any(|s| s == "..")
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/-._?=&,:".contains(c));
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "{program} --raw {value:?} is not allowed: only an API path such as /api/v1/namespaces, with get"
                ))
            }
        }
        KubectlOutput => {
            let plain = ["json", "yaml", "wide", "name"].contains(&value);
            let templated = [
                "jsonpath=",
                "jsonpath-as-json=",
                "custom-columns=",
                "go-template=",
                "template=",
            ]
            .iter()
            .any(|p| value.starts_with(p));
            if plain || templated {
                check_text(program, value, root)
            } else {
                Err(format!(
                    "{program} -o {value:?} is not allowed: use json, yaml, wide, name, jsonpath=, custom-columns= or go-template= (no *-file printers)"
                ))
            }
        }
        OneOf(words) => {
            if words.contains(&value) {
                Ok(())
            } else {
                Err(format!(
                    "{program} --{name} {value:?}: one of {}",
                    words.join(", ")
                ))
            }
        }
    }
}

/// Free text (a positional, a selector, a template): no URL of any scheme, and no path outside
/// the checkout in the whole text or any part between `=` signs.
fn check_text(program: &str, text: &str, root: &Path) -> Result<(), String> {
    if text.contains("://") || text.to_ascii_lowercase().starts_with("oci:") {
        return Err(format!(
            "{program}: argument {text:?} is a URL; URLs are not allowed in arguments"
        ));
    }
    crate::paths::check_argument(text, root)
}

fn check_aws(args: &[String], root: &Path, read_only: bool) -> Result<(), String> {
    let service = args.first().map(String::as_str).unwrap_or("");
    if service.starts_with('-') || service.is_empty() {
        return Err("flags before the aws service are not allowed: put the service first (for example `aws eks list-clusters`)".into());
    }
    if service == "configure" || service == "sso" || service == "login" {
        return Err(format!("aws {service} is not allowed"));
    }
    let operation = args.get(1).map(String::as_str).unwrap_or("");
    if operation.is_empty() || operation.starts_with('-') {
        return Err(format!(
            "put the operation after the service (for example `aws {service} describe-…`)"
        ));
    }
    if operation != "get-caller-identity"
        && let Some(word) = AWS_CREDENTIAL_WORDS.iter().find(|w| operation.contains(*w))
    {
        return Err(format!(
            "aws {service} {operation} is not allowed: it mints or reveals credentials or secrets ({word})"
        ));
    }
    let reads = AWS_READ_PREFIXES.iter().any(|p| operation.starts_with(p))
        || (service == "s3" && operation == "ls");
    if read_only && !reads {
        return Err(format!(
            "aws {service} {operation} is not allowed: this agent may only read (describe-*, list-*, get-*, s3 ls)"
        ));
    }
    let mut rest = args[2..].iter();
    while let Some(arg) = rest.next() {
        let Some(option) = arg.strip_prefix("--") else {
            check_aws_value(arg, root)?;
            continue;
        };
        let (name, inline) = match option.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (option, None),
        };
        // argparse takes a unique prefix of an option: `--endpoint-u` is `--endpoint-url`.
        if name.is_empty() || AWS_REFUSED.iter().any(|r| r.starts_with(name)) {
            return Err(format!(
                "aws --{name} is not allowed: the worker chooses the account, endpoint and inputs"
            ));
        }
        if let Some(flag) = AWS_GLOBAL.iter().find(|f| f.0 == name) {
            let value = match (flag.2, inline) {
                (Switch, None) => None,
                (Switch, Some(v)) => {
                    return Err(format!("aws --{name} takes no value {v:?}"));
                }
                (_, Some(v)) => Some(v.to_owned()),
                (_, None) => rest.next().cloned(),
            };
            check_value("aws", flag, value.as_deref(), root, operation)?;
            continue;
        }
        // An operation parameter; its value, inline or next, is checked like any argument.
        if let Some(v) = inline {
            check_aws_value(v, root)?;
        }
    }
    Ok(())
}

/// An aws argument or parameter value: aws-cli reads `file://` and `fileb://` values and
/// fetches `http(s)://` ones; none of that, and no path outside the checkout.
fn check_aws_value(value: &str, root: &Path) -> Result<(), String> {
    let lower = value.to_ascii_lowercase();
    // `s3://bucket/key` names an object for the s3 commands, which aws-cli does not fetch.
    if lower.contains("://") && !lower.starts_with("s3://") {
        return Err(format!(
            "aws: the value {value:?} is a URL or file reference; give the value itself"
        ));
    }
    crate::paths::check_argument(value, root)
}
