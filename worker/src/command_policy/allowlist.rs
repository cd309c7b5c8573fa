//! The allowlists of the argument layer: per program, the verbs, whether each writes, the
//! positional arguments and the flags it takes, and what each flag's value is. Data only;
//! `mod.rs` parses an invocation the way its program does and judges it against these.

/// What a flag's value is, and so how it is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Value {
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
pub(super) struct Flag(
    pub(super) &'static str,
    pub(super) Option<char>,
    pub(super) Value,
);

/// Which positional arguments a verb takes after its name.
#[derive(Debug, Clone, Copy)]
pub(super) enum Positionals {
    /// Any number (resource types, names), each checked as text.
    Any,
    /// None at all.
    Nothing,
    /// A subcommand from the list first, then any.
    Sub(&'static [&'static str]),
}

/// A verb of a pflag program: its name, whether it changes anything, what follows it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Verb {
    pub(super) name: &'static str,
    pub(super) writes: bool,
    pub(super) positionals: Positionals,
    pub(super) flags: &'static [Flag],
}

pub(super) use Value::{ApiPath, File, KubectlOutput, OneOf, Switch, Text};

pub(super) const DRY_RUN: Value = OneOf(&["none", "client", "server"]);

/// Flags every kubectl verb takes. Not `-v` (request dumps), not the connection flags.
pub(super) const KUBECTL_GLOBAL: &[Flag] = &[
    Flag("namespace", Some('n'), Text),
    Flag("request-timeout", None, Text),
];

pub(super) const KUBECTL_VERBS: &[Verb] = &[
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
pub(super) const KUBECTL_METADATA_FLAGS: &[Flag] = &[
    Flag("overwrite", None, Switch),
    Flag("selector", Some('l'), Text),
    Flag("all", None, Switch),
    Flag("dry-run", None, DRY_RUN),
];

pub(super) const HELM_OUTPUT: Value = OneOf(&["table", "json", "yaml"]);

/// Flags every helm verb takes. Not `--debug`, not the connection and config-file flags.
pub(super) const HELM_GLOBAL: &[Flag] = &[Flag("namespace", Some('n'), Text)];

pub(super) const HELM_VERBS: &[Verb] = &[
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

pub(super) const HELM_LIST_FLAGS: &[Flag] = &[
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

pub(super) const HELM_RELEASE_FLAGS: &[Flag] = &[
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
pub(super) const AWS_GLOBAL: &[Flag] = &[
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
pub(super) const AWS_REFUSED: &[&str] = &[
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
pub(super) const AWS_CREDENTIAL_WORDS: &[&str] = &[
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
pub(super) const AWS_READ_PREFIXES: &[&str] = &["describe-", "list-", "get-"];
