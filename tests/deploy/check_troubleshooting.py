"""Checks every command of docs/troubleshooting.md against the rendered manifests: the
namespaces, the named objects, and the label selectors (each must select a pod or Job the
manifests or the dispatcher make), and the NATS stream, consumer and bucket names.
usage: DOC BASE_YAML KEDA_YAML KARPENTER_YAML REPO_ROOT"""
import json
import pathlib
import re
import shlex
import sys
import tomllib

import yaml

doc, base_p, keda_p, karpenter_p, root = sys.argv[1:6]
root = pathlib.Path(root)
docs = []
for p in (base_p, keda_p, karpenter_p):
    docs += [d for d in yaml.safe_load_all(open(p)) if d]
agents = [a["name"] for a in tomllib.loads((root / "deploy/base/agents.toml").read_text())["agent"]]
streams = {json.loads((root / f"nats/{f}.json").read_text())["name"] for f in ("tasks", "events")}
buckets = {"openclaw_tasks", "openclaw_sessions", "openclaw_leases"}
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


commands = []
for block in re.findall(r"```sh\n(.*?)```", pathlib.Path(doc).read_text(), re.S):
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
    assert words[0] == "kubectl", line
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
