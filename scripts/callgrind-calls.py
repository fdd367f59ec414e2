#!/usr/bin/env python3
"""Instructions the real server spends per request over stdio, counted by callgrind.

For each op (a `ping`, which rmcp answers without our code; `memory_usage retrieve`;
`swarm_status` of a swarm of two agents, as the stdio bench sets it up) this runs
`mesh-mcp serve` under `valgrind --tool=callgrind` twice, once answering N requests and once
answering one, and prints (total of the first - total of the second) / (N - 1): what one more
request costs, start-up and set-up taken out. Instruction counts do not depend on what else the
machine is doing, so two builds compare exactly; they are not time (a large memcpy costs many
instructions and little time).

    python3 scripts/callgrind-calls.py [BINARY] [N]    # default target/release/mesh-mcp, 2000

Needs valgrind. Each run takes about a minute.
"""

import json
import os
import re
import subprocess
import sys
import tempfile

OPS = {
    "ping": ("ping", {}),
    "retrieve": ("tools/call", {"name": "memory_usage", "arguments": {"action": "retrieve", "key": "hot", "namespace": "bench"}}),
    "status": ("tools/call", {"name": "swarm_status", "arguments": {}}),
}


class Server:
    def __init__(self, binary, db, out):
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary, "--db", db, "serve"]
        self.p = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1
        )
        self.id = 0

    def request(self, method, params):
        self.id += 1
        self.p.stdin.write(json.dumps({"jsonrpc": "2.0", "id": self.id, "method": method, "params": params}) + "\n")
        self.p.stdin.flush()
        while True:
            line = self.p.stdout.readline()
            if not line:
                sys.exit("the server closed stdout")
            reply = json.loads(line)
            if reply.get("id") == self.id:
                if "error" in reply or reply.get("result", {}).get("isError"):
                    sys.exit(f"{method} {params} failed: {reply}")
                return reply

    def call(self, tool, args):
        return self.request("tools/call", {"name": tool, "arguments": args})

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def total(binary, op, n, workdir):
    out = os.path.join(workdir, f"callgrind.{op}.{n}")
    server = Server(binary, os.path.join(workdir, f"{op}-{n}.db"), out)
    server.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "callgrind-calls", "version": "0"}})
    server.p.stdin.write('{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
    server.call("swarm_init", {"topology": "mesh", "swarmId": "bench", "heartbeatInterval": 3600, "messageTimeout": 7200})
    server.call("agent_spawn", {"type": "coordinator", "name": "lead"})
    server.call("agent_spawn", {"type": "coder", "name": "dev"})
    server.call("memory_usage", {"action": "store", "key": "hot", "value": "v" * 100, "namespace": "bench"})
    method, params = OPS[op]
    for _ in range(n):
        server.request(method, params)
    server.close()
    with open(out) as f:
        for line in f:
            m = re.match(r"(summary|totals): (\d+)", line)
            if m:
                return int(m.group(2))
    sys.exit(f"no total in {out}")


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/mesh-mcp"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    with tempfile.TemporaryDirectory() as workdir:
        print(f"| op | instructions per request ({binary}, {n} requests) |")
        print("|---|---|")
        for op in OPS:
            per = (total(binary, op, n, workdir) - total(binary, op, 1, workdir)) / (n - 1)
            print(f"| {op} | {per:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
