#!/usr/bin/env python3
"""kill -9 under multi-process load: does every acknowledged write survive?

    python3 scripts/reliability.py [--cycles N] [--procs P] [--bin PATH] [--durability process|power]

Each cycle starts P `mesh-mcp serve` processes on one SQLite file. Each writes memory entries
with unique keys and sends messages with unique ids to one agent, counting a write only once
its reply arrived (acknowledged). After a random 0.2-1.0 s every server is killed with SIGKILL.
Then a fresh server checks that every acknowledged entry is there; at the end it drains the
agent's mailbox and counts lost and duplicated messages. The counts go to stdout; the exit
status is 1 if anything acknowledged was lost or duplicated, or a reply said the database was
locked. Results are recorded in RELIABILITY.md.
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time


class Server:
    """A `mesh-mcp serve` child spoken to over stdio, one request at a time."""

    def __init__(self, binary, db, durability):
        env = dict(os.environ, MESH_METRICS="off")
        self.proc = subprocess.Popen([binary, "serve", "--db", db, "--durability", durability],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=env)
        self.next_id = 0
        self.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "reliability", "version": "0"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def send(self, message):
        self.proc.stdin.write((json.dumps(message) + "\n").encode())
        self.proc.stdin.flush()

    def request(self, method, params):
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise EOFError("the server is gone")
            reply = json.loads(line)
            if reply.get("id") == self.next_id:
                return reply

    def tool(self, name, args):
        """(ok, body) of a tools/call."""
        result = self.request("tools/call", {"name": name, "arguments": args})["result"]
        return not result.get("isError", False), json.loads(result["content"][0]["text"])

    def kill(self):
        try:
            self.proc.send_signal(signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


def load(server, cycle, p, sink_token_owner, acked, errors, stop):
    """Write until killed; record what was acknowledged."""
    n = 0
    try:
        while not stop.is_set():
            key = f"c{cycle}/p{p}/n{n}"
            ok, body = server.tool("memory_usage", {"action": "store", "key": key, "value": key, "namespace": "rel"})
            (acked["keys"].append(key) if ok else errors.append(json.dumps(body)))
            if n % 3 == 0:
                mid = f"{cycle}-{p}-{n}"
                ok, body = server.tool("daa_communication", {
                    "action": "send", "from": "src", "to": "sink", "swarmId": "rel",
                    "message": {"id": mid}, "agentToken": sink_token_owner["src"]})
                (acked["messages"].append(mid) if ok else errors.append(json.dumps(body)))
            n += 1
    except (EOFError, BrokenPipeError, ValueError, OSError):
        pass  # killed mid-call: that write was never acknowledged


def present_keys(server, prefix):
    keys, cursor = set(), None
    while True:
        args = {"action": "list", "key": prefix, "namespace": "rel", "limit": 500}
        if cursor:
            args["cursor"] = cursor
        ok, body = server.tool("memory_usage", args)
        assert ok, body
        keys.update(e["key"] for e in body["entries"])
        cursor = body.get("nextCursor")
        if not cursor:
            return keys


def drain(server, token):
    """Every message waiting for sink, acknowledged as read."""
    seen = []
    while True:
        ok, body = server.tool("daa_communication", {"action": "receive", "agentId": "sink", "swarmId": "rel",
                                                      "agentToken": token, "limit": 100})
        assert ok, body
        if not body["messages"]:
            return seen
        seen.extend(m["message"]["id"] for m in body["messages"])
        server.tool("daa_communication", {"action": "ack", "agentId": "sink", "swarmId": "rel", "agentToken": token,
                                          "messageIds": [m["messageId"] for m in body["messages"]]})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--bin", default="target/release/mesh-mcp")
    ap.add_argument("--durability", default="process", choices=["process", "power"])
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    random.seed(a.seed)
    work = tempfile.mkdtemp(prefix="mesh-reliability-")
    db = os.path.join(work, "mesh.db")

    setup = Server(a.bin, db, a.durability)
    ok, _ = setup.tool("swarm_init", {"topology": "mesh", "swarmId": "rel", "heartbeatInterval": 3600,
                                      "messageTimeout": 86400})
    tokens = {name: setup.tool("agent_spawn", {"type": "coder", "name": name})[1]["agentToken"]
              for name in ("src", "sink")}
    setup.kill()

    totals = {"keys": 0, "lost_keys": 0}
    messages, errors = [], []
    started = time.time()
    for cycle in range(a.cycles):
        acked = {"keys": [], "messages": []}
        stop = threading.Event()
        servers = [Server(a.bin, db, a.durability) for _ in range(a.procs)]
        threads = [threading.Thread(target=load, args=(s, cycle, p, tokens, acked, errors, stop))
                   for p, s in enumerate(servers)]
        for t in threads:
            t.start()
        time.sleep(random.uniform(0.2, 1.0))
        for s in servers:
            s.kill()
        stop.set()
        for t in threads:
            t.join()
        check = Server(a.bin, db, a.durability)
        present = present_keys(check, f"c{cycle}/")
        check.kill()
        lost = [k for k in acked["keys"] if k not in present]
        totals["keys"] += len(acked["keys"])
        totals["lost_keys"] += len(lost)
        messages.extend(acked["messages"])
        print(f"cycle {cycle + 1}/{a.cycles}: {len(acked['keys'])} writes acknowledged, {len(lost)} lost", flush=True)

    final = Server(a.bin, db, a.durability)
    received = drain(final, tokens["sink"])
    final.kill()
    lost_messages = len(set(messages) - set(received))
    duplicates = len(received) - len(set(received))
    locked = sum("database is locked" in e for e in errors)
    print(f"\n{a.cycles} cycles x {a.procs} processes, kill -9 each cycle, durability {a.durability}, "
          f"{time.time() - started:.0f} s")
    print(f"acknowledged writes: {totals['keys']}, lost: {totals['lost_keys']}")
    print(f"acknowledged messages: {len(messages)}, lost: {lost_messages}, delivered twice: {duplicates}")
    print(f"error replies: {len(errors)} (\"database is locked\": {locked})")
    bad = totals["lost_keys"] or lost_messages or duplicates or locked
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
