"""
title: OpenClaw
author: OpenClaw
description: Run OpenClaw coding agents (one model per agent) from Open WebUI, with live progress.
version: 0.1.0
license: Apache-2.0
"""

# An Open WebUI pipe function (manifold): one model per OpenClaw agent, listed from the
# bridge's /v1/models. A chat message becomes a task (POST /v1/chat/completions, which keeps
# the conversation on one branch); its progress is followed on /v1/tasks/{id}/events and shown
# as status lines, the model's words stream into the chat, and the answer ends with the commit
# and branch. Needs only httpx and pydantic, which Open WebUI ships.

import json
import re
from typing import Any, AsyncGenerator, Awaitable, Callable, Optional

import httpx
from pydantic import BaseModel, Field

BACKGROUND_PROMPT = "### Task:"
MAX_MESSAGE_CHARS = 100_000
GIT_URL = re.compile(r"(https?://|ssh://|git://|file://|[\w.-]+@[\w.-]+:)\S+")


class Pipe:
    class Valves(BaseModel):
        OPENCLAW_BASE_URL: str = Field(
            default="http://openclaw.openclaw:8080",
            description="Base URL of the OpenClaw bridge",
        )
        OPENCLAW_TOKEN: str = Field(default="", description="OPENCLAW_GATEWAY_TOKEN of the bridge")
        REQUEST_TIMEOUT: int = Field(default=1800, description="Seconds to follow one task")
        DEFAULT_REPO: str = Field(
            default="", description="Git URL used when a message names no repository"
        )

    def __init__(self):
        self.type = "manifold"
        self.id = "openclaw"
        self.name = "OpenClaw: "
        self.valves = self.Valves()

    # -- helpers -----------------------------------------------------------------------------

    def _headers(self) -> dict:
        h = {"Accept": "application/json"}
        if self.valves.OPENCLAW_TOKEN:
            h["Authorization"] = f"Bearer {self.valves.OPENCLAW_TOKEN}"
        return h

    def _url(self, path: str) -> str:
        return self.valves.OPENCLAW_BASE_URL.rstrip("/") + path

    @staticmethod
    def _error_text(response: httpx.Response) -> str:
        try:
            err = response.json()["error"]
            if isinstance(err, dict):
                return err.get("message") or json.dumps(err)
            return str(err)
        except Exception:
            return response.text[:300] or f"HTTP {response.status_code}"

    # -- Open WebUI entry points -------------------------------------------------------------

    def pipes(self) -> list:
        """One entry per agent of the bridge."""
        try:
            r = httpx.get(self._url("/v1/models"), headers=self._headers(), timeout=10)
            if r.status_code != 200:
                return [{"id": "error", "name": f"unavailable: {self._error_text(r)}"}]
            agents = []
            for m in r.json().get("data", []):
                agent = m["id"].split(":", 1)[-1]
                agents.append({"id": agent, "name": agent})
            return agents
        except Exception as e:  # the bridge is down: show it in the model list
            return [{"id": "error", "name": f"unreachable: {e}"}]

    async def pipe(
        self,
        body: dict,
        __user__: Optional[dict] = None,
        __event_emitter__: Optional[Callable[[dict], Awaitable[Any]]] = None,
        __metadata__: Optional[dict] = None,
    ):
        messages = body.get("messages") or []
        last = next((m for m in reversed(messages) if m.get("role") == "user"), None)
        text = _text(last.get("content")) if last else ""
        if text.lstrip().startswith(BACKGROUND_PROMPT):
            return ""  # Open WebUI's title/tag prompts: not a task
        if not text.strip():
            return "OpenClaw: nothing to do — the message is empty."
        if len(text) > MAX_MESSAGE_CHARS:
            return f"OpenClaw: the message is too long ({len(text)} characters, at most {MAX_MESSAGE_CHARS})."
        agent = str(body.get("model", "")).split(".", 1)[-1]
        return self._run(agent, messages, text, __event_emitter__, __metadata__ or {}, __user__ or {})

    async def _run(self, agent, messages, text, emit, metadata, user) -> AsyncGenerator[str, None]:
        async def status(description: str, done: bool = False):
            if emit:
                await emit({"type": "status", "data": {"description": description, "done": done}})

        request = {
            "model": f"openclaw:{agent}",
            "stream": True,
            "messages": [{"role": m.get("role"), "content": _text(m.get("content"))} for m in messages],
        }
        if not GIT_URL.search(text) and self.valves.DEFAULT_REPO:
            request["repo"] = self.valves.DEFAULT_REPO
        headers = self._headers()
        if metadata.get("chat_id"):
            headers["x-openclaw-session-key"] = str(metadata["chat_id"])
        # Who is chatting, as Open WebUI forwards it on its connections
        # (ENABLE_FORWARD_USER_INFO_HEADERS): the bridge takes it from a `service` token only.
        for key, header in (("id", "X-OpenWebUI-User-Id"), ("email", "X-OpenWebUI-User-Email"),
                            ("name", "X-OpenWebUI-User-Name"), ("role", "X-OpenWebUI-User-Role")):
            value = user.get(key)
            if isinstance(value, str) and value and value.isprintable() and len(value) <= 200:
                headers[header] = value
        timeout = httpx.Timeout(self.valves.REQUEST_TIMEOUT, connect=10)
        try:
            async with httpx.AsyncClient(timeout=timeout) as client:
                # Start the task; the bridge names it in a header. Leaving this stream does not
                # cancel the task: its structured events are followed below instead.
                async with client.stream("POST", self._url("/v1/chat/completions"), json=request, headers=headers) as r:
                    if r.status_code != 200:
                        await r.aread()
                        await status("Could not start the task", done=True)
                        yield f"OpenClaw could not start the task: {self._error_text(r)}"
                        return
                    task_id = r.headers.get("x-openclaw-task-id")
                if not task_id:
                    yield "OpenClaw answered without starting a task."
                    return
                await status(f"Queued (task {task_id})")
                async with client.stream(
                    "GET", self._url(f"/v1/tasks/{task_id}/events"), headers=headers
                ) as events:
                    if events.status_code != 200:
                        await events.aread()
                        yield f"OpenClaw: cannot follow task {task_id}: {self._error_text(events)}"
                        return
                    async for line in events.aiter_lines():
                        if not line.startswith("data:"):
                            continue
                        event = json.loads(line[5:])
                        kind = event.get("type")
                        if kind == "message":
                            yield event["delta"]
                        elif kind == "started":
                            await status("Worker started" if event.get("attempt", 1) <= 1 else f"Worker started (attempt {event['attempt']})")
                        elif kind == "cloned":
                            await status(f"Cloned, working on {event['branch']}")
                        elif kind == "tool_call":
                            await status(f"{event['name']} {_describe(event.get('arguments', ''))}".strip())
                        elif kind == "committed":
                            await status(f"Committing {event['sha'][:10]} ({len(event.get('files', []))} files)")
                        elif kind == "pushed":
                            await status(f"Pushed to {event['branch']}")
                        elif kind == "failed" and event.get("retryable"):
                            await status(f"Attempt failed, retrying: {event['reason']}")
                        elif kind == "completed":
                            await status("Completed", done=True)
                            if event.get("commit"):
                                yield f"\n\n**Done:** commit `{event['commit'][:10]}` on branch `{event['branch']}`."
                            else:
                                yield "\n\n**Done.**"
                            return
                        elif kind in ("failed", "canceled"):
                            await status("Failed" if kind == "failed" else "Canceled", done=True)
                            yield f"\n\n**{kind.capitalize()}:** {event.get('reason', '')}"
                            return
        except httpx.TimeoutException:
            await status("Timed out", done=True)
            yield f"\n\nOpenClaw: no answer within {self.valves.REQUEST_TIMEOUT} s; the task may still be running."
        except httpx.HTTPError as e:
            await status("Connection failed", done=True)
            yield f"OpenClaw is unreachable at {self.valves.OPENCLAW_BASE_URL}: {e}"


def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _describe(arguments: str) -> str:
    try:
        args = json.loads(arguments)
    except ValueError:
        return ""
    if isinstance(args, dict):
        if "path" in args:
            return str(args["path"])
        if "command" in args:
            return " ".join([str(args["command"])] + [str(a) for a in args.get("args", [])])[:80]
    return ""
