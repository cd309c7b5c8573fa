"""The request shape of the original bridge's Open WebUI pipes: POST /message with
{"message"} and a bearer token, then `data: {"content": …}` lines until `data: [DONE]`.
usage: BASE TOKEN REPO_URL"""
import json
import sys

import httpx

base, token, repo = sys.argv[1:4]
headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
content, errors, done = [], [], False
with httpx.stream("POST", f"{base}/message", json={"message": f"Document {repo}"}, headers=headers, timeout=120) as r:
    assert r.status_code == 200, r.status_code
    assert r.headers["content-type"] == "text/event-stream"
    for line in r.iter_lines():
        if not line:
            continue
        assert line.startswith("data: "), line
        data = line[6:]
        if data == "[DONE]":
            done = True
            break
        frame = json.loads(data)
        if "content" in frame:
            content.append(frame["content"])
        if "error" in frame:
            errors.append(frame["error"])
text = "".join(content)
assert done and not errors, (done, errors)
assert "Add a usage guide" in text and "Done: commit" in text, text

r = httpx.post(f"{base}/message", json={}, headers=headers)
assert r.status_code == 400 and r.json() == {"error": "Missing required field: message"}, r.text
r = httpx.post(f"{base}/message", json={"message": "x"}, headers={"Authorization": "Bearer wrong"})
assert r.status_code == 401, r.status_code
status = httpx.get(f"{base}/status", headers=headers).json()
assert status["status"] == "running" and isinstance(status["uptime"], int) and status["lastActivity"], status
print("original pipe contract: ok")
