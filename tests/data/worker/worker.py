"""A scripted worker for tests/supervisor.rs: it speaks MCP (JSON-RPC lines over stdio) to its
own `mesh-mcp serve`, whose session is bound to this worker's agent by the token file its
supervisor gave it (MESH_AGENT_TOKEN_FILE); no token passes through its prompt or arguments.

Its prompt (stdin) says what to do:
- `work`: wait for a task, claim it, complete it with {"by": <agent id>, "pid": <pid>}, exit 0;
- `crash`: exit 1 at once;
- `stay`: wait, over and over, until killed;
- `sleep <seconds>`: sleep, then exit 0 (no MCP session: a cheap worker for the concurrency cap);
- `spend <usd>`: print a Claude Code stream-json `result` message saying it spent that, exit 0.
Every start and every exit is appended to starts.log in its working directory:
`<event> <pid> <agent id> <unix time>`; a SIGTERM (a graceful stop) is logged as `term`.
"""

import json
import os
import signal
import subprocess
import sys
import time


def log(event: str) -> None:
    with open("starts.log", "a") as f:
        f.write(f"{event} {os.getpid()} {os.environ.get('MESH_AGENT_ID', '')} {time.time():.3f}\n")


class Session:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([os.environ["MESH_BIN"], "serve", "--db", os.environ["MESH_MCP_DB"]],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.next = 0
        self.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "worker", "version": "0"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def send(self, message: dict) -> None:
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()

    def request(self, method: str, params: dict) -> dict:
        self.next += 1
        self.send({"jsonrpc": "2.0", "id": self.next, "method": method, "params": params})
        while True:
            message = json.loads(self.proc.stdout.readline())
            if message.get("id") == self.next:
                return message

    def call(self, tool: str, arguments: dict) -> dict:
        result = self.request("tools/call", {"name": tool, "arguments": arguments})["result"]
        body = json.loads(result["content"][0]["text"])
        if result.get("isError"):
            raise SystemExit(f"{tool} failed: {body}")
        return body


def terminated(_signum, _frame) -> None:
    log("term")
    os._exit(0)


def main() -> int:
    prompt = sys.stdin.read().strip()
    signal.signal(signal.SIGTERM, terminated)
    log("start")
    if prompt == "crash":
        log("exit")
        return 1
    if prompt.startswith("sleep "):
        time.sleep(float(prompt.split()[1]))
        log("exit")
        return 0
    if prompt.startswith("spend "):
        usage = {"input_tokens": 100, "output_tokens": 10}
        print(json.dumps({"type": "result", "usage": usage, "total_cost_usd": float(prompt.split()[1])}), flush=True)
        log("exit")
        return 0
    session = Session()
    while True:
        woke = session.call("daa_communication", {"action": "wait", "timeoutSecs": 30})
        if prompt == "stay":
            continue
        tasks = woke.get("tasks") or []
        if not tasks:
            continue
        task = tasks[0]
        claimed = session.call("task_orchestrate", {"action": "claim", "taskId": task})
        result = {"by": os.environ["MESH_AGENT_ID"], "pid": os.getpid()}
        session.call("task_orchestrate", {"action": "complete", "taskId": task,
                                          "fencingToken": claimed["fencingToken"], "result": result})
        log("exit")
        return 0


if __name__ == "__main__":
    sys.exit(main())
