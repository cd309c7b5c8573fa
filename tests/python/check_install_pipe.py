"""openwebui/install_pipe.py against a stand-in for Open WebUI's admin API (Open WebUI itself
cannot be installed here): create, valves, toggle on; then update on a second run.
usage: INSTALL_SCRIPT"""
import http.server
import importlib.util
import json
import sys
import threading

calls = []
functions = {}


class AdminApi(http.server.BaseHTTPRequestHandler):
    def _reply(self, code, body):
        raw = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self):
        calls.append(("GET", self.path))
        assert self.headers["Authorization"] == "Bearer admin-key"
        fid = self.path.rsplit("/", 1)[-1]
        if fid in functions:
            self._reply(200, functions[fid])
        else:
            self._reply(404, {"detail": "not found"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"null")
        calls.append(("POST", self.path))
        assert self.headers["Authorization"] == "Bearer admin-key"
        if self.path == "/api/v1/functions/create":
            assert body["id"] == "openclaw" and "class Pipe" in body["content"], body
            functions["openclaw"] = {**body, "is_active": False, "valves": {}}
            return self._reply(200, functions["openclaw"])
        fid = self.path.split("/")[5]
        if self.path.endswith("/update") and "/valves/" not in self.path:
            functions[fid].update(body)
        elif self.path.endswith("/valves/update"):
            functions[fid]["valves"] = body
        elif self.path.endswith("/toggle"):
            functions[fid]["is_active"] = not functions[fid]["is_active"]
        self._reply(200, functions[fid])

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), AdminApi)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_address[1]}"

spec = importlib.util.spec_from_file_location("install_pipe", sys.argv[1])
install = importlib.util.module_from_spec(spec)
spec.loader.exec_module(install)

args = ["--openwebui", url, "--api-key", "admin-key", "--bridge", "http://bridge:8080", "--token", "t0k"]
assert install.main(args) == 0
assert [c for c in calls if c[0] == "POST"] == [
    ("POST", "/api/v1/functions/create"),
    ("POST", "/api/v1/functions/id/openclaw/valves/update"),
    ("POST", "/api/v1/functions/id/openclaw/toggle"),
], calls
assert functions["openclaw"]["is_active"] is True
assert functions["openclaw"]["valves"] == {"OPENCLAW_BASE_URL": "http://bridge:8080", "OPENCLAW_TOKEN": "t0k"}

calls.clear()
assert install.main(args) == 0
assert ("POST", "/api/v1/functions/id/openclaw/update") in calls, calls
assert ("POST", "/api/v1/functions/id/openclaw/toggle") not in calls, "already active"
assert functions["openclaw"]["is_active"] is True
print("install script: ok")
