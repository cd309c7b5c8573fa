"""deploy/install.sh against stand-ins for kubectl and helm that record every call (kubectl
renders with the real kubectl): the install checks its prerequisites, applies the Secrets the
NATS chart reads, installs NATS with deploy/nats/values.yaml, then the manifests, then waits
for the bridge — in that order; a missing helm, an unreachable cluster or a missing LiteLLM is
one line with its fix and exit 1, never a traceback; --no-nats leaves NATS alone.
usage: DEPLOY_DIR WORK_DIR"""
import json
import os
import pathlib
import shutil
import subprocess
import sys

deploy, work = pathlib.Path(sys.argv[1]).resolve(), pathlib.Path(sys.argv[2])
kit = work / "kit"
kit.mkdir()
(kit / "config.json").write_text(json.dumps({"ai-agent": {"openclaw": {"env": {"OPENCLAW_GATEWAY_TOKEN": "gw-s3cret"}}}}))
(kit / ".env").write_text("LITELLM_API_KEY=sk-s3cret\n")
real_kubectl = shutil.which("kubectl")
log = work / "calls.log"


def stand_ins(name, helm=True, cluster=True, litellm=True):
    """A bin folder whose kubectl (and helm) record their calls in calls.log."""
    bin = work / name
    bin.mkdir()
    (bin / "kubectl").write_text(f"""#!/bin/sh
echo "kubectl $*" >> {log}
case "$*" in
  kustomize*) exec {real_kubectl} "$@";;
  "get namespace default -o name") {"exit 0" if cluster else "echo 'connection refused' >&2; exit 1"};;
  "-n litellm get service litellm -o name") {"exit 0" if litellm else "exit 1"};;
  "-n nats get statefulset nats -o name") exit 1;;
  *" get secret "*) exit 1;;
  "create namespace "*) echo "apiVersion: v1"; echo "kind: Namespace"; exit 0;;
  "apply -f -") cat > /dev/null; exit 0;;
  *"nats stream rm -f OPENCLAW_EVENTS") echo "nats: error: context deadline exceeded" >&2; exit 1;;
  *"nats stream rm -f KV_openclaw_leases") echo "nats: error: stream not found" >&2; exit 1;;
  "apply -f "*.json) grep -o '"name": "[^"]*"' "$3" | head -1 >> {log}; exit 0;;
  *) exit 0;;
esac
""")
    if helm:
        (bin / "helm").write_text(f"""#!/bin/sh
echo "helm $*" >> {log}
case "$*" in
  "status nats -n nats -o json") echo '{{"info": {{"description": "installed by the OpenClaw install"}}}}'; exit 0;;
  status*) exit 1;;
esac
exit 0
""")
    for f in bin.iterdir():
        f.chmod(0o755)
    return bin


def install(bin, *flags, script="install.sh"):
    log.write_text("")
    env = dict(os.environ, PATH=f"{bin}:{os.environ['PATH']}", OPENCLAW_INSTALL_DIR=str(work / "install"))
    for k in ("LITELLM_API_KEY", "OPENCLAW_GATEWAY_TOKEN", "LITELLM_BASE_URL"):
        env.pop(k, None)
    config = ["--config-dir", str(kit)] if script == "install.sh" else []
    out = subprocess.run([str(deploy / script), *config, *flags], capture_output=True, text=True, env=env)
    return out, log.read_text().splitlines()


out, calls = install(stand_ins("full"))
assert out.returncode == 0, out.stderr
helm_install = next(i for i, c in enumerate(calls) if c.startswith("helm upgrade --install nats nats/nats -n nats"))
assert f"-f {deploy / 'nats/values.yaml'}" in calls[helm_install], calls[helm_install]
assert any(c.startswith("helm repo add nats https://nats-io.github.io/k8s/helm/charts/") for c in calls[:helm_install])
users = calls.index('"name": "openclaw-nats-users"')
callout = calls.index('"name": "openclaw-nats-callout"')
manifests = max(i for i, c in enumerate(calls) if c == "kubectl apply -f -")
rollout = next(i for i, c in enumerate(calls) if "rollout status deployment/openclaw" in c)
assert users < helm_install and callout < helm_install, calls
assert helm_install < manifests < rollout, calls
assert "s3cret" not in out.stdout + out.stderr
# nats-box signs in as the operator (a values file with the password, never a command line),
# and the release says who made it.
assert "--description installed by the OpenClaw install" in calls[helm_install], calls[helm_install]
assert calls[helm_install].count(" -f ") == 2 and "password" not in calls[helm_install], calls[helm_install]

# The purge: every stream and bucket through nats-box, the release this install made, the
# Secrets; a stream that is already gone is fine, one that cannot be removed is said, and the
# purge ends with exit 1 naming it.
bin = stand_ins("purge")
out, calls = install(bin, "--purge", script="uninstall.sh")
assert out.returncode == 1, out.stderr
for stream in ("OPENCLAW_TASKS", "OPENCLAW_EVENTS", "OPENCLAW_ADVISORIES", "KV_openclaw_tasks",
               "KV_openclaw_sessions", "KV_openclaw_leases", "KV_openclaw_deliveries"):
    assert f"kubectl -n nats exec deploy/nats-box -- nats stream rm -f {stream}" in calls, (stream, calls)
assert "helm uninstall nats -n nats" in calls, calls
assert any("delete secret openclaw-nats-users" in c for c in calls), calls
assert any("delete secret openclaw-nats-callout" in c for c in calls), calls
last = out.stderr.strip().splitlines()[-1]
assert "purge left 1 thing(s): remove stream OPENCLAW_EVENTS: nats: error: context deadline exceeded" in last, last
assert "Traceback" not in out.stderr
# Its dry run says what it would do, and does none of it.
out, calls = install(bin, "--purge", "--dry-run", script="uninstall.sh")
assert out.returncode == 0, out.stderr
assert not any("exec" in c or "delete" in c or c.startswith("helm uninstall") for c in calls), calls
for expected in ("would remove stream OPENCLAW_ADVISORIES", "would uninstall the NATS release",
                 "would remove the NATS users Secret", "nothing was removed"):
    assert expected in out.stdout + out.stderr, (expected, out.stdout, out.stderr)
assert "purged" not in out.stdout + out.stderr, out.stderr

out, calls = install(stand_ins("no-nats", helm=False), "--no-nats")
assert out.returncode == 0, out.stderr
assert not any(c.startswith("helm") for c in calls), calls
assert "not installed (--no-nats)" in out.stderr, out.stderr

for name, kwargs, expected in [
    ("no-helm", {"helm": False}, "helm not found"),
    ("no-cluster", {"cluster": False}, "kubectl cannot reach a cluster"),
    ("no-litellm", {"litellm": False}, "LiteLLM not found"),
]:
    out, calls = install(stand_ins(name, **kwargs))
    assert out.returncode == 1, (name, out.returncode, out.stderr)
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert expected in lines[-1] and lines[-1].startswith("openclaw install: "), (name, out.stderr)
    assert not any(c.startswith("kubectl apply") for c in calls), (name, calls)
# The same through the starter-kit component, copied alone into a kit's layout and pointed
# here by OPENCLAW_DIR, as `./cli ai-agent openclaw install` runs it: the same order, and a
# missing helm is one line and exit 1 from the component too.
component = work / "kit-layout/components/ai-agent/openclaw"
component.mkdir(parents=True)
shutil.copy(deploy / "starter-kit/index.mjs", component / "index.mjs")
run_component = ("const c = await import(process.argv[1]); await c.init(process.argv[2], {}, {}); "
                 "await c.install(); console.log('component install: done');")


def through_component(bin):
    log.write_text("")
    env = dict(os.environ, PATH=f"{bin}:{os.environ['PATH']}", OPENCLAW_INSTALL_DIR=str(work / "install"),
               OPENCLAW_DIR=str(deploy.parent))
    for k in ("LITELLM_API_KEY", "OPENCLAW_GATEWAY_TOKEN", "LITELLM_BASE_URL", "OPENCLAW_INSTALL_FLAGS"):
        env.pop(k, None)
    out = subprocess.run(["node", "--input-type=module", "-e", run_component, "--",
                          (component / "index.mjs").as_uri(), str(kit)], capture_output=True, text=True, env=env)
    return out, log.read_text().splitlines()


out, calls = through_component(stand_ins("component"))
assert out.returncode == 0 and "component install: done" in out.stdout, out.stderr
helm_install = next(i for i, c in enumerate(calls) if c.startswith("helm upgrade --install nats"))
assert calls.index('"name": "openclaw-nats-users"') < helm_install < \
    max(i for i, c in enumerate(calls) if c == "kubectl apply -f -"), calls
out, calls = through_component(stand_ins("component-no-helm", helm=False))
assert out.returncode == 1, out.stderr
assert out.stderr.strip().splitlines()[-1].startswith("openclaw install: helm not found"), out.stderr
assert "Traceback" not in out.stderr and "    at " not in out.stderr, out.stderr
print("install with NATS: ok")
