#!/usr/bin/env python3
"""Installs or updates the OpenClaw pipe in Open WebUI through its admin API, sets its
valves and switches it on.

usage: install_pipe.py --openwebui URL --api-key KEY [--bridge URL] [--token TOKEN] [--default-repo URL]

KEY is an Open WebUI admin API key (Settings → Account → API keys). Stdlib only.
"""
import argparse
import json
import pathlib
import sys
import urllib.error
import urllib.request

FUNCTION_ID = "openclaw"
PIPE = pathlib.Path(__file__).with_name("openclaw_pipe.py")


def call(base, key, method, path, body=None):
    req = urllib.request.Request(
        base.rstrip("/") + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, {"detail": raw.decode(errors="replace")}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--openwebui", required=True, help="Open WebUI base URL")
    p.add_argument("--api-key", required=True, help="Open WebUI admin API key")
    p.add_argument("--bridge", default="", help="OPENCLAW_BASE_URL valve")
    p.add_argument("--token", default="", help="OPENCLAW_TOKEN valve")
    p.add_argument("--default-repo", default="", help="DEFAULT_REPO valve")
    a = p.parse_args(argv)

    form = {
        "id": FUNCTION_ID,
        "name": "OpenClaw",
        "content": PIPE.read_text(),
        "meta": {"description": "OpenClaw coding agents", "manifest": {}},
    }
    status, existing = call(a.openwebui, a.api_key, "GET", f"/api/v1/functions/id/{FUNCTION_ID}")
    if status == 200 and existing:
        status, out = call(a.openwebui, a.api_key, "POST", f"/api/v1/functions/id/{FUNCTION_ID}/update", form)
        action = "updated"
    else:
        status, out = call(a.openwebui, a.api_key, "POST", "/api/v1/functions/create", form)
        action = "created"
    if status != 200:
        print(f"Open WebUI refused the function ({status}): {out}", file=sys.stderr)
        return 1
    valves = {k: v for k, v in {
        "OPENCLAW_BASE_URL": a.bridge, "OPENCLAW_TOKEN": a.token, "DEFAULT_REPO": a.default_repo,
    }.items() if v}
    if valves:
        status, out = call(a.openwebui, a.api_key, "POST", f"/api/v1/functions/id/{FUNCTION_ID}/valves/update", valves)
        if status != 200:
            print(f"Open WebUI refused the valves ({status}): {out}", file=sys.stderr)
            return 1
    status, current = call(a.openwebui, a.api_key, "GET", f"/api/v1/functions/id/{FUNCTION_ID}")
    if status == 200 and current and not current.get("is_active"):
        status, out = call(a.openwebui, a.api_key, "POST", f"/api/v1/functions/id/{FUNCTION_ID}/toggle")
        if status != 200:
            print(f"Open WebUI did not switch the function on ({status}): {out}", file=sys.stderr)
            return 1
    print(f"OpenClaw pipe {action} and active in {a.openwebui}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
