#!/usr/bin/env python3
"""Installs and uninstalls OpenClaw the way the GenAI-on-EKS starter kit installs its
components, from this repository alone (Python 3 standard library, kubectl, and helm for NATS).

  deploy/install.sh   [--build-images REPOSITORY | --images-from FILE] [--keda] [--karpenter [--eks-auto-mode]] [--monitoring [--monitoring-release NAME]] [--no-nats]
                      [--dry-run] [--config-dir DIR]
  deploy/uninstall.sh [--purge] [--dry-run]

Settings, later ones winning: the page's defaults; DIR/config.json (`ai-agent.openclaw.env`,
and `examples.openclaw.doc-writer.env.GIT_REPO_URL`); DIR/.env; the environment. Langfuse is
detected as the starter kit does it: a pod labelled app=web in namespace langfuse means
LANGFUSE_HOST=http://langfuse-web.langfuse:3000 with the keys from .env.

Secrets go only into Secrets (through a file readable only by you, never a command line, never
printed); the rest into ConfigMaps and the bridge's environment. The manifests are rendered
from a kustomization written to deploy/.install/ (base or KEDA overlay, the Karpenter component,
the image, the settings), so a re-run after a config.json change rolls the bridge (a checksum
annotation) and later worker Jobs read the new model. --dry-run needs no cluster: it prints
what would be applied, secret values redacted, and changes nothing.
"""
import argparse
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

# nkey.py sits beside this file; also when this file is loaded by path (the tests).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from nkey import nkey_account_from_seed, nkey_seed_bytes  # noqa: E402

DEPLOY = pathlib.Path(__file__).resolve().parent
# Where the generated kustomization goes (kept, so that uninstall removes what was applied).
OUT = pathlib.Path(os.environ.get("OPENCLAW_INSTALL_DIR") or DEPLOY / ".install").resolve()


def rel(target):
    """`target` (under deploy/) as the generated kustomization refers to it."""
    return os.path.relpath(DEPLOY / target, OUT)

DEFAULTS = {
    "LITELLM_BASE_URL": "http://litellm.litellm:4000",
    "LITELLM_MODEL_NAME": "bedrock/claude-4.5-sonnet",
    "OPENCLAW_IMAGE_REPOSITORY": "ghcr.io/openclaw",
    "OPENCLAW_IMAGE_TAG": "0.1.0",
    "OPENCLAW_CLIENT_NAMESPACES": "openwebui",
    "OPENCLAW_NATS_AUTH": "true",
}
# Every setting the install reads (from config.json, .env or the environment).
SETTINGS = [
    "LITELLM_BASE_URL", "LITELLM_MODEL_NAME", "LITELLM_API_KEY", "OPENCLAW_GATEWAY_TOKEN",
    "LANGFUSE_HOST", "LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY",
    "GIT_REPO_URL", "GIT_USERNAME", "GIT_TOKEN", "OPENCLAW_GIT_CREDENTIAL_HOSTS",
    "OPENCLAW_IMAGE_REPOSITORY", "OPENCLAW_IMAGE_TAG", "OPENCLAW_DEVOPS_IMAGE",
    "OPENCLAW_CLIENT_NAMESPACES", "OPENCLAW_DEVOPS_ROLE_ARN", "OPENCLAW_NATS_AUTH",
    # The starter kit's names for each agent's own git credentials.
    "OPENCLAW_DOC_WRITER_GIT_USERNAME", "OPENCLAW_DOC_WRITER_GIT_TOKEN",
    "OPENCLAW_DEVOPS_GIT_USERNAME", "OPENCLAW_DEVOPS_GIT_TOKEN",
    "CLUSTER_NAME", "EKS_CLUSTER_NAME", "OPENCLAW_QUEUE_TIMEOUT_SECS",
    # USD per worker hour (your worker nodes' price): each task's compute_cost_usd.
    "OPENCLAW_WORKER_COST_PER_HOUR",
    # Pull requests and webhooks (README, "Pull requests and webhooks"): the token reaches the
    # bridge and the doc-writer's workers, the webhook secret the bridge only.
    "GITHUB_TOKEN", "OPENCLAW_GITHUB_API_URL", "OPENCLAW_GITHUB_WEBHOOK_SECRET", "OPENCLAW_MENTION",
    "GITLAB_TOKEN", "OPENCLAW_GITLAB_API_URL", "OPENCLAW_GITLAB_WEBHOOK_TOKEN",
]
SECRET = {"LITELLM_API_KEY", "OPENCLAW_GATEWAY_TOKEN", "LANGFUSE_PUBLIC_KEY",
          "LANGFUSE_SECRET_KEY", "GIT_TOKEN", "OPENCLAW_DOC_WRITER_GIT_TOKEN", "OPENCLAW_DEVOPS_GIT_TOKEN",
          "GITHUB_TOKEN", "OPENCLAW_GITHUB_WEBHOOK_SECRET", "GITLAB_TOKEN", "OPENCLAW_GITLAB_WEBHOOK_TOKEN"}
# The agents whose workers open pull requests (their profiles' `pull_request = true`).
PULL_REQUEST_AGENTS = ("doc-writer", "coder")
LANGFUSE_HOST = "http://langfuse-web.langfuse:3000"


def say(msg):
    print(f"==> {msg}", file=sys.stderr)


def read_dotenv(path):
    values = {}
    if not path.is_file():
        return values
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.strip().removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def load_settings(config_dir, environ):
    """The settings, with where each came from: defaults < config.json < .env < environment."""
    settings, origin = dict(DEFAULTS), {k: "default" for k in DEFAULTS}
    config_path = config_dir / "config.json"
    if config_path.is_file():
        config = json.loads(config_path.read_text())
        layers = [
            config.get("ai-agent", {}).get("openclaw", {}).get("env", {}),
            {k: v for k, v in config.get("examples", {}).get("openclaw", {})
             .get("doc-writer", {}).get("env", {}).items() if k == "GIT_REPO_URL"},
        ]
        for layer in layers:
            for k, v in layer.items():
                if k not in SETTINGS:
                    say(f"config.json: {k} is not an OpenClaw setting; ignored (known: see README, Kubernetes)")
                    continue
                settings[k], origin[k] = str(v), "config.json"
    for k, v in read_dotenv(config_dir / ".env").items():
        if k in SETTINGS:
            settings[k], origin[k] = v, ".env"
        elif k.startswith("OPENCLAW_"):
            # The kit's .env holds every component's settings; only ours are reported.
            say(f".env: {k} is not an OpenClaw setting; ignored")
    for k in SETTINGS:
        if environ.get(k):
            settings[k], origin[k] = environ[k], "environment"
    if not settings.get("CLUSTER_NAME") and settings.get("EKS_CLUSTER_NAME"):
        settings["CLUSTER_NAME"], origin["CLUSTER_NAME"] = settings["EKS_CLUSTER_NAME"], origin["EKS_CLUSTER_NAME"]
    return settings, origin


def langfuse_detected(kubectl_get_pods_output):
    """The starter kit's rule: `kubectl get pod -n langfuse -l app=web --ignore-not-found`
    lists a pod whose name mentions langfuse (a pod line, not a message about the namespace)."""
    return any(
        fields and fields[0] != "NAME" and "langfuse" in fields[0]
        for fields in (line.split() for line in kubectl_get_pods_output.splitlines())
        if len(fields) >= 3
    )


def kubectl(*args, input=None, check=True):
    return subprocess.run(["kubectl", *args], input=input, text=True, capture_output=True, check=check)


def detect_langfuse(settings, dry_run):
    """LANGFUSE_HOST as configured, or as the starter kit detects it. Traces need the host and
    both keys: when any is missing, none of them is rendered (the kit's default .env carries
    placeholder keys even where Langfuse is not installed), and the install says why."""
    keys = settings.get("LANGFUSE_PUBLIC_KEY") and settings.get("LANGFUSE_SECRET_KEY")

    def off(why):
        for k in ("LANGFUSE_HOST", "LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY"):
            settings.pop(k, None)
        say(f"Langfuse: {why}; traces off (the Langfuse settings are left out)")

    if settings.get("LANGFUSE_HOST"):
        if not keys:
            return off(f"LANGFUSE_HOST={settings['LANGFUSE_HOST']} is configured, but "
                       "LANGFUSE_PUBLIC_KEY or LANGFUSE_SECRET_KEY is not set in .env")
        say(f"Langfuse: LANGFUSE_HOST={settings['LANGFUSE_HOST']} as configured")
        return
    try:
        out = kubectl("get", "pod", "-n", "langfuse", "-l", "app=web", "--ignore-not-found",
                      check=False, ).stdout
    except FileNotFoundError:
        out = ""
    if not langfuse_detected(out):
        return off("not detected (no pod app=web in namespace langfuse)")
    if not keys:
        return off("detected, but LANGFUSE_PUBLIC_KEY or LANGFUSE_SECRET_KEY is not set in .env")
    settings["LANGFUSE_HOST"] = LANGFUSE_HOST
    say(f"Langfuse detected: traces go to {LANGFUSE_HOST}")


def strategic(kind, name, body, api="v1"):
    return {"patch": json.dumps({"apiVersion": api, "kind": kind, "metadata": {"name": name}, **body}),
            "target": {"kind": kind, "name": name}}


def eks_auto_mode(args):
    """--eks-auto-mode, or (against a cluster) Auto Mode's built-in NodeClass is there."""
    if getattr(args, "eks_auto_mode", False):
        return True
    if args.dry_run:
        return False
    found = kubectl("get", "nodeclasses.eks.amazonaws.com", "default", "-o", "name", check=False)
    if found.returncode == 0:
        say("EKS Auto Mode detected: the workers' NodePool uses its NodeClass `default`")
        return True
    return False


def images_of(settings, args):
    """The image of each program: what --images-from names (pushed by digest, by
    scripts/push-images.sh), else OPENCLAW_IMAGE_REPOSITORY/NAME:OPENCLAW_IMAGE_TAG
    (OPENCLAW_DEVOPS_IMAGE for the devops worker when set)."""
    repo, tag = settings["OPENCLAW_IMAGE_REPOSITORY"].rstrip("/"), settings["OPENCLAW_IMAGE_TAG"]
    images = {name: f"{repo}/{name}:{tag}"
              for name in ("openclaw-bridge", "openclaw-worker", "openclaw-worker-devops", "openclaw-worker-coder")}
    if settings.get("OPENCLAW_DEVOPS_IMAGE"):
        images["openclaw-worker-devops"] = settings["OPENCLAW_DEVOPS_IMAGE"]
    if settings.get("OPENCLAW_CODER_IMAGE"):
        # The coder's own image: the repositories' dev image with the worker copied in
        # (README, "The coder agent").
        images["openclaw-worker-coder"] = settings["OPENCLAW_CODER_IMAGE"]
    if getattr(args, "images_from", None):
        path = pathlib.Path(args.images_from)
        try:
            pushed = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise Stop(f"--images-from {path}: {e} (scripts/push-images.sh writes it)")
        for name in images:
            ref = pushed.get(name, "")
            if "@sha256:" not in ref:
                raise Stop(f"--images-from {path}: no digest for {name} (scripts/push-images.sh writes one per image)")
            images[name] = ref
    return images


def kustomize_image(ref):
    """A kustomize `images` entry for `ref` (name:tag or name@digest)."""
    if "@" in ref:
        name, digest = ref.split("@", 1)
        return {"newName": name, "digest": digest}
    name, _, tag = ref.rpartition(":")
    if "/" in tag or not name:
        return {"newName": ref}
    return {"newName": name, "newTag": tag}


def write_overlay(settings, args, checksum):
    """deploy/.install/kustomization.yaml (JSON is YAML): the chosen overlay plus the settings."""
    OUT.mkdir(parents=True, exist_ok=True)
    images = images_of(settings, args)
    worker_image, devops_image, coder_image, bridge_image = (
        images["openclaw-worker"], images["openclaw-worker-devops"], images["openclaw-worker-coder"],
        images["openclaw-bridge"])
    bridge_env = [
        {"name": "OPENCLAW_WORKER_IMAGE", "value": worker_image},
        {"name": "OPENCLAW_WORKER_IMAGE_DEVOPS", "value": devops_image},
        {"name": "OPENCLAW_WORKER_IMAGE_CODER", "value": coder_image},
    ]
    for key in ("GIT_REPO_URL", "OPENCLAW_QUEUE_TIMEOUT_SECS"):
        if settings.get(key):
            bridge_env.append({"name": key, "value": settings[key]})
    worker_config = [f"{k}={settings[k]}" for k in ("LITELLM_BASE_URL", "LITELLM_MODEL_NAME", "LANGFUSE_HOST",
                                                     "OPENCLAW_WORKER_COST_PER_HOUR")
                     if settings.get(k)]
    namespaces = [n.strip() for n in settings["OPENCLAW_CLIENT_NAMESPACES"].split(",") if n.strip()]
    patches = [
        strategic("Deployment", "openclaw", {"spec": {"template": {
            "metadata": {"annotations": {"openclaw.dev/config-checksum": checksum}},
            "spec": {"containers": [{
                "name": "bridge", "image": bridge_image,
                "imagePullPolicy": "IfNotPresent", "env": bridge_env}]}}}}, api="apps/v1"),
        {"target": {"kind": "NetworkPolicy", "name": "openclaw"}, "patch": json.dumps([
            {"op": "replace", "path": "/spec/ingress/0/from", "value":
                [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": n}}} for n in namespaces]
                + [{"podSelector": {}}]}])},
    ]
    if settings.get("LANGFUSE_HOST"):
        patches.append({"target": {"kind": "NetworkPolicy", "name": "openclaw-worker"}, "patch": json.dumps([
            {"op": "add", "path": "/spec/egress/-", "value": {
                "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "langfuse"}}}],
                "ports": [{"port": 3000, "protocol": "TCP"}]}}])})
    if settings.get("OPENCLAW_DEVOPS_ROLE_ARN"):
        patches.append(strategic("ServiceAccount", "openclaw-devops", {"metadata": {
            "name": "openclaw-devops",
            "annotations": {"eks.amazonaws.com/role-arn": settings["OPENCLAW_DEVOPS_ROLE_ARN"]}}}))
    components = []
    if getattr(args, "monitoring", False) or getattr(args, "monitoring_release", None):
        components.append(rel("components/monitoring"))
        if args.monitoring_release:
            # kube-prometheus-stack finds ServiceMonitors by its release's label.
            patches.append(strategic("ServiceMonitor", "openclaw", {"metadata": {
                "name": "openclaw", "labels": {"release": args.monitoring_release}}},
                api="monitoring.coreos.com/v1"))
    if args.karpenter and eks_auto_mode(args):
        # Auto Mode brings its own Karpenter and NodeClass: a NodePool on it, nothing to name.
        components.append(rel("components/eks-auto-mode"))
    elif args.karpenter:
        cluster = settings.get("CLUSTER_NAME")
        if not cluster:
            raise Stop("--karpenter needs the cluster's name: CLUSTER_NAME (or EKS_CLUSTER_NAME in .env); "
                       "on an EKS Auto Mode cluster, add --eks-auto-mode instead")
        components.append(rel("components/karpenter"))
        patches.append({"target": {"kind": "EC2NodeClass", "name": "openclaw-workers"}, "patch": json.dumps([
            {"op": "replace", "path": "/spec/role", "value": f"KarpenterNodeRole-{cluster}"},
            {"op": "replace", "path": "/spec/subnetSelectorTerms/0/tags/karpenter.sh~1discovery", "value": cluster},
            {"op": "replace", "path": "/spec/securityGroupSelectorTerms/0/tags/karpenter.sh~1discovery", "value": cluster},
        ])})
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [rel("overlays/keda") if args.keda else rel("base")],
        "components": components,
        "configMapGenerator": [{"name": "openclaw-worker", "behavior": "merge", "literals": worker_config}],
        "patches": patches,
    }
    if args.keda:
        # KEDA's ScaledJobs name the worker images themselves.
        kustomization["images"] = [
            {"name": "ghcr.io/openclaw/openclaw-worker", **kustomize_image(worker_image)},
            {"name": "ghcr.io/openclaw/openclaw-worker-devops", **kustomize_image(devops_image)},
            {"name": "ghcr.io/openclaw/openclaw-worker-coder", **kustomize_image(coder_image)},
        ]
    (OUT / "kustomization.yaml").write_text(
        "# Written by deploy/install.py; re-run the install to change it.\n" + json.dumps(kustomization, indent=2) + "\n")
    return OUT


AGENTS = ("doc-writer", "devops", "coder")


def agent_key(agent, key):
    """The starter kit's name of an agent's own setting: OPENCLAW_DOC_WRITER_GIT_TOKEN."""
    return f"OPENCLAW_{agent.upper().replace('-', '_')}_{key}"


def secrets_of(settings):
    """The Secrets to apply, by (namespace, name): {key: value}. Each agent's workers get a
    Secret of their own (their NATS user, their git credentials) beside the shared one (the
    gateway key, Langfuse): a worker pod holds no other agent's credentials."""
    bridge = {"OPENCLAW_GATEWAY_TOKEN": settings["OPENCLAW_GATEWAY_TOKEN"]}
    worker = {"LITELLM_API_KEY": settings["LITELLM_API_KEY"]}
    for k in ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY"):
        if settings.get(k):
            worker[k] = settings[k]
    own = {agent: {} for agent in AGENTS}
    for agent in AGENTS:
        # The agent's own git credentials (the kit's names), else the shared GIT_* ones.
        for k in ("GIT_USERNAME", "GIT_TOKEN"):
            value = settings.get(agent_key(agent, k)) or settings.get(k)
            if value:
                own[agent][k] = value
        if own[agent].get("GIT_TOKEN"):
            own[agent]["OPENCLAW_GIT_CREDENTIAL_HOSTS"] = settings.get("OPENCLAW_GIT_CREDENTIAL_HOSTS") or "github.com"
    for token, forge_keys, hook_keys in (
            ("GITHUB_TOKEN", ("GITHUB_TOKEN", "OPENCLAW_GITHUB_API_URL"), ("OPENCLAW_GITHUB_WEBHOOK_SECRET",)),
            ("GITLAB_TOKEN", ("GITLAB_TOKEN", "OPENCLAW_GITLAB_API_URL"), ("OPENCLAW_GITLAB_WEBHOOK_TOKEN",))):
        if not settings.get(token):
            continue
        forge = {k: settings[k] for k in forge_keys if settings.get(k)}
        bridge.update(forge)
        for agent in PULL_REQUEST_AGENTS:
            own[agent].update(forge)
        for k in (*hook_keys, "OPENCLAW_MENTION"):
            if settings.get(k):
                bridge[k] = settings[k]
    out = {("openclaw", "openclaw-bridge"): bridge, ("openclaw", "openclaw-worker"): worker}
    if settings["OPENCLAW_NATS_AUTH"] == "true":
        users = {}
        for user in ("bridge", *[f"worker_{a.replace('-', '_')}" for a in AGENTS], "operator"):
            users[user] = existing_secret_value("nats", "openclaw-nats-users", user) or os.urandom(24).hex()
        # The auth callout's issuer (bridge/src/callout.rs): the server trusts the public key,
        # the bridge signs per-task users with the seed (a file in its own Secret). Kept across
        # re-installs like the passwords.
        kept = existing_secret_value("openclaw", "openclaw-nats-callout", "seed")
        seed, users["callout_issuer"] = nkey_account_from_seed(nkey_seed_bytes(kept) if kept else os.urandom(32))
        out[("nats", "openclaw-nats-users")] = users
        out[("openclaw", "openclaw-nats-callout")] = {"seed": seed}
        bridge.update({"NATS_USER": "bridge", "NATS_PASSWORD": users["bridge"],
                       "OPENCLAW_NATS_CALLOUT_SEED": "/var/run/openclaw/nats-callout/seed"})
        for agent in AGENTS:
            own[agent].update({"NATS_USER": f"worker-{agent}",
                               "NATS_PASSWORD": users[f"worker_{agent.replace('-', '_')}"]})
    for agent in AGENTS:
        out[("openclaw", f"openclaw-worker-{agent}")] = own[agent]
    return out


def existing_secret_value(namespace, name, key):
    """A value already in the cluster (NATS passwords are kept across re-installs)."""
    try:
        out = kubectl("-n", namespace, "get", "secret", name, "-o", f"jsonpath={{.data.{key}}}", check=False)
    except FileNotFoundError:
        return None
    if out.returncode != 0 or not out.stdout:
        return None
    import base64
    return base64.b64decode(out.stdout).decode()


def secret_manifest(namespace, name, data, redact):
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
            "type": "Opaque", "stringData": {k: ("[redacted]" if redact else v) for k, v in sorted(data.items())}}


def apply_secret(namespace, name, data):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=True) as f:
        os.chmod(f.name, 0o600)
        json.dump(secret_manifest(namespace, name, data, False), f)
        f.flush()
        kubectl("apply", "-f", f.name)


NATS_CHART_REPO = "https://nats-io.github.io/k8s/helm/charts/"


class Stop(Exception):
    """A problem the user can fix: one line saying what and how, exit 1, no traceback."""


def helm(*args, check=True):
    return subprocess.run(["helm", *args], text=True, capture_output=True, check=check)


def have(program):
    return shutil.which(program) is not None


def check_prerequisites(settings, args):
    """What the install needs and cannot install itself, each missing one a line with its fix."""
    if not have("kubectl"):
        raise Stop("kubectl not found: install it (https://kubernetes.io/docs/tasks/tools/) "
                   "and point it at your cluster (aws eks update-kubeconfig --name CLUSTER)")
    if args.dry_run:
        return
    if kubectl("get", "namespace", "default", "-o", "name", check=False).returncode != 0:
        raise Stop("kubectl cannot reach a cluster: point it at yours "
                   "(aws eks update-kubeconfig --name CLUSTER), then run the install again")
    if not args.no_nats and not have("helm"):
        raise Stop("helm not found (it installs NATS): install it "
                   "(https://helm.sh/docs/intro/install/), or install NATS yourself and pass --no-nats")
    if settings["LITELLM_BASE_URL"] == DEFAULTS["LITELLM_BASE_URL"] and \
            kubectl("-n", "litellm", "get", "service", "litellm", "-o", "name", check=False).returncode != 0:
        raise Stop("LiteLLM not found (no Service litellm in namespace litellm): install the starter "
                   "kit's LiteLLM component first, or set LITELLM_BASE_URL to your gateway")


# The description helm keeps on the release this install made, so --purge knows it may
# uninstall it.
NATS_RELEASE_DESCRIPTION = "installed by the OpenClaw install"
STREAMS = ("OPENCLAW_TASKS", "OPENCLAW_EVENTS", "OPENCLAW_ADVISORIES",
           "KV_openclaw_tasks", "KV_openclaw_sessions", "KV_openclaw_leases",
           "KV_openclaw_deliveries")


def install_nats(args, operator_password):
    """The NATS JetStream cluster from the nats-io chart with deploy/nats/values.yaml (users,
    permissions, auth callout), after the Secrets it reads exist, and nats-box's default
    context signed in as the operator user (so README's `nats` commands work). A release named
    nats is upgraded (the values change with OpenClaw); a NATS installed otherwise is left alone."""
    values = DEPLOY / "nats/values.yaml"
    upgrade = ["upgrade", "--install", "nats", "nats/nats", "-n", "nats", "--create-namespace",
               "-f", str(values), "--description", NATS_RELEASE_DESCRIPTION, "--wait", "--timeout", "10m"]
    repo = ["repo", "add", "nats", NATS_CHART_REPO, "--force-update"]
    if args.no_nats:
        say("NATS: not installed (--no-nats); it must run with deploy/nats/values.yaml's users")
        return
    if args.dry_run:
        for c in (repo, upgrade + (["-f", "<nats-box operator context>"] if operator_password else [])):
            say("dry run: would run helm " + " ".join(c))
        return
    if helm("status", "nats", "-n", "nats", check=False).returncode != 0 and \
            kubectl("-n", "nats", "get", "statefulset", "nats", "-o", "name", check=False).returncode == 0:
        say("NATS: found in namespace nats (not a helm release named nats): left as it is; "
            "give it deploy/nats/values.yaml's users and auth callout")
        return
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=True) as context:
        os.chmod(context.name, 0o600)
        if operator_password:
            json.dump({"natsBox": {"contexts": {"default": {"merge": {
                "user": "operator", "password": operator_password}}}}}, context)
            context.flush()
            upgrade += ["-f", context.name]
        for c in (repo, upgrade):
            say("helm " + " ".join(c[:4]) + " …")
            r = helm(*c, check=False)
            if r.returncode != 0:
                last = r.stderr.strip().splitlines()
                raise Stop(f"helm {' '.join(c[:3])} failed: {last[-1] if last else r.returncode}")


def build_images(args):
    """--build-images REPOSITORY: the two scripts, then install by the digests pushed."""
    root = DEPLOY.parent
    if args.dry_run:
        say(f"dry run: would run scripts/images.sh and scripts/push-images.sh {args.build_images}")
        return
    for command in (["bash", "scripts/images.sh"], ["bash", "scripts/push-images.sh", args.build_images]):
        say(" ".join(command) + " …")
        if subprocess.run(command, cwd=root).returncode != 0:
            raise Stop(f"{' '.join(command)} failed (its output above says why)")
    args.images_from = str(root / "target/images/pushed.json")


def install(args):
    if getattr(args, "build_images", None):
        build_images(args)
    settings, origin = load_settings(pathlib.Path(args.config_dir), os.environ)
    missing = [k for k in ("LITELLM_API_KEY", "OPENCLAW_GATEWAY_TOKEN") if not settings.get(k)]
    if missing:
        sys.exit(f"missing settings: {', '.join(missing)} (config.json ai-agent.openclaw.env, .env or the environment)")
    check_prerequisites(settings, args)
    detect_langfuse(settings, args.dry_run)
    for k in ("LITELLM_BASE_URL", "LITELLM_MODEL_NAME", "GIT_REPO_URL"):
        if settings.get(k):
            say(f"{k}={settings[k]} ({origin.get(k, 'detected')})")
    secrets = secrets_of(settings)
    # The settings, and the files the bridge reads from ConfigMaps: a change to any rolls it.
    files = {str(f.relative_to(DEPLOY)): f.read_text() for f in
             [DEPLOY / "base/agents.toml", *sorted((DEPLOY / "base/job-templates").glob("*.json"))]}
    checksum_input = json.dumps({"settings": settings, "args": vars(args), "files": files}, sort_keys=True)
    checksum = hashlib.sha256(checksum_input.encode()).hexdigest()[:16]
    overlay = write_overlay(settings, args, checksum)
    rendered = kubectl("kustomize", str(overlay)).stdout
    if args.dry_run:
        say("dry run: nothing is applied; the objects that would be:")
        print(rendered, end="")
        for (ns, name), data in secrets.items():
            print("---")
            print(json.dumps(secret_manifest(ns, name, data, True), indent=2))
        install_nats(args, secrets.get(("nats", "openclaw-nats-users"), {}).get("operator"))
        return
    kubectl("apply", "-f", str(DEPLOY / "base/namespace.yaml"))
    # The Secrets first: the NATS chart's values read the users and the callout issuer.
    for (ns, name), data in secrets.items():
        if ns != "openclaw":
            namespace = kubectl("create", "namespace", ns, "--dry-run=client", "-o", "yaml").stdout
            kubectl("apply", "-f", "-", input=namespace)
        apply_secret(ns, name, data)
    install_nats(args, secrets.get(("nats", "openclaw-nats-users"), {}).get("operator"))
    kubectl("apply", "-f", "-", input=rendered)
    rollout = kubectl("-n", "openclaw", "rollout", "status", "deployment/openclaw", "--timeout=180s", check=False)
    if rollout.returncode != 0:
        raise Stop("the bridge did not become ready within 180 s (its /ready needs NATS and the streams): "
                   "kubectl -n openclaw describe pods -l app.kubernetes.io/component=bridge; "
                   "kubectl -n openclaw logs deploy/openclaw")
    print("OpenClaw is up at http://openclaw.openclaw:8080 (also http://doc-writer.openclaw:8080 and "
          "http://devops-agent.openclaw:8080). Verify:\n"
          "  kubectl get svc -n openclaw\n"
          "  kubectl port-forward -n openclaw svc/openclaw 8080:8080")


def uninstall(args):
    """Removes what install applied; idempotent. NATS data stays unless --purge, which removes
    every OpenClaw stream and bucket (through nats-box, as the operator user), the NATS release
    when this install made it (and with it the users), and the Secrets; each failure is said,
    and a dry run says what it would do."""
    source = OUT if (OUT / "kustomization.yaml").is_file() else DEPLOY / "base"
    commands = [["delete", "-k", str(source), "--ignore-not-found", "--wait=false"]]
    if source != OUT:
        commands.insert(0, ["delete", "-k", str(DEPLOY / "overlays/keda"), "--ignore-not-found", "--wait=false"])
    commands.append(["-n", "openclaw", "delete", "secret", "openclaw-bridge", "openclaw-worker",
                     *[f"openclaw-worker-{agent}" for agent in AGENTS], "--ignore-not-found"])
    commands.append(["delete", "jobs", "-n", "openclaw", "-l", "app.kubernetes.io/managed-by=openclaw-bridge",
                     "--ignore-not-found"])
    failures = []
    for c in commands:
        if args.dry_run:
            print("would run: kubectl " + " ".join(c))
        elif (r := kubectl(*c, check=False)).returncode != 0:
            raise Stop(f"kubectl {' '.join(c[:4])} failed: {r.stderr.strip()}")
    if args.purge:
        failures = purge_nats(args)
    if args.dry_run:
        say("dry run: nothing was removed")
    elif failures:
        raise Stop(f"uninstalled, but the purge left {len(failures)} thing(s): {'; '.join(failures)}")
    else:
        say("OpenClaw uninstalled" + (" (NATS streams, buckets, users and Secrets purged)" if args.purge else
                                       "; NATS streams kept (--purge removes them)"))


def purge_nats(args):
    """Every OpenClaw stream and bucket, the NATS release this install made, the NATS Secrets.
    Returns what could not be removed."""
    failures = []

    def step(what, program, *command, gone=()):
        if args.dry_run:
            print(f"would {what}: {program} {' '.join(command)}")
            return
        r = (kubectl if program == "kubectl" else helm)(*command, check=False)
        text = (r.stdout + r.stderr).strip()
        if r.returncode != 0 and not any(g in text for g in gone):
            failures.append(f"{what}: {text.splitlines()[-1] if text else r.returncode}")
            say(f"could not {what}: {text.splitlines()[-1] if text else r.returncode}")
        else:
            say(what)

    for stream in STREAMS:
        step(f"remove stream {stream}", "kubectl", "-n", "nats", "exec", "deploy/nats-box", "--",
             "nats", "stream", "rm", "-f", stream, gone=("stream not found",))
    status = helm("status", "nats", "-n", "nats", "-o", "json", check=False) if have("helm") else None
    ours = status is not None and status.returncode == 0 and \
        json.loads(status.stdout or "{}").get("info", {}).get("description") == NATS_RELEASE_DESCRIPTION
    if ours or args.dry_run:
        step("uninstall the NATS release (its users with it)", "helm", "uninstall", "nats", "-n", "nats")
        step("remove the NATS data volumes", "kubectl", "-n", "nats", "delete", "pvc", "-l",
             "app.kubernetes.io/instance=nats", "--ignore-not-found")
    else:
        say("NATS was not installed by this install: remove the users bridge, worker-*, operator "
            "and the auth_callout block from its configuration yourself")
    step("remove the NATS users Secret", "kubectl", "-n", "nats", "delete", "secret", "openclaw-nats-users",
         "--ignore-not-found")
    # The callout's seed goes with the users: the NATS server trusted its public key.
    step("remove the callout seed Secret", "kubectl", "-n", "openclaw", "delete", "secret",
         "openclaw-nats-callout", "--ignore-not-found")
    return failures


def parser():
    """The command line of install.sh and uninstall.sh (the README's commands are checked
    against it)."""
    p = argparse.ArgumentParser(prog="deploy/install.py", description=__doc__.split("\n\n")[0])
    p.add_argument("action", choices=["install", "uninstall"])
    p.add_argument("--keda", action="store_true", help="KEDA's ScaledJobs start the workers")
    p.add_argument("--karpenter", action="store_true", help="add the spot ARM64 NodePool and EC2NodeClass")
    p.add_argument("--dry-run", action="store_true", help="print what would be applied; change nothing")
    p.add_argument("--config-dir", default=os.environ.get("OPENCLAW_CONFIG_DIR", "."),
                   help="where config.json and .env are (the starter kit's root)")
    p.add_argument("--purge", action="store_true", help="uninstall: remove the NATS streams and users too")
    p.add_argument("--images-from", metavar="FILE",
                   help="install the images scripts/push-images.sh pushed, by digest (its target/images/pushed.json)")
    p.add_argument("--build-images", metavar="REPOSITORY",
                   help="build the images (scripts/images.sh, 20-30 min), push them to REPOSITORY "
                        "(scripts/push-images.sh; ECR repositories are created) and install those")
    p.add_argument("--eks-auto-mode", action="store_true",
                   help="with --karpenter: the cluster is EKS Auto Mode (detected when not a dry run)")
    p.add_argument("--monitoring", action="store_true",
                   help="add a ServiceMonitor for the Prometheus Operator (and let namespace monitoring in)")
    p.add_argument("--monitoring-release", metavar="NAME",
                   help="label the ServiceMonitor release=NAME, as kube-prometheus-stack selects (implies --monitoring)")
    p.add_argument("--no-nats", action="store_true",
                   help="install: do not install NATS (one with deploy/nats/values.yaml runs already)")
    return p


def main(argv):
    args = parser().parse_args(argv)
    try:
        (install if args.action == "install" else uninstall)(args)
    except Stop as e:
        sys.exit(f"openclaw {args.action}: {e}")
    except subprocess.CalledProcessError as e:
        last = (e.stderr or "").strip().splitlines()
        sys.exit(f"openclaw {args.action}: {' '.join(map(str, e.cmd[:4]))} … failed: {last[-1] if last else e.returncode}")


if __name__ == "__main__":
    main(sys.argv[1:])
