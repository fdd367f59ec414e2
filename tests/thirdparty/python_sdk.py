#!/usr/bin/env python3
"""Drive mesh-mcp with the official MCP Python SDK (the `mcp` package, pinned in
requirements.txt), over stdio (stdio_client + ClientSession) and streamable HTTP
(streamable_http_client), plus a short legacy-SSE round trip (sse_client).

The scenario, per transport, each on its own database file:
  initialize (the `tools` and `resources` capabilities are declared; resources/list names
  mesh://swarms, prompts/list answers method-not-found), ping, tools/list; swarm_init maxAgents=4, four agent_spawn calls and a
  fifth that must be refused (isError, conflict); a direct message and a broadcast, received
  FIFO and acknowledged; a memory entry with ttl=1 that is gone ~2.5 s later; then the server
  process is restarted on the same database file and the swarm, its agents, the unacknowledged
  messages and a persistent memory key are all still there.

Usage: python_sdk.py [--transport stdio|http|sse|all ...] [--bin PATH]
Prints `python-sdk: N passed, M failed` last; exits 1 if anything failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.sse import sse_client

try:  # SDK 2.x
    from mcp.client.streamable_http import streamable_http_client
except ImportError:  # SDK 1.x spelling
    from mcp.client.streamable_http import streamablehttp_client as streamable_http_client

try:
    from mcp.shared.exceptions import MCPError
except ImportError:  # SDK 1.x
    from mcp.shared.exceptions import McpError as MCPError

REPO = Path(__file__).resolve().parents[2]
METHOD_NOT_FOUND = -32601
# The tools are the catalogue files under tools/ (one file per tool).
EXPECTED_TOOLS = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "tools").glob("*.json"))


class CheckFailed(Exception):
    pass


class Notices:
    """The server notifications a session received that the tests wait for."""

    def __init__(self) -> None:
        self.list_changed = 0
        self.cond = asyncio.Condition()

    async def handler(self, message: Any) -> None:
        method = getattr(getattr(message, "root", message), "method", None)
        if method == "notifications/resources/list_changed":
            async with self.cond:
                self.list_changed += 1
                self.cond.notify_all()

    async def wait_list_changed(self, n: int, timeout: float = 30) -> None:
        async with self.cond:
            await asyncio.wait_for(self.cond.wait_for(lambda: self.list_changed >= n), timeout)


class Results:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0
        self.failures: list[str] = []
        self.label = ""

    def ok(self, what: str) -> None:
        self.passed += 1
        print(f"  ok   {what}", flush=True)

    def fail(self, what: str) -> None:
        self.failed += 1
        self.failures.append(f"{self.label}: {what}")
        print(f"  FAIL {what}", flush=True)

    def check(self, cond: bool, what: str, detail: Any = None) -> None:
        if cond:
            self.ok(what)
            return
        msg = what if detail is None else f"{what}: got {short(detail)}"
        self.fail(msg)
        raise CheckFailed(msg)


R = Results()


def short(value: Any, limit: int = 700) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + "..."


def attr(obj: Any, *names: str, default: Any = None) -> Any:
    """Read a field under its SDK 2.x (snake_case) or 1.x (camelCase) name."""
    for name in names:
        if hasattr(obj, name):
            return getattr(obj, name)
    return default


async def call(session: ClientSession, name: str, args: dict[str, Any], expect_error: str | None = None) -> dict:
    """Call a tool; its result must be one text block of JSON. Without expect_error an
    isError result fails the check; with it, the call must fail with that error code."""
    shown = short(json.dumps({k: ("mesh_…" if k in ("agentToken", "ownerToken") else v) for k, v in args.items()}), 110)
    try:
        result = await session.call_tool(name, args)
    except MCPError as e:
        R.check(False, f"{name} {shown}", f"protocol error {e.error.code}: {e.error.message}")
    content = result.content
    if len(content) != 1 or getattr(content[0], "type", None) != "text":
        R.check(False, f"{name} {shown}: one text content block", [c.model_dump() for c in content])
    try:
        data = json.loads(content[0].text)
    except ValueError:
        R.check(False, f"{name} {shown}: text is JSON", content[0].text)
    is_error = bool(attr(result, "is_error", "isError", default=False))
    if expect_error is None:
        R.check(not is_error, f"{name} {shown}", data if is_error else None)
    else:
        code = data.get("error", {}).get("code") if isinstance(data, dict) else None
        R.check(is_error and code == expect_error,
                f"{name} {shown} -> isError {expect_error} (expected)",
                {"isError": is_error, "result": data})
    return data


async def expect_method_not_found(what: str, coro) -> None:
    try:
        await coro
    except MCPError as e:
        R.check(e.error.code == METHOD_NOT_FOUND, f"{what} -> method not found ({METHOD_NOT_FOUND})",
                f"error {e.error.code}: {e.error.message}")
        return
    R.check(False, f"{what} -> method not found", "a result instead of an error")


# --- transports ---------------------------------------------------------------------------------

class HttpServer:
    """`mesh-mcp serve --http 127.0.0.1:0 --db DB`, started and stopped as a process."""

    def __init__(self, binary: str, db: str, log: Path) -> None:
        self.binary, self.db, self.log = binary, db, log
        self.proc: subprocess.Popen | None = None
        self.base = ""

    def start(self) -> None:
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([self.binary, "serve", "--http", "127.0.0.1:0", "--db", self.db],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=logf)
        logf.close()
        deadline = time.monotonic() + 30
        seen = self.log.read_text(errors="replace") if self.log.exists() else ""
        start_len = len(seen)
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace")[start_len:]
            m = re.search(r"listening on (http://[^\s]+)", text)
            if m:
                base = m.group(1).rstrip("/")
                base = base[:-4] if base.endswith("/mcp") else base
                if base.endswith(":0"):
                    raise RuntimeError(f"server reported port 0 ({m.group(1)}); it must print the bound port")
                self.base = base
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"mesh-mcp serve --http exited with {self.proc.returncode}: {short(text)}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("mesh-mcp serve --http did not print 'listening on' within 30 s")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@contextlib.asynccontextmanager
async def open_session(transport: str, binary: str, db: str, server: HttpServer | None, errlog,
                       notices: Notices | None = None):
    notices = notices or Notices()
    if transport == "stdio":
        params = StdioServerParameters(command=binary, args=["serve", "--db", db])
        async with stdio_client(params, errlog=errlog) as streams:
            async with ClientSession(streams[0], streams[1]) as session:
                yield session
    elif transport == "http":
        async with streamable_http_client(f"{server.base}/mcp") as streams:
            async with ClientSession(streams[0], streams[1]) as session:
                yield session
    elif transport == "sse":
        async with sse_client(f"{server.base}/sse") as streams:
            async with ClientSession(streams[0], streams[1], message_handler=notices.handler) as session:
                yield session
    else:
        raise ValueError(transport)


# --- the scenario -------------------------------------------------------------------------------

async def handshake(session: ClientSession) -> None:
    init = await session.initialize()
    caps = attr(init, "capabilities")
    info = attr(init, "server_info", "serverInfo")
    R.check(attr(caps, "tools") is not None, "initialize: the tools capability is declared",
            caps.model_dump() if caps else None)
    R.ok(f"initialize: server {attr(info, 'name')} {attr(info, 'version')}, "
         f"protocol {attr(init, 'protocol_version', 'protocolVersion')}")
    await session.send_ping()
    R.ok("ping")
    if attr(caps, "resources") is None:
        await expect_method_not_found("resources/list (capability not declared)", session.list_resources())
    else:
        listed = await session.list_resources()
        uris = [str(r.uri) for r in listed.resources]
        R.check("mesh://swarms" in uris, "resources/list names mesh://swarms", uris)
    if attr(caps, "prompts") is None:
        await expect_method_not_found("prompts/list (capability not declared)", session.list_prompts())
    tools = await session.list_tools()
    names = sorted(t.name for t in tools.tools)
    R.check(names == EXPECTED_TOOLS, f"tools/list names the {len(EXPECTED_TOOLS)} tools", names)


async def scenario(transport: str, binary: str, work: Path) -> None:
    db = str(work / f"{transport}.db")
    server = None
    errlog = open(work / f"{transport}-stdio-stderr.log", "w")
    S = f"py-{transport}"
    NS = f"py-{transport}"
    try:
        if transport == "http":
            server = HttpServer(binary, db, work / "http-server.log")
            server.start()
            print(f"  server at {server.base}", flush=True)

        # -- first server process --------------------------------------------------------------
        async with open_session(transport, binary, db, server, errlog) as s:
            await handshake(s)
            d = await call(s, "swarm_init", {"topology": "mesh", "maxAgents": 4, "swarmId": S,
                                             "heartbeatInterval": 60, "messageTimeout": 600})
            R.check(d.get("maxAgents") == 4 and d.get("swarmId") == S, "swarm_init maxAgents=4", d)
            # This session passes the owner's token on by itself; the next process's needs it given.
            owner = d.get("ownerToken", "")

            tokens: dict[str, str] = {}
            ids: dict[str, str] = {}
            for name, kind in [("lead", "coordinator"), ("dev1", "coder"), ("dev2", "coder"), ("qa", "tester")]:
                d = await call(s, "agent_spawn", {"type": kind, "name": name, "swarmId": S})
                R.check(isinstance(d.get("agentToken"), str) and d["agentToken"] != "" and d.get("name") == name,
                        f"agent_spawn {name}: id and token", {k: v for k, v in d.items() if k != "agentToken"})
                tokens[name], ids[name] = d["agentToken"], d["agentId"]
            await call(s, "agent_spawn", {"type": "coder", "name": "extra", "swarmId": S}, expect_error="conflict")

            d = await call(s, "agent_list", {"swarmId": S})
            R.check(d.get("count") == 4, "agent_list: 4 agents after the refused 5th", d)
            status_before = await call(s, "swarm_status", {"swarmId": S})
            R.check(status_before["agents"]["total"] == 4, "swarm_status: 4 agents", status_before)

            d = await call(s, "daa_communication", {"action": "send", "from": "lead", "to": "dev1",
                                                    "type": "task_assignment", "message": {"task": "parse"},
                                                    "agentToken": tokens["lead"], "swarmId": S})
            R.check(len(d.get("delivered", [])) == 1, "direct message delivered to 1", d)
            d = await call(s, "daa_communication", {"from": "lead", "to": "all", "message": {"type": "network_init"},
                                                    "agentToken": tokens["lead"], "swarmId": S})
            R.check(len(d.get("delivered", [])) == 3, "broadcast delivered to the 3 others", d)

            d = await call(s, "daa_communication", {"action": "receive", "agentId": "dev1",
                                                    "agentToken": tokens["dev1"], "swarmId": S})
            msgs = d.get("messages", [])
            R.check([m.get("message") for m in msgs] == [{"task": "parse"}, {"type": "network_init"}]
                    and all(m.get("from") == ids["lead"] for m in msgs),
                    "dev1 receives the direct message, then the broadcast (FIFO per sender)", d)
            d = await call(s, "daa_communication", {"action": "ack", "agentId": "dev1",
                                                    "messageIds": [m["messageId"] for m in msgs],
                                                    "agentToken": tokens["dev1"], "swarmId": S})
            R.check(d.get("acknowledged") == 2, "dev1 acks both", d)
            d = await call(s, "daa_communication", {"action": "receive", "agentId": "dev1",
                                                    "agentToken": tokens["dev1"], "swarmId": S})
            R.check(d.get("messages") == [], "dev1's mailbox is empty after the ack", d)

            d = await call(s, "daa_communication", {"action": "receive", "agentId": "qa",
                                                    "agentToken": tokens["qa"], "swarmId": S})
            R.check([m.get("message") for m in d.get("messages", [])] == [{"type": "network_init"}],
                    "qa receives the broadcast", d)
            await call(s, "daa_communication", {"action": "ack", "agentId": "qa",
                                                "messageIds": [m["messageId"] for m in d["messages"]],
                                                "agentToken": tokens["qa"], "swarmId": S})
            # Left unacknowledged across the restart: dev2's broadcast, and dev2 -> qa.
            d = await call(s, "daa_communication", {"from": "dev2", "to": "qa", "type": "result_share",
                                                    "message": {"done": True},
                                                    "agentToken": tokens["dev2"], "swarmId": S})
            R.check(len(d.get("delivered", [])) == 1, "dev2 -> qa delivered", d)

            d = await call(s, "memory_usage", {"action": "store", "key": "persist:plan", "value": "durable",
                                               "namespace": NS})
            R.check(d.get("entry", {}).get("version") == 1, "store a persistent key", d)
            await call(s, "memory_usage", {"action": "store", "key": "ephemeral", "value": "soon gone",
                                           "ttl": 1, "namespace": NS})
            d = await call(s, "memory_usage", {"action": "retrieve", "key": "ephemeral", "namespace": NS})
            R.check(d.get("found") is True, "the ttl=1 entry is there at first", d)
            # Poll for the expiry rather than sleep past it: quick on an idle machine, patient on a busy one.
            deadline = time.monotonic() + 60
            while d.get("found") is True and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                d = await call(s, "memory_usage", {"action": "retrieve", "key": "ephemeral", "namespace": NS})
            R.check(d.get("found") is False, "the ttl=1 entry expires", d)
            d = await call(s, "memory_usage", {"action": "list", "key": "", "namespace": NS})
            R.check([e.get("key") for e in d.get("entries", [])] == ["persist:plan"],
                    "list shows only the persistent key", d)

        # -- restart the server process on the same database file ------------------------------
        if server is not None:
            server.stop()
            server.start()
            print(f"  server restarted at {server.base}", flush=True)
        else:
            print("  server process restarted (new stdio session)", flush=True)

        async with open_session(transport, binary, db, server, errlog) as s:
            await s.initialize()
            d = await call(s, "swarm_status", {"swarmId": S})
            R.check(d["agents"]["total"] == 4 and d["links"]["total"] == status_before["links"]["total"]
                    and d.get("maxAgents") == 4,
                    "after restart: swarm_status has the 4 agents and the same links", d)
            d = await call(s, "agent_list", {"swarmId": S})
            pending = {a["name"]: a.get("pendingMessages") for a in d.get("agents", [])}
            R.check(pending == {"lead": 0, "dev1": 0, "dev2": 1, "qa": 1},
                    "after restart: agent_list names the 4 agents with their unacked messages", pending)
            d = await call(s, "daa_communication", {"action": "receive", "agentId": "dev2",
                                                    "agentToken": tokens["dev2"], "swarmId": S})
            R.check([m.get("message") for m in d.get("messages", [])] == [{"type": "network_init"}],
                    "after restart: dev2 still has the broadcast", d)
            d = await call(s, "daa_communication", {"action": "receive", "agentId": "qa",
                                                    "agentToken": tokens["qa"], "swarmId": S})
            R.check([(m.get("from"), m.get("message")) for m in d.get("messages", [])] == [(ids["dev2"], {"done": True})],
                    "after restart: qa still has dev2's message", d)
            await call(s, "daa_communication", {"action": "ack", "agentId": "qa",
                                                "messageIds": [m["messageId"] for m in d["messages"]],
                                                "agentToken": tokens["qa"], "swarmId": S})
            d = await call(s, "memory_usage", {"action": "retrieve", "key": "persist:plan", "namespace": NS})
            R.check(d.get("found") is True and d.get("entry", {}).get("value") == "durable",
                    "after restart: the persistent memory key is intact", d)
            d = await call(s, "memory_usage", {"action": "retrieve", "key": "ephemeral", "namespace": NS})
            R.check(d.get("found") is False, "after restart: the expired key stays gone", d)
            await call(s, "swarm_destroy", {"swarmId": S}, expect_error="unauthorized")
            d = await call(s, "swarm_destroy", {"swarmId": S, "ownerToken": owner})
            R.check(d.get("agentsRemoved") == 4, "swarm_destroy removes the 4 agents", d)
            await call(s, "swarm_status", {"swarmId": S}, expect_error="not_found")
            d = await call(s, "memory_usage", {"action": "retrieve", "key": "persist:plan", "namespace": NS})
            R.check(d.get("found") is True, "memory outlives swarm_destroy", d)
    finally:
        if server is not None:
            server.stop()
        errlog.close()


async def sse_scenario(binary: str, work: Path) -> None:
    server = HttpServer(binary, str(work / "sse.db"), work / "sse-server.log")
    server.start()
    print(f"  server at {server.base}", flush=True)
    try:
        notices = Notices()
        async with open_session("sse", binary, "", server, None, notices) as s:
            await handshake(s)
            await call(s, "swarm_init", {"topology": "star", "swarmId": "py-sse",
                                          "heartbeatInterval": 600, "messageTimeout": 3600})
            await call(s, "agent_spawn", {"type": "coordinator", "swarmId": "py-sse"})
            d = await call(s, "swarm_status", {"swarmId": "py-sse"})
            R.check(d["agents"]["total"] == 1, "swarm_status over SSE", d)
            await notices.wait_list_changed(1)
            R.ok("notifications/resources/list_changed when the swarm appeared")
            await call(s, "swarm_destroy", {"swarmId": "py-sse"})
            # Close only once the last notification is in: the SDK's SSE reader raises
            # BrokenResourceError on a message that arrives while the session is closing.
            await notices.wait_list_changed(2)
            R.ok("notifications/resources/list_changed when the swarm went away")
    finally:
        server.stop()


def leaf_exceptions(e: BaseException):
    """The exceptions inside (nested) exception groups, so a failure names its real cause."""
    if isinstance(e, BaseExceptionGroup):
        for sub in e.exceptions:
            yield from leaf_exceptions(sub)
    else:
        yield e


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--transport", action="append", choices=["stdio", "http", "sse", "all"])
    ap.add_argument("--bin", default=os.environ.get("MESH_MCP_BIN", str(REPO / "target/debug/mesh-mcp")))
    opts = ap.parse_args()
    transports = opts.transport or ["all"]
    if "all" in transports:
        transports = ["stdio", "http", "sse"]
    if not os.access(opts.bin, os.X_OK):
        print(f"python-sdk: no server binary at {opts.bin} (cargo build)", file=sys.stderr)
        return 1

    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mesh-python-sdk.") as tmp:
        work = Path(tmp)
        for transport in transports:
            R.label = transport
            print(f"\n== python-sdk: {transport} ==", flush=True)
            try:
                if transport == "sse":
                    await asyncio.wait_for(sse_scenario(opts.bin, work), 120)
                else:
                    await asyncio.wait_for(scenario(transport, opts.bin, work), 180)
            except CheckFailed:
                print(f"  ({transport} scenario stopped at the first failure)", flush=True)
            except BaseException as e:  # a crash or a hang is a failure of this transport
                if isinstance(e, KeyboardInterrupt):
                    raise
                detail = "".join(traceback.format_exception(e)).strip().splitlines()
                leaves = list(leaf_exceptions(e))
                R.fail("; ".join(f"{type(x).__name__}: {x}" for x in leaves))
                print("       " + "\n       ".join(detail[-25:]), flush=True)
                for name in ("http-server.log", "sse-server.log", f"{transport}-stdio-stderr.log"):
                    log = work / name
                    if log.exists() and log.stat().st_size:
                        print(f"       server stderr ({name}, last lines):", flush=True)
                        for line in log.read_text(errors="replace").splitlines()[-15:]:
                            print(f"       | {line}", flush=True)

    print()
    if R.failures:
        print("python-sdk failures:")
        for f in R.failures:
            print(f"  - {f}")
    print(f"python-sdk: done in {time.monotonic() - start:.1f}s")
    print(f"python-sdk: {R.passed} passed, {R.failed} failed")
    return 0 if R.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
