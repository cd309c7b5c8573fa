"""The environment deploy/install.py gives the bridge and a doc-writer worker, resolved the way
Kubernetes resolves a container's environment (envFrom, then env; value, secretKeyRef,
configMapKeyRef, optional keys), from a starter-kit folder and without a cluster: the install's
own functions render the manifests (kubectl kustomize) and the Secrets; the Langfuse question
is answered as a cluster with or without Langfuse answers it.
usage: DEPLOY_DIR KIT_DIR WORK_DIR LANGFUSE(yes|no) -> JSON {"bridge": {...}, "worker": {...},
"devops": {...}} (the worker of the default template, doc-writer's, and the devops one)"""
import argparse
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import yaml

deploy, kit, work, langfuse = (pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]),
                               pathlib.Path(sys.argv[3]), sys.argv[4] == "yes")
os.environ["OPENCLAW_INSTALL_DIR"] = str(work / "install")
spec = importlib.util.spec_from_file_location("install", deploy / "install.py")
install = importlib.util.module_from_spec(spec)
spec.loader.exec_module(install)
install.say = lambda msg: print(msg, file=sys.stderr)
install.existing_secret_value = lambda *_: None
PODS = ("NAME                            READY   STATUS    RESTARTS   AGE\n"
        "langfuse-web-7d9c8b6f5d-x2x8k   1/1     Running   0          3d\n") if langfuse else ""
real_kubectl = install.kubectl


def kubectl(*args, **kwargs):
    if args[:2] == ("get", "pod"):
        return subprocess.CompletedProcess(["kubectl", *args], 0, PODS, "")
    return real_kubectl(*args, **kwargs)


install.kubectl = kubectl
settings, _ = install.load_settings(kit, {})
install.detect_langfuse(settings, True)
secrets = {name: data for (ns, name), data in install.secrets_of(settings).items() if ns == "openclaw"}
args = argparse.Namespace(karpenter=False, keda=False, dry_run=True, config_dir=str(kit), purge=False)
overlay = install.write_overlay(settings, args, "render-env")
objects = [o for o in yaml.safe_load_all(kubectl("kustomize", str(overlay)).stdout) if o]
configmaps = {o["metadata"]["name"]: o.get("data", {}) for o in objects if o["kind"] == "ConfigMap"}


def resolve(container):
    env = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(configmaps[source["configMapRef"]["name"]])
        if "secretRef" in source:
            ref = source["secretRef"]
            if ref["name"] not in secrets and not ref.get("optional"):
                sys.exit(f"Secret {ref['name']} does not exist: the pod would not start")
            env.update(secrets.get(ref["name"], {}))
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        ((kind, ref),) = var["valueFrom"].items()
        data = (secrets if kind == "secretKeyRef" else configmaps).get(ref["name"], {})
        if ref["key"] in data:
            env[var["name"]] = data[ref["key"]]
        elif not ref.get("optional"):
            sys.exit(f"{var['name']}: {ref['name']}/{ref['key']} does not exist: the pod would not start")
    return env


bridge = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "openclaw")
templates = configmaps["openclaw-job-templates"]
worker = lambda name: resolve(json.loads(templates[name])["spec"]["template"]["spec"]["containers"][0])
print(json.dumps({
    "bridge": resolve(bridge["spec"]["template"]["spec"]["containers"][0]),
    "worker": worker("default.json"),
    "devops": worker("devops.json"),
}))
