"""deploy/install.py without a cluster: settings precedence (page defaults < config.json <
.env < environment), the starter kit's Langfuse detection rule on a recorded `kubectl get pod
-n langfuse -l app=web` answer, and `install.sh --dry-run`: the model, base URL, repository and
Langfuse settings rendered as specified, no secret value anywhere in its output.
usage: DEPLOY_DIR WORK_DIR"""
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

deploy, work = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
spec = importlib.util.spec_from_file_location("install", deploy / "install.py")
install = importlib.util.module_from_spec(spec)
spec.loader.exec_module(install)

# What the page's command prints with Langfuse running, and without.
RECORDED = """NAME                            READY   STATUS    RESTARTS   AGE
langfuse-web-7d9c8b6f5d-x2x8k   1/1     Running   0          3d
"""
assert install.langfuse_detected(RECORDED)
assert not install.langfuse_detected("")
assert not install.langfuse_detected("No resources found in langfuse namespace.\n")

kit = work / "kit"
kit.mkdir()
SECRETS = ["gw-token-s3cret-1", "sk-litellm-s3cret-2", "pk-lf-s3cret-3", "sk-lf-s3cret-4"]
(kit / "config.json").write_text(json.dumps({
    "ai-agent": {"openclaw": {"env": {"LITELLM_MODEL_NAME": "bedrock/claude-4.5-haiku",
                                      "OPENCLAW_GATEWAY_TOKEN": SECRETS[0],
                                      "OPENCLAW_WORKER_COST_PER_HOUR": "0.0408"}}},
    "examples": {"openclaw": {"doc-writer": {"env": {"GIT_REPO_URL": "https://github.com/org/docs.git"}}}},
}))
(kit / ".env").write_text(f"LITELLM_API_KEY={SECRETS[1]}\nLANGFUSE_PUBLIC_KEY={SECRETS[2]}\n"
                          f"LANGFUSE_SECRET_KEY={SECRETS[3]}\nEKS_CLUSTER_NAME=kit-cluster\n"
                          # A misspelt setting of ours is reported (not its value); another
                          # component's is not ours to judge.
                          "OPENCLAW_DOC_WRITR_GIT_TOKEN=typo-s3cret\nOPENWEBUI_PORT=8080\n")

settings, origin = install.load_settings(kit, {})
assert settings["LITELLM_BASE_URL"] == "http://litellm.litellm:4000" and origin["LITELLM_BASE_URL"] == "default"
assert settings["LITELLM_MODEL_NAME"] == "bedrock/claude-4.5-haiku" and origin["LITELLM_MODEL_NAME"] == "config.json"
assert settings["LITELLM_API_KEY"] == SECRETS[1] and origin["LITELLM_API_KEY"] == ".env"
assert settings["CLUSTER_NAME"] == "kit-cluster"
settings, origin = install.load_settings(kit, {"LITELLM_MODEL_NAME": "bedrock/claude-4.5-opus"})
assert settings["LITELLM_MODEL_NAME"] == "bedrock/claude-4.5-opus" and origin["LITELLM_MODEL_NAME"] == "environment"

# The dry run, with a kubectl that answers the Langfuse question as a cluster running it does
# and is the real kubectl for everything else (rendering).
real = subprocess.run(["sh", "-c", "command -v kubectl"], capture_output=True, text=True).stdout.strip()
shim = work / "bin"
shim.mkdir()
(shim / "kubectl").write_text(f"""#!/bin/sh
if [ "$1 $2 $3 $4" = "get pod -n langfuse" ]; then cat <<'EOF'
{RECORDED}EOF
  exit 0
fi
if [ "$1" = "-n" ] && [ "$3" = "get" ] && [ "$4" = "secret" ]; then exit 1; fi
case "$1" in kustomize) exec {real} "$@";; esac
echo "the dry run ran: kubectl $*" >&2; exit 99
""")
(shim / "kubectl").chmod(0o755)
env = dict(os.environ, PATH=f"{shim}:{os.environ['PATH']}", OPENCLAW_INSTALL_DIR=str(work / "install"))
for k in install.SETTINGS:
    env.pop(k, None)
out = subprocess.run([str(deploy / "install.sh"), "--dry-run", "--karpenter", "--config-dir", str(kit)],
                     capture_output=True, text=True, env=env)
assert out.returncode == 0, out.stderr
text = out.stdout + out.stderr
for secret in SECRETS:
    assert secret not in text, f"a secret value is in the dry run's output: {secret}"
assert "Langfuse detected: traces go to http://langfuse-web.langfuse:3000" in out.stderr, out.stderr
assert ".env: OPENCLAW_DOC_WRITR_GIT_TOKEN is not an OpenClaw setting; ignored" in out.stderr, out.stderr
assert "typo-s3cret" not in text and "OPENWEBUI_PORT" not in out.stderr
for expected in ["LITELLM_MODEL_NAME: bedrock/claude-4.5-haiku",
                 "LITELLM_BASE_URL: http://litellm.litellm:4000",
                 "LANGFUSE_HOST: http://langfuse-web.langfuse:3000",
                 # The compute rate from config.json reaches the workers' settings.
                 'OPENCLAW_WORKER_COST_PER_HOUR: "0.0408"',
                 "value: https://github.com/org/docs.git",
                 "role: KarpenterNodeRole-kit-cluster",
                 '"LITELLM_API_KEY": "[redacted]"',
                 # The auth callout: the bridge's seed in its own Secret, the issuer beside the
                 # NATS users, both redacted.
                 '"name": "openclaw-nats-callout"',
                 '"OPENCLAW_NATS_CALLOUT_SEED": "[redacted]"',
                 '"callout_issuer": "[redacted]"',
                 "name: openclaw\n"]:
    assert expected in out.stdout, f"missing {expected!r}"
# Langfuse reachable from the workers, the kit's Open WebUI namespace admitted.
assert "kubernetes.io/metadata.name: langfuse" in out.stdout
assert "kubernetes.io/metadata.name: openwebui" in out.stdout
# --monitoring-release: the ServiceMonitor carries the label kube-prometheus-stack selects on.
out = subprocess.run([str(deploy / "install.sh"), "--dry-run", "--monitoring-release", "kps",
                      "--config-dir", str(kit)], capture_output=True, text=True, env=env)
assert out.returncode == 0, out.stderr
import yaml
monitors = [o for o in yaml.safe_load_all(out.stdout.split("\n---\n{")[0]) if o and o["kind"] == "ServiceMonitor"]
assert len(monitors) == 1 and monitors[0]["metadata"]["labels"]["release"] == "kps", monitors
# --karpenter on EKS Auto Mode: a NodePool on Auto Mode's NodeClass, no EC2NodeClass, no
# cluster name needed.
out = subprocess.run([str(deploy / "install.sh"), "--dry-run", "--karpenter", "--eks-auto-mode",
                      "--config-dir", str(work / "plain")], capture_output=True, text=True,
                     env=dict(env, OPENCLAW_GATEWAY_TOKEN="t", LITELLM_API_KEY="k"))
assert out.returncode == 0, out.stderr
objects = [o for o in yaml.safe_load_all(out.stdout.split("\n---\n{")[0]) if o]
pools = [o for o in objects if o["kind"] == "NodePool"]
assert len(pools) == 1 and pools[0]["spec"]["template"]["spec"]["nodeClassRef"] == \
    {"group": "eks.amazonaws.com", "kind": "NodeClass", "name": "default"}, pools
assert not [o for o in objects if o["kind"] == "EC2NodeClass"]
print("install dry run: ok")
