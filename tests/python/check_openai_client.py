"""The official openai client against a running bridge: models, then one non-streamed and one
streamed chat that each run a task end to end. usage: BASE TOKEN REPO_URL"""
import sys

import openai

base, token, repo = sys.argv[1:4]
client = openai.OpenAI(base_url=base + "/v1", api_key=token, max_retries=0, timeout=120)

ids = sorted(m.id for m in client.models.list())
assert ids == ["openclaw:coder", "openclaw:devops", "openclaw:doc-writer"], ids
assert all(m.owned_by == "openclaw" for m in client.models.list())

ask = [{"role": "user", "content": f"Document how to run the program in {repo}"}]
done = client.chat.completions.create(model="openclaw:doc-writer", messages=ask)
text = done.choices[0].message.content
assert "Add a usage guide" in text and "Done: commit" in text, text
assert done.choices[0].finish_reason == "stop"
assert done.usage.total_tokens > 0, done.usage

parts, finish, task_ids = [], [], set()
stream = client.chat.completions.create(model="openclaw:doc-writer", messages=ask, stream=True)
for chunk in stream:
    task_ids.add(chunk.id)
    if not chunk.choices:
        continue
    delta = chunk.choices[0].delta
    assert not delta.tool_calls, "the bridge never sends tool_calls"
    if delta.content:
        parts.append(delta.content)
    if chunk.choices[0].finish_reason:
        finish.append(chunk.choices[0].finish_reason)
streamed = "".join(parts)
assert "Add a usage guide" in streamed and "Done: commit" in streamed, streamed
assert finish == ["stop"], finish
assert len(task_ids) == 1, task_ids

try:
    client.chat.completions.create(model="gpt-4o", messages=ask)
    raise AssertionError("an unknown model must be refused")
except openai.BadRequestError as e:
    assert "openclaw:doc-writer" in str(e), e

bad = openai.OpenAI(base_url=base + "/v1", api_key="wrong", max_retries=0)
try:
    bad.models.list()
    raise AssertionError("a wrong token must be refused")
except openai.AuthenticationError:
    pass
print("openai client: ok")
