"""Checks the rendered deploy/ manifests beyond their schemas: what the project promises about
them. usage: BASE_YAML KEDA_YAML DEPLOY_DIR"""
import json
import pathlib
import sys

import yaml

base = list(yaml.safe_load_all(open(sys.argv[1])))
keda = list(yaml.safe_load_all(open(sys.argv[2])))
deploy = pathlib.Path(sys.argv[3])


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
svc = one(base, "Service", "openclaw-bridge")
assert svc["spec"]["type"] == "ClusterIP" and svc["spec"]["ports"][0]["port"] == 8080, svc
bridge = one(base, "Deployment", "openclaw-bridge")
pod = bridge["spec"]["template"]["spec"]
hardened(pod, "bridge")
c = pod["containers"][0]
assert c["readinessProbe"]["httpGet"]["path"] == "/health", c
assert env(c)["OPENCLAW_DISPATCH"] == "kubernetes"
assert env(c)["OPENCLAW_LISTEN"] == "0.0.0.0:8080"
assert c["env"][[e["name"] for e in c["env"]].index("OPENCLAW_GATEWAY_TOKEN")]["valueFrom"]["secretKeyRef"]["name"] == "openclaw-bridge"
assert one(keda, "Deployment", "openclaw-bridge")["spec"]["template"]["spec"]["containers"][0]["env"][3] == {"name": "OPENCLAW_DISPATCH", "value": "none"}

# Minimal RBAC: Jobs only, no delete, nothing cluster-wide for the bridge; none under KEDA.
role = one(base, "Role", "openclaw-bridge")
assert role["rules"] == [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "list", "watch"]}], role
assert not [d for d in keda if d["kind"] in ("Role", "RoleBinding")], "KEDA mode needs no bridge RBAC"
devops = one(base, "ClusterRoleBinding", "openclaw-devops-view")
assert devops["roleRef"]["name"] == "view", devops
assert one(base, "ServiceAccount", "openclaw-worker")["automountServiceAccountToken"] is False

# NetworkPolicies are on for both.
for name in ("openclaw-bridge", "openclaw-worker"):
    np = one(base, "NetworkPolicy", name)
    assert set(np["spec"]["policyTypes"]) == {"Ingress", "Egress"}, np

# Config maps carry the very files the binaries build in.
agents = one(base, "ConfigMap", "openclaw-agents")["data"]["agents.toml"]
assert agents == (deploy / "base/agents.toml").read_text()
templates = one(base, "ConfigMap", "openclaw-job-templates")["data"]
default = json.loads(templates["default.json"])
devops_t = json.loads(templates["devops.json"])

# Worker Jobs: arm64 + spot, tolerate the worker taint, bounded, hardened, no k8s retries.
for name, t in (("default", default), ("devops", devops_t)):
    spec = t["spec"]
    assert spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] > 0 and spec["ttlSecondsAfterFinished"] > 0, name
    p = spec["template"]["spec"]
    assert p["nodeSelector"] == {"kubernetes.io/arch": "arm64", "karpenter.sh/capacity-type": "spot"}, name
    assert {"key": "openclaw.dev/worker", "operator": "Exists", "effect": "NoSchedule"} in p["tolerations"], name
    hardened(p, name)
# devops.json is default.json but for its account and image.
d = json.loads(json.dumps(devops_t))
dp = d["spec"]["template"]["spec"]
assert dp.pop("serviceAccountName") == "openclaw-devops" and dp.pop("automountServiceAccountToken") is True
assert dp["containers"][0].pop("image").endswith("openclaw-worker-devops:0.1.0")
dd = json.loads(json.dumps(default))
ddp = dd["spec"]["template"]["spec"]
ddp.pop("serviceAccountName"), ddp.pop("automountServiceAccountToken"), ddp["containers"][0].pop("image")
assert d == dd, "devops.json drifted from default.json"

# KEDA ScaledJobs run the same pods as the bridge's Jobs, one per agent and consumer.
for agent, t in (("doc-writer", default), ("devops", devops_t)):
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
print("manifests: ok")
