"""Checks the rendered deploy/ manifests beyond their schemas: what the project promises about
them. usage: BASE_YAML KEDA_YAML DEPLOY_DIR MONITORING_YAML WEBHOOKS_YAML"""
import json
import pathlib
import sys

import yaml

base = list(yaml.safe_load_all(open(sys.argv[1])))
keda = list(yaml.safe_load_all(open(sys.argv[2])))
deploy = pathlib.Path(sys.argv[3])
monitoring = list(yaml.safe_load_all(open(sys.argv[4])))
webhooks = list(yaml.safe_load_all(open(sys.argv[5])))
coder_kata = list(yaml.safe_load_all(open(sys.argv[6])))
tokens_overlay = list(yaml.safe_load_all(open(sys.argv[7])))


def one(docs, kind, name):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name, [(d["kind"], d["metadata"]["name"]) for d in docs])
    return found[0]


def env(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def hardened(pod, what):
    sc = pod["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["seccompProfile"]["type"] == "RuntimeDefault", what
    for c in pod["containers"]:
        csc = c["securityContext"]
        assert csc["readOnlyRootFilesystem"] is True, what
        assert csc["allowPrivilegeEscalation"] is False, what
        assert csc["capabilities"]["drop"] == ["ALL"], what
        assert "memory" in c["resources"]["limits"], what


# The bridge: ClusterIP on 8080, /health probes, hardened, Kubernetes dispatch in the base.
# The starter kit's names: Service, Deployment and ServiceAccount `openclaw` in namespace
# `openclaw`; the kit's example agents' Services in front of the same bridge; every pod of
# the project labelled app=openclaw, told apart by component (and agent, for workers).
BRIDGE_POD = {"app": "openclaw", "app.kubernetes.io/component": "bridge"}
for docs, overlay in ((base, "base"), (keda, "keda"), (monitoring, "monitoring")):
    assert all(d["metadata"].get("namespace") in ("openclaw", None) for d in docs if d["kind"] != "Namespace" and not d["kind"].startswith("Cluster")), overlay
    for name in ("openclaw", "doc-writer", "devops-agent"):
        s = one(docs, "Service", name)
        assert s["spec"]["type"] == "ClusterIP" and s["spec"]["ports"][0]["port"] == 8080, (overlay, s)
        assert s["spec"]["selector"] == BRIDGE_POD, (overlay, name)
    d = one(docs, "Deployment", "openclaw")
    assert d["metadata"]["namespace"] == "openclaw", overlay
    assert BRIDGE_POD.items() <= d["spec"]["template"]["metadata"]["labels"].items(), overlay
    assert d["spec"]["selector"]["matchLabels"] == BRIDGE_POD, overlay
    assert d["spec"]["template"]["spec"]["serviceAccountName"] == "openclaw", overlay
    one(docs, "ServiceAccount", "openclaw")
    assert one(docs, "NetworkPolicy", "openclaw")["spec"]["podSelector"]["matchLabels"] == BRIDGE_POD, overlay
    assert one(docs, "NetworkPolicy", "openclaw-worker")["spec"]["podSelector"]["matchLabels"] == {"app": "openclaw", "app.kubernetes.io/component": "worker"}, overlay
for sj in (d for d in keda if d["kind"] == "ScaledJob"):
    labels = sj["spec"]["jobTargetRef"]["template"]["metadata"]["labels"]
    assert labels["app"] == "openclaw" and labels["app.kubernetes.io/component"] == "worker" and labels["openclaw.dev/agent"], labels
svc = one(base, "Service", "openclaw")
bridge = one(base, "Deployment", "openclaw")
pod = bridge["spec"]["template"]["spec"]
hardened(pod, "bridge")
c = pod["containers"][0]
assert c["readinessProbe"]["httpGet"]["path"] == "/ready", c
assert c["livenessProbe"]["httpGet"]["path"] == "/health", c
assert env(c)["OPENCLAW_DISPATCH"] == "kubernetes"
assert env(c)["OPENCLAW_LISTEN"] == "0.0.0.0:8080"
assert c["env"][[e["name"] for e in c["env"]].index("OPENCLAW_GATEWAY_TOKEN")]["valueFrom"]["secretKeyRef"]["name"] == "openclaw-bridge"
assert env(one(keda, "Deployment", "openclaw")["spec"]["template"]["spec"]["containers"][0])["OPENCLAW_DISPATCH"] == "none"

# Minimal RBAC: Jobs (no delete) and reading their pods, nothing cluster-wide for the bridge; none under KEDA.
role = one(base, "Role", "openclaw")
assert role["rules"] == [
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
], role
assert not [d for d in keda if d["kind"] in ("Role", "RoleBinding")], "KEDA mode needs no bridge RBAC"
devops = one(base, "ClusterRoleBinding", "openclaw-devops-view")
assert devops["roleRef"]["name"] == "view", devops
assert one(base, "ServiceAccount", "openclaw-worker")["automountServiceAccountToken"] is False

# NetworkPolicies are on for both.
for name in ("openclaw", "openclaw-worker"):
    np = one(base, "NetworkPolicy", name)
    assert set(np["spec"]["policyTypes"]) == {"Ingress", "Egress"}, np

# Config maps carry the very files the binaries build in.
agents = one(base, "ConfigMap", "openclaw-agents")["data"]["agents.toml"]
assert agents == (deploy / "base/agents.toml").read_text()
templates = one(base, "ConfigMap", "openclaw-job-templates")["data"]
default = json.loads(templates["default.json"])
devops_t = json.loads(templates["devops.json"])
coder_t = json.loads(templates["coder.json"])

# Worker Jobs: arm64 + spot, tolerate the worker taint, bounded, hardened, no k8s retries.
for name, t in (("default", default), ("devops", devops_t), ("coder", coder_t)):
    spec = t["spec"]
    assert spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] > 0 and spec["ttlSecondsAfterFinished"] > 0, name
    p = spec["template"]["spec"]
    assert p["nodeSelector"] == {"kubernetes.io/arch": "arm64", "karpenter.sh/capacity-type": "spot"}, name
    assert {"key": "openclaw.dev/worker", "operator": "Exists", "effect": "NoSchedule"} in p["tolerations"], name
    hardened(p, name)
    wenv = {e["name"]: e.get("value") for e in p["containers"][0]["env"]}
    assert wenv["OPENCLAW_TERMINATION_LOG"] == "/dev/termination-log", name
# devops.json is default.json but for its account and image.
d = json.loads(json.dumps(devops_t))
dp = d["spec"]["template"]["spec"]
assert dp.pop("serviceAccountName") == "openclaw-devops" and dp.pop("automountServiceAccountToken") is True
assert dp["containers"][0].pop("image").endswith("openclaw-worker-devops:0.1.0")
dd = json.loads(json.dumps(default))
ddp = dd["spec"]["template"]["spec"]
ddp.pop("serviceAccountName"), ddp.pop("automountServiceAccountToken"), ddp["containers"][0].pop("image")


def own_secret(container):
    """The agent's own Secret (its NATS user, its git credentials): the last envFrom source, so
    it wins; no per-key reference into the shared worker Secret, which holds no agent's
    credentials."""
    sources = container["envFrom"]
    assert sources[:2] == [{"configMapRef": {"name": "openclaw-worker"}}, {"secretRef": {"name": "openclaw-worker"}}], sources
    assert not any("valueFrom" in e and e["valueFrom"].get("secretKeyRef") for e in container["env"]), container["env"]
    own = sources.pop()["secretRef"]
    assert own["optional"] is True, own
    return own["name"]


# A worker that dies before writing its termination message (a missing library, a panic, an
# OOM kill) still says why: Kubernetes falls back to the tail of its log.
for pod in (dp, ddp):
    assert pod["containers"][0]["terminationMessagePolicy"] == "FallbackToLogsOnError", pod["containers"][0]
assert own_secret(dp["containers"][0]) == "openclaw-worker-devops"
assert own_secret(ddp["containers"][0]) == "openclaw-worker-doc-writer"
assert d == dd, "devops.json drifted from default.json"
# coder.json is default.json but for its image, its own Secret, and room to build: more CPU,
# memory and disk. No service account token, like the doc-writer.
c = json.loads(json.dumps(coder_t))
cp = c["spec"]["template"]["spec"]
assert cp["serviceAccountName"] == "openclaw-worker" and cp["automountServiceAccountToken"] is False
assert cp["containers"][0].pop("image").endswith("openclaw-worker-coder:0.1.0")
assert own_secret(cp["containers"][0]) == "openclaw-worker-coder"
assert cp["containers"][0].pop("resources") == {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}}
work = [v for v in cp["volumes"] if v["name"] == "work"][0]
assert work["emptyDir"].pop("sizeLimit") == "10Gi"
dc = json.loads(json.dumps(default))
dcp = dc["spec"]["template"]["spec"]
dcp["containers"][0].pop("image"), dcp["containers"][0].pop("resources")
own_secret(dcp["containers"][0])
[v for v in dcp["volumes"] if v["name"] == "work"][0]["emptyDir"].pop("sizeLimit")
assert c == dc, "coder.json drifted from default.json"
# The coder-kata overlay: the same coder template in a Kata VM, nothing else changed.
kata_t = json.loads(one(coder_kata, "ConfigMap", "openclaw-job-templates")["data"]["coder.json"])
assert kata_t["spec"]["template"]["spec"].pop("runtimeClassName") == "kata"
assert kata_t == coder_t, "deploy/components/coder-kata/coder.json drifted from the base's coder.json"
assert json.loads(one(coder_kata, "ConfigMap", "openclaw-job-templates")["data"]["default.json"]) == default

# Workers reach git remotes on public addresses only; the devops agent also the API server.
worker_np = one(base, "NetworkPolicy", "openclaw-worker")
git_rule = [r for r in worker_np["spec"]["egress"] if {"port": 443, "protocol": "TCP"} in r.get("ports", [])]
assert len(git_rule) == 1 and git_rule[0].get("to"), "git egress must name its address ranges"
blocks = [t["ipBlock"] for t in git_rule[0]["to"]]
v4 = [b for b in blocks if b["cidr"] == "0.0.0.0/0"][0]
for internal in ("169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"):
    assert internal in v4["except"], internal
v6 = [b for b in blocks if b["cidr"] == "::/0"][0]
assert {"fc00::/7", "fe80::/10"} <= set(v6["except"]), v6
devops_np = one(base, "NetworkPolicy", "openclaw-devops")
assert devops_np["spec"]["podSelector"]["matchLabels"] == {"openclaw.dev/agent": "devops"}
assert "169.254.0.0/16" in devops_np["spec"]["egress"][0]["to"][0]["ipBlock"]["except"]

# NATS: the bridge and each agent's workers have their own user, with the permission sets
# of nats/permissions.json.
bc = one(base, "Deployment", "openclaw")["spec"]["template"]["spec"]["containers"][0]
bridge_refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in bc["env"] if e["name"] in ("NATS_USER", "NATS_PASSWORD")}
assert bridge_refs["NATS_USER"] == {"name": "openclaw-bridge", "key": "NATS_USER", "optional": True}, bridge_refs
assert bridge_refs["NATS_PASSWORD"] == {"name": "openclaw-bridge", "key": "NATS_PASSWORD", "optional": True}, bridge_refs
permissions = json.loads((deploy.parent / "nats/permissions.json").read_text())
values = yaml.safe_load((deploy / "nats/values.yaml").read_text())
users = {u["user"]: u for u in values["config"]["merge"]["authorization"]["users"]}
assert users["bridge"]["permissions"] == permissions["bridge"], "deploy/nats/values.yaml drifted (bridge)"
for agent in ("doc-writer", "devops"):
    want = json.loads(json.dumps(permissions["worker"]).replace("AGENT", agent))
    assert users[f"worker-{agent}"]["permissions"] == want, f"deploy/nats/values.yaml drifted ({agent})"
# Every static user bypasses the auth callout; any other name is asked of the bridge, which
# reads its seed from the Secret the Deployment mounts where OPENCLAW_NATS_CALLOUT_SEED points.
callout = values["config"]["merge"]["authorization"]["auth_callout"]
assert sorted(callout["auth_users"]) == sorted(users), callout
assert callout["issuer"] == "<< $OPENCLAW_NATS_CALLOUT_ISSUER >>", callout
issuer_ref = values["container"]["env"]["OPENCLAW_NATS_CALLOUT_ISSUER"]["valueFrom"]["secretKeyRef"]
assert issuer_ref == {"name": "openclaw-nats-users", "key": "callout_issuer"}, issuer_ref
seed_env = [e for e in bc["env"] if e["name"] == "OPENCLAW_NATS_CALLOUT_SEED"][0]
assert seed_env["valueFrom"]["secretKeyRef"]["optional"] is True, seed_env
bridge_pod = one(base, "Deployment", "openclaw")["spec"]["template"]["spec"]
seed_volume = [v for v in bridge_pod["volumes"] if v["name"] == "nats-callout"][0]
assert seed_volume["secret"]["secretName"] == "openclaw-nats-callout" and seed_volume["secret"]["optional"], seed_volume
assert [m["mountPath"] for m in bc["volumeMounts"] if m["name"] == "nats-callout"] == ["/var/run/openclaw/nats-callout"]

# KEDA ScaledJobs run the same pods as the bridge's Jobs, one per agent and consumer.
for agent, t in (("doc-writer", default), ("devops", devops_t), ("coder", coder_t)):
    sj = one(keda, "ScaledJob", f"openclaw-worker-{agent}")
    trig = sj["spec"]["triggers"][0]
    assert trig["type"] == "nats-jetstream" and trig["metadata"]["stream"] == "OPENCLAW_TASKS", trig
    assert trig["metadata"]["consumer"] == f"worker-{agent}", trig
    pod_t = json.loads(json.dumps(t["spec"]["template"]))
    pod_t["metadata"]["labels"]["openclaw.dev/agent"] = agent
    pod_t["spec"]["containers"][0]["env"].append({"name": "OPENCLAW_AGENT", "value": agent})
    got = json.loads(json.dumps(sj["spec"]["jobTargetRef"]["template"]))
    got["metadata"]["labels"].pop("app.kubernetes.io/part-of", None)
    pod_t["metadata"]["labels"].pop("app.kubernetes.io/part-of", None)
    assert got == pod_t, f"ScaledJob {agent} drifted from its Job template"
# The tokens overlay: the bridge reads its tokens file from the Secret, mounted as a directory
# (an update reaches the pod), and nothing else of the bridge changes.
tb = one(tokens_overlay, "Deployment", "openclaw")["spec"]["template"]["spec"]
tc = tb["containers"][0]
assert env(tc)["OPENCLAW_TOKENS_FILE"] == "/etc/openclaw/tokens/tokens.toml", env(tc)
mount = [m for m in tc["volumeMounts"] if m["name"] == "tokens"][0]
assert mount["mountPath"] == "/etc/openclaw/tokens" and mount["readOnly"] is True and "subPath" not in mount, mount
vol = [v for v in tb["volumes"] if v["name"] == "tokens"][0]
assert vol["secret"]["secretName"] == "openclaw-tokens" and not vol["secret"].get("optional"), vol
base_bridge = one(base, "Deployment", "openclaw")["spec"]["template"]["spec"]
tcopy = json.loads(json.dumps(tb))
tcopy["containers"][0]["env"] = [e for e in tcopy["containers"][0]["env"] if e["name"] != "OPENCLAW_TOKENS_FILE"]
tcopy["containers"][0]["volumeMounts"] = [m for m in tcopy["containers"][0]["volumeMounts"] if m["name"] != "tokens"]
tcopy["volumes"] = [v for v in tcopy["volumes"] if v["name"] != "tokens"]
assert tcopy == base_bridge, "the tokens overlay changed more of the bridge than its tokens file"
# Two bridges that a drain takes one at a time, spread over nodes and zones.
pdb = one(base, "PodDisruptionBudget", "openclaw")
bridge_spec = one(base, "Deployment", "openclaw")["spec"]
assert pdb["spec"]["minAvailable"] == 1 and bridge_spec["replicas"] == 2
assert pdb["spec"]["selector"]["matchLabels"] == bridge_spec["selector"]["matchLabels"], pdb
spread = bridge_spec["template"]["spec"]["topologySpreadConstraints"]
assert {c["topologyKey"] for c in spread} == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}, spread
assert all(c["labelSelector"]["matchLabels"] == bridge_spec["selector"]["matchLabels"] for c in spread)
# The monitoring overlay: the base plus a ServiceMonitor that scrapes the bridge Service's
# http port at /metrics (no token).
sm = one(monitoring, "ServiceMonitor", "openclaw")
msvc = one(monitoring, "Service", "openclaw")
scraped = [d["metadata"]["name"] for d in monitoring if d["kind"] == "Service"
           and sm["spec"]["selector"]["matchLabels"].items() <= d["metadata"].get("labels", {}).items()]
assert scraped == ["openclaw"], scraped
assert sm["spec"]["endpoints"][0]["path"] == "/metrics"
admitted = [f["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            for rule in one(monitoring, "NetworkPolicy", "openclaw")["spec"]["ingress"]
            for f in rule["from"] if "namespaceSelector" in f]
assert "monitoring" in admitted and "openwebui" in admitted, admitted
assert sm["spec"]["endpoints"][0]["port"] in [p["name"] for p in msvc["spec"]["ports"]]
# The webhooks overlay publishes the webhook route and nothing else of the bridge: one
# Ingress, every path under /v1/webhooks/ to the bridge Service; the base has no Ingress.
assert not [d for d in base if d["kind"] == "Ingress"]
ingresses = [d for d in webhooks if d["kind"] == "Ingress"]
assert len(ingresses) == 1 and ingresses[0]["metadata"]["namespace"] == "openclaw", ingresses
paths = [p for rule in ingresses[0]["spec"]["rules"] for p in rule["http"]["paths"]]
assert paths and all(p["path"].startswith("/v1/webhooks/") and p["pathType"] == "Prefix" for p in paths), paths
assert all(p["backend"]["service"] == {"name": "openclaw", "port": {"number": 8080}} for p in paths), paths
admitted = [f["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            for rule in one(webhooks, "NetworkPolicy", "openclaw")["spec"]["ingress"]
            for f in rule["from"] if "namespaceSelector" in f]
assert "ingress-nginx" in admitted and "openwebui" in admitted, admitted
print("manifests: ok")
