"""scripts/push-images.sh against stand-ins for buildah and aws that record their calls (no
registry can run here): for an ECR repository it creates the missing repositories, signs in
with the token on stdin (never a command line), pushes each multi-arch image and records its
digest; `deploy/install.sh --images-from` then installs exactly those digests.
usage: REPO_ROOT WORK_DIR"""
import json
import os
import pathlib
import re
import subprocess
import sys

root, work = pathlib.Path(sys.argv[1]).resolve(), pathlib.Path(sys.argv[2])
log = work / "calls.log"
bin = work / "bin"
bin.mkdir()
target = work / "target"
(target / "containers").mkdir(parents=True)
(target / "containers" / "storage.conf").write_text("[storage]\n")
(bin / "aws").write_text(f"""#!/bin/sh
echo "aws $*" >> {log}
case "$*" in
  *"describe-repositories"*"openclaw/openclaw-worker-devops"*) exit 254;;
  *"get-login-password"*) echo "ecr-token-s3cret"; exit 0;;
esac
exit 0
""")
(bin / "buildah").write_text(f"""#!/bin/sh
echo "buildah $*" >> {log}
case "$1 $2" in
  "login --username") read token; echo "token on stdin: $token" >> {log}; exit 0;;
  "manifest push")
    while [ $# -gt 0 ]; do
      if [ "$1" = "--digestfile" ]; then printf 'sha256:%064d' $(echo "$*" | cksum | cut -c1-8) > "$2"; fi
      shift
    done; exit 0;;
esac
exit 0
""")
for f in bin.iterdir():
    f.chmod(0o755)
repo = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/openclaw"
env = dict(os.environ, PATH=f"{bin}:{os.environ['PATH']}", OPENCLAW_IMAGES_TARGET=str(target))
out = subprocess.run(["bash", str(root / "scripts/push-images.sh"), repo], capture_output=True, text=True, env=env)
assert out.returncode == 0, out.stderr
calls = log.read_text().splitlines()
version = re.search(r'^version = "(.*)"$', (root / "Cargo.toml").read_text(), re.M).group(1)
creates = [c for c in calls if "create-repository" in c]
assert creates == ["aws ecr create-repository --region eu-west-1 --repository-name openclaw/openclaw-worker-devops"], creates
login = calls.index("buildah login --username AWS --password-stdin 123456789012.dkr.ecr.eu-west-1.amazonaws.com")
# `aws … | buildah login`: the two run at once, so their lines interleave either way.
assert "aws ecr get-login-password --region eu-west-1" in calls, calls
assert "token on stdin: ecr-token-s3cret" in calls[login:], calls
assert not any("ecr-token-s3cret" in c for c in calls if not c.startswith("token on stdin")), calls
pushes = [c for c in calls if c.startswith("buildah manifest push")]
assert len(pushes) == 4 and all(" --all " in p for p in pushes), pushes
assert max(i for i, c in enumerate(calls) if "create-repository" in c) < login, calls
assert login < calls.index(pushes[0]), calls
pushed = json.loads((target / "images/pushed.json").read_text())
for image in ("bridge", "worker", "worker-devops", "worker-coder"):
    assert any(p.endswith(f"localhost/openclaw-{image}:{version} docker://{repo}/openclaw-{image}:{version}") for p in pushes), pushes
    assert re.fullmatch(rf"{re.escape(repo)}/openclaw-{image}@sha256:[0-9]{{64}}", pushed[f"openclaw-{image}"]), pushed

# The install takes exactly those digests, KEDA's ScaledJobs too.
kit = work / "kit"
kit.mkdir()
(kit / ".env").write_text("LITELLM_API_KEY=k\nOPENCLAW_GATEWAY_TOKEN=t\n")
env = dict(os.environ, OPENCLAW_INSTALL_DIR=str(work / "install"))
out = subprocess.run([str(root / "deploy/install.sh"), "--dry-run", "--keda", "--images-from",
                      str(target / "images/pushed.json"), "--config-dir", str(kit)],
                     capture_output=True, text=True, env=env)
assert out.returncode == 0, out.stderr
for image in ("bridge", "worker", "worker-devops", "worker-coder"):
    assert pushed[f"openclaw-{image}"] in out.stdout, (image, out.stdout[:2000])
assert f"{repo}/openclaw-worker:{version}" not in out.stdout
# A file without a digest is refused in one line.
(work / "bad.json").write_text(json.dumps({"openclaw-bridge": f"{repo}/openclaw-bridge:{version}"}))
out = subprocess.run([str(root / "deploy/install.sh"), "--dry-run", "--images-from", str(work / "bad.json"),
                      "--config-dir", str(kit)], capture_output=True, text=True, env=env)
assert out.returncode == 1 and "no digest for openclaw-bridge" in out.stderr.strip().splitlines()[-1], out.stderr
assert "Traceback" not in out.stderr
print("push images: ok")
