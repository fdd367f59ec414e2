"""Claude Code end to end: the real `claude` CLI (npm @anthropic-ai/claude-code) drives mesh-mcp,
with its model API replaced by a scripted Messages API server on 127.0.0.1 written here.

The scripted "model" answers each request with the next step of a script: tool calls (several
at once for a parallel step), whose arguments may cite fields of earlier results
(`{{name.field}}`), then a final text. It records every tool result Claude Code sends back,
and the test asserts on those: what the client really handed its model.

Scenarios: a bound session's `wait` woken by another process, and one outliving the client's
idle watchdog through its progress; the server over stdio, streamable HTTP and legacy SSE (every tool called, every step
a success but one deliberate bad call), and the agent kit (`mesh-mcp init claude`) loaded by Claude Code in a
project, whose hooks must leave the session's swarm in the store. Two more run Claude Code
interactively in a pseudo-terminal, as a user at a terminal does: a session bound to an agent
with the server as a development channel, which must show the model a message another process
sends the agent; and the kit's hooks restating the team after `/compact`. And two bound sessions
sharing a git repository: one's reservation refuses the other's reserve and, through the git
guard, its `git commit` (Claude Code's Bash tool), until a message asks it to release.

Usage: claude_code.py --claude PATH --bin PATH. Prints `claude-code: N passed, M failed`.
"""

import argparse
import contextlib
import itertools
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PASSED, FAILED = [0], [0]


def check(cond: bool, what: str, detail=None) -> None:
    if cond:
        PASSED[0] += 1
        print(f"  ok   {what}", flush=True)
    else:
        FAILED[0] += 1
        print(f"  FAIL {what}" + (f"\n       {str(detail)[:1500]}" if detail is not None else ""), flush=True)


# --- the scripted model -------------------------------------------------------------------------

class Scripted:
    """What every scripted model shares: the script (a list of steps, each a list of calls
    {"tool", "input", "save"?}), the results the client sent back (by `toolu_<step>_<i>`), and
    arguments that cite earlier results (`{{name.field}}`)."""

    def __init__(self, script: list[list[dict]]) -> None:
        self.script = script
        self.results: dict[str, dict] = {}  # toolu_<step>_<i> -> {"content", "is_error"}
        self.lock = threading.Lock()
        self.asked: set[int] = set()  # the steps whose calls the model has made

    def saved(self, name: str):
        for step_i, step in enumerate(self.script):
            for i, call in enumerate(step):
                if call.get("save") == name:
                    return json.loads(self.results[f"toolu_{step_i}_{i}"]["content"])
        raise KeyError(name)

    def substitute(self, value):
        if isinstance(value, str):
            m = re.fullmatch(r"\{\{(\w+)((?:\.\w+)+)\}\}", value)
            if not m:
                return value
            found = self.saved(m.group(1))
            for field in m.group(2).split(".")[1:]:
                found = found[field]
            return found
        if isinstance(value, list):
            return [self.substitute(v) for v in value]
        if isinstance(value, dict):
            return {k: self.substitute(v) for k, v in value.items()}
        return value

    def calls(self, step: int) -> list[dict]:
        """The calls of step `step`, their arguments substituted, noted as made."""
        self.asked.add(step)
        return [{**call, "input": self.substitute(call["input"])} for call in self.script[step]]

    def result(self, step: int, i: int = 0):
        return self.results.get(f"toolu_{step}_{i}")

    def serve(self, handler) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()


class Model(Scripted):
    """Anthropic's Messages API, playing the script. Requests without the mesh tools (Claude
    Code's side requests) get a plain text answer."""

    def __init__(self, script: list[list[dict]]) -> None:
        super().__init__(script)
        self.ids = itertools.count()
        model = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                if "count_tokens" in self.path:
                    return self.reply(json.dumps({"input_tokens": 10}).encode(), "application/json")
                blocks, stop = model.answer(body)
                if body.get("stream"):
                    return self.reply(model.stream(blocks, stop), "text/event-stream")
                return self.reply(json.dumps(model.message(blocks, stop)).encode(), "application/json")

            def do_GET(self):
                self.reply(b"{}", "application/json")

            def reply(self, data: bytes, kind: str):
                self.send_response(200)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.serve(Handler)

    def answer(self, body: dict):
        tools = [t.get("name", "") for t in body.get("tools", [])]
        if not any(t.startswith("mcp__mesh__") for t in tools):
            return [{"type": "text", "text": "ok"}], "end_turn"
        messages = body.get("messages", [])
        with self.lock:
            for m in messages:
                if m.get("role") == "user" and isinstance(m.get("content"), list):
                    for c in m["content"]:
                        if c.get("type") == "tool_result":
                            self.results[c["tool_use_id"]] = {"content": text_of(c.get("content")),
                                                              "is_error": bool(c.get("is_error"))}
            step = sum(1 for m in messages if m.get("role") == "assistant")
            if step >= len(self.script):
                return [{"type": "text", "text": "done"}], "end_turn"
            blocks = []
            for i, call in enumerate(self.calls(step)):
                name = call["tool"] if call.get("builtin") else "mcp__mesh__" + call["tool"]
                blocks.append({"type": "tool_use", "id": f"toolu_{step}_{i}", "name": name, "input": call["input"]})
            return blocks, "tool_use"

    def message(self, blocks, stop):
        return {"id": f"msg_{next(self.ids)}", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                "content": blocks, "stop_reason": stop, "stop_sequence": None,
                "usage": {"input_tokens": 1, "output_tokens": 1}}

    def stream(self, blocks, stop) -> bytes:
        start = self.message([], None)
        events = [{"type": "message_start", "message": start}]
        for i, b in enumerate(blocks):
            if b["type"] == "text":
                events.append({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}})
                events.append({"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": b["text"]}})
            else:
                head = {"type": "tool_use", "id": b["id"], "name": b["name"], "input": {}}
                events.append({"type": "content_block_start", "index": i, "content_block": head})
                events.append({"type": "content_block_delta", "index": i,
                               "delta": {"type": "input_json_delta", "partial_json": json.dumps(b["input"])}})
            events.append({"type": "content_block_stop", "index": i})
        events.append({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                       "usage": {"output_tokens": 1}})
        events.append({"type": "message_stop"})
        return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


def text_of(content) -> str:
    if isinstance(content, str):
        return content
    return "".join(c.get("text", "") for c in content or [] if isinstance(c, dict))


# --- running Claude Code ------------------------------------------------------------------------

def run_claude(claude: str, model: Model, cwd: Path, home: Path, extra: list[str],
               path: str | None = None, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PATH=path or os.environ.get("PATH", ""), HOME=str(home), ANTHROPIC_BASE_URL=model.url, ANTHROPIC_API_KEY="sk-test",
               CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1", DISABLE_AUTOUPDATER="1", CLAUDE_PROJECT_DIR=str(cwd),
               **(env_extra or {}))
    env.pop("MESH_MCP_DB", None)
    cmd = [claude, "-p", "run the mesh script", "--output-format", "json", "--model", "claude-sonnet-4-5",
           "--allowedTools", "mcp__mesh__*"] + extra
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)


SWARM = "cc-e2e"


def session_script() -> list[list[dict]]:
    """The scripted session: every tool at least once, a chain (spawn, then act with the spawned
    token; propose, then read the proposal by the id it got), parallel steps, and bad calls
    (step BAD_STEP): two, one the client may refuse itself (a number for a string) and one only
    the server can (a name taken), each with a word its error must contain."""
    s = {"swarmId": SWARM}
    a = {"agentId": "a", "agentToken": "{{a.agentToken}}", **s}
    outputs = [{"agentType": "coder", "content": "ship the parser after the review"},
               {"agentType": "reviewer", "content": "ship the parser once the review passes"}]
    return [
        [{"tool": "swarm_init", "input": {"topology": "mesh", "heartbeatInterval": 600, "messageTimeout": 3600, **s}}],
        [{"tool": "agent_spawn", "input": {"type": "coder", "name": "a", **s}, "save": "a"},
         {"tool": "agent_spawn", "input": {"type": "reviewer", "name": "b", **s}, "save": "b"}],
        [{"tool": "daa_communication", "input": {"from": "a", "to": "b", "message": {"task": "review"},
                                                  "agentToken": "{{a.agentToken}}", **s}}],
        [{"tool": "daa_communication", "input": {"action": "receive", "agentId": "b", "agentToken": "{{b.agentToken}}", **s}},
         {"tool": "memory_usage", "input": {"action": "store", "key": "plan", "value": "ship it", "namespace": "cc"}}],
        [{"tool": "agent_spawn", "input": {"type": 7, **s}, "error": "type"},
         {"tool": "agent_spawn", "input": {"type": "coder", "name": "a", **s}, "error": "already exists"}],
        [{"tool": "swarm_status", "input": s}, {"tool": "agent_list", "input": s},
         {"tool": "memory_search", "input": {"pattern": "ship", "namespace": "cc"}}],
        [{"tool": "topology_optimize", "input": s}, {"tool": "load_balance", "input": s},
         {"tool": "daa_fault_tolerance", "input": {"strategy": "heartbeat", **a}}],
        [{"tool": "daa_consensus", "input": {"agents": "all", "proposal": "ship the parser", **a}, "save": "p"},
         {"tool": "task_orchestrate", "input": {"taskId": "t1", "task": "write the docs", **a}},
         {"tool": "reservations", "input": {"action": "reserve", "paths": ["src/parser/**"], "reason": "review", **a}}],
        [{"tool": "daa_consensus", "input": {"action": "status", "proposalId": "{{p.proposal.proposalId}}", **s}},
         {"tool": "task_status", "input": {"taskId": "t1", **s}}, {"tool": "task_results", "input": {"taskId": "t1", **s}}],
        [{"tool": "neural_patterns", "input": {"action": "store", "task": "review a parser", "input": "diff",
                                                "output": "approved", "reward": 0.9, "success": True}},
         {"tool": "performance_report", "input": {"timeframe": "1h"}},
         {"tool": "swarm_monitor", "input": {"interval": 0.1, "duration": 0.2, **s}},
         {"tool": "attention_consensus", "input": {"mode": "peers", "outputs": outputs}}],
        [{"tool": "swarm_destroy", "input": s}],
    ]


BAD_STEP = 4


CATALOGUE = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "tools").glob("*.json"))


# --- a bound session waits, and wakes when another process sends ---------------------------------

WAIT_SCRIPT = [[{"tool": "daa_communication", "input": {"action": "wait", "timeoutSecs": 60}}]]


class Waker:
    """Swarm `wake` on `db`, agents `a` and `b`: a CLI's session is bound to b (its `token`, in
    the server's environment or a header), and its model calls `wait` (WAIT_SCRIPT); two seconds
    after the model made that call, another process sends a -> b, and the wait must return it."""

    def __init__(self, binary: str, db: str) -> None:
        self.binary, self.db = binary, db
        mesh(binary, db, "swarm_init", "mesh", "--swarmId=wake", "--heartbeatInterval=600", "--messageTimeout=3600")
        mesh(binary, db, "agent_spawn", "coder", "--name=a", "--swarmId=wake")
        self.token = mesh(binary, db, "agent_spawn", "reviewer", "--name=b", "--swarmId=wake").get("agentToken", "")

    def send_once_asked(self, model: Scripted) -> threading.Thread:
        def run():
            deadline = time.monotonic() + 120
            while 0 not in model.asked and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(2)
            mesh(self.binary, self.db, "daa_communication", "--from=a", "--to=b", '--message={"wake":"up"}',
                 "--swarmId=wake")
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def check(self, model: Scripted, label: str) -> None:
        r = model.result(0)
        try:
            body = json.loads(r["content"])
        except (TypeError, ValueError, KeyError):
            body = {}
        woke = body.get("woke") == "message" and body.get("messages", [{}])[0].get("message") == {"wake": "up"}
        check(woke, f"{label}: the bound session's wait woke with the message ({body.get('waitedMs')} ms)", r)


def error_message(content: str) -> str:
    """The message of a tool error as the client handed it over: ours is JSON with error.message;
    a client that refused the call itself (Gemini checks arguments against the schema) says why."""
    try:
        return json.loads(content)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return content


def check_session(model: Scripted, label: str) -> None:
    script = model.script
    called = sorted({call["tool"] for step in script for call in step})
    check(called == CATALOGUE, f"{label}: the session calls every tool", sorted(set(CATALOGUE) - set(called)))
    for step_i, step in enumerate(script):
        for i, call in enumerate(step):
            r = model.result(step_i, i)
            bad = step_i == BAD_STEP
            what = f"{label}: {call['tool']} (step {step_i})"
            if r is None:
                check(False, f"{what}: a result came back", model.results.keys())
            elif bad:
                check(r["is_error"] and call["error"] in r["content"], f"{what}: the bad call is a clear tool error", r)
                check(r["content"].count(error_message(r["content"])[:40]) == 1, f"{what}: the model is told the error once", r)
            else:
                check(not r["is_error"], what, r)
    received = model.result(3, 0)
    if received and not received["is_error"]:
        body = json.loads(received["content"])
        check(body["messages"][0]["message"] == {"task": "review"}, f"{label}: the chained send reached b", body)


def scenario_stdio(claude: str, binary: str, work: Path) -> None:
    print("== claude-code: stdio ==", flush=True)
    model = Model(session_script())
    config = {"mcpServers": {"mesh": {"command": binary, "args": ["serve", "--db", str(work / "stdio.db")]}}}
    (work / "stdio.json").write_text(json.dumps(config))
    out = run_claude(claude, model, work, work / "home", ["--mcp-config", str(work / "stdio.json"), "--strict-mcp-config"])
    check(out.returncode == 0, "claude -p exits 0", out.stderr[-2000:])
    check_session(model, "stdio")
    model.close()


def scenario_wake(claude: str, binary: str, work: Path) -> None:
    for label in ("wait-stdio", "wait-http"):
        print(f"== claude-code: {label} ==", flush=True)
        waker = Waker(binary, str(work / f"{label}.db"))
        model = Model(WAIT_SCRIPT)
        with contextlib.ExitStack() as stack:
            if label == "wait-stdio":
                entry = {"command": binary, "args": ["serve", "--db", str(work / f"{label}.db")],
                         "env": {"MESH_AGENT_TOKEN": waker.token}}
            else:
                base = stack.enter_context(http_server(binary, work, label))
                if base is None:
                    continue
                entry = {"type": "http", "url": f"{base}/mcp", "headers": {"Mesh-Agent-Token": waker.token}}
            (work / f"{label}.json").write_text(json.dumps({"mcpServers": {"mesh": entry}}))
            sender = waker.send_once_asked(model)
            out = run_claude(claude, model, work, work / "home", ["--mcp-config", str(work / f"{label}.json"),
                                                                  "--strict-mcp-config"])
            sender.join(timeout=5)
            check(out.returncode == 0, f"{label}: claude -p exits 0", out.stderr[-2000:])
            waker.check(model, label)
        model.close()


# Claude Code aborts a remote tool call that sends neither a result nor progress for its idle
# timeout (5 min by default, checked every 30 s); here it is 10 s, and the wait lasts 75 s.
IDLE_TIMEOUT_MS, LONG_WAIT_SECS = 10_000, 75


def scenario_watchdog(claude: str, binary: str, work: Path) -> None:
    """A wait many times longer than the client's idle watchdog lives to its end, because it
    reports progress every 5 s: Claude Code over HTTP, bound by header, with nothing arriving."""
    label = "wait-watchdog"
    print(f"== claude-code: {label} ==", flush=True)
    waker = Waker(binary, str(work / f"{label}.db"))
    model = Model([[{"tool": "daa_communication", "input": {"action": "wait", "timeoutSecs": LONG_WAIT_SECS}}]])
    with http_server(binary, work, label) as base:
        if base is None:
            return
        entry = {"type": "http", "url": f"{base}/mcp", "headers": {"Mesh-Agent-Token": waker.token}}
        (work / f"{label}.json").write_text(json.dumps({"mcpServers": {"mesh": entry}}))
        out = run_claude(claude, model, work, work / "home", ["--mcp-config", str(work / f"{label}.json"),
                                                              "--strict-mcp-config"],
                         env_extra={"CLAUDE_CODE_MCP_TOOL_IDLE_TIMEOUT": str(IDLE_TIMEOUT_MS)})
        check(out.returncode == 0, f"{label}: claude -p exits 0", out.stderr[-2000:])
        r = model.result(0) or {}
        try:
            body = json.loads(r.get("content", ""))
        except ValueError:
            body = {}
        lived = not r.get("is_error") and body.get("woke") == "timeout" and body.get("waitedMs", 0) >= LONG_WAIT_SECS * 1000
        check(lived, f"{label}: a {LONG_WAIT_SECS} s wait outlived a {IDLE_TIMEOUT_MS // 1000} s idle watchdog", r)
    model.close()


@contextlib.contextmanager
def http_server(binary: str, work: Path, name: str):
    """`mesh-mcp serve --http 127.0.0.1:0` on its own database; yields its base URL (None if it
    never announced one, which is checked as a failure)."""
    log = work / f"{name}-server.log"
    server = subprocess.Popen([binary, "serve", "--http", "127.0.0.1:0", "--db", str(work / f"{name}.db")],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
    try:
        base = None
        deadline = time.monotonic() + 30
        while base is None and time.monotonic() < deadline:
            m = re.search(r"listening on (http://\S+)", log.read_text(errors="replace"))
            base = m.group(1).rstrip("/") if m else None
            time.sleep(0.05)
        check(base is not None, "the HTTP server announced its address", log.read_text(errors="replace"))
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def scenario_http(claude: str, binary: str, work: Path) -> None:
    for label, kind, path in [("http", "http", "/mcp"), ("sse", "sse", "/sse")]:
        print(f"== claude-code: {label} ==", flush=True)
        with http_server(binary, work, label) as base:
            if base is None:
                continue
            model = Model(session_script())
            config = {"mcpServers": {"mesh": {"type": kind, "url": f"{base}{path}"}}}
            (work / f"{label}.json").write_text(json.dumps(config))
            extra = ["--mcp-config", str(work / f"{label}.json"), "--strict-mcp-config"]
            out = run_claude(claude, model, work, work / "home", extra)
            check(out.returncode == 0, f"{label}: claude -p exits 0", out.stderr[-2000:])
            check_session(model, label)
            model.close()


def scenario_kit(claude: str, binary: str, work: Path) -> None:
    print("== claude-code: the agent kit ==", flush=True)
    project = work / "project"
    project.mkdir()
    (project / ".git").mkdir()
    bin_dir = str(Path(binary).parent)
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""), CLAUDE_PROJECT_DIR=str(project))
    env.pop("MESH_MCP_DB", None)
    init = subprocess.run([binary, "init", "claude"], cwd=project, env=env, capture_output=True, text=True)
    check(init.returncode == 0, "mesh-mcp init claude", init.stderr)
    model = Model([[{"tool": "memory_usage", "input": {"action": "store", "key": "kit", "value": "loaded", "namespace": "cc"}}]])
    # The kit's hooks run `mesh-mcp hook`, found on PATH as a user's install would be.
    out = run_claude(claude, model, project, work / "kit-home", [], path=env["PATH"])
    check(out.returncode == 0, "claude -p in the project exits 0", out.stderr[-2000:])
    r = model.result(0)
    check(r is not None and not r["is_error"], "the project's .mcp.json server answered", r)
    try:
        session = json.loads(out.stdout)["session_id"]
    except (ValueError, KeyError):
        session = ""
    check(bool(session), "claude reported its session id", out.stdout[-500:])
    swarm = "cc-" + "".join(c for c in session if c.isalnum() or c == "-")[:12]
    db = str(project / ".mesh" / "mesh.db")
    status = subprocess.run([binary, "--db", db, "call", "agent_list", f"--swarmId={swarm}"], env=env,
                            capture_output=True, text=True)
    names = [a["name"] for a in json.loads(status.stdout or "{}").get("agents", [])] if status.returncode == 0 else []
    check("lead" in names, f"the SessionStart hook made swarm {swarm} with its lead", status.stdout + status.stderr)
    kept = subprocess.run([binary, "--db", db, "call", "memory_usage", "retrieve", f"session:{swarm}:status",
                           "--namespace=mesh"], env=env, capture_output=True, text=True)
    check(kept.returncode == 0 and swarm in kept.stdout, "the Stop hook kept the swarm's status", kept.stdout + kept.stderr)


# --- Claude Code as a supervised worker ----------------------------------------------------------

def scenario_worker(claude: str, binary: str, work: Path) -> None:
    """`agent_spawn` with the built-in `claude` profile: `mesh-mcp supervise` starts the real
    Claude Code (`claude -p`, streaming JSON, an MCP configuration bound to the agent), whose
    scripted model waits for a task, claims and completes it through the worker's own session."""
    print("== claude-code: a supervised worker ==", flush=True)
    project = work / "worker-project"
    project.mkdir()
    db = str(project / "mesh.db")
    model = Model([
        [{"tool": "daa_communication", "input": {"action": "wait", "timeoutSecs": 60}}],
        [{"tool": "task_orchestrate", "input": {"action": "claim", "taskId": "t1"}, "save": "claim"}],
        [{"tool": "task_orchestrate", "input": {"action": "complete", "taskId": "t1",
                                                "fencingToken": "{{claim.fencingToken}}",
                                                "result": {"reviewed": "parser"}}}],
    ])
    home = work / "worker-home"
    home.mkdir()
    env = dict(os.environ, PATH=str(Path(claude).parent) + os.pathsep + os.environ.get("PATH", ""), HOME=str(home),
               ANTHROPIC_BASE_URL=model.url, ANTHROPIC_API_KEY="sk-test", CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
               DISABLE_AUTOUPDATER="1")
    env.pop("MESH_MCP_DB", None)

    def call(*args: str) -> dict:
        out = subprocess.run([binary, "--db", db, "call", *args], cwd=project, env=env, capture_output=True, text=True)
        try:
            return json.loads(out.stdout)
        except ValueError:
            return {"error": out.stdout + out.stderr}

    call("swarm_init", "mesh", "--swarmId=wk", "--heartbeatInterval=600", "--messageTimeout=3600")
    spawned = call("agent_spawn", "reviewer", "--name=cc", "--profile=claude", "--prompt=review what you are given")
    check(spawned.get("worker") == "claude", "agent_spawn asked for a claude worker", spawned)
    supervisor = subprocess.Popen([binary, "--db", db, "supervise", "--project", str(project)], cwd=project, env=env,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while 0 not in model.asked and time.monotonic() < deadline:
            time.sleep(0.2)
        check(0 in model.asked, "the worker's model was asked to wait")
        call("task_orchestrate", "--task=review the parser", "--taskId=t1", "--swarmId=wk")
        result = {}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not result.get("result"):
            time.sleep(0.5)
            result = call("task_results", "--taskId=t1", "--swarmId=wk")
        check(result.get("result") == {"reviewed": "parser"}, "Claude Code completed the task as its agent", result)
        worker = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and worker.get("state") != "exited":
            time.sleep(0.5)
            agents = call("agent_list", "--swarmId=wk").get("agents", [])
            worker = next((a.get("worker") for a in agents if a["name"] == "cc"), None) or {}
        check(worker.get("profile") == "claude" and worker.get("state") == "exited"
              and worker.get("lastExit", {}).get("code") == 0, "agent_list shows the worker done", worker)
        spend = worker.get("spend") or {}
        check(spend.get("outputTokens", 0) > 0 and spend.get("costUsd", 0) > 0,
              "the spend Claude Code reported is recorded", worker)
    finally:
        supervisor.terminate()
        supervisor.wait(timeout=30)
        model.close()


# --- Claude Code in a terminal ------------------------------------------------------------------

class Tui:
    """Claude Code in a pseudo-terminal. `seen` is what it drew, escape sequences and spaces
    removed (it positions words with cursor moves), for waiting on a dialog or the prompt."""

    def __init__(self, cmd: list[str], cwd: Path, env: dict) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.chdir(cwd)
            os.execve(cmd[0], cmd, env)
        self.raw = b""

    def pump(self, secs: float) -> None:
        end = time.monotonic() + secs
        while (left := end - time.monotonic()) > 0:
            ready, _, _ = select.select([self.fd], [], [], min(left, 0.2))
            if ready:
                try:
                    self.raw += os.read(self.fd, 65536)
                except OSError:
                    return

    def seen(self) -> str:
        text = re.sub(rb"\x1b\[[0-9;?<>=]*[a-zA-Z]|\x1b\][^\x07]*\x07", b"", self.raw).decode(errors="replace")
        return re.sub(r"\s+", "", text)

    def until(self, what: str, cond, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return True
            self.pump(0.3)
        check(False, f"waited for {what}", self.seen()[-1500:])
        return False

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())
        self.pump(0.5)
        os.write(self.fd, b"\r")

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


class Listener(Scripted):
    """A model that only answers "ok", and keeps the text of every request, to look for what
    Claude Code put in its model's context."""

    def __init__(self) -> None:
        super().__init__([])
        self.requests: list[str] = []
        self.turns: list[str] = []  # the requests that offer the mesh tools: the conversation's own
        base = Model([])
        base.close()
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                if "count_tokens" in self.path:
                    return self.reply(json.dumps({"input_tokens": 10}).encode(), "application/json")
                text = json.dumps(body.get("messages", []))
                mesh = any(t.get("name", "").startswith("mcp__mesh__") for t in body.get("tools", []))
                with listener.lock:
                    listener.requests.append(text)
                    if mesh:
                        listener.turns.append(text)
                summary = "<analysis>a greeting</analysis><summary>The user greeted and sent prompts.</summary>"
                blocks = [{"type": "text", "text": summary if COMPACTING in text else "ok"}]
                if body.get("stream"):
                    return self.reply(base.stream(blocks, "end_turn"), "text/event-stream")
                return self.reply(json.dumps(base.message(blocks, "end_turn")).encode(), "application/json")

            def do_GET(self):
                self.reply(b"{}", "application/json")

            def reply(self, data: bytes, kind: str):
                self.send_response(200)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.serve(Handler)

    def find(self, needle: str, but: str | None = None, turn: bool = False):
        """The last request that holds `needle` (and not `but`); with `turn`, only among the
        conversation's own requests (not Claude Code's side requests, such as a session title)."""
        with self.lock:
            pool = self.turns if turn else self.requests
            return next((r for r in reversed(pool) if needle in r and not (but and but in r)), None)


# What Claude Code's request to summarise a conversation for /compact says.
COMPACTING = "provide your summary"


INTERACTIVE_KEY = "sk-ant-test-0123456789abcdefghijklmnop"


def interactive(claude: str, model: Scripted, cwd: Path, home: Path, args: list[str],
                path: str | None = None) -> Tui:
    """Claude Code at a terminal in `cwd`, its first run's dialogs answered ahead in its config
    (onboarding, the folder trusted, the API key approved). Channels are behind a feature flag
    that Claude Code reads from its config when it cannot fetch flags, as here."""
    home.mkdir(parents=True, exist_ok=True)
    config = {"hasCompletedOnboarding": True, "cachedGrowthBookFeatures": {"tengu_harbor": True},
              "customApiKeyResponses": {"approved": [INTERACTIVE_KEY[-20:]], "rejected": []},
              "projects": {str(cwd): {"hasTrustDialogAccepted": True, "hasCompletedProjectOnboarding": True}}}
    (home / ".claude.json").write_text(json.dumps(config))
    env = dict(os.environ, PATH=path or os.environ.get("PATH", ""), HOME=str(home), ANTHROPIC_BASE_URL=model.url,
               ANTHROPIC_API_KEY=INTERACTIVE_KEY, DISABLE_AUTOUPDATER="1", TERM="xterm-256color",
               CLAUDE_PROJECT_DIR=str(cwd))
    for var in ("MESH_MCP_DB", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "DISABLE_TELEMETRY"):
        env.pop(var, None)
    return Tui([claude, *args, "--model", "claude-sonnet-4-5", "--allowedTools", "mcp__mesh__*"], cwd, env)


def mesh(binary: str, db: str, *args: str) -> dict:
    out = subprocess.run([binary, "--db", db, "call", *args], capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if k != "MESH_MCP_DB"})
    try:
        return json.loads(out.stdout)
    except ValueError:
        return {"error": out.stdout + out.stderr}


def scenario_channel(claude: str, binary: str, work: Path) -> None:
    print("== claude-code: a channel to a bound session ==", flush=True)
    cwd = work / "channel"
    cwd.mkdir()
    db = str(cwd / "mesh.db")
    mesh(binary, db, "swarm_init", "mesh", "--swarmId=ch", "--heartbeatInterval=600", "--messageTimeout=3600")
    sender = mesh(binary, db, "agent_spawn", "coder", "--name=a")
    token = mesh(binary, db, "agent_spawn", "reviewer", "--name=b").get("agentToken", "")
    check(bool(token), "b was spawned")
    config = {"mcpServers": {"mesh": {"command": binary, "args": ["serve", "--db", db],
                                      "env": {"MESH_AGENT_TOKEN": token}}}}
    (cwd / "mcp.json").write_text(json.dumps(config))
    model = Listener()
    args = ["wait for mail", "--mcp-config", str(cwd / "mcp.json"), "--strict-mcp-config",
            "--dangerously-load-development-channels", "server:mesh"]
    tui = interactive(claude, model, cwd, work / "channel-home", args)
    try:
        if not tui.until("the development channels warning", lambda: "localdevelopment" in tui.seen()):
            return
        tui.type("")

        def bound() -> bool:
            agents = mesh(binary, db, "agent_list", "--swarmId=ch").get("agents", [])
            return any(a["name"] == "b" and a["status"] in ("active", "idle") for a in agents)

        if not tui.until("the session to bind b", bound):
            return
        tui.pump(1)
        sent = mesh(binary, db, "daa_communication", "--from=a", "--to=b", '--message={"review":"parser"}',
                    "--swarmId=ch")
        check("delivered" in sent, "a sent b a message from another process", sent)
        needle = '<channel source=\\"mesh\\"'
        if tui.until("the message in a request to the model", lambda: model.find(needle) is not None):
            pushed = model.find(needle)
            check('{\\"review\\":\\"parser\\"}' in pushed and sender.get("agentId", "?") in pushed,
                  "the model was shown the message and its sender", pushed[-800:])
        check(not any(token in r for r in model.requests), "no request to the model carries b's token")
    finally:
        tui.close()
        model.close()


def scenario_compact(claude: str, binary: str, work: Path) -> None:
    print("== claude-code: the team restated after /compact ==", flush=True)
    project = work / "compact"
    project.mkdir()
    (project / ".git").mkdir()
    path = str(Path(binary).parent) + os.pathsep + os.environ.get("PATH", "")
    env = dict(os.environ, PATH=path, CLAUDE_PROJECT_DIR=str(project))
    env.pop("MESH_MCP_DB", None)
    init = subprocess.run([binary, "init", "claude"], cwd=project, env=env, capture_output=True, text=True)
    check(init.returncode == 0, "mesh-mcp init claude", init.stderr)
    db = str(project / ".mesh" / "mesh.db")
    model = Listener()
    tui = interactive(claude, model, project, work / "compact-home", ["hello"], path=path)
    try:
        if not tui.until("the first request", lambda: model.find("hello") is not None):
            return
        tui.pump(2)
        # The SessionStart hook made the session's swarm, the only one in this database.
        spawned = mesh(binary, db, "agent_spawn", "tester", "--name=t")
        sent = mesh(binary, db, "daa_communication", "--from=t", "--to=lead", '--message={"note":1}')
        check("delivered" in sent, "a teammate sent lead a message", [spawned, sent])
        # Compaction needs a conversation to summarise.
        for prompt in ("second prompt", "third prompt", "fourth prompt"):
            tui.type(prompt)
            if not tui.until(f"the reply to {prompt!r}", lambda: model.find(prompt) is not None):
                return
            tui.pump(1)
        tui.type("/compact")
        if not tui.until("the compaction", lambda: model.find(COMPACTING) is not None):
            return
        tui.pump(3)
        tui.type("after compact")
        if tui.until("the next prompt", lambda: model.find("after compact", COMPACTING, turn=True) is not None):
            after = model.find("after compact", COMPACTING, turn=True)
            check("its coordinator is `lead`" in after and "`lead` has 1 unread message(s)" in after,
                  "after /compact the model is told who the team is and what is unread", after[-1500:])
    finally:
        tui.close()
        model.close()


# --- two bound sessions share a repository through reservations and the git guard -----------------

def scenario_reservations(claude: str, binary: str, work: Path) -> None:
    """Sessions A and B, bound to agents a and b of one swarm, work in one git repository with
    the guard installed. A reserves src/store/** and waits; B's reserve of a file in it is
    refused, its `git commit` (Claude Code's Bash tool, in the session's environment) is refused
    by the guard naming a, and it asks a to release; A wakes, releases and answers; B's commit
    then goes through."""
    print("== claude-code: reservations and the git guard, two sessions ==", flush=True)
    project, db = work / "resv", str(work / "resv.db")
    (project / "src" / "store").mkdir(parents=True)
    (project / "src" / "store" / "sqlite.rs").write_text("fn main() {}\n")
    for args in (["init", "-q", "."], ["config", "user.email", "t@example.com"], ["config", "user.name", "t"],
                 ["add", "."], ["commit", "-qm", "start"]):
        subprocess.run(["git", *args], cwd=project, check=True, capture_output=True)
    installed = subprocess.run([binary, "--db", db, "guard", "install", "--repo", str(project)], capture_output=True, text=True)
    check(installed.returncode == 0, "mesh-mcp guard install", installed.stderr)
    mesh(binary, db, "swarm_init", "mesh", "--swarmId=repo", "--heartbeatInterval=600", "--messageTimeout=3600")
    tokens = {n: mesh(binary, db, "agent_spawn", "coder", f"--name={n}", "--swarmId=repo").get("agentToken", "") for n in "ab"}
    (project / "src" / "store" / "sqlite.rs").write_text("fn main() { wal() }\n")
    commit = {"command": "git add -A && git commit -qm 'b edits the store'", "description": "commit b's change"}
    a_model = Model([
        [{"tool": "reservations", "input": {"action": "reserve", "paths": ["src/store/**"], "reason": "WAL rework"}}],
        [{"tool": "daa_communication", "input": {"action": "wait", "timeoutSecs": 120}}],
        [{"tool": "reservations", "input": {"action": "release"}},
         {"tool": "daa_communication", "input": {"to": "b", "message": {"released": "src/store/**"}}}],
    ])
    b_model = Model([
        [{"tool": "reservations", "input": {"action": "reserve", "paths": ["src/store/sqlite.rs"]}}],
        [{"tool": "Bash", "builtin": True, "input": commit}],
        [{"tool": "daa_communication", "input": {"to": "a", "message": {"please": "release src/store/**"}}}],
        [{"tool": "daa_communication", "input": {"action": "wait", "timeoutSecs": 120}}],
        [{"tool": "Bash", "builtin": True, "input": commit}],
    ])
    config = {"mcpServers": {"mesh": {"command": binary, "args": ["serve", "--db", db]}}}
    (work / "resv.json").write_text(json.dumps(config))
    extra = ["--mcp-config", str(work / "resv.json"), "--strict-mcp-config", "--allowedTools", "Bash"]
    outs = {}

    def run(name, model):
        outs[name] = run_claude(claude, model, project, work / f"resv-home-{name}", extra,
                                env_extra={"MESH_AGENT_TOKEN": tokens[name]})
    a_thread = threading.Thread(target=run, args=("a", a_model), daemon=True)
    a_thread.start()
    deadline = time.monotonic() + 120
    while 1 not in a_model.asked and time.monotonic() < deadline:
        time.sleep(0.1)
    run("b", b_model)
    a_thread.join(timeout=240)
    for name in "ab":
        out = outs.get(name)
        check(out is not None and out.returncode == 0, f"session {name}: claude -p exits 0", out and out.stderr[-1500:])
    refused = b_model.result(0) or {}
    check(refused.get("is_error") and "held by `a`" in refused.get("content", "") and "WAL rework" in refused.get("content", ""),
          "B's reserve inside A's glob is refused, naming a and its reason", refused)
    blocked = b_model.result(1) or {}
    check("pre-commit refused" in blocked.get("content", "") and "src/store/sqlite.rs: reserved by `a`" in blocked.get("content", ""),
          "B's git commit is refused by the guard, naming a", blocked)
    woke = a_model.result(1) or {}
    check('"woke":"message"' in woke.get("content", ""), "A's wait woke on B's request", woke)
    released = a_model.result(2, 0) or {}
    check('"path":"src/store/**"' in released.get("content", "") and not released.get("is_error"),
          "A's release says what it released", released)
    done = b_model.result(4) or {}
    log = subprocess.run(["git", "log", "--format=%s"], cwd=project, capture_output=True, text=True).stdout
    check(not done.get("is_error") and "b edits the store" in log, "B's commit goes through after the release", (done, log))
    for m in (a_model, b_model):
        m.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--claude", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--only", help="run only the scenarios whose name contains this (by hand; CI runs all)")
    opts = ap.parse_args()
    opts.bin = str(Path(opts.bin).resolve())
    version = subprocess.run([opts.claude, "--version"], capture_output=True, text=True)
    print(f"claude-code: {version.stdout.strip()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="mesh-claude-code.") as tmp:
        work = Path(tmp)
        for scenario in (scenario_stdio, scenario_http, scenario_wake, scenario_watchdog, scenario_kit, scenario_worker,
                         scenario_channel, scenario_compact, scenario_reservations):
            if opts.only and opts.only not in scenario.__name__:
                continue
            try:
                scenario(opts.claude, opts.bin, work)
            except Exception as e:  # a scenario that crashes is a failure, never a skip
                check(False, f"{scenario.__name__} ran", repr(e))
    print(f"claude-code: {PASSED[0]} passed, {FAILED[0]} failed", flush=True)
    return 1 if FAILED[0] else 0


if __name__ == "__main__":
    sys.exit(main())
