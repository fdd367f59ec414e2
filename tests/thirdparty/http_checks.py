#!/usr/bin/env python3
"""Raw-HTTP checks of mesh-mcp's streamable HTTP transport that the official conformance
suite (0.1.16) has no scenario for: the session lifecycle and the Origin rule of MCP
2025-11-25 (basic/transports). Standard library only.

Usage: http_checks.py BASE   (e.g. http://127.0.0.1:PORT; /mcp and /sse are appended)

MUST-level rules fail the run; SHOULD-level rules print WARN and do not.
  MUST  initialize -> 200 with a result; the server assigns an Mcp-Session-Id (visible ASCII)
  MUST  notifications/initialized -> 202 Accepted, no body
  MUST  tools/list on the session (with MCP-Protocol-Version) -> 200 with every tool in tools/
  MUST  an unknown Mcp-Session-Id -> 404 Not Found
  MUST  an unsupported MCP-Protocol-Version -> 400 Bad Request
  MUST  a present, invalid Origin -> 403 Forbidden (on /mcp and on the legacy /sse)
  MUST  DELETE of the session -> 2xx (or 405 if clients may not end sessions), and after a
        2xx every request on that session id -> 404 Not Found
  SHOULD a request other than initialize without Mcp-Session-Id -> 400 Bad Request
  SHOULD GET /mcp on the session -> 200 text/event-stream, or 405 if there is no GET stream
  (interop) DELETE -> 200 or 204, which the Python SDK expects (it logs a warning otherwise)
Prints `http-checks: N passed, M failed` last; exits 1 on any MUST failure.
"""

from __future__ import annotations

import http.client
import json
import sys
import urllib.parse
from pathlib import Path

PROTOCOL = "2025-11-25"
passed = failed = warned = 0


def ok(what: str) -> None:
    global passed
    passed += 1
    print(f"  ok   {what}")


def bad(what: str) -> None:
    global failed
    failed += 1
    print(f"  FAIL {what}")


def warn(what: str) -> None:
    global warned
    warned += 1
    print(f"  WARN {what}")


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: str) -> None:
        self.status, self.headers, self.body = status, headers, body

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def message(self, want_id=None) -> dict | None:
        """The JSON-RPC message in the body: plain JSON, or the first SSE data event that is
        a response (to want_id when given)."""
        ctype = (self.header("content-type") or "").lower()
        if "text/event-stream" in ctype:
            for event in self.body.replace("\r\n", "\n").split("\n\n"):
                data = "\n".join(line[5:].lstrip() for line in event.split("\n") if line.startswith("data:"))
                if not data.strip():
                    continue
                try:
                    msg = json.loads(data)
                except ValueError:
                    continue
                if isinstance(msg, dict) and ("result" in msg or "error" in msg) and (want_id is None or msg.get("id") == want_id):
                    return msg
            return None
        try:
            return json.loads(self.body) if self.body.strip() else None
        except ValueError:
            return None

    def __str__(self) -> str:
        body = self.body if len(self.body) < 400 else self.body[:400] + "..."
        return f"HTTP {self.status} {json.dumps({k: v for k, v in self.headers.items() if k.startswith(('content-type', 'mcp-'))})} {body!r}"


class Server:
    def __init__(self, base: str) -> None:
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port
        self.authority = u.netloc

    def request(self, method: str, path: str, body: dict | None = None, headers: dict[str, str] | None = None,
                stream_until_id=None, timeout: float = 10) -> Reply:
        """One request on a fresh connection. For an SSE reply, read until the response to
        stream_until_id arrives (a POST stream) or only the status and headers (GET)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        h = {"Host": self.authority}
        if body is not None:
            h["Content-Type"] = "application/json"
            h["Accept"] = "application/json, text/event-stream"
        h.update(headers or {})
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
            resp = conn.getresponse()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            text = ""
            if "text/event-stream" in (hdrs.get("content-type") or ""):
                if stream_until_id is not None:
                    buf = b""
                    while True:
                        line = resp.readline()
                        if not line:
                            break
                        buf += line
                        probe = Reply(resp.status, hdrs, buf.decode("utf-8", "replace"))
                        if line in (b"\n", b"\r\n") and probe.message(stream_until_id) is not None:
                            break
                    text = buf.decode("utf-8", "replace")
            else:
                text = resp.read().decode("utf-8", "replace")
            return Reply(resp.status, hdrs, text)
        finally:
            conn.close()


def rpc(id_, method, params=None) -> dict:
    msg = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        msg["params"] = params
    return msg


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    srv = Server(sys.argv[1].rstrip("/"))
    mcp = "/mcp"

    # initialize
    init = rpc(1, "initialize", {"protocolVersion": PROTOCOL, "capabilities": {},
                                 "clientInfo": {"name": "mesh-mcp-http-checks", "version": "1.0.0"}})
    r = srv.request("POST", mcp, init, stream_until_id=1)
    msg = r.message(1)
    if r.status == 200 and msg and "result" in msg:
        ok(f"initialize -> 200, protocol {msg['result'].get('protocolVersion')}")
    else:
        bad(f"initialize -> expected 200 with a result, got {r}")
        return finish()
    sid = r.header("mcp-session-id")
    if not sid:
        bad(f"initialize: no Mcp-Session-Id header (the session checks need one): {r}")
        return finish()
    if all(0x21 <= ord(c) <= 0x7E for c in sid):
        ok("initialize assigns an Mcp-Session-Id of visible ASCII")
    else:
        bad(f"Mcp-Session-Id has characters outside 0x21-0x7E: {sid!r}")
    version = msg["result"].get("protocolVersion", PROTOCOL)
    session = {"Mcp-Session-Id": sid, "MCP-Protocol-Version": version}

    r = srv.request("POST", mcp, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
    if r.status == 202:
        ok("notifications/initialized -> 202 Accepted")
    else:
        bad(f"notifications/initialized -> expected 202, got {r}")

    r = srv.request("POST", mcp, rpc(2, "tools/list"), session, stream_until_id=2)
    msg = r.message(2)
    tools = sorted(t.get("name") for t in (msg or {}).get("result", {}).get("tools", []))
    expected = len(list((Path(__file__).resolve().parents[2] / "tools").glob("*.json")))
    if r.status == 200 and len(tools) == expected:
        ok(f"tools/list on the session -> 200 with the {expected} tools")
    else:
        bad(f"tools/list on the session -> expected 200 with {expected} tools, got {r}")

    r = srv.request("POST", mcp, rpc(3, "tools/list"), {"MCP-Protocol-Version": version}, stream_until_id=3)
    if r.status == 400:
        ok("tools/list without Mcp-Session-Id -> 400 Bad Request")
    else:
        warn(f"tools/list without Mcp-Session-Id -> SHOULD be 400, got {r}")

    r = srv.request("POST", mcp, rpc(4, "tools/list"),
                    {"Mcp-Session-Id": "no-such-session-0000", "MCP-Protocol-Version": version}, stream_until_id=4)
    if r.status == 404:
        ok("an unknown Mcp-Session-Id -> 404 Not Found")
    else:
        bad(f"an unknown Mcp-Session-Id -> expected 404, got {r}")

    r = srv.request("POST", mcp, rpc(5, "tools/list"), {**session, "MCP-Protocol-Version": "1999-01-01"},
                    stream_until_id=5)
    if r.status == 400:
        ok("an unsupported MCP-Protocol-Version -> 400 Bad Request")
    else:
        bad(f"an unsupported MCP-Protocol-Version (1999-01-01) -> expected 400, got {r}")

    r = srv.request("POST", mcp, rpc(6, "tools/list"), {**session, "Origin": "http://evil.example.com"},
                    stream_until_id=6)
    if r.status == 403:
        ok("a foreign Origin on /mcp (Host valid) -> 403 Forbidden")
    else:
        bad(f"a foreign Origin on /mcp -> expected 403, got {r}")
    r = srv.request("POST", mcp, rpc(7, "tools/list"), {**session, "Origin": f"http://{srv.authority}"},
                    stream_until_id=7)
    if r.status == 200:
        ok("the server's own Origin on /mcp -> 200")
    else:
        bad(f"the server's own Origin (http://{srv.authority}) on /mcp -> expected 200, got {r}")
    r = srv.request("GET", "/sse", None, {"Accept": "text/event-stream", "Origin": "http://evil.example.com"})
    if r.status == 403:
        ok("a foreign Origin on the legacy /sse -> 403 Forbidden")
    else:
        bad(f"a foreign Origin on /sse -> expected 403, got {r}")

    r = srv.request("GET", mcp, None, {**session, "Accept": "text/event-stream"}, timeout=5)
    ctype = r.header("content-type") or ""
    if (r.status == 200 and "text/event-stream" in ctype) or r.status == 405:
        ok(f"GET /mcp on the session -> {r.status} {ctype}".rstrip())
    else:
        warn(f"GET /mcp on the session -> SHOULD be 200 text/event-stream or 405, got {r}")

    r = srv.request("DELETE", mcp, None, session)
    if r.status == 405:
        ok("DELETE of the session -> 405 (clients may not end sessions)")
    elif 200 <= r.status < 300:
        ok(f"DELETE of the session -> {r.status}")
        if r.status not in (200, 204):
            warn(f"DELETE answered {r.status}: the official Python SDK expects 200 or 204 and logs "
                 f"'Session termination failed: {r.status}' (the spec names no success status)")
        r = srv.request("POST", mcp, rpc(8, "tools/list"), session, stream_until_id=8)
        if r.status == 404:
            ok("a request on the deleted session -> 404 Not Found")
        else:
            bad(f"a request on the deleted session -> expected 404, got {r}")
    else:
        bad(f"DELETE of the session -> expected 2xx or 405, got {r}")
    return finish()


def finish() -> int:
    if warned:
        print(f"http-checks: {warned} SHOULD-level warning(s) (not failures)")
    print(f"http-checks: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
