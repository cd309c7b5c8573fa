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

mod allowlist;

use allowlist::*;

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
