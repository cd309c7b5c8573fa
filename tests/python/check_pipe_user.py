"""The Open WebUI pipe names the chatting user to the bridge (the headers Open WebUI forwards
on its connections), and follows that user's task to its end. usage: BASE TOKEN REPO_URL
PIPE_FILE"""
import asyncio
import sys
import types

base, token, repo, pipe_file = sys.argv[1:5]


async def main():
    module = types.ModuleType("function_openclaw")
    exec(compile(open(pipe_file).read(), pipe_file, "exec"), module.__dict__)
    pipe = module.Pipe()
    pipe.valves = pipe.Valves(OPENCLAW_BASE_URL=base, OPENCLAW_TOKEN=token, REQUEST_TIMEOUT=120, DEFAULT_REPO=repo)
    body = {"model": "openclaw.doc-writer", "stream": True,
            "messages": [{"role": "user", "content": "Document how to run the program"}]}
    user = {"id": "u-9", "email": "nine@example.com", "name": "Nine", "role": "user"}
    result = await pipe.pipe(body, __user__=user, __metadata__={"chat_id": "chat-1"})
    text = "".join([piece async for piece in result])
    assert "**Done:** commit `" in text, text
    print("pipe user: ok")


asyncio.run(main())
