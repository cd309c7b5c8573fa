"""Checks every command of a guide (docs/troubleshooting.md, or one section of README.md)
against what it names: kubectl commands against the rendered manifests (namespaces, named
objects, label selectors that must select a pod or Job the manifests or the dispatcher make),
nats commands against the stream, consumer and bucket names, install.sh and uninstall.sh
against the install's own command line, and scripts and files against this repository.
usage: DOC BASE_YAML KEDA_YAML KARPENTER_YAML REPO_ROOT [SECTION_HEADING]"""
import importlib.util
import json
import pathlib
import re
import shlex
import sys
import tomllib

import yaml

doc, base_p, keda_p, karpenter_p, root = sys.argv[1:6]
section = sys.argv[6] if len(sys.argv) > 6 else None
root = pathlib.Path(root)
spec = importlib.util.spec_from_file_location("install", root / "deploy/install.py")
install = importlib.util.module_from_spec(spec)
spec.loader.exec_module(install)
docs = []
for p in (base_p, keda_p, karpenter_p):
    docs += [d for d in yaml.safe_load_all(open(p)) if d]
agents = [a["name"] for a in tomllib.loads((root / "deploy/base/agents.toml").read_text())["agent"]]
streams = {json.loads((root / f"nats/{f}.json").read_text())["name"] for f in ("tasks", "events")}
buckets = {"openclaw_tasks", "openclaw_sessions", "openclaw_leases", "openclaw_deliveries"}
EXTERNAL = {"nats", "litellm", "langfuse"}  # installed by others, named by the page
SECRETS = {"openclaw-bridge", "openclaw-worker"}  # made by deploy/install.py
KINDS = {"svc": "Service", "service": "Service", "deployment": "Deployment", "configmap": "ConfigMap",
         "scaledjob": "ScaledJob", "nodepool": "NodePool", "job": "Job", "jobs": "Job",
         "pod": "Pod", "pods": "Pod", "secret": "Secret", "events": "Event", "nodes": "Node"}

# The pods and Jobs there can be: the bridge's, and a worker's per agent as the dispatcher makes it.
templates = json.loads(next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "openclaw-job-templates")["data"]["default.json"])
pods, jobs = [], []
for d in docs:
    if d["kind"] == "Deployment":
        pods.append(d["spec"]["template"]["metadata"]["labels"])
    if d["kind"] == "ScaledJob":
        pods.append(d["spec"]["jobTargetRef"]["template"]["metadata"]["labels"])
for agent in agents:
    extra = {"openclaw.dev/agent": agent, "app.kubernetes.io/managed-by": "openclaw-bridge"}
    pods.append({**templates["spec"]["template"]["metadata"]["labels"], **extra})
    jobs.append({**templates["metadata"]["labels"], **extra})


def selects(selector, objects):
    terms = [t.split("=", 1) for t in selector.split(",")]
    return any(all(o.get(k) == v for k, v in terms) for o in objects)


def named(kind, name):
    return any(d["kind"] == kind and d["metadata"]["name"] == name for d in docs)


def check_run(words, line):
    """A one-shot pod: in namespace openclaw, of the worker image, with labels the worker
    NetworkPolicy selects, the worker's settings and secrets, and a spec restricted Pod Security
    admits (the namespace enforces it)."""
    flags = dict(w[2:].split("=", 1) for w in words if w.startswith("--") and "=" in w)
    assert words[2:4] == ["-n", "openclaw"], line
    worker = templates["spec"]["template"]["spec"]["containers"][0]
    assert flags["image"] == worker["image"], line
    labels = dict(p.split("=", 1) for p in flags["labels"].split(","))
    policy = next(d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "openclaw-worker")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items(), line
    spec = json.loads(flags["overrides"])["spec"]
    (container,) = spec["containers"]
    assert container["image"] == flags["image"] and container["args"] == ["--check-gateway"], line
    for source in container["envFrom"]:
        ((kind, ref),) = source.items()
        assert (kind == "configMapRef" and named("ConfigMap", ref["name"])) or \
            (kind == "secretRef" and ref["name"] in SECRETS), (source, line)
    assert spec["securityContext"]["runAsNonRoot"] is True and \
        spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, line
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], line


def check_repository_command(words, line):
    """A command that is not kubectl or nats: what it names must exist here, and the install's
    flags must be its own."""
    here = "~/openclaw-rust/"
    if words[0] in ("deploy/install.sh", "deploy/uninstall.sh"):
        action = "install" if words[0].endswith("/install.sh") else "uninstall"
        install.parser().parse_args([action, *words[1:]])  # exits 2 on an unknown flag
    elif words[0] == "bash":
        assert (root / words[1]).is_file(), line
    elif words[:2] == ["git", "clone"]:
        assert words[3] == here.rstrip("/"), line
    elif words[0] == "cp":
        source = next(w for w in words[1:] if w.startswith(here))
        assert (root / source[len(here):]).exists(), line
    elif words[0] == "export":
        name, _, value = words[1].partition("=")
        assert name in ("OPENCLAW_DIR", "OPENCLAW_INSTALL_FLAGS"), line
        if name == "OPENCLAW_INSTALL_FLAGS":
            install.parser().parse_args(["install", *shlex.split(value)])
        else:
            assert value == here.rstrip("/"), line
    elif words[0] == "cd" and "&&" in words:
        cli = words[words.index("&&") + 1:]
        assert cli[:3] == ["./cli", "ai-agent", "openclaw"] and cli[3] in ("install", "uninstall"), line
        component = (root / "deploy/starter-kit/index.mjs").read_text()
        assert f"export async function {cli[3]}(" in component, line
    else:
        raise AssertionError(f"unchecked command: {line}")


text = pathlib.Path(doc).read_text()
if section:
    start = text.index(section + "\n")
    following = text.find("\n## ", start + len(section))
    text = text[start:following if following >= 0 else len(text)]
commands = []
for block in re.findall(r"```sh\n(.*?)```", text, re.S):
    for line in block.splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        if line:
            commands.append(line)
checked = 0
for line in commands:
    words = shlex.split(line)
    if words[0] == "curl":
        continue
    if words[0] == "nats":
        if words[1:3] == ["consumer", "info"]:
            assert words[3] in streams and words[4] in [f"worker-{a}" for a in agents], line
        elif words[1:3] == ["kv", "get"]:
            assert words[3] in buckets, line
        else:
            raise AssertionError(f"unchecked command: {line}")
        checked += 1
        continue
    if words[0] != "kubectl":
        check_repository_command(words, line)
        checked += 1
        continue
    if words[1] == "run":
        check_run(words, line)
        checked += 1
        continue
    ns, selector, rest, i = None, None, [], 1
    while i < len(words):
        w = words[i]
        if w in ("-n", "--namespace"):
            ns, i = words[i + 1], i + 2
        elif w in ("-l", "--selector"):
            selector, i = words[i + 1], i + 2
        elif w.startswith("--") or w in ("-o", "-it", "--"):
            i += 2 if w in ("-o", "--field-selector") else 1
        else:
            rest.append(w)
            i += 1
    verb, targets = rest[0], rest[1:]
    assert verb in ("get", "describe", "logs", "port-forward", "exec"), line
    if ns is not None:
        assert ns == "openclaw" or ns in EXTERNAL, f"unknown namespace in: {line}"
    if ns in EXTERNAL:
        checked += 1
        continue
    kind = None
    for t in targets:
        if "/" in t:
            k, name = t.split("/", 1)
            kind = KINDS[k]
            assert named(kind, name), f"no {kind} {name}: {line}"
        elif t in KINDS and kind is None:
            kind = KINDS[t]
        elif ":" in t:  # a port mapping
            continue
        else:
            assert kind is not None, line
            if kind == "Secret":
                assert t in SECRETS, f"no Secret {t}: {line}"
            else:
                assert named(kind, t), f"no {kind} {t}: {line}"
    if selector:
        if kind == "Job":
            assert selects(selector, jobs), f"selects no Job: {line}"
        elif kind == "Node":
            key, value = selector.split("=", 1)
            pool = next(d for d in docs if d["kind"] == "NodePool")
            reqs = pool["spec"]["template"]["spec"]["requirements"]
            assert any(r["key"] == key and value in r["values"] for r in reqs), line
        else:
            assert selects(selector, pods), f"selects no pod: {line}"
    checked += 1
print(f"troubleshooting commands: {checked} checked")
