"""What the starter kit's example-agent pipes do (examples/openclaw/{doc-writer,devops-agent}/
openwebui_pipe_function.py in aws-samples/sample-genai-on-eks-starter-kit, which cannot be
vendored here): POST {"message"} — no repository — to their default AGENT_ENDPOINT,
http://doc-writer.openclaw:8080/message or http://devops-agent.openclaw:8080/message, with
the bearer token, and read `data: ` lines until `data: [DONE]`. Those names resolve to the
test's bridge here (as the Services do in the kit's cluster); the Host header stays theirs.
usage: BRIDGE_PORT TOKEN"""
import json
import socket
import sys

import httpx

port, token = int(sys.argv[1]), sys.argv[2]
ENDPOINTS = {
    "doc-writer": "http://doc-writer.openclaw:8080/message",
    "devops": "http://devops-agent.openclaw:8080/message",
}
real_getaddrinfo = socket.getaddrinfo


def kit_dns(host, port_, *args, **kwargs):
    if host in ("doc-writer.openclaw", "devops-agent.openclaw") and int(port_) == 8080:
        return real_getaddrinfo("127.0.0.1", port, *args, **kwargs)
    return real_getaddrinfo(host, port_, *args, **kwargs)


socket.getaddrinfo = kit_dns

for agent, endpoint in ENDPOINTS.items():
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    content, errors, done = [], [], False
    with httpx.stream("POST", endpoint, json={"message": "Write a usage guide"}, headers=headers, timeout=120) as r:
        assert r.status_code == 200, (agent, r.status_code, r.read())
        for line in r.iter_lines():
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data == "[DONE]":
                done = True
                break
            frame = json.loads(data)
            content.append(frame.get("content", ""))
            if "error" in frame:
                errors.append(frame["error"])
    text = "".join(content)
    assert done and not errors, (agent, errors, text)
    assert f"queued for {agent}" in text, (agent, text)
    print(f"{agent}: ok")
