"""Gemini CLI end to end: the real `gemini` CLI (npm @google/gemini-cli) drives mesh-mcp, with
its model API replaced by a scripted Gemini API on 127.0.0.1 (`GOOGLE_GEMINI_BASE_URL`).

The same scripted session as Claude Code's (claude_code.py: a chain, parallel calls, one bad
call), over stdio, streamable HTTP (`httpUrl`) and legacy SSE (`url`): the transports Gemini CLI
supports. Gemini adds `wait_for_previous` to every tool's arguments; the session sets it too.

Usage: gemini_cli.py --gemini NODE GEMINI_JS --bin PATH (or --gemini PATH to an executable). Prints `gemini-cli: N passed, M failed`.
"""

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from claude_code import (FAILED, PASSED, WAIT_SCRIPT, Scripted, Waker, check, check_session, http_server,
                         session_script)


class GeminiModel(Scripted):
    """Gemini's generateContent / streamGenerateContent, playing the script. Requests without
    the mesh tools (Gemini CLI's side requests, such as its next-speaker check) get a JSON
    text answer."""

    def __init__(self, script: list[list[dict]]) -> None:
        super().__init__(script)
        model = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                if ":countTokens" in self.path:
                    return self.reply({"totalTokens": 10}, False)
                self.reply(model.answer(body), "alt=sse" in self.path)

            def reply(self, obj: dict, sse: bool):
                data = (f"data: {json.dumps(obj)}\r\n\r\n" if sse else json.dumps(obj)).encode()
                self.send_response(200)
                self.send_header("content-type", "text/event-stream" if sse else "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.serve(Handler)

    def answer(self, body: dict) -> dict:
        names = [d.get("name", "") for t in body.get("tools", []) for d in t.get("functionDeclarations", [])]
        init = next((n for n in names if n.endswith("swarm_init")), None)
        if init is None:
            parts = [{"text": json.dumps({"next_speaker": "user", "reasoning": "the script is done"})}]
            return candidate(parts)
        prefix = init[: -len("swarm_init")]
        contents = body.get("contents", [])
        with self.lock:
            step = 0
            for c in contents:
                if c.get("role") == "model":
                    step += 1
                    continue
                responses = [p["functionResponse"] for p in c.get("parts", []) if "functionResponse" in p]
                for i, r in enumerate(responses):
                    self.results[f"toolu_{step - 1}_{i}"] = result_of(r.get("response", {}))
            if step >= len(self.script):
                return candidate([{"text": "done"}])
            calls = [{"functionCall": {"name": prefix + c["tool"], "args": {**c["input"], "wait_for_previous": True}}}
                     for c in self.calls(step)]
            return candidate(calls)


def candidate(parts: list[dict]) -> dict:
    return {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2}}


def result_of(response: dict) -> dict:
    """A tool result as Gemini CLI hands it to its model: `{output}` (the text, fenced as untrusted
    context) or `{error}`."""
    if "error" in response:
        return {"content": json.dumps(response["error"]) if not isinstance(response["error"], str) else response["error"],
                "is_error": True}
    text = response.get("output", "")
    text = text.replace("<untrusted_context>", "").replace("</untrusted_context>", "").strip()
    try:
        is_error = "error" in json.loads(text) and len(json.loads(text)) == 1
    except ValueError:
        is_error = True
    return {"content": text, "is_error": is_error}


def run_gemini(gemini: list[str], model: GeminiModel, project: Path, home: Path, server: dict) -> subprocess.CompletedProcess:
    (project / ".gemini").mkdir(parents=True, exist_ok=True)
    (project / ".gemini" / "settings.json").write_text(json.dumps({"mcpServers": {"mesh": {**server, "trust": True}}}))
    (home / ".gemini").mkdir(parents=True, exist_ok=True)
    (home / ".gemini" / "settings.json").write_text(json.dumps({"security": {"auth": {"selectedType": "gemini-api-key"}}}))
    env = dict(os.environ, HOME=str(home), GEMINI_API_KEY="test", GOOGLE_GEMINI_BASE_URL=model.url,
               GEMINI_CLI_TRUST_WORKSPACE="true", NO_COLOR="1")
    env.pop("MESH_MCP_DB", None)
    cmd = gemini + ["-p", "run the mesh script", "--output-format", "json", "-m", "gemini-2.5-pro"]
    return subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=240)


def scenario(gemini: list[str], work: Path, label: str, server: dict) -> None:
    print(f"== gemini-cli: {label} ==", flush=True)
    model = GeminiModel(session_script())
    project = work / label
    project.mkdir()
    out = run_gemini(gemini, model, project, work / "home", server)
    check(out.returncode == 0, f"{label}: gemini -p exits 0", (out.stdout + out.stderr)[-2000:])
    check_session(model, label)
    model.close()


def scenario_wake(gemini: list[str], work: Path, binary: str) -> None:
    for label in ("wait-stdio", "wait-http"):
        print(f"== gemini-cli: {label} ==", flush=True)
        db = str(work / f"{label}.db")
        waker = Waker(binary, db)
        model = GeminiModel(WAIT_SCRIPT)
        project = work / label
        project.mkdir()
        with contextlib.ExitStack() as stack:
            if label == "wait-stdio":
                server = {"command": binary, "args": ["serve", "--db", db], "env": {"MESH_AGENT_TOKEN": waker.token}}
            else:
                base = stack.enter_context(http_server(binary, work, label))
                if base is None:
                    continue
                server = {"httpUrl": f"{base}/mcp", "headers": {"Mesh-Agent-Token": waker.token}}
            sender = waker.send_once_asked(model)
            out = run_gemini(gemini, model, project, work / "home", server)
            sender.join(timeout=5)
            check(out.returncode == 0, f"{label}: gemini -p exits 0", (out.stdout + out.stderr)[-2000:])
            waker.check(model, label)
        model.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gemini", required=True, nargs="+")
    ap.add_argument("--bin", required=True)
    opts = ap.parse_args()
    binary = str(Path(opts.bin).resolve())
    version = subprocess.run(opts.gemini + ["--version"], capture_output=True, text=True)
    print(f"gemini-cli: {version.stdout.strip()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="mesh-gemini-cli.") as tmp:
        work = Path(tmp)
        runs = [("stdio", lambda: {"command": binary, "args": ["serve", "--db", str(work / "stdio.db")]}),
                ("http", None), ("sse", None)]
        for label, stdio in runs:
            try:
                if stdio:
                    scenario(opts.gemini, work, label, stdio())
                    continue
                with http_server(binary, work, label) as base:
                    if base is not None:
                        entry = {"httpUrl": f"{base}/mcp"} if label == "http" else {"url": f"{base}/sse"}
                        scenario(opts.gemini, work, label, entry)
            except Exception as e:  # a scenario that crashes is a failure, never a skip
                check(False, f"{label} ran", repr(e))
        try:
            scenario_wake(opts.gemini, work, binary)
        except Exception as e:
            check(False, "the wait scenarios ran", repr(e))
    print(f"gemini-cli: {PASSED[0]} passed, {FAILED[0]} failed", flush=True)
    return 1 if FAILED[0] else 0


if __name__ == "__main__":
    sys.exit(main())
