"""Codex CLI end to end: the real `codex exec` (npm @openai/codex) drives mesh-mcp, with its
model replaced by a scripted Responses API on 127.0.0.1 (a custom `model_providers` entry).

The same scripted session as Claude Code's (claude_code.py: a chain, parallel calls, one bad
call), over stdio and streamable HTTP. Codex offers MCP tools to its model as a `namespace`
tool (`mcp__mesh`), and the model calls them as `function_call`s in that namespace; mesh tools
need `default_tools_approval_mode = "approve"` on the server entry to run under `codex exec`.

Usage: codex_cli.py --codex NODE CODEX_JS --bin PATH. Prints `codex-cli: N passed, M failed`.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from claude_code import (FAILED, PASSED, WAIT_SCRIPT, Scripted, Waker, check, check_session, http_server,
                         session_script)


class ResponsesModel(Scripted):
    """The Responses API (`POST /v1/responses`, SSE), playing the script."""

    def __init__(self, script: list[list[dict]]) -> None:
        super().__init__(script)
        model = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                self.reply(model.stream(model.answer(body)), "text/event-stream")

            def do_GET(self):
                self.reply(b'{"object": "list", "data": []}', "application/json")

            def reply(self, data: bytes, kind: str):
                self.send_response(200)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.serve(Handler)

    def answer(self, body: dict) -> list[dict]:
        mesh = any(t.get("type") == "namespace" and t.get("name") == "mcp__mesh" for t in body.get("tools", []))
        if not mesh:
            return [text("ok")]
        items = body.get("input", [])
        with self.lock:
            for item in items:
                if item.get("type") == "function_call_output" and item.get("call_id", "").startswith("toolu_"):
                    self.results[item["call_id"]] = result_of(item.get("output"))
            steps = [int(i["call_id"].split("_")[1]) for i in items
                     if i.get("type") == "function_call" and i.get("call_id", "").startswith("toolu_")]
            step = max(steps) + 1 if steps else 0
            if step >= len(self.script):
                return [text("done")]
            return [{"type": "function_call", "id": f"fc_{step}_{i}", "call_id": f"toolu_{step}_{i}",
                     "namespace": "mcp__mesh", "name": c["tool"], "arguments": json.dumps(c["input"])}
                    for i, c in enumerate(self.calls(step))]

    def stream(self, output: list[dict]) -> bytes:
        events = [{"type": "response.created", "response": {"id": "resp_1"}}]
        events += [{"type": "response.output_item.done", "output_index": i, "item": item} for i, item in enumerate(output)]
        usage = {"input_tokens": 1, "input_tokens_details": None, "output_tokens": 1, "output_tokens_details": None,
                 "total_tokens": 2}
        events.append({"type": "response.completed", "response": {"id": "resp_1", "usage": usage}})
        return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


def text(t: str) -> dict:
    return {"type": "message", "id": "msg_1", "role": "assistant",
            "content": [{"type": "output_text", "text": t, "annotations": []}]}


def result_of(output) -> dict:
    """A tool result as Codex hands it to its model: a preamble (wall time) and then the tool's
    text, as a list of `input_text` parts or one string."""
    parts = output if isinstance(output, list) else [{"text": str(output)}]
    whole = "\n".join(p.get("text", "") for p in parts if isinstance(p, dict))
    content = whole.split("Output:", 1)[-1].strip()
    try:
        body = json.loads(content)
        is_error = isinstance(body, dict) and list(body) == ["error"]
    except ValueError:
        is_error = True
    return {"content": content, "is_error": is_error}


def run_codex(codex: list[str], model: ResponsesModel, work: Path, label: str, server: str) -> subprocess.CompletedProcess:
    home = work / f"{label}-codex-home"
    home.mkdir()
    (home / "config.toml").write_text(f"""model = "gpt-5"
model_provider = "scripted"
approval_policy = "never"

[model_providers.scripted]
name = "scripted"
base_url = "{model.url}/v1"
wire_api = "responses"
env_key = "SCRIPTED_API_KEY"

[mcp_servers.mesh]
{server}
default_tools_approval_mode = "approve"
""")
    project = work / label
    project.mkdir()
    env = dict(os.environ, CODEX_HOME=str(home), SCRIPTED_API_KEY="test", NO_COLOR="1")
    env.pop("MESH_MCP_DB", None)
    cmd = codex + ["exec", "--skip-git-repo-check", "run the mesh script"]
    return subprocess.run(cmd, cwd=project, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=240)


def scenario(codex: list[str], work: Path, label: str, server: str) -> None:
    print(f"== codex-cli: {label} ==", flush=True)
    model = ResponsesModel(session_script())
    out = run_codex(codex, model, work, label, server)
    check(out.returncode == 0, f"{label}: codex exec exits 0", (out.stdout + out.stderr)[-2000:])
    check_session(model, label)
    model.close()


def scenario_wake(codex: list[str], work: Path, binary: str) -> None:
    for label in ("wait-stdio", "wait-http"):
        print(f"== codex-cli: {label} ==", flush=True)
        db = str(work / f"{label}.db")
        waker = Waker(binary, db)
        model = ResponsesModel(WAIT_SCRIPT)
        token = json.dumps(waker.token)
        if label == "wait-stdio":
            server = f'command = {json.dumps(binary)}\nargs = ["serve", "--db", {json.dumps(db)}]\n' \
                     f'env = {{ MESH_AGENT_TOKEN = {token} }}'
            sender = waker.send_once_asked(model)
            out = run_codex(codex, model, work, label, server)
        else:
            with http_server(binary, work, label) as base:
                if base is None:
                    continue
                server = f'url = "{base}/mcp"\nhttp_headers = {{ "Mesh-Agent-Token" = {token} }}'
                sender = waker.send_once_asked(model)
                out = run_codex(codex, model, work, label, server)
        sender.join(timeout=5)
        check(out.returncode == 0, f"{label}: codex exec exits 0", (out.stdout + out.stderr)[-2000:])
        waker.check(model, label)
        model.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--codex", required=True, nargs="+")
    ap.add_argument("--bin", required=True)
    opts = ap.parse_args()
    binary = str(Path(opts.bin).resolve())
    version = subprocess.run(opts.codex + ["--version"], capture_output=True, text=True)
    print(f"codex-cli: {version.stdout.strip()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="mesh-codex-cli.") as tmp:
        work = Path(tmp)
        try:
            stdio = f'command = {json.dumps(binary)}\nargs = ["serve", "--db", {json.dumps(str(work / "stdio.db"))}]'
            scenario(opts.codex, work, "stdio", stdio)
            with http_server(binary, work, "http") as base:
                if base is not None:
                    scenario(opts.codex, work, "http", f'url = "{base}/mcp"')
            scenario_wake(opts.codex, work, binary)
        except Exception as e:  # a scenario that crashes is a failure, never a skip
            check(False, "the scenarios ran", repr(e))
    print(f"codex-cli: {PASSED[0]} passed, {FAILED[0]} failed", flush=True)
    return 1 if FAILED[0] else 0


if __name__ == "__main__":
    sys.exit(main())
