"""The Open WebUI pipe, loaded the way Open WebUI loads a function (its source executed into a
fresh module), against a running bridge. usage: BASE TOKEN REPO_URL PIPE_FILE"""
import asyncio
import sys
import types

base, token, repo, pipe_file = sys.argv[1:5]


def load():
    module = types.ModuleType("function_openclaw")
    exec(compile(open(pipe_file).read(), pipe_file, "exec"), module.__dict__)
    return module


async def collect(result):
    if isinstance(result, str):
        return result
    return "".join([piece async for piece in result])


async def main():
    module = load()
    pipe = module.Pipe()
    pipe.valves = pipe.Valves(OPENCLAW_BASE_URL=base, OPENCLAW_TOKEN=token, REQUEST_TIMEOUT=120, DEFAULT_REPO=repo)

    models = pipe.pipes()
    assert [m["id"] for m in models] == ["coder", "devops", "doc-writer"], models

    statuses = []

    async def emitter(event):
        assert event["type"] == "status", event
        statuses.append((event["data"]["description"], event["data"]["done"]))

    body = {"model": "openclaw.doc-writer", "stream": True,
            "messages": [{"role": "user", "content": "Document how to run the program"}]}
    text = await collect(await pipe.pipe(body, __user__={"id": "u1", "role": "admin"},
                                         __event_emitter__=emitter, __metadata__={"chat_id": "chat-9"}))
    assert "Add a usage guide" in text, text
    assert "**Done:** commit `" in text and "on branch `openclaw/" in text, text
    described = [d for d, _ in statuses]
    order = ["Queued", "Worker started", "Cloned", "write_file docs/USAGE.md", "Committing", "Pushed to", "Completed"]
    positions = [next(i for i, d in enumerate(described) if d.startswith(o)) for o in order]
    assert positions == sorted(positions), described
    assert statuses[-1] == ("Completed", True), statuses
    assert all(not done for _, done in statuses[:-1]), statuses

    # Open WebUI's background prompts start nothing.
    bg = {"model": "openclaw.doc-writer", "messages": [{"role": "user", "content": "### Task:\nGenerate a title"}]}
    assert await collect(await pipe.pipe(bg, __user__={}, __event_emitter__=emitter)) == ""

    # Oversized messages are refused before reaching the bridge.
    big = {"model": "openclaw.doc-writer", "messages": [{"role": "user", "content": "x" * 100_001}]}
    assert "too long" in await collect(await pipe.pipe(big, __user__={}))

    # Errors become readable messages.
    pipe.valves = pipe.Valves(OPENCLAW_BASE_URL=base, OPENCLAW_TOKEN="wrong")
    assert pipe.pipes()[0]["id"] == "error"
    text = await collect(await pipe.pipe(body, __user__={}, __event_emitter__=emitter))
    assert text.startswith("OpenClaw could not start the task") and "bearer token" in text, text
    pipe.valves = pipe.Valves(OPENCLAW_BASE_URL=base, OPENCLAW_TOKEN=token)
    text = await collect(await pipe.pipe(body, __user__={}))  # no repo anywhere
    assert "which repository" in text, text
    pipe.valves = pipe.Valves(OPENCLAW_BASE_URL="http://127.0.0.1:9", OPENCLAW_TOKEN=token)
    text = await collect(await pipe.pipe(body, __user__={}))
    assert "unreachable" in text, text
    print("pipe: ok")


asyncio.run(main())
