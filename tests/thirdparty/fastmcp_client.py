"""fastmcp's client against mesh-mcp over stdio: the agent CLIs' scripted session (every tool,
one bad call), and for every success a typed result: fastmcp builds `.data` from the tool's
`outputSchema` and the result's `structuredContent`, and leaves it `None` without them.

Usage: fastmcp_client.py --bin PATH. Prints `fastmcp: N passed, M failed`.
"""

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from fastmcp import Client
from fastmcp.client.transports import StdioTransport

from claude_code import BAD_STEP, FAILED, PASSED, Scripted, check, session_script


async def run(binary: str, db: str) -> None:
    session = Scripted(session_script())
    async with Client(StdioTransport(command=binary, args=["serve", "--db", db])) as client:
        for step_i, step in enumerate(session.script):
            for i, call in enumerate(step):
                result = await client.call_tool(call["tool"], session.substitute(call["input"]), raise_on_error=False)
                text = result.content[0].text if result.content else ""
                session.results[f"toolu_{step_i}_{i}"] = {"content": text, "is_error": result.is_error}
                what = f"fastmcp: {call['tool']} (step {step_i})"
                if step_i == BAD_STEP:
                    check(result.is_error, f"{what}: the bad call is a tool error", text)
                else:
                    check(not result.is_error and result.data is not None, f"{what}: .data is typed", text[:500])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    opts = ap.parse_args()
    binary = str(Path(opts.bin).resolve())
    with tempfile.TemporaryDirectory(prefix="mesh-fastmcp.") as tmp:
        try:
            asyncio.run(run(binary, str(Path(tmp) / "mesh.db")))
        except Exception as e:  # a crash is a failure, never a skip
            check(False, "the session ran", repr(e))
    print(f"fastmcp: {PASSED[0]} passed, {FAILED[0]} failed", flush=True)
    return 1 if FAILED[0] else 0


if __name__ == "__main__":
    sys.exit(main())
